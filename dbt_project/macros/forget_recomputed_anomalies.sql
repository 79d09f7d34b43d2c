{#- Before an incremental run of `anomalies`: drop each rule's windows from the minute this run
    computes them again on (int_detection_starts), so a window that is no longer anomalous (late
    events filled a drop, a raised threshold) does not linger. Bounded by the earliest such minute:
    only recent partitions are read. -#}
{% macro forget_recomputed_anomalies() %}
    {%- set starts = ref('int_detection_starts') -%}
    {%- set low = single_value('select min(anomaly_from) from ' ~ starts) if is_incremental() else none -%}
    {%- if low is not none -%}
        delete from {{ this }} as anomalies
        where
            anomalies.window_end_minute >= {{ literal_of(low) }}
            and exists (
                select 1
                from {{ starts }} as starts
                where starts.rule_id = anomalies.rule_id and anomalies.window_end_minute >= starts.anomaly_from
            )
    {%- endif -%}
{% endmacro %}
