{#- The UTC hour of day (0-23) of an instant. DuckDB: from the epoch, not a time zone conversion. -#}
{% macro utc_hour(timestamp_expression) %}
    {{ return(adapter.dispatch('utc_hour', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__utc_hour(timestamp_expression) %}
    (epoch_ms({{ timestamp_expression }}) % 86400000 // 3600000)
{% endmacro %}

{% macro bigquery__utc_hour(timestamp_expression) %}
    extract(hour from {{ timestamp_expression }})
{% endmacro %}
