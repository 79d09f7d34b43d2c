{#- The first instant (UTC) of a date, as a timestamp. -#}
{% macro day_start(date_expression) %}
    {{ return(adapter.dispatch('day_start', 'mixpanel_alerts')(date_expression)) }}
{% endmacro %}

{% macro default__day_start(date_expression) %}
    cast(cast({{ date_expression }} as timestamp) as {{ type_utc_timestamp() }})
{% endmacro %}

{% macro bigquery__day_start(date_expression) %}
    timestamp({{ date_expression }})
{% endmacro %}
