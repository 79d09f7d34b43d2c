{#- The UTC calendar day of an instant, as a date. DuckDB: from the epoch, not a time zone
    conversion (several times cheaper on millions of windows). -#}
{% macro utc_date(timestamp_expression) %}
    {{ return(adapter.dispatch('utc_date', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__utc_date(timestamp_expression) %}
    cast(date '1970-01-01' + cast(epoch_ms({{ timestamp_expression }}) // 86400000 as integer) as date)
{% endmacro %}

{% macro bigquery__utc_date(timestamp_expression) %}
    date({{ timestamp_expression }})
{% endmacro %}
