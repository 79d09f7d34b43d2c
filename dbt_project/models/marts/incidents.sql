with

anomalies as (

    select * from {{ ref('anomalies') }}

),

counts as (

    select * from {{ ref('int_event_counts_per_minute') }}

),

sequenced as (

    select
        *,
        lag(window_end_minute) over (partition by event_name order by window_end_minute) as previous_minute
    from anomalies

),

flagged as (

    -- anomalous minutes of one event less than the cooldown apart belong to one incident
    select
        *,
        case
            when previous_minute is null then 1
            when {{ minutes_between('previous_minute', 'window_end_minute') }} >= cooldown_minutes then 1
            else 0
        end as starts_incident
    from sequenced

),

numbered as (

    select
        *,
        sum(starts_incident) over (
            partition by event_name order by window_end_minute rows between unbounded preceding and current row
        ) as incident_number
    from flagged

),

grouped as (

    select
        event_name,
        incident_number,
        min(window_end_minute) as first_anomalous_minute,
        max(window_end_minute) as last_anomalous_minute,
        min(window_start) as first_window_start,
        count(*) as anomalous_minutes,
        max(event_count) as peak_count,
        max(excess) as peak_excess,
        max(alert_threshold) as alert_threshold,
        max(time_window_minutes) as time_window_minutes,
        max(alert_channel) as alert_channel,
        max(cooldown_minutes) as cooldown_minutes
    from numbered
    group by event_name, incident_number

),

totals as (

    select
        grouped.event_name,
        grouped.incident_number,
        cast(sum(counts.event_count) as {{ dbt.type_bigint() }}) as total_events
    from grouped
    inner join counts
        on
            grouped.event_name = counts.event_name
            and grouped.first_window_start <= counts.minute_at
            and grouped.last_anomalous_minute >= counts.minute_at
    group by grouped.event_name, grouped.incident_number

),

over_flags as (

    select
        *,
        {{ minutes_between('last_anomalous_minute', detection_now()) }} >= cooldown_minutes as is_over
    from grouped

),

final as (

    select
        {{ dbt.hash(dbt.concat([
            'grouped.event_name', "'|'", dbt.cast('grouped.first_anomalous_minute', dbt.type_string())
        ])) }} as incident_id,
        grouped.event_name,
        grouped.first_anomalous_minute,
        grouped.last_anomalous_minute,
        grouped.first_window_start as started_at,
        case when grouped.is_over then {{ add_minutes('grouped.last_anomalous_minute', 1) }} end as ended_at,
        case when grouped.is_over then 'over' else 'open' end as status,
        grouped.anomalous_minutes,
        grouped.peak_count,
        grouped.peak_excess,
        totals.total_events,
        grouped.alert_threshold,
        grouped.time_window_minutes,
        grouped.alert_channel,
        grouped.cooldown_minutes
    from over_flags as grouped
    inner join totals
        on
            grouped.event_name = totals.event_name
            and grouped.incident_number = totals.incident_number

)

select * from final
