{{ config(materialized='table') }}

{#- Per event and kind, the first minute incidents are computed again from (incidents): the span its
    anomalies changed in (int_detection_starts) less the rule's cooldown (a minute there may join
    them), or the first minute of an incident that reaches that span, or of one still open (its
    status depends on the moment, whatever its rule is now). Read from the incidents the run before
    left, before this run's incidents replace them. -#}
{%- set previous = previous_build('incidents') %}

with

starts as (

    select
        anomaly_starts.event_name,
        {{ add_minutes('anomaly_starts.anomaly_from', '-1 * rules.cooldown_minutes') }} as affected_from
    from {{ ref('int_detection_starts') }} as anomaly_starts
    inner join {{ ref('alert_rules') }} as rules on anomaly_starts.event_name = rules.event_name

),

kinds as (

    select 'spike' as kind
    union all
    select 'drop' as kind

),

candidates as (

    select
        starts.event_name,
        kinds.kind,
        starts.affected_from as recompute_from
    from starts
    cross join kinds

    {% if previous is not none %}
        union all

        select
            incidents.event_name,
            coalesce(incidents.kind, 'spike') as kind,
            incidents.first_anomalous_minute as recompute_from
        from {{ previous }} as incidents
        left join starts on incidents.event_name = starts.event_name
        where incidents.status = 'open' or incidents.last_anomalous_minute >= starts.affected_from
    {% endif %}

),

final as (

    select
        event_name,
        kind,
        min(recompute_from) as recompute_from
    from candidates
    group by event_name, kind

)

select * from final
