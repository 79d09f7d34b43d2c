{#- The whole hour a timestamp falls in. -#}
{% macro hour_of(timestamp_expression) %}
    {{ return(adapter.dispatch('hour_of', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__hour_of(timestamp_expression) %}
    date_trunc('hour', {{ timestamp_expression }})
{% endmacro %}

{% macro bigquery__hour_of(timestamp_expression) %}
    timestamp_trunc({{ timestamp_expression }}, hour)
{% endmacro %}
