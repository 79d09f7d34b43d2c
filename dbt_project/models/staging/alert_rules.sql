{{ config(materialized='table') }}

{#- One row per rule of the events configuration, as the CLI last wrote it into this warehouse
    (macros/rules_config.sql): the configuration is the one source of truth, never a copy kept by
    hand or a file another command left behind. -#}

with

rules_config as (

    select * from {{ rules_config() }}

),

final as (

    select
        rule_id,
        event_name,
        enabled,
        alert_threshold,
        alert_channel,
        time_window_minutes,
        cooldown_minutes,
        description,
        detector,
        direction,
        sensitivity,
        min_events
    from rules_config

)

select * from final
