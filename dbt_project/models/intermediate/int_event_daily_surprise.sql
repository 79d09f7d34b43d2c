{{
    config(
        unique_key=['rule_id', 'window_day'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='window_day',
        partition_by=partition_by_day('window_day', 'date'),
        cluster_by=cluster_by_event('window_day'),
        pre_hook=["{{ adopt_rule_ids() }}", "{{ forget_unmonitored_rules() }}",
            "{{ forget_outside_known_data(day_column='window_day') }}",
            "{{ forget_after_the_moment(day_column='window_day') }}"],
    )
}}

{#- How surprised its own baseline was by each baseline rule's count, per day (in DETECTION_TIMEZONE): the largest
    z = (count - median) / sigma_up of the day's complete windows. A bursty event (tweets, a
    marketing push every afternoon) has days whose largest z is 10 or 20 without anything being
    wrong; int_event_window_bands raises the spike bar of such an event to a multiple of its
    typical daily largest z, so it alerts on what is unusual for it. A run scores again the days
    whose windows or baselines it computed (int_detection_baseline_targets). -#}
{%- set low_day = earliest(ref('int_detection_baseline_targets'), 'window_day') -%}
{%- set days_from = local_day_floor(low_day) if low_day is not none else none %}

-- depends_on: {{ ref('int_event_window_counts') }}

-- depends_on: {{ ref('int_detection_plan') }}
with

target_days as (

    -- the days whose windows or baselines this run computed again
    select distinct
        rule_id,
        window_day
    from {{ ref('int_detection_baseline_targets') }}

),

windows as (

    {% if days_from is not none %}
        select
            windows.rule_id,
            windows.minute_at,
            windows.window_count
        from {{ ref('int_event_window_counts') }} as windows
        inner join target_days
            on
                windows.rule_id = target_days.rule_id
                and {{ local_date('windows.minute_at') }} = target_days.window_day
        where
            windows.minute_at >= {{ literal_of(days_from) }}
            and windows.minutes_in_window >= windows.time_window_minutes
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as rule_id,
            cast(null as {{ type_utc_timestamp() }}) as minute_at,
            cast(0 as {{ dbt.type_bigint() }}) as window_count
        from (select 1 as one) as no_rows
        where 1 = 0
    {% endif %}

),

baselines as (

    select baselines.*
    from {{ ref('int_event_baselines') }} as baselines
    inner join target_days
        on baselines.rule_id = target_days.rule_id and baselines.window_day = target_days.window_day
    where baselines.history_days >= {{ baseline_min_history_days() }}
    {% if low_day is not none %}
        and baselines.window_day >= {{ literal_of(low_day) }}
    {% endif %}

),

scored as (

    select
        windows.rule_id,
        baselines.event_name,
        baselines.window_day,
        (windows.window_count - baselines.q50)
        / {{ baseline_sigma('baselines.q50', 'baselines.q95') }} as surprise
    from windows
    inner join baselines
        on
            windows.rule_id = baselines.rule_id
            and {{ local_date('windows.minute_at') }} = baselines.window_day
            and {{ local_hour('windows.minute_at') }} = baselines.hour_of_day

),

final as (

    select
        rule_id,
        event_name,
        window_day,
        cast(max(surprise) as {{ dbt.type_float() }}) as max_surprise,
        count(*) as scored_windows
    from scored
    group by rule_id, event_name, window_day

)

select * from final
{{ in_time_order('window_day') }}
