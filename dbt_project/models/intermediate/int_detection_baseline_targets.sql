{{ config(materialized='table') }}

{#- The baselines this run computes again, per baseline rule, day and hour of day: those of the
    hours its changed windows (int_detection_windows) fall in (windows_changed), and of the same
    hours on the days that learn from them (1 to 7, 14, 21 and 28 days later), up to the run's
    day. A baseline learns only from earlier days, so no other can change. -#}

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
        windows.event_name,
        -- the series' column, bare: its alias differs between warehouses (range_minutes)
        cast(minute_at as {{ type_utc_timestamp() }}) as hour_at  -- noqa: RF03
    from windows
    cross join {{ range_minutes(hour_of('windows.window_from'), hour_of('windows.window_to'), 'hour') }}

),

offsets as (

    {% for days in [0, 1, 2, 3, 4, 5, 6, 7, 14, 21, 28] %}
        {% if not loop.first %}
            union all
        {% endif %}
        select {{ days }} as days_after
    {% endfor %}

),

final as (

    -- windows_changed: the hour's own windows were computed (int_event_hour_windows writes it)
    select
        hours.event_name,
        {{ days_before(utc_date('hours.hour_at'), '-1 * offsets.days_after') }} as window_day,
        {{ utc_hour('hours.hour_at') }} as hour_of_day,
        max(case when offsets.days_after = 0 then 1 else 0 end) = 1 as windows_changed
    from hours
    cross join offsets
    inner join plan on hours.event_name = plan.event_name
    where {{ days_before(utc_date('hours.hour_at'), '-1 * offsets.days_after') }} <= {{ utc_date('plan.last_minute') }}
    group by
        hours.event_name,
        {{ days_before(utc_date('hours.hour_at'), '-1 * offsets.days_after') }},
        {{ utc_hour('hours.hour_at') }}

)

select * from final
