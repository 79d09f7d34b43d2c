{#- dbt-bigquery's merge of an incremental run, with one addition: the merge is bounded to the
    target's partitions at or after the earliest one the run produced (partition_bound_predicate, a
    literal read from the run's temporary table), so it reads the days it changes, not every
    partition of the table. A merge without the temporary table (on_schema_change 'ignore') is
    refused: every incremental model here sets it. Otherwise as dbt-bigquery 1.11 builds it. -#}
{% macro bq_generate_incremental_merge_build_sql(
    tmp_relation, target_relation, sql, unique_key, partition_by, dest_columns, tmp_relation_exists, incremental_predicates
) %}
    {%- if not tmp_relation_exists -%}
        {{ exceptions.raise_compiler_error(model.name ~ ": a bounded merge needs on_schema_change other than 'ignore'") }}
    {%- endif -%}
    {%- set source_sql -%}
        (select * from {{ tmp_relation }})
    {%- endset -%}
    {%- set predicates = ([] if incremental_predicates is none else [] + incremental_predicates) -%}
    {%- do predicates.append(partition_bound_predicate(tmp_relation)) -%}
    {{ return(get_merge_sql(target_relation, source_sql, unique_key, dest_columns, predicates)) }}
{% endmacro %}
