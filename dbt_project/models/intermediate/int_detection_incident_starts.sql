{{ config(materialized='table') }}

{#- Per rule and kind, the first minute incidents are computed again from (incidents): the span its
    anomalies changed in (int_detection_starts) less the rule's cooldown (a minute there may join
    them), or the first minute of an incident that reaches that span, or of one still open (its
    status depends on the moment, whatever its rule is now). Read from the incidents the run before
    left, before this run's incidents replace them. -#}
{%- set previous = previous_build('incidents') %}
{#- incidents built before rule ids name each rule by its event -#}
{%- set previous_rule = rule_key_of(previous) if previous is not none else 'rule_id' %}

with

starts as (

    select
        anomaly_starts.rule_id,
        {{ add_minutes('anomaly_starts.anomaly_from', '-1 * rules.cooldown_minutes') }} as affected_from
    from {{ ref('int_detection_starts') }} as anomaly_starts
    inner join {{ ref('alert_rules') }} as rules on anomaly_starts.rule_id = rules.rule_id

),

kinds as (

    select 'spike' as kind
    union all
    select 'drop' as kind

),

candidates as (

    select
        starts.rule_id,
        kinds.kind,
        starts.affected_from as recompute_from
    from starts
    cross join kinds

    {% if previous is not none %}
        union all

        select
            incidents.{{ previous_rule }}{{ ' as rule_id' if previous_rule != 'rule_id' }},
            coalesce(incidents.kind, 'spike') as kind,
            incidents.first_anomalous_minute as recompute_from
        from {{ previous }} as incidents
        left join starts on incidents.{{ previous_rule }} = starts.rule_id
        where incidents.status = 'open' or incidents.last_anomalous_minute >= starts.affected_from
    {% endif %}

),

final as (

    select
        rule_id,
        kind,
        min(recompute_from) as recompute_from
    from candidates
    group by rule_id, kind

)

select * from final
