{#- What a rule's windows, bands and incidents depend on, as one string: when it changes (a new
    threshold, window, detector, channel…, or the baseline's tunables), the rule's whole history is
    judged again, as a full refresh would. -#}
{% macro rule_fingerprint(rules) %}
    {%- set tunables = [
        var('baseline_k_up'), var('baseline_k_down'), var('baseline_min_history_days'),
        var('baseline_surprise_factor'), var('baseline_surprise_days'), var('baseline_k_burst'),
        var('baseline_burst_count'), var('baseline_burst_hours'), var('baseline_drop_fraction_of_q05'),
        var('drop_settle_minutes'), var('baseline_quiet_spans'), var('baseline_quiet_fraction'),
        var('baseline_quiet_evidence'), detection_timezone(), var('baseline_comparable_days'),
        var('baseline_comparable_factor')
    ] | string -%}
    {{ dbt.hash(dbt.concat([
        dbt.cast(rules ~ '.time_window_minutes', dbt.type_string()), "'|'",
        "coalesce(" ~ dbt.cast(rules ~ '.alert_threshold', dbt.type_string()) ~ ", '')", "'|'",
        "coalesce(" ~ dbt.cast(rules ~ '.min_events', dbt.type_string()) ~ ", '')", "'|'",
        dbt.cast(rules ~ '.cooldown_minutes', dbt.type_string()), "'|'",
        rules ~ '.detector', "'|'", rules ~ '.direction', "'|'", rules ~ '.sensitivity', "'|'",
        rules ~ '.alert_channel', "'|'", "coalesce(" ~ rules ~ ".description, '')", "'|'",
        "'" ~ (tunables | replace("'", "")) ~ "'"
    ])) }}
{% endmacro %}
