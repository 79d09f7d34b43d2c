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

{#- Whether the span of `span` minutes ending with a window (anomalies.sql's rise_count_N and
    quiet_expected_N) got too many events to be chance, for an event whose whole hours vary about
    as chance would (rise_count_N is set only then: var baseline_rise_dispersion): at least var
    baseline_rise_factor times those expected, more above them than the window's spike bar is
    above its median times the square root of the windows in the span (upper_spread: k_up sigmas),
    and Poisson odds of so many below e^-var baseline_quiet_evidence (the upper tail's Chernoff
    bound: count * ln(count / expected) - (count - expected)). -#}
{% macro rise_at(span) %}
    {%- set count, expected = 'rise_count_' ~ span, 'quiet_expected_' ~ span -%}
    ({{ count }} is not null and {{ expected }} > 0
    and {{ count }} >= {{ var('baseline_rise_factor') }} * {{ expected }}
    and {{ count }} - {{ expected }} >= upper_spread * sqrt({{ span }} / time_window_minutes)
    and {{ count }} * ln({{ count }} / {{ expected }}) - ({{ count }} - {{ expected }})
    >= {{ var('baseline_quiet_evidence') }})
{%- endmacro %}

{#- Of var baseline_quiet_spans, longest first: `value` (SQL, SPAN standing for the span's minutes)
    of the first span for which the test `at` (quiet_at, rise_at) holds; null when none does. -#}
{% macro longest_span(at, value) %}
    case
        {%- for span in var('baseline_quiet_spans') | reverse %}
            when {{ at(span) }} then {{ value | replace('SPAN', span | string) }}
        {%- endfor %}
    end
{%- endmacro %}
