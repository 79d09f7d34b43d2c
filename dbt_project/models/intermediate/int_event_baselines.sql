{{
    config(
        unique_key=['event_name', 'window_day', 'hour_of_day'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='window_day',
        partition_by=partition_by_day('window_day', 'date'),
        cluster_by=cluster_by_event('window_day'),
        pre_hook=["{{ forget_unmonitored_events() }}", "{{ forget_outside_known_data(day_column='window_day') }}",
            "{{ forget_after_the_moment(day_column='window_day', hour_column='hour_of_day') }}"],
    )
}}

{#- The baseline of each baseline rule, per UTC day and hour of day of the window's last minute: the
    quantiles of the same event's complete window counts in the same hour of day on earlier days
    (days 1 to 7 before, and 7, 14, 21 and 28 days before: the same weekday counts twice). Only
    history from strictly before the day is used, and the median and a quantile band are robust: an
    earlier spike or outage does not move them. The band is computed from these quantiles in
    int_event_window_bands, with the rule's sensitivity. The windows come a row per hour
    (int_event_hour_windows). A run computes the baselines its changed windows touch
    (int_detection_baseline_targets). -#}
{%- set low_day = earliest(ref('int_detection_baseline_targets'), 'window_day') -%}
{%- set history_from = (low_day - modules.datetime.timedelta(days=28)) if low_day is not none
    else modules.datetime.date(9999, 12, 31) %}


-- depends_on: {{ ref('int_detection_plan') }}
with

targets as (

    select * from {{ ref('int_detection_baseline_targets') }}

),

hour_windows as (

    -- the hours the targets learn from (28 days before the earliest one): a literal bound
    select hour_windows.*
    from {{ ref('int_event_hour_windows') }} as hour_windows
    where
        hour_windows.window_day >= {{ literal_of(history_from) }}
        and hour_windows.event_name in (select targets.event_name from targets)

),

offsets as (

    {% for days in [1, 2, 3, 4, 5, 6, 7, 7, 14, 21, 28] %}
        {% if not loop.first %}
            union all
        {% endif %}
        select {{ days }} as days_before
    {% endfor %}

),

reference_days as (

    select
        targets.event_name,
        targets.window_day,
        targets.hour_of_day,
        {{ days_before('targets.window_day', 'offsets.days_before') }} as history_day
    from targets
    cross join offsets

),

reference as (

    -- the complete windows of the same event and hour of day on the earlier days
    select
        reference_days.event_name,
        reference_days.window_day,
        reference_days.hour_of_day,
        reference_days.history_day,
        window_count  -- noqa: RF02
    from reference_days
    inner join hour_windows
        on
            reference_days.event_name = hour_windows.event_name
            and reference_days.hour_of_day = hour_windows.hour_of_day
            and reference_days.history_day = hour_windows.window_day
    cross join {{ unnest_values('hour_windows.window_counts', 'window_count') }}

),

quantiles as (

    select
        event_name,
        window_day,
        hour_of_day,
        count(distinct history_day) as history_days,
        count(*) as reference_windows,
        cast({{ band_quantile('window_count', 0.05) }} as {{ dbt.type_float() }}) as q05,
        cast({{ band_quantile('window_count', 0.5) }} as {{ dbt.type_float() }}) as q50,
        cast({{ band_quantile('window_count', 0.95) }} as {{ dbt.type_float() }}) as q95
    from reference
    group by event_name, window_day, hour_of_day

),

final as (

    select
        targets.event_name,
        targets.window_day,
        targets.hour_of_day,
        quantiles.q05,
        quantiles.q50,
        quantiles.q95,
        coalesce(quantiles.history_days, 0) as history_days,
        coalesce(quantiles.reference_windows, 0) as reference_windows
    from targets
    left join quantiles
        on
            targets.event_name = quantiles.event_name
            and targets.window_day = quantiles.window_day
            and targets.hour_of_day = quantiles.hour_of_day

)

select * from final
{{ in_time_order('window_day') }}
