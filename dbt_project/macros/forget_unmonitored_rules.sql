{#- Before an incremental run: drop the rows of the rules the last run watched and this one does
    not (disabled or removed), as a full refresh would not have them: their incidents disappear,
    and the alert step closes a sent alert of one with a notice that says why. Reads nothing
    unless such a rule exists. A record from before rule ids names each rule by its event. -#}
{% macro forget_unmonitored_rules() %}
    {%- set progress = previous_build('int_detection_progress') if is_incremental() else none -%}
    {%- if progress is not none -%}
        {%- set unmonitored -%}
            select previous.{{ rule_key_of(progress) }} from {{ progress }} as previous
            where previous.{{ rule_key_of(progress) }} not in (
                select plan.rule_id from {{ ref('int_detection_plan') }} as plan
            )
        {%- endset -%}
        {%- if (single_value('select count(*) from (' ~ unmonitored ~ ') as unmonitored') or 0) > 0 -%}
            delete from {{ this }} where rule_id in ({{ unmonitored }})
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
