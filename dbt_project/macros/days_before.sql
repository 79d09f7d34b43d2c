{#- A date minus a number of days (an expression). -#}
{% macro days_before(date_expression, days) %}
    {{ return(adapter.dispatch('days_before', 'mixpanel_alerts')(date_expression, days)) }}
{% endmacro %}

{% macro default__days_before(date_expression, days) %}
    cast({{ date_expression }} - cast({{ days }} as integer) as date)
{% endmacro %}

{% macro bigquery__days_before(date_expression, days) %}
    date_sub({{ date_expression }}, interval cast({{ days }} as int64) day)
{% endmacro %}
