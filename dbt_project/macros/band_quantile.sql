{#- An aggregate: the 5%, 50% or 95% quantile of a numeric expression over the group, the three a
    baseline needs. DuckDB interpolates between the two nearest values, and computes the three in
    one pass (the calls share one aggregate, three times faster than three). BigQuery takes the
    nearest of 100 approximate quantiles (exact up to rounding of rank for the few hundred values
    of one baseline group). -#}
{% macro band_quantile(expression, fraction) %}
    {%- if fraction not in [0.05, 0.5, 0.95] -%}
        {{ exceptions.raise_compiler_error('band_quantile: 0.05, 0.5 or 0.95, not ' ~ fraction) }}
    {%- endif -%}
    {{ return(adapter.dispatch('band_quantile', 'mixpanel_alerts')(expression, fraction)) }}
{% endmacro %}

{% macro default__band_quantile(expression, fraction) %}
    quantile_cont({{ expression }}, [0.05, 0.5, 0.95])[{{ [0.05, 0.5, 0.95].index(fraction) + 1 }}]
{% endmacro %}

{% macro bigquery__band_quantile(expression, fraction) %}
    approx_quantiles({{ expression }}, 100)[offset({{ (fraction * 100) | round | int }})]
{% endmacro %}
