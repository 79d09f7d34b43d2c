{#- Before an incremental run: drop the rows of the events the last run watched and this one does
    not (their rule disabled or removed), as a full refresh would not have them: their incidents
    disappear, and the alert step closes a sent alert of one with a notice that says why. Reads
    nothing unless such an event exists. -#}
{% macro forget_unmonitored_events() %}
    {%- set progress = previous_build('int_detection_progress') if is_incremental() else none -%}
    {%- if progress is not none -%}
        {%- set unmonitored -%}
            select previous.event_name from {{ progress }} as previous
            where previous.event_name not in (select plan.event_name from {{ ref('int_detection_plan') }} as plan)
        {%- endset -%}
        {%- if (single_value('select count(*) from (' ~ unmonitored ~ ') as unmonitored') or 0) > 0 -%}
            delete from {{ this }} where event_name in ({{ unmonitored }})
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
