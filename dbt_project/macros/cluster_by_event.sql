{#- BigQuery: cluster a detection model by event name (then its time column): a rule's rows are
    read without the others'. DuckDB: nothing. -#}
{% macro cluster_by_event(column) %}
    {{ return(adapter.dispatch('cluster_by_event', 'mixpanel_alerts')(column)) }}
{% endmacro %}

{% macro default__cluster_by_event(column) %}
    {{ return(none) }}
{% endmacro %}

{% macro bigquery__cluster_by_event(column) %}
    {{ return(['event_name', column]) }}
{% endmacro %}
