{#- BigQuery: partition a detection model by day of a timestamp or date column; DuckDB: nothing
    (its row groups carry min/max per column, which the merge's bound uses). -#}
{% macro partition_by_day(column, data_type='timestamp') %}
    {{ return(adapter.dispatch('partition_by_day', 'mixpanel_alerts')(column, data_type)) }}
{% endmacro %}

{% macro default__partition_by_day(column, data_type) %}
    {{ return(none) }}
{% endmacro %}

{% macro bigquery__partition_by_day(column, data_type) %}
    {{ return({'field': column, 'data_type': data_type, 'granularity': 'day'}) }}
{% endmacro %}
