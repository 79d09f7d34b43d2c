{{
    config(
        unique_key=['event_name', 'minute_at'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='minute_at',
        partition_by=partition_by_day('minute_at', 'timestamp'),
        cluster_by=cluster_by_event('minute_at'),
    )
}}

{%- set recount_from = minute_of(add_minutes(detection_now(), '-' ~ lookback_minutes())) %}

with

rules as (

    select * from {{ ref('alert_rules') }}
    where enabled

),

{% if is_incremental() %}
    windowed_before as (

        select
            event_name,
            min(minute_at) as first_windowed,
            max(minute_at) as last_windowed
        from {{ this }}
        group by event_name

    ),

    counted as (

        select
            event_name,
            min(minute_at) as first_counted
        from {{ ref('int_event_counts_per_minute') }}
        group by event_name

    ),

    recount as (

        -- per event, the first window this run computes: the recount range, or all the event's
        -- counts when it is new here or its counts now begin earlier (history collected later),
        -- and anything after its last window (an event enabled again after a long pause)
        select
            counted.event_name,
            case
                when windowed_before.event_name is null then counted.first_counted
                when counted.first_counted < windowed_before.first_windowed then counted.first_counted
                else least(
                    greatest(counted.first_counted, {{ recount_from }}),
                    {{ add_minutes('windowed_before.last_windowed', 1) }}
                )
            end as window_from
        from counted
        left join windowed_before on counted.event_name = windowed_before.event_name

    ),
{% endif %}

counts as (

    select all_counts.*
    from {{ ref('int_event_counts_per_minute') }} as all_counts
    {% if is_incremental() %}
        -- a window reaches at most one day back (time_window_minutes <= 1440)
        inner join recount
            on
                all_counts.event_name = recount.event_name
                and all_counts.minute_at >= {{ add_minutes('recount.window_from', -1440) }}
    {% endif %}

),

running_totals as (

    -- running totals over the known (zero-filled) minutes: a window's count is the difference of
    -- two running totals W minutes apart, found by an equality join
    select
        event_name,
        minute_at,
        event_count,
        -- a 64-bit count (DuckDB's sum would widen it to 128 bits, a float in pandas)
        cast(sum(event_count) over (
            partition by event_name order by minute_at rows between unbounded preceding and current row
        ) as {{ dbt.type_bigint() }}) as running_count,
        row_number() over (partition by event_name order by minute_at) as running_minutes,
        min(minute_at) over (partition by event_name) as first_minute
    from counts

),

segments as (

    -- known minutes come in contiguous segments (a gap is a time no data is known for: an event
    -- enabled again whose history is still coming); within one, minute - row number is constant
    select
        *,
        {{ minutes_between('first_minute', 'minute_at') }} - running_minutes as segment
    from running_totals

),

running as (

    -- the totals just before the segment's first minute: a window whose minute W before is
    -- unknown counts the known minutes of its segment only
    select
        event_name,
        minute_at,
        running_count,
        running_minutes,
        first_value(running_count - event_count) over (
            partition by event_name, segment order by minute_at rows between unbounded preceding and current row
        ) as segment_base_count,
        first_value(running_minutes - 1) over (
            partition by event_name, segment order by minute_at rows between unbounded preceding and current row
        ) as segment_base_minutes
    from segments

),

windowed as (

    -- the window of minute m is the W whole minutes ending with m
    select
        window_end.event_name,
        window_end.minute_at,
        rules.time_window_minutes,
        rules.alert_threshold,
        rules.alert_channel,
        rules.cooldown_minutes,
        window_end.running_count
        - coalesce(before_window.running_count, window_end.segment_base_count) as window_count,
        window_end.running_minutes
        - coalesce(before_window.running_minutes, window_end.segment_base_minutes) as minutes_in_window
    from running as window_end
    inner join rules on window_end.event_name = rules.event_name
    left join running as before_window
        on
            window_end.event_name = before_window.event_name
            and {{ add_minutes('window_end.minute_at', '-1 * rules.time_window_minutes') }}
            = before_window.minute_at
    {% if is_incremental() %}
        inner join recount
            on
                window_end.event_name = recount.event_name
                and window_end.minute_at >= recount.window_from
    {% endif %}

),

final as (

    select
        event_name,
        {{ add_minutes('minute_at', '1 - time_window_minutes') }} as window_start,
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
