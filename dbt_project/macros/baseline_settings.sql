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

{#- The days before a day that its comparable days may be (int_event_baselines): a weekday's are
    the weekdays of the last 14 days and the same weekday 21 and 28 days before; a Saturday's or a
    Sunday's, the weekend days of the last 28 days (6, 7, 13, 14, 20, 21, 27, 28 days before a
    Saturday, 1, 7, 8, 14, 15, 21, 22, 28 before a Sunday). -#}
{% macro baseline_reference_days() %}
    {{ return([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22, 27, 28]) }}
{% endmacro %}
