{{ config(materialized='table') }}

{#- The minutes this detection run works on, per enabled rule (int_detection_plan), in ranges
    [range_from, range_to] of whole minutes:

    - 'recount': counted from the raw table: the whole known history of an event to recount, else
      the minutes since the last one counted (quiet ones included: a run with nothing new still
      judges the newest windows, and a drop is seen);
    - 'delta': a minute already counted that received events since (late or backfilled ones): its
      count grows by them (int_event_counts_per_minute);
    - 'rewindow': a rule judged again: all its windows, its counts unchanged.

    Every later model works from these: the windows that hold a changed minute, the baselines of
    their hours (and of the same hours on the days that learn from them), the daily surprise of
    their days, and the anomalies and incidents from the first minute any of these changed. -#}

with

plan as (

    select * from {{ ref('int_detection_plan') }}
    where known_from is not null and known_from <= last_minute

),

changes as (

    select * from {{ ref('int_detection_changes') }}

),

final as (

    select
        rule_id,
        event_name,
        known_from as range_from,
        last_minute as range_to,
        'recount' as kind
    from plan
    where recount_all

    union all

    select
        rule_id,
        event_name,
        known_from as range_from,
        last_minute as range_to,
        'rewindow' as kind
    from plan
    where rewindow_all and not recount_all

    union all

    select
        rule_id,
        event_name,
        case
            when previous_last_counted >= known_from then {{ add_minutes('previous_last_counted', 1) }}
            else known_from
        end as range_from,
        last_minute as range_to,
        'recount' as kind
    from plan
    where not recount_all and previous_last_counted < last_minute

    union all

    select
        plan.rule_id,
        plan.event_name,
        changes.minute_at as range_from,
        changes.minute_at as range_to,
        'delta' as kind
    from changes
    inner join plan on changes.event_name = plan.event_name
    where
        not plan.recount_all
        and changes.minute_at >= plan.known_from
        and changes.minute_at <= plan.previous_last_counted

)

select * from final
