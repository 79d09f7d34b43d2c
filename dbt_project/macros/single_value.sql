{#- The one value a query returns (its first column of its first row), or none while parsing or when
    it returns no row: for bounds that must be literals in the SQL (partition pruning). -#}
{% macro single_value(sql) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set values = run_query(sql).columns[0].values() -%}
    {{ return(values[0] if values else none) }}
{% endmacro %}
