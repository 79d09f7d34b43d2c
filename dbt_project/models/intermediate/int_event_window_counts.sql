{{
    config(
        unique_key=['event_name', 'minute_at'],
        on_schema_change='append_new_columns',
    )
}}

{#- the longest window reaches this far before the recounted minutes -#}
{%- set recount_from = minute_of(dbt.dateadd('minute', -1 * var('lookback_minutes'), detection_now())) -%}

with

rules as (

    select * from {{ ref('alert_rules') }}
    where enabled

),

counts as (

    select * from {{ ref('int_event_counts_per_minute') }}

),

window_ends as (

    select
        counts.event_name,
        counts.minute_at,
        rules.time_window_minutes,
        rules.alert_threshold,
        rules.alert_channel,
        rules.cooldown_minutes
    from counts
    inner join rules on counts.event_name = rules.event_name
    {% if is_incremental() %}
        where counts.minute_at >= {{ recount_from }}
    {% endif %}

),

windowed as (

    -- the window of minute m is the W whole minutes ending with m
    select
        window_ends.event_name,
        window_ends.minute_at,
        window_ends.time_window_minutes,
        window_ends.alert_threshold,
        window_ends.alert_channel,
        window_ends.cooldown_minutes,
        sum(counts.event_count) as window_count,
        count(*) as minutes_in_window
    from window_ends
    inner join counts
        on
            window_ends.event_name = counts.event_name
            and window_ends.minute_at >= counts.minute_at
            and {{ dbt.dateadd('minute', '-1 * window_ends.time_window_minutes', 'window_ends.minute_at') }}
            < counts.minute_at
    group by
        window_ends.event_name,
        window_ends.minute_at,
        window_ends.time_window_minutes,
        window_ends.alert_threshold,
        window_ends.alert_channel,
        window_ends.cooldown_minutes

),

final as (

    select
        event_name,
        {{ dbt.dateadd('minute', '1 - time_window_minutes', 'minute_at') }} as window_start,
        minute_at,
        time_window_minutes,
        window_count,
        minutes_in_window,
        alert_threshold,
        alert_channel,
        cooldown_minutes,
        window_count > alert_threshold as is_anomalous
    from windowed

)

select * from final
