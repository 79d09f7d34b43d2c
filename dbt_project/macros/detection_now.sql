{#- The moment detection runs as of: var('detection_now') when set (tests pin it), else now. -#}
{% macro detection_now() %}
    {%- if var('detection_now', '') -%}
        cast('{{ var("detection_now") }}' as {{ type_utc_timestamp() }})
    {%- else -%}
        cast({{ dbt.current_timestamp() }} as {{ type_utc_timestamp() }})
    {%- endif -%}
{% endmacro %}
