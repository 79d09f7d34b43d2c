{#- An aggregate: the given quantile (0 to 1) of a numeric expression over the group. DuckDB
    interpolates between the two nearest values; BigQuery takes the nearest of 100 approximate
    quantiles (exact for the few hundred values of one baseline group, up to rounding of rank). -#}
{% macro quantile(expression, fraction) %}
    {{ return(adapter.dispatch('quantile', 'mixpanel_alerts')(expression, fraction)) }}
{% endmacro %}

{% macro default__quantile(expression, fraction) %}
    quantile_cont({{ expression }}, {{ fraction }})
{% endmacro %}

{% macro bigquery__quantile(expression, fraction) %}
    approx_quantiles({{ expression }}, 100)[offset({{ (fraction * 100) | round | int }})]
{% endmacro %}
