{#- DuckDB's incremental strategy "bounded": dbt-duckdb's delete+insert by the unique key (its target
    alias is DBT_INCREMENTAL_TARGET), with the delete
    bounded to the target's rows at or after the earliest partition value the run produced
    (partition_bound_predicate). BigQuery's merge gets the same bound
    (bq_generate_incremental_merge_build_sql). -#}
{% macro get_incremental_bounded_sql(arg_dict) %}
    {%- set predicates = (arg_dict['incremental_predicates'] or []) + [partition_bound_predicate(arg_dict['temp_relation'], 'DBT_INCREMENTAL_TARGET')] -%}
    {{ return(get_delete_insert_merge_sql(
        arg_dict['target_relation'], arg_dict['temp_relation'], arg_dict['unique_key'], arg_dict['dest_columns'], predicates
    )) }}
{% endmacro %}
