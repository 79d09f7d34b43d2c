{#- The baseline detector's tunables, in one place (each a dbt var, so a run can override it):
    - baseline_k_up / baseline_k_down: per sensitivity (low, medium, high), how many sigmas above
      (below) the median a window must be to be a spike (drop);
    - baseline_min_history_days: a baseline rule is learning, and raises no baseline anomaly, while
      fewer earlier days than this contributed to its reference values. -#}
{% macro baseline_k(direction, sensitivity_expression) %}
    {%- set defaults = {
        'up': {'low': 10, 'medium': 8, 'high': 6},
        'down': {'low': 5, 'medium': 4, 'high': 3},
    } -%}
    {%- set k = var('baseline_k_' ~ direction, defaults[direction]) -%}
    case {{ sensitivity_expression }}
        when 'low' then {{ k['low'] }}
        when 'high' then {{ k['high'] }}
        else {{ k['medium'] }}
    end
{% endmacro %}

{% macro baseline_min_history_days() %}
    {{ return(var('baseline_min_history_days', 7) | int) }}
{% endmacro %}
