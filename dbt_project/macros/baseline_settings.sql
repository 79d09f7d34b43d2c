{#- The baseline detector's tunables, dbt vars set in dbt_project.yml (a run may override them):
    - baseline_k_up / baseline_k_down: per sensitivity (low, medium, high), how many sigmas above
      (below) the median a window must be to be a spike (drop);
    - baseline_min_history_days: a baseline rule is learning, and raises no baseline anomaly, while
      fewer earlier days than this contributed to its reference values. -#}
{% macro baseline_k(direction, sensitivity_expression) %}
    {{ return(baseline_by_sensitivity('baseline_k_' ~ direction, sensitivity_expression)) }}
{% endmacro %}

{#- baseline_surprise_factor: the multiple of the event's typical daily largest z its spike bar
    is at least (int_event_daily_surprise, int_event_window_bands). -#}
{% macro baseline_surprise_factor(sensitivity_expression) %}
    {{ return(baseline_by_sensitivity('baseline_surprise_factor', sensitivity_expression)) }}
{% endmacro %}

{% macro baseline_by_sensitivity(var_name, sensitivity_expression) %}
    {%- set k = var(var_name) -%}
    case {{ sensitivity_expression }}
        when 'low' then {{ k['low'] }}
        when 'high' then {{ k['high'] }}
        else {{ k['medium'] }}
    end
{% endmacro %}

{% macro baseline_min_history_days() %}
    {{ return(var('baseline_min_history_days') | int) }}
{% endmacro %}

{#- One sigma of a window count around the median q50: the larger of the quantile spread (the 95%
    or 5% quantile's distance from the median, scaled by 1.645 to one sigma of a normal) and
    Poisson noise (sqrt(q50), at least 1). The band (int_event_window_bands) and the daily
    surprise (int_event_daily_surprise) share it, so a surprise is measured in the band's units. -#}
{% macro baseline_sigma(q50, quantile) %}
    sqrt(greatest(power(({{ quantile }} - {{ q50 }}) / 1.645, 2), {{ q50 }}, 1))
{% endmacro %}
