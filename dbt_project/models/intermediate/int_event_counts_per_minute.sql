{{
    config(
        unique_key=['event_name', 'minute_at'],
        on_schema_change='append_new_columns',
    )
}}

{%- set last_minute = minute_of(detection_now()) -%}
{#- recount the lookback, so that a late event recounts its minute; a constant bound lets
    BigQuery prune partitions of the raw table -#}
{%- set lookback_start = minute_of(add_minutes(detection_now(), '-' ~ lookback_minutes())) -%}
{%- if is_incremental() -%}
    {%- set first_minute = lookback_start -%}
{%- else -%}
    {#- all history, and at least the lookback, so a later incremental run adds no earlier minute -#}
    {%- set first_minute -%}
        least(
            coalesce(
                (
                    select {{ minute_of('min(event_at)') }}
                    from {{ ref('stg_mixpanel__events') }}
                    where event_name in (select event_name from {{ ref('alert_rules') }} where enabled)
                ),
                {{ lookback_start }}
            ),
            {{ lookback_start }}
        )
    {%- endset -%}
{%- endif %}

with

rules as (

    select event_name from {{ ref('alert_rules') }}
    where enabled

),

events as (

    select * from {{ ref('stg_mixpanel__events') }}

),

minutes as (

    {{ minute_spine(first_minute, last_minute) }}

),

recent_events as (

    select
        events.event_name,
        {{ minute_of('events.event_at') }} as minute_at
    from events
    inner join rules on events.event_name = rules.event_name
    where
        events.event_at >= {{ first_minute }}
        and events.event_at < {{ add_minutes(last_minute, 1) }}

),

counted as (

    select
        event_name,
        minute_at,
        count(*) as event_count
    from recent_events
    group by event_name, minute_at

),

final as (

    -- every minute of every enabled event, quiet minutes included with 0
    select
        rules.event_name,
        cast(minutes.minute_at as {{ type_utc_timestamp() }}) as minute_at,
        coalesce(counted.event_count, 0) as event_count
    from rules
    cross join minutes
    left join counted
        on
            rules.event_name = counted.event_name
            and cast(minutes.minute_at as {{ type_utc_timestamp() }}) = counted.minute_at

)

select * from final
