{#- The rules as the CLI last wrote them into this warehouse (alert_rules_config, in the raw
    table's dataset), from the events configuration: the one source of truth. A plain `dbt build`
    in dbt_project/ reads the same rules as the CLI did; where none were ever written it stops
    with a message that says why, rather than building with rules from somewhere else. -#}
{% macro rules_config() %}
    {%- set rules = source('mixpanel', 'alert_rules_config') -%}
    {%- if execute -%}
        {%- set found = adapter.get_relation(
                database=rules.database, schema=rules.schema, identifier=rules.identifier
            ) -%}
        {%- if found is none -%}
            {{ exceptions.raise_compiler_error(
                "No rules in " ~ rules.schema ~ "." ~ rules.identifier ~ ": the alert rules come from your events "
                ~ "configuration, and the CLI writes them into the warehouse before it runs dbt. Run "
                ~ "`mixpanel-alerts dbt -- build` (or `mixpanel-alerts detect`) once against this warehouse; "
                ~ "a plain `dbt build` then uses the rules it wrote."
            ) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(rules) }}
{% endmacro %}
