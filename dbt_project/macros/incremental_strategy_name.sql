{#- The incremental strategy of the detection models: a merge bounded by partition
    (partition_bound_predicate) on both warehouses, under the name each adapter knows it by. -#}
{% macro incremental_strategy_name() %}
    {{ return(adapter.dispatch('incremental_strategy_name', 'mixpanel_alerts')()) }}
{% endmacro %}

{% macro default__incremental_strategy_name() %}
    {{ return('bounded') }}
{% endmacro %}

{% macro bigquery__incremental_strategy_name() %}
    {{ return('merge') }}
{% endmacro %}
