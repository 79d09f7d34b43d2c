{#- The whole minute a timestamp falls in. -#}
{% macro minute_of(timestamp_expression) %}
    {{ return(adapter.dispatch('minute_of', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__minute_of(timestamp_expression) %}
    date_trunc('minute', {{ timestamp_expression }})
{% endmacro %}

{% macro bigquery__minute_of(timestamp_expression) %}
    timestamp_trunc({{ timestamp_expression }}, minute)
{% endmacro %}
