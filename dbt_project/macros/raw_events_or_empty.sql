{#- The raw events table, or no rows with its columns while it does not exist yet: on BigQuery the
    first collect creates it only with the first configured event (an empty load is avoided), and
    detection must not fail on a warehouse where nothing has happened yet. -#}
{% macro raw_events_or_empty() %}
    {%- set raw = source('mixpanel', 'events') -%}
    {%- set found = adapter.get_relation(database=raw.database, schema=raw.schema, identifier=raw.identifier)
        if execute else raw -%}
    {%- if found is none -%}
        select
            cast(null as {{ dbt.type_string() }}) as event_id,
            cast(null as {{ dbt.type_string() }}) as event_name,
            cast(null as {{ type_utc_timestamp() }}) as event_timestamp,
            cast(null as {{ dbt.type_string() }}) as distinct_id,
            cast(null as {{ dbt.type_string() }}) as insert_id,
            cast(null as json) as properties,
            cast(null as {{ type_utc_timestamp() }}) as mp_processing_time,
            cast(null as {{ type_utc_timestamp() }}) as inserted_at
        from (select 1 as one) as no_rows
        where 1 = 0
    {%- else -%}
        select * from {{ raw }}
    {%- endif -%}
{% endmacro %}
