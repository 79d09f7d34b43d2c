{{ config(materialized='table') }}

{#- The windows this run judges again, per rule, as ranges of their last minute: every window that
    holds a minute of int_detection_ranges (a changed minute m is in the windows ending m to
    m + W - 1), all of a rule's windows when its ranges say so ('rewindow', or a recount of its whole
    history), never past the run's minute. read_from: the first count a range's windows need. -#}

with

ranges as (

    select * from {{ ref('int_detection_ranges') }}

),

rules as (

    select * from {{ ref('alert_rules') }}
    where enabled

),

plan as (

    select * from {{ ref('int_detection_plan') }}

),

final as (

    select
        ranges.rule_id,
        ranges.event_name,
        ranges.range_from as window_from,
        case
            when {{ add_minutes('ranges.range_to', 'rules.time_window_minutes - 1') }} < plan.last_minute
                then {{ add_minutes('ranges.range_to', 'rules.time_window_minutes - 1') }}
            else plan.last_minute
        end as window_to,
        {{ add_minutes('ranges.range_from', '-1 * rules.time_window_minutes') }} as read_from,
        rules.time_window_minutes,
        rules.detector
    from ranges
    inner join rules on ranges.rule_id = rules.rule_id
    inner join plan on ranges.rule_id = plan.rule_id

)

select * from final
