{#- The table another model of this project left in the previous run (same schema), or none: on the
    first run, on --full-refresh, while parsing, or in a unit test (whose inputs are fixtures). Read
    without ref() on purpose: the previous build of a model downstream of this one
    (int_detection_progress, the record of what earlier runs did) is an input here, which a ref
    would turn into a cycle. -#}
{% macro previous_build(name) %}
    {%- if not execute or flags.FULL_REFRESH or unit_testing() -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier=name)) }}
{% endmacro %}
