{#- Each enabled baseline rule's learning state as of detection's moment: how many earlier days
    contributed to the baseline of the latest hour, and whether that is still too few to alert. -#}

with

rules as (

    select
        rule_id,
        event_name
    from {{ ref('alert_rules') }}
    where enabled and detector = 'baseline'

),

baselines as (

    -- the newest baselines only: detection's day and the day before (a day's first hour may have
    -- none yet), so the read stays two days of partitions however long the history
    select * from {{ ref('int_event_baselines') }}
    where
        window_day <= {{ local_date(detection_now()) }}
        and window_day >= {{ days_before(local_date(detection_now()), 1) }}

),

ranked as (

    select
        rule_id,
        history_days,
        row_number() over (partition by rule_id order by window_day desc, hour_of_day desc) as recency
    from baselines

),

final as (

    select
        rules.rule_id,
        rules.event_name,
        coalesce(ranked.history_days, 0) as history_days,
        {{ baseline_min_history_days() }} as needed_days,
        coalesce(ranked.history_days, 0) < {{ baseline_min_history_days() }} as is_learning
    from rules
    left join ranked
        on
            rules.rule_id = ranked.rule_id
            and ranked.recency = 1

)

select * from final
