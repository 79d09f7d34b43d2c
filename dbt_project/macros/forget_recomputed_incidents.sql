{#- Before an incremental run of `incidents`: drop, per rule and kind, the incidents it computes
    again (those ending at or after int_detection_incident_starts.recompute_from, which all begin
    there or later), bounded by the earliest such minute: only recent partitions are read. -#}
{% macro forget_recomputed_incidents() %}
    {%- set starts = ref('int_detection_incident_starts') -%}
    {%- set low = single_value('select min(recompute_from) from ' ~ starts) if is_incremental() else none -%}
    {%- if low is not none -%}
        delete from {{ this }} as incidents
        where
            incidents.first_anomalous_minute >= {{ literal_of(low) }}
            and exists (
                select 1
                from {{ starts }} as starts
                where
                    starts.rule_id = incidents.rule_id
                    and starts.kind = coalesce(incidents.kind, 'spike')
                    and incidents.last_anomalous_minute >= starts.recompute_from
            )
    {%- endif -%}
{% endmacro %}
