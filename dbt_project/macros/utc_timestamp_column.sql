{#- A raw table's timestamp column as an instant in UTC, as it is where it already is one (BigQuery's
    TIMESTAMP: the bare column keeps its partitions prunable), cast where it may not be (DuckDB). -#}
{% macro utc_timestamp_column(column) %}
    {{ return(adapter.dispatch('utc_timestamp_column', 'mixpanel_alerts')(column)) }}
{% endmacro %}

{% macro default__utc_timestamp_column(column) %}
    cast({{ column }} as {{ type_utc_timestamp() }})
{% endmacro %}

{% macro bigquery__utc_timestamp_column(column) %}
    {{ column }}
{% endmacro %}
