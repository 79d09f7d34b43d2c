{#- Whole minutes from one timestamp to a later one. -#}
{% macro minutes_between(earlier, later) %}
    {{ return(adapter.dispatch('minutes_between', 'mixpanel_alerts')(earlier, later)) }}
{% endmacro %}

{% macro default__minutes_between(earlier, later) %}
    date_diff('minute', {{ earlier }}, {{ later }})
{% endmacro %}

{% macro bigquery__minutes_between(earlier, later) %}
    timestamp_diff({{ later }}, {{ earlier }}, minute)
{% endmacro %}
