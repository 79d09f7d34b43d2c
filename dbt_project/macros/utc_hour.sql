{#- The UTC hour of day (0-23) of an instant. -#}
{% macro utc_hour(timestamp_expression) %}
    {{ return(adapter.dispatch('utc_hour', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__utc_hour(timestamp_expression) %}
    cast(extract(hour from timezone('UTC', {{ timestamp_expression }})) as bigint)
{% endmacro %}

{% macro bigquery__utc_hour(timestamp_expression) %}
    extract(hour from {{ timestamp_expression }})
{% endmacro %}
