{#- An aggregate: the non-null values of `value` in the group as one list, in the order of
    `order_by` (DuckDB's list, BigQuery's array); read back with unnest_values. -#}
{% macro value_list(value, order_by) %}
    {{ return(adapter.dispatch('value_list', 'mixpanel_alerts')(value, order_by)) }}
{% endmacro %}

{% macro default__value_list(value, order_by) %}
    coalesce(list({{ value }} order by {{ order_by }}) filter (where {{ value }} is not null), [])
{% endmacro %}

{% macro bigquery__value_list(value, order_by) %}
    array_agg({{ value }} ignore nulls order by {{ order_by }})
{% endmacro %}

{#- A lateral table of the values of a list column (value_list), one row each, as the bare column
    `column`: `from lists cross join {{ unnest_values('lists.values', 'value') }}`. -#}
{% macro unnest_values(list_column, column) %}
    {{ return(adapter.dispatch('unnest_values', 'mixpanel_alerts')(list_column, column)) }}
{% endmacro %}

{% macro default__unnest_values(list_column, column) %}
    unnest({{ list_column }}) as listed ({{ column }})
{% endmacro %}

{% macro bigquery__unnest_values(list_column, column) %}
    unnest({{ list_column }}) as {{ column }}
{% endmacro %}
