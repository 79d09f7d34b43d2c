{#- The bound an incremental run puts on its target (``target_alias``, as the merge names it): its
    partition_column at or after the earliest value the run produced (read from its temporary
    relation), as a literal, so that BigQuery prunes the target's partitions and DuckDB skips row
    groups: a merge reads the days it changes, not the table's history. A run that produced
    nothing bounds it at the end of time. -#}
{% macro partition_bound_predicate(temp_relation, target_alias='DBT_INTERNAL_DEST') %}
    {%- set column = config.get('partition_column') -%}
    {%- if column is none -%}
        {{ exceptions.raise_compiler_error(model.name ~ " is incremental without a partition_column to bound its merges") }}
    {%- endif -%}
    {%- set low = run_query('select min(' ~ column ~ ') from ' ~ temp_relation).columns[0].values()[0] -%}
    {{ return(target_alias ~ '.' ~ column ~ ' >= ' ~ literal_of(low if low is not none else modules.datetime.datetime(9999, 12, 31))) }}
{% endmacro %}
