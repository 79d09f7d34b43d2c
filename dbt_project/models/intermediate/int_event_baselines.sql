{{
    config(
        unique_key=['event_name', 'window_day', 'hour_of_day'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='window_day',
        partition_by=partition_by_day('window_day', 'date'),
        cluster_by=cluster_by_event('window_day'),
    )
}}

{#- The baseline of each baseline rule, per UTC day and hour of day of the window's last minute: the
    quantiles of the same event's complete window counts in the same hour of day on earlier days
    (days 1 to 7 before, and 7, 14, 21 and 28 days before: the same weekday counts twice). Only
    history from strictly before the day is used, and the median and a quantile band are robust: an
    earlier spike or outage does not move them. The band is computed from these quantiles in
    int_event_window_bands, with the rule's sensitivity. -#}
{%- set recount_from = minute_of(add_minutes(detection_now(), '-' ~ lookback_minutes())) %}

with

rules as (

    select event_name from {{ ref('alert_rules') }}
    where enabled and detector = 'baseline'

),

windows as (

    select
        windows.event_name,
        windows.minute_at,
        windows.window_count,
        windows.minutes_in_window >= windows.time_window_minutes as is_complete
    from {{ ref('int_event_window_counts') }} as windows
    inner join rules on windows.event_name = rules.event_name

),

hourly as (

    select
        event_name,
        {{ utc_date('minute_at') }} as window_day,
        {{ utc_hour('minute_at') }} as hour_of_day,
        window_count,
        is_complete
    from windows

),

{% if is_incremental() %}
    computed_before as (

        select
            event_name,
            min(window_day) as first_computed
        from {{ this }}
        group by event_name

    ),

    available as (

        select
            event_name,
            min(window_day) as first_available
        from hourly
        group by event_name

    ),

    recompute as (

        -- per event, the first day this run computes: the days the recount touches, or all days
        -- when the event is new here or its windows now begin earlier (history collected later)
        select
            available.event_name,
            case
                when computed_before.event_name is null then available.first_available
                when available.first_available < computed_before.first_computed then available.first_available
                else {{ utc_date(recount_from) }}
            end as recompute_from
        from available
        left join computed_before on available.event_name = computed_before.event_name

    ),
{% endif %}

targets as (

    select distinct
        hourly.event_name,
        hourly.window_day,
        hourly.hour_of_day
    from hourly
    {% if is_incremental() %}
        inner join recompute
            on
                hourly.event_name = recompute.event_name
                and hourly.window_day >= recompute.recompute_from
    {% endif %}

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
        history.window_count
    from reference_days
    inner join hourly as history
        on
            reference_days.event_name = history.event_name
            and reference_days.hour_of_day = history.hour_of_day
            and reference_days.history_day = history.window_day
    where history.is_complete

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
