{#- A timestamp plus a number of minutes (an expression; negative goes back). dbt.dateadd turns
    BigQuery timestamps into datetimes, which do not compare with timestamps; this keeps the type. -#}
{% macro add_minutes(timestamp_expression, minutes) %}
    {{ return(adapter.dispatch('add_minutes', 'mixpanel_alerts')(timestamp_expression, minutes)) }}
{% endmacro %}

{% macro default__add_minutes(timestamp_expression, minutes) %}
    ({{ timestamp_expression }} + to_minutes(cast({{ minutes }} as bigint)))
{% endmacro %}

{% macro bigquery__add_minutes(timestamp_expression, minutes) %}
    timestamp_add({{ timestamp_expression }}, interval cast({{ minutes }} as int64) minute)
{% endmacro %}
