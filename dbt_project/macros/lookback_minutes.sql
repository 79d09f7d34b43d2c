{#- How many minutes back an incremental run recounts, so late events recount their minute:
    var('lookback_minutes') when given, else MIXPANEL_LATE_ARRIVAL_DAYS + 1 days. -#}
{% macro lookback_minutes() %}
    {{ return(var('lookback_minutes', (env_var('MIXPANEL_LATE_ARRIVAL_DAYS', '5') | int + 1) * 1440)) }}
{% endmacro %}
