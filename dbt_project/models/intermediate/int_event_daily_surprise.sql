{{
    config(
        unique_key=['event_name', 'window_day'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='window_day',
        partition_by=partition_by_day('window_day', 'date'),
        cluster_by=cluster_by_event('window_day'),
    )
}}

{#- How surprised its own baseline was by each baseline rule's event, per UTC day: the largest
    z = (count - median) / sigma_up of the day's complete windows. A bursty event (tweets, a
    marketing push every afternoon) has days whose largest z is 10 or 20 without anything being
    wrong; int_event_window_bands raises the spike bar of such an event to a multiple of its
    typical daily largest z, so it alerts on what is unusual for it. Incremental: the days the
    recount touches, and all days of an event not scored here yet or whose baseline now begins
    earlier. -#}
{%- set recount_from = minute_of(add_minutes(detection_now(), '-' ~ lookback_minutes())) %}

with

{% if is_incremental() %}
    history_grown as (

        -- events whose baseline now begins earlier than their scored days (their history arrived
        -- over several runs): all their days again, as a full build would score them
        select baselines.event_name
        from (
            select
                event_name,
                min(window_day) as first_day
            from {{ ref('int_event_baselines') }}
            where history_days >= {{ baseline_min_history_days() }}
            group by event_name
        ) as baselines
        inner join (
            select
                event_name,
                min(window_day) as first_day
            from {{ this }}
            group by event_name
        ) as scored on baselines.event_name = scored.event_name
        where baselines.first_day < scored.first_day

    ),
{% endif %}

rules as (

    select event_name from {{ ref('alert_rules') }}
    where enabled and detector = 'baseline'

),

windows as (

    select
        windows.event_name,
        windows.minute_at,
        windows.window_count
    from {{ ref('int_event_window_counts') }} as windows
    inner join rules on windows.event_name = rules.event_name
    where windows.minutes_in_window >= windows.time_window_minutes
    {% if is_incremental() %}
        and (
            {{ utc_date('windows.minute_at') }} >= {{ utc_date(recount_from) }}
            or windows.event_name not in (select scored.event_name from {{ this }} as scored)
            or windows.event_name in (select rescored.event_name from history_grown as rescored)
        )
    {% endif %}

),

baselines as (

    select * from {{ ref('int_event_baselines') }}
    where history_days >= {{ baseline_min_history_days() }}

),

scored as (

    select
        windows.event_name,
        baselines.window_day,
        (windows.window_count - baselines.q50)
        / {{ baseline_sigma('baselines.q50', 'baselines.q95') }} as surprise
    from windows
    inner join baselines
        on
            windows.event_name = baselines.event_name
            and {{ utc_date('windows.minute_at') }} = baselines.window_day
            and {{ utc_hour('windows.minute_at') }} = baselines.hour_of_day

),

final as (

    select
        event_name,
        window_day,
        cast(max(surprise) as {{ dbt.type_float() }}) as max_surprise,
        count(*) as scored_windows
    from scored
    group by event_name, window_day

)

select * from final
