{#- Before an incremental run of int_event_counts_per_minute: an event counted again from scratch
    (int_detection_plan.recount_all) loses the minutes outside its known data now (its data now
    begins later, or the moment went back), as a full refresh would not have them. Only when there
    is such an event: otherwise nothing is read. -#}
{% macro forget_counts_outside_known_data() %}
    {%- set plan = ref('int_detection_plan') -%}
    {%- if is_incremental() and (single_value("select count(*) from " ~ plan ~ " where recount_all") or 0) > 0 -%}
        delete from {{ this }} as counts
        where exists (
            select 1
            from {{ plan }} as plan
            where
                plan.recount_all
                and plan.event_name = counts.event_name
                and (
                    plan.known_from is null
                    or counts.minute_at < plan.known_from
                    or counts.minute_at > plan.last_minute
                )
        )
    {%- endif -%}
{% endmacro %}
