{#- A date or an instant from a query's result as a SQL literal of the same type (UTC, to the
    microsecond: a watermark cut to the second would read its last load again); a literal
    compares with a partition column in a way both warehouses can prune by. -#}
{% macro literal_of(value) %}
    {%- if value is none -%}
        {{ return('null') }}
    {%- elif value.hour is not defined -%}
        {{ return("date '" ~ value.strftime('%Y-%m-%d') ~ "'") }}
    {%- else -%}
        {%- set moment = value.astimezone(modules.pytz.utc) if value.tzinfo is not none else value -%}
        {%- set shape = '%Y-%m-%d %H:%M:%S.%f' if moment.microsecond else '%Y-%m-%d %H:%M:%S' -%}
        {{ return("cast('" ~ moment.strftime(shape) ~ "' as " ~ type_utc_timestamp() ~ ")") }}
    {%- endif -%}
{% endmacro %}
