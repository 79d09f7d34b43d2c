{#- Rule ids in a warehouse built before them. Until then a rule was its event: the tables were
    keyed by event_name, and rule_id is event_name for every row they hold. -#}

{#- The column that names a rule in `relation`: rule_id, or event_name in a table from before. -#}
{% macro rule_key_of(relation) %}
    {%- if not execute -%}{{ return('rule_id') }}{%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {{ return('rule_id' if 'rule_id' in names else 'event_name') }}
{% endmacro %}

{#- An incremental model's first pre-hook: a table built before rule ids gets its rule_id column,
    filled from event_name, once, in place, before the run's merge keyed on it (left null, the old
    rows would never match and the run would write them twice). -#}
{% macro adopt_rule_ids() %}
    {%- if is_incremental() and rule_key_of(this) == 'event_name' -%}
        {%- do run_query('alter table ' ~ this ~ ' add column rule_id ' ~ dbt.type_string()) -%}
        {%- do run_query('update ' ~ this ~ ' set rule_id = event_name where true') -%}
    {%- endif -%}
{% endmacro %}
