{#- The ORDER BY that keeps a DuckDB table's rows in time order as written: DuckDB prunes by each
    row group's min and max, so a table whose row groups each hold a short span of time is read
    only where a run's bound falls (written in event order, every row group would span all of
    history). BigQuery: nothing (its partitions and clustering do this; a final ORDER BY would
    sort on one worker). -#}
{% macro in_time_order(column) %}
    {{ return(adapter.dispatch('in_time_order', 'mixpanel_alerts')(column)) }}
{% endmacro %}

{% macro default__in_time_order(column) %}
    order by {{ column }}
{% endmacro %}

{% macro bigquery__in_time_order(column) %}
{% endmacro %}
