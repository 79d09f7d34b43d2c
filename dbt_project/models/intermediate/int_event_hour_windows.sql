{{
    config(
        unique_key=['rule_id', 'window_day', 'hour_of_day'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='window_day',
        partition_by=partition_by_day('window_day', 'date'),
        cluster_by=cluster_by_event('window_day'),
        pre_hook=["{{ adopt_rule_ids() }}", "{{ forget_unmonitored_rules() }}",
            "{{ forget_outside_known_data(day_column='window_day') }}",
            "{{ forget_after_the_moment(day_column='window_day', hour_column='hour_of_day') }}"],
    )
}}

{#- What a baseline learns from, compactly: each baseline rule's complete window counts per day
    and hour of day (in DETECTION_TIMEZONE) of the window's last minute, as one list (the hour's 60 windows in one row), so
    int_event_baselines reads 11 rows per baseline, not 660 windows, and a run's read of 28 days of
    history stays small. A run writes the hours whose windows it computed
    (int_detection_baseline_targets.windows_changed); an hour without a complete window has an
    empty list. -#}
{%- set low_day = earliest(ref('int_detection_baseline_targets'), 'window_day', 'windows_changed') -%}
{%- set windows_from = local_day_floor(low_day) if low_day is not none
    else modules.datetime.datetime(9999, 12, 31) %}

with

changed_hours as (

    select
        rule_id,
        event_name,
        window_day,
        hour_of_day
    from {{ ref('int_detection_baseline_targets') }}
    where windows_changed

),

windows as (

    -- the complete windows of the changed hours' days (a literal bound: older partitions not read)
    select
        windows.rule_id,
        windows.minute_at,
        windows.window_count,
        {{ local_date('windows.minute_at') }} as window_day,
        {{ local_hour('windows.minute_at') }} as hour_of_day
    from {{ ref('int_event_window_counts') }} as windows
    where
        windows.minute_at >= {{ literal_of(windows_from) }}
        and windows.minutes_in_window >= windows.time_window_minutes
        and windows.rule_id in (select changed_hours.rule_id from changed_hours)

),

final as (

    select
        changed_hours.rule_id,
        changed_hours.event_name,
        changed_hours.window_day,
        changed_hours.hour_of_day,
        {{ value_list('windows.window_count', 'windows.minute_at') }} as window_counts
    from changed_hours
    left join windows
        on
            changed_hours.rule_id = windows.rule_id
            and changed_hours.window_day = windows.window_day
            and changed_hours.hour_of_day = windows.hour_of_day
    group by changed_hours.rule_id, changed_hours.event_name, changed_hours.window_day, changed_hours.hour_of_day

)

select * from final
{{ in_time_order('window_day') }}
