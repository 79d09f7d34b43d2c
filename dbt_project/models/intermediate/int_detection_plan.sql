{{ config(materialized='table') }}

{#- What this detection run does for each enabled rule (rule_id; event_name, the event it watches),
    from what the runs before did (int_detection_progress) and what arrived since
    (int_detection_changes). The event's first minute and known data are the event's, shared by its
    rules:

    - first_event_minute: the minute of the event's first event ever in the warehouse (a scan of
      its history once, when the rule is new here; then the earliest of it and what arrived since);
    - known_from: the first minute of the event's known data: its first event's, or the start of
      its collected data (event_coverage.collected_from) if that is later. Minutes before it are
      unknown, not quiet: an event that did not exist yet had no zeros to learn from, so a brand-new
      event learns and does not alert; none before its first event;
    - recount_all: count the event's whole known history from the raw table: it is new here, its
      known data now begins elsewhere (history collected later, a span given up), or the moment went
      back (a replay); on a full refresh, every event;
    - rewindow_all: judge its whole history again (its windows, bands, anomalies, incidents): its rule
      changed (rule_fingerprint), or recount_all;
    - previous_last_counted: the last minute the runs before counted, from which new minutes are
      counted (quiet ones too: a drop is judged on them);
    - drops_before, previous_drops_before: the minute before which windows may be judged drops in
      this run and the last (drops_judged_before: the collected data's newest minute, if earlier than
      the run's, less the settle time); the windows between them are judged again;
    - inserted_through: the newest inserted_at of the raw events counted once this run is done,
      the watermark of the next run's changes. -#}
{%- set last_minute = minute_of(detection_now()) -%}
{%- set progress = previous_build('int_detection_progress') -%}
{%- set epoch = "cast('1970-01-01 00:00:00' as " ~ type_utc_timestamp() ~ ")" -%}
{%- set recorded = (adapter.get_columns_in_relation(progress) | map(attribute='name') | map('lower') | list)
    if execute and progress is not none else [] -%}
{#- a record from before first_event_minute existed: every event's first event is looked for once -#}
{%- set recorded_first_events = 'first_event_minute' in recorded -%}
{#- a record from before rule ids: each rule was its event, rule_id = event_name -#}
{%- set recorded_rule = 'rule_id' if 'rule_id' in recorded else 'event_name' -%}
{%- set unseen = single_value(
    "select count(*) from " ~ ref('alert_rules') ~ " as rules"
    ~ (" left join " ~ progress ~ " as previous on rules.rule_id = previous." ~ recorded_rule if recorded_first_events else "")
    ~ " where rules.enabled"
    ~ (" and previous." ~ recorded_rule ~ " is null" if recorded_first_events else "")
) if execute else 0 -%}

-- depends_on: {{ ref('stg_mixpanel__events') }}

with

rules as (

    select
        alert_rules.rule_id,
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
            {{ recorded_rule }} as rule_id,
            known_from,
            {{ 'first_event_minute' if recorded_first_events else 'cast(null as ' ~ type_utc_timestamp() ~ ')' }}
                as first_event_minute,
            last_counted,
            {{ 'drops_before' if 'drops_before' in recorded
                else add_minutes('last_counted', -1 * (var('drop_settle_minutes') | int)) }} as drops_before,
            fingerprint,
            inserted_through
        from {{ progress }}
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as rule_id,
            cast(null as {{ type_utc_timestamp() }}) as known_from,
            cast(null as {{ type_utc_timestamp() }}) as first_event_minute,
            cast(null as {{ type_utc_timestamp() }}) as last_counted,
            cast(null as {{ type_utc_timestamp() }}) as drops_before,
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

    -- the first event of an event with a rule new here (or of every event, the first time): a scan
    -- of its history, once; later runs keep it from the record and what arrives
    {% if unseen | int > 0 %}
        select
            events.event_name,
            min(events.event_at) as first_event_at
        from {{ ref('stg_mixpanel__events') }} as events
        where events.event_name in (
            select rules.event_name
            from rules
            {% if recorded_first_events %}
                left join previous on rules.rule_id = previous.rule_id
                where previous.rule_id is null
            {% endif %}
        )
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

first_seen as (

    select
        rules.rule_id,
        rules.event_name,
        rules.fingerprint,
        case
            when first_events.event_name is not null then {{ minute_of('first_events.first_event_at') }}
            when previous.first_event_minute is null then changes.first_changed
            when changes.first_changed is null then previous.first_event_minute
            when changes.first_changed < previous.first_event_minute then changes.first_changed
            else previous.first_event_minute
        end as first_event_minute,
        {{ minute_of('coverage.collected_from') }} as covered_from
    from rules
    left join coverage on rules.event_name = coverage.event_name
    left join previous on rules.rule_id = previous.rule_id
    left join changes on rules.event_name = changes.event_name
    left join first_events on rules.event_name = first_events.event_name

),

known as (

    -- known from its first event, or from the start of its collected data if that is later
    select
        rule_id,
        event_name,
        fingerprint,
        first_event_minute,
        case
            when covered_from is not null and covered_from > first_event_minute then covered_from
            else first_event_minute
        end as known_from
    from first_seen

),

judged as (

    select
        known.rule_id,
        known.event_name,
        known.first_event_minute,
        known.known_from,
        known.fingerprint,
        previous.last_counted as previous_last_counted,
        previous.drops_before as previous_drops_before,
        (
            previous.rule_id is null
            or coalesce(previous.known_from, {{ epoch }}) != coalesce(known.known_from, {{ epoch }})
            or previous.last_counted > {{ last_minute }}
        ) as recount_all,
        coalesce(previous.fingerprint, '') != known.fingerprint as rule_changed
    from known
    left join previous on known.rule_id = previous.rule_id

),

final as (

    select
        judged.rule_id,
        judged.event_name,
        judged.first_event_minute,
        judged.known_from,
        judged.fingerprint,
        judged.previous_last_counted,
        judged.previous_drops_before,
        judged.recount_all,
        judged.recount_all or judged.rule_changed as rewindow_all,
        {{ last_minute }} as last_minute,
        {{ drops_judged_before() }} as drops_before,
        high_water.inserted_through
    from judged
    cross join high_water

)

select * from final
