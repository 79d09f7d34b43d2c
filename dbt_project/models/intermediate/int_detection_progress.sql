{{ config(materialized='table') }}

{#- What this detection run did, per enabled rule, for the next run to start from (read there as the
    previous build, int_detection_plan): where the event's known data begins, the last minute it
    counted, its first event's minute, the minute before which it judged drops, the rule's
    fingerprint, and the newest inserted_at of the raw events it counted (the watermark: the next
    run reads only raw rows inserted after it). Built last (its depends_on): a run that fails
    before leaves the previous record, and the next run does that work again. -#}

-- depends_on: {{ ref('incidents') }}
-- depends_on: {{ ref('baseline_learning') }}

with

plan as (

    select * from {{ ref('int_detection_plan') }}

),

final as (

    select
        rule_id,
        event_name,
        first_event_minute,
        known_from,
        fingerprint,
        inserted_through,
        drops_before,
        case when known_from is not null and known_from <= last_minute then last_minute end as last_counted
    from plan

)

select * from final
