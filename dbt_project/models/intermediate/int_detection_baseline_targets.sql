{{ config(materialized='table') }}

{#- The baselines this run computes again, per baseline rule, day and hour of day (in
    DETECTION_TIMEZONE): those of the hours its changed windows (int_detection_windows) fall in
    (windows_changed), and of the same hours on the days that learn from them
    (baseline_reference_days later), up to the run's day. A baseline learns only from earlier
    days, so no other can change. -#}

with

windows as (

    select * from {{ ref('int_detection_windows') }}
    where detector = 'baseline'

),

plan as (

    select * from {{ ref('int_detection_plan') }}

),

hours as (

    select distinct
        windows.rule_id,
        -- the series' column, bare: its alias differs between warehouses (range_minutes)
        cast(minute_at as {{ type_utc_timestamp() }}) as hour_at  -- noqa: RF03
    from windows
    cross join {{ range_minutes(hour_of('windows.window_from'), hour_of('windows.window_to'), 'hour') }}

),

local_hours as (

    -- the local days and hours of day (DETECTION_TIMEZONE) those hours overlap: a UTC hour meets
    -- two local ones where the offset is not whole hours
    select distinct
        rule_id,
        {{ local_date('hour_at') }} as hour_day,
        {{ local_hour('hour_at') }} as hour_of_day
    from hours

    union all

    select distinct
        rule_id,
        {{ local_date(add_minutes('hour_at', 59)) }} as hour_day,
        {{ local_hour(add_minutes('hour_at', 59)) }} as hour_of_day
    from hours

),

offsets as (

    -- the days that may learn from a day (int_event_baselines): every day 1 to 7 days later and
    -- the same weekday 14, 21 and 28 days later; comparable days (baseline_reference_days) later
    {% for days in [0] + baseline_reference_days() %}
        {% if not loop.first %}
            union all
        {% endif %}
        select {{ days }} as days_after
    {% endfor %}

),

final as (

    -- windows_changed: the hour's own windows were computed (int_event_hour_windows writes it)
    select
        local_hours.rule_id,
        plan.event_name,
        {{ days_before('local_hours.hour_day', '-1 * offsets.days_after') }} as window_day,
        local_hours.hour_of_day,
        max(case when offsets.days_after = 0 then 1 else 0 end) = 1 as windows_changed
    from local_hours
    cross join offsets
    inner join plan on local_hours.rule_id = plan.rule_id
    where {{ days_before('local_hours.hour_day', '-1 * offsets.days_after') }} <= {{ local_date('plan.last_minute') }}
    group by
        local_hours.rule_id,
        plan.event_name,
        {{ days_before('local_hours.hour_day', '-1 * offsets.days_after') }},
        local_hours.hour_of_day

)

select * from final
