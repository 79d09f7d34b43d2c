{#- The earliest value of `column` in `relation` (rows matching `where`), as a Python value for a
    literal bound (partition pruning), or none when there is none. In a unit test, whose inputs are
    fixtures no query can read, the start of time: the bound then holds every fixture row. -#}
{% macro earliest(relation, column, where=none) %}
    {%- if execute and unit_testing() -%}
        {{ return(modules.datetime.datetime(1970, 1, 1)) }}
    {%- endif -%}
    {{ return(single_value('select min(' ~ column ~ ') from ' ~ relation ~ (' where ' ~ where if where else ''))) }}
{% endmacro %}

{#- Whether this is a dbt unit test's compilation of a model (its refs are fixtures). -#}
{% macro unit_testing() %}
    {{ return(model is defined and model.resource_type == 'unit_test') }}
{% endmacro %}
