{#- A lateral table of the whole minutes (or hours: step) from range_from to range_to, both
    included, of each row, as the bare column `minute_at`:
    `from ranges cross join {{ range_minutes('ranges.range_from', 'ranges.range_to') }}`. -#}
{% macro range_minutes(range_from, range_to, step='minute') %}
    {{ return(adapter.dispatch('range_minutes', 'mixpanel_alerts')(range_from, range_to, step)) }}
{% endmacro %}

{% macro default__range_minutes(range_from, range_to, step) %}
    unnest(generate_series({{ range_from }}, {{ range_to }}, interval 1 {{ step }})) as spine (minute_at)
{% endmacro %}

{% macro bigquery__range_minutes(range_from, range_to, step) %}
    unnest(generate_timestamp_array({{ range_from }}, {{ range_to }}, interval 1 {{ step }})) as minute_at
{% endmacro %}
