{{ config(materialized='table') }}

{#- Per rule, the first minute whose anomaly this run may see differently: its first changed
    window (int_detection_windows), the first hour whose baseline it computed again
    (int_detection_baseline_targets: a daily surprise computed again moves the days after it, which
    are later still), and the windows that have settled since the last run (a drop needs a window
    before drops_judged_before: settled, and within the data collected). anomalies and incidents are
    computed again from here on, and only here. -#}

with

windows as (

    select * from {{ ref('int_detection_windows') }}

),

targets as (

    select * from {{ ref('int_detection_baseline_targets') }}

),

plan as (

    select * from {{ ref('int_detection_plan') }}
    where known_from is not null

),

candidates as (

    select
        rule_id,
        window_from as start_at
    from windows

    union all

    select
        rule_id,
        {{ local_hour_start('window_day', 'hour_of_day') }} as start_at
    from targets

    union all

    select
        rule_id,
        {{ add_minutes('previous_drops_before', -1) }} as start_at
    from plan
    where previous_drops_before is not null and not rewindow_all

),

final as (

    select
        candidates.rule_id,
        case
            when min(candidates.start_at) < min(plan.known_from) then min(plan.known_from)
            else min(candidates.start_at)
        end as anomaly_from
    from candidates
    inner join plan on candidates.rule_id = plan.rule_id
    group by candidates.rule_id

)

select * from final
