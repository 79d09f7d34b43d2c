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

{%- set last_minute = minute_of(detection_now()) -%}
{#- recount the lookback, so that a late event recounts its minute -#}
{%- set lookback_start = minute_of(add_minutes(detection_now(), '-' ~ lookback_minutes())) -%}
{#- Raw events are read from a constant bound (BigQuery then prunes the raw table's partitions): the
    lookback on an incremental run, unless an event needs older history counted this run (an event
    not counted yet, paused past the lookback, or whose coverage now begins before its counts). -#}
{%- set scan_from = "cast('1970-01-01 00:00:00' as " ~ type_utc_timestamp() ~ ")" -%}
{%- if is_incremental() and execute and not (model is mapping and model.get('resource_type') == 'unit_test') -%}
    {%- set needs_history -%}
        select count(*)
        from {{ ref('alert_rules') }} as rules
        left join (
            select event_name, min(minute_at) as first_counted, max(minute_at) as last_counted
            from {{ this }}
            group by event_name
        ) as counted on rules.event_name = counted.event_name
        left join ({{ event_coverage_or_empty() }}) as coverage on rules.event_name = coverage.event_name
        where
            rules.enabled
            and (
                counted.event_name is null
                or {{ minute_of('coverage.collected_from') }} < counted.first_counted
                or counted.last_counted < {{ add_minutes(lookback_start, -1) }}
            )
    {%- endset -%}
    {%- if run_query(needs_history).columns[0].values()[0] == 0 -%}
        {%- set scan_from = lookback_start -%}
    {%- endif -%}
{%- endif %}

with

rules as (

    select event_name from {{ ref('alert_rules') }}
    where enabled

),

events as (

    select * from {{ ref('stg_mixpanel__events') }}

),

coverage as (

    select
        event_name,
        max(collected_from) as collected_from
    from ({{ event_coverage_or_empty() }}) as coverage_rows
    group by event_name

),

counted as (

    -- what earlier runs counted, per event (nothing on a full refresh)
    {% if is_incremental() %}
        select
            event_name,
            min(minute_at) as first_counted,
            max(minute_at) as last_counted
        from {{ this }}
        group by event_name
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as event_name,
            cast(null as {{ type_utc_timestamp() }}) as first_counted,
            cast(null as {{ type_utc_timestamp() }}) as last_counted
        from (select 1 as one) as no_rows
        where 1 = 0
    {% endif %}

),

first_events as (

    -- the first event stands in for the coverage an event lacks (only needed for events not
    -- counted yet: the scan of all history is skipped for the others)
    select
        events.event_name,
        min(events.event_at) as first_event_at
    from events
    inner join rules on events.event_name = rules.event_name
    left join coverage on events.event_name = coverage.event_name
    left join counted on events.event_name = counted.event_name
    where
        coverage.event_name is null
        and counted.event_name is null
        and events.event_at >= {{ scan_from }}
    group by events.event_name

),

known as (

    -- the first minute of each event's known data: minutes before it are unknown, not quiet
    select
        rules.event_name,
        {{ minute_of('coalesce(coverage.collected_from, first_events.first_event_at)') }} as known_from
    from rules
    left join coverage on rules.event_name = coverage.event_name
    left join first_events on rules.event_name = first_events.event_name

),

starts as (

    -- the first minute this run counts, per event: all its known history on a full refresh, on
    -- an event not counted yet, or when its known history now begins before what was counted (a
    -- backfill); else the lookback, or from the last counted minute after a pause
    select
        known.event_name,
        case
            when counted.event_name is null then known.known_from
            when known.known_from < counted.first_counted then known.known_from
            else
                greatest(
                    coalesce(known.known_from, {{ lookback_start }}),
                    least({{ lookback_start }}, {{ add_minutes('counted.last_counted', 1) }})
                )
        end as count_from
    from known
    left join counted on known.event_name = counted.event_name

),

minutes as (

    {{ minute_spine('(select min(count_from) from starts)', last_minute) }}

),

recent_events as (

    select
        events.event_name,
        {{ minute_of('events.event_at') }} as minute_at
    from events
    inner join starts on events.event_name = starts.event_name
    where
        events.event_at >= starts.count_from
        and events.event_at >= {{ scan_from }}
        and events.event_at < {{ add_minutes(last_minute, 1) }}

),

counted_now as (

    select
        event_name,
        minute_at,
        count(*) as event_count
    from recent_events
    group by event_name, minute_at

),

final as (

    -- every known minute of every enabled event, quiet minutes included with 0
    select
        starts.event_name,
        cast(minutes.minute_at as {{ type_utc_timestamp() }}) as minute_at,
        coalesce(counted_now.event_count, 0) as event_count
    from starts
    inner join minutes on cast(minutes.minute_at as {{ type_utc_timestamp() }}) >= starts.count_from
    left join counted_now
        on
            starts.event_name = counted_now.event_name
            and cast(minutes.minute_at as {{ type_utc_timestamp() }}) = counted_now.minute_at

)

select * from final
