{#- The UTC calendar day of an instant, as a date. -#}
{% macro utc_date(timestamp_expression) %}
    {{ return(adapter.dispatch('utc_date', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__utc_date(timestamp_expression) %}
    cast(timezone('UTC', {{ timestamp_expression }}) as date)
{% endmacro %}

{% macro bigquery__utc_date(timestamp_expression) %}
    date({{ timestamp_expression }})
{% endmacro %}
