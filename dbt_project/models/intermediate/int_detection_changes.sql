{{ config(materialized='table') }}

{#- The raw events loaded since the last detection run, per enabled event and minute: their
    inserted_at is after the watermark the run before recorded (int_detection_progress). They are
    read by inserted_at, which only grows: DuckDB skips every row group loaded before the watermark;
    BigQuery reads the partitions modified since (raw_changed_from), and in them the blocks of
    rows loaded since (the raw table is clustered by event name, then inserted_at). So a run reads
    what arrived, whatever minutes it fell on (live, late or backfilled). Empty on a first run or
    a full refresh, which count everything. -#}
{%- set progress = previous_build('int_detection_progress') -%}
{%- set watermark = single_value('select max(inserted_through) from ' ~ progress) if progress is not none else none -%}
{%- set changed_from = raw_changed_from(watermark) or modules.datetime.datetime(1970, 1, 1) -%}

-- depends_on: {{ ref('stg_mixpanel__events') }}

with

rules as (

    select event_name from {{ ref('alert_rules') }}
    where enabled

),

arrived as (

    {% if watermark is not none %}
        select
            event_name,
            event_at,
            inserted_at
        from {{ ref('stg_mixpanel__events') }}
        where
            inserted_at > {{ literal_of(watermark) }}
            and event_name in (select rules.event_name from rules)
            -- BigQuery: the partitions modified since (raw_changed_from); DuckDB: no bound needed
            and event_at >= {{ literal_of(changed_from) }}
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as event_name,
            cast(null as {{ type_utc_timestamp() }}) as event_at,
            cast(null as {{ type_utc_timestamp() }}) as inserted_at
        from (select 1 as one) as no_rows
        where 1 = 0
    {% endif %}

),

final as (

    select
        event_name,
        {{ minute_of('event_at') }} as minute_at,
        count(*) as arrived_events,
        min(inserted_at) as first_inserted_at,
        max(inserted_at) as last_inserted_at
    from arrived
    group by event_name, {{ minute_of('event_at') }}

)

select * from final
