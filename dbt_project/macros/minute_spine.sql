{#- One row per whole minute from start_minute to end_minute, both included, as `minute_at`. -#}
{% macro minute_spine(start_minute, end_minute) %}
    {{ return(adapter.dispatch('minute_spine', 'mixpanel_alerts')(start_minute, end_minute)) }}
{% endmacro %}

{% macro default__minute_spine(start_minute, end_minute) %}
    select unnest(generate_series({{ start_minute }}, {{ end_minute }}, interval 1 minute)) as minute_at
{% endmacro %}

{% macro bigquery__minute_spine(start_minute, end_minute) %}
    select minute_at
    from unnest(generate_timestamp_array({{ start_minute }}, {{ end_minute }}, interval 1 minute)) as minute_at
{% endmacro %}
