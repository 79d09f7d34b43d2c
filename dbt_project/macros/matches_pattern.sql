{#- Whether the whole of a text expression matches a regular expression (RE2 syntax on both). -#}
{% macro matches_pattern(expression, pattern) %}
    {{ return(adapter.dispatch('matches_pattern', 'mixpanel_alerts')(expression, pattern)) }}
{% endmacro %}

{% macro default__matches_pattern(expression, pattern) %}
    regexp_full_match({{ expression }}, '{{ pattern | replace("'", "''") }}')
{% endmacro %}

{% macro bigquery__matches_pattern(expression, pattern) %}
    regexp_contains({{ expression }}, r'^(?:{{ pattern | replace("'", "\\'") }})$')
{% endmacro %}
