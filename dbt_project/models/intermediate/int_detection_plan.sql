{{ config(materialized='table') }}

{#- What this detection run does for each enabled rule, from what the runs before did
    (int_detection_progress) and what arrived since (int_detection_changes):

    - known_from: the first minute of the event's known data (event_coverage.collected_from, else
      its first event): minutes before it are unknown, not quiet;
    - recount_all: count the event's whole known history from the raw table: it is new here, its
      known data now begins elsewhere (history collected later, a span given up), or the moment went
      back (a replay); on a full refresh, every event;
    - rewindow_all: judge its whole history again (its windows, bands, anomalies, incidents): its rule
      changed (rule_fingerprint), or recount_all;
    - previous_last_counted: the last minute the runs before counted, from which new minutes are
      counted (quiet ones too: a drop is judged on them);
    - inserted_through: the newest inserted_at of the raw events counted once this run is done,
      the watermark of the next run's changes. -#}
{%- set last_minute = minute_of(detection_now()) -%}
{%- set progress = previous_build('int_detection_progress') -%}
{%- set epoch = "cast('1970-01-01 00:00:00' as " ~ type_utc_timestamp() ~ ")" -%}
{%- set unseen_without_coverage = single_value(
    "select count(*) from " ~ ref('alert_rules') ~ " as rules"
    ~ " left join (" ~ event_coverage_or_empty() ~ ") as coverage on rules.event_name = coverage.event_name"
    ~ (" left join " ~ progress ~ " as previous on rules.event_name = previous.event_name" if progress is not none else "")
    ~ " where rules.enabled and coverage.event_name is null"
    ~ (" and previous.event_name is null" if progress is not none else "")
) if execute else 0 -%}

-- depends_on: {{ ref('stg_mixpanel__events') }}

with

rules as (

    select
        alert_rules.event_name,
        {{ rule_fingerprint('alert_rules') }} as fingerprint
    from {{ ref('alert_rules') }} as alert_rules
    where alert_rules.enabled

),

coverage as (

    select
        event_name,
        max(collected_from) as collected_from
    from ({{ event_coverage_or_empty() }}) as coverage_rows
    group by event_name

),

previous as (

    {% if progress is not none %}
        select
            event_name,
            known_from,
            last_counted,
            fingerprint,
            inserted_through
        from {{ progress }}
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as event_name,
            cast(null as {{ type_utc_timestamp() }}) as known_from,
            cast(null as {{ type_utc_timestamp() }}) as last_counted,
            cast(null as {{ dbt.type_string() }}) as fingerprint,
            cast(null as {{ type_utc_timestamp() }}) as inserted_through
        from (select 1 as one) as no_rows
        where 1 = 0
    {% endif %}

),

changes as (

    select
        event_name,
        min(minute_at) as first_changed,
        max(last_inserted_at) as last_inserted_at
    from {{ ref('int_detection_changes') }}
    group by event_name

),

first_events as (

    -- the first event stands in for the coverage an event lacks: a scan of its history, once
    {% if unseen_without_coverage | int > 0 %}
        select
            events.event_name,
            min(events.event_at) as first_event_at
        from {{ ref('stg_mixpanel__events') }} as events
        inner join rules on events.event_name = rules.event_name
        left join coverage on events.event_name = coverage.event_name
        left join previous on events.event_name = previous.event_name
        where coverage.event_name is null and previous.event_name is null
        group by events.event_name
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as event_name,
            cast(null as {{ type_utc_timestamp() }}) as first_event_at
        from (select 1 as one) as no_rows
        where 1 = 0
    {% endif %}

),

high_water as (

    -- the newest inserted_at among the enabled events' raw rows: the changes' newest since the
    -- watermark, else the watermark; on a first run or a full refresh, all of them (a scan, once)
    {% if progress is not none %}
        select
            coalesce(
                (select max(changes.last_inserted_at) from changes),
                (select max(previous.inserted_through) from previous),
                {{ epoch }}
            ) as inserted_through
    {% else %}
        select coalesce(max(events.inserted_at), {{ epoch }}) as inserted_through
        from {{ ref('stg_mixpanel__events') }} as events
        where events.event_name in (select rules.event_name from rules)
    {% endif %}

),

known as (

    select
        rules.event_name,
        rules.fingerprint,
        case
            when coverage.collected_from is not null then {{ minute_of('coverage.collected_from') }}
            -- events arrived before the known data (or the first ones of an event that had none)
            when
                previous.event_name is not null
                and (previous.known_from is null or changes.first_changed < previous.known_from)
                then changes.first_changed
            when previous.event_name is not null then previous.known_from
            else {{ minute_of('first_events.first_event_at') }}
        end as known_from
    from rules
    left join coverage on rules.event_name = coverage.event_name
    left join previous on rules.event_name = previous.event_name
    left join changes on rules.event_name = changes.event_name
    left join first_events on rules.event_name = first_events.event_name

),

judged as (

    select
        known.event_name,
        known.known_from,
        known.fingerprint,
        previous.last_counted as previous_last_counted,
        (
            previous.event_name is null
            or coalesce(previous.known_from, {{ epoch }}) != coalesce(known.known_from, {{ epoch }})
            or previous.last_counted > {{ last_minute }}
        ) as recount_all,
        coalesce(previous.fingerprint, '') != known.fingerprint as rule_changed
    from known
    left join previous on known.event_name = previous.event_name

),

final as (

    select
        judged.event_name,
        judged.known_from,
        judged.fingerprint,
        judged.previous_last_counted,
        judged.recount_all,
        judged.recount_all or judged.rule_changed as rewindow_all,
        {{ last_minute }} as last_minute,
        high_water.inserted_through
    from judged
    cross join high_water

)

select * from final
