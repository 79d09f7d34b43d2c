{#- The whole minute a timestamp falls in. -#}
{% macro minute_of(timestamp_expression) %}
    {{ dbt.date_trunc('minute', timestamp_expression) }}
{% endmacro %}
