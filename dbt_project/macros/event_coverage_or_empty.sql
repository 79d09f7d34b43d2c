{#- The raw dataset's event_coverage table (per event, the instant from which its data is complete),
    or no rows with its columns while it does not exist: warehouses collected before it existed, or
    before the first collect. A dbt unit test sees none: its events begin with their first one. -#}
{% macro event_coverage_or_empty() %}
    {%- if model is mapping and model.get('resource_type') == 'unit_test' -%}
        {%- set found = none -%}
    {%- else -%}
        {%- set coverage = source('mixpanel', 'event_coverage') -%}
        {%- set found = adapter.get_relation(
                database=coverage.database, schema=coverage.schema, identifier=coverage.identifier
            ) if execute else coverage -%}
    {%- endif -%}
    {%- if found is none -%}
        select
            cast(null as {{ dbt.type_string() }}) as event_name,
            cast(null as {{ type_utc_timestamp() }}) as collected_from
        from (select 1 as one) as no_rows
        where 1 = 0
    {%- else -%}
        select event_name, cast(collected_from as {{ type_utc_timestamp() }}) as collected_from
        from {{ coverage }}
    {%- endif -%}
{% endmacro %}
