{{
    config(
        materialized='incremental',
        unique_key=['event_name', 'window_end_minute'],
        on_schema_change='append_new_columns',
        pre_hook="{{ forget_recounted_anomalies() }}",
    )
}}

{%- set recount_from = minute_of(add_minutes(detection_now(), '-' ~ lookback_minutes())) -%}

with

windows as (

    select * from {{ ref('int_event_window_bands') }}
    where kind is not null
    {% if is_incremental() %}
        and minute_at >= {{ recount_from }}
    {% endif %}

),

final as (

    select
        event_name,
        window_start,
        minute_at as window_end_minute,
        time_window_minutes,
        window_count as event_count,
        alert_threshold,
        alert_channel,
        cooldown_minutes,
        kind,
        expected_count,
        lower_bound,
        upper_bound,
        detector,
        description,
        min_events,
        -- how far past the band: above the upper bound for a spike, below the lower for a drop
        case when kind = 'drop' then lower_bound - window_count else window_count - upper_bound end as excess
    from windows

)

select * from final
