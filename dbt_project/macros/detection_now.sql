{#- The moment detection runs as of, as a UTC timestamp: var('detection_now') when given (the unit
    tests, `dbt build --vars`), else the environment's DETECTION_NOW (ISO 8601, UTC unless it says;
    `mixpanel-alerts` sets it for every build it pins), else now.
    DETECTION_NOW is read only while dbt executes, never while it parses: the moment changes nothing
    dbt parses, so a new moment costs no parse (read while parsing, dbt would parse again every model
    that calls this macro; a var would make it parse everything again). -#}
{% macro detection_now() %}
    {%- set pinned = var('detection_now', '') or (env_var('DETECTION_NOW', '') if execute else '') -%}
    {%- if pinned -%}
        {%- set moment = modules.datetime.datetime.fromisoformat(pinned | string) -%}
        {%- if moment.tzinfo is not none -%}
            {%- set moment = moment.astimezone(modules.pytz.utc) -%}
        {%- endif -%}
        cast('{{ moment.strftime("%Y-%m-%d %H:%M:%S") }}' as {{ type_utc_timestamp() }})
    {%- else -%}
        cast({{ dbt.current_timestamp() }} as {{ type_utc_timestamp() }})
    {%- endif -%}
{% endmacro %}
