{#- Whether the quiet span of `span` minutes ending with a window (anomalies.sql's quiet_count_N and
    quiet_expected_N: the events counted and expected in it) got too few events to be chance: known,
    at least var baseline_quiet_evidence expected, at most var baseline_quiet_fraction of them, and
    Poisson odds of so few below e^-evidence (a Chernoff bound). -#}
{% macro quiet_at(span) %}
    {%- set count, expected = 'quiet_count_' ~ span, 'quiet_expected_' ~ span -%}
    {%- set evidence = var('baseline_quiet_evidence') -%}
    ({{ count }} is not null and {{ expected }} >= {{ evidence }}
    and {{ count }} <= {{ var('baseline_quiet_fraction') }} * {{ expected }}
    and {{ expected }} - {{ count }} - case when {{ count }} > 0 then {{ count }} * ln({{ expected }} / {{ count }}) else 0 end
    >= {{ evidence }})
{%- endmacro %}
