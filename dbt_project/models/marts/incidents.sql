{{
    config(
        materialized='incremental',
        unique_key=['incident_id'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='first_anomalous_minute',
        partition_by=partition_by_day('first_anomalous_minute', 'timestamp'),
        cluster_by=cluster_by_event('first_anomalous_minute'),
        pre_hook=["{{ adopt_rule_ids() }}", "{{ forget_unmonitored_rules() }}",
            "{{ forget_outside_known_data(minute_column='first_anomalous_minute') }}",
            "{{ forget_recomputed_incidents() }}"],
    )
}}

{#- Anomalous minutes of one rule and one kind less than the cooldown apart form one incident.
    A run computes again, per rule and kind, the incidents that reach the span its anomalies
    changed in (int_detection_starts, less the cooldown: a minute there may join them) and every
    incident still open (its status depends on the moment), from the first minute of the earliest
    of them: incidents wholly before are as a full build leaves them. -#}
{%- set low = earliest(ref('int_detection_incident_starts'), 'recompute_from') %}

-- depends_on: {{ ref('int_detection_plan') }}
with

recompute as (

    select * from {{ ref('int_detection_incident_starts') }}

),

anomalies as (

    select anomalies.*
    from {{ ref('anomalies') }} as anomalies
    inner join recompute
        on anomalies.rule_id = recompute.rule_id and coalesce(anomalies.kind, 'spike') = recompute.kind
    where
        anomalies.window_end_minute >= recompute.recompute_from
        {% if low is not none %}
            and anomalies.window_end_minute >= {{ literal_of(low) }}
        {% else %}
            and 1 = 0
        {% endif %}

),

counts as (

    select * from {{ ref('int_event_counts_per_minute') }}
    {% if low is not none %}
        where minute_at >= {{ literal_of(low - modules.datetime.timedelta(days=1)) }}
    {% endif %}

),

sequenced as (

    select
        *,
        lag(window_end_minute) over (partition by rule_id, kind order by window_end_minute) as previous_minute
    from anomalies

),

flagged as (

    -- anomalous minutes of one event and one kind less than the cooldown apart belong to one incident
    select
        *,
        case
            when previous_minute is null then 1
            when {{ minutes_between('previous_minute', 'window_end_minute') }} >= cooldown_minutes then 1
            else 0
        end as starts_incident
    from sequenced

),

numbered as (

    select
        *,
        sum(starts_incident) over (
            partition by rule_id, kind order by window_end_minute rows between unbounded preceding and current row
        ) as incident_number
    from flagged

),

peaks as (

    -- the incident's peak window: the highest count of a spike, the lowest of a drop
    select
        *,
        row_number() over (
            partition by rule_id, kind, incident_number
            order by case when kind = 'drop' then event_count else -event_count end, window_end_minute
        ) as peak_rank,
        -- the first window of a quiet stretch: what the alert says when it is posted
        row_number() over (
            partition by rule_id, kind, incident_number
            order by case when quiet_minutes is null then 1 else 0 end, window_end_minute
        ) as quiet_rank,
        -- the first window of a sustained rise, the same way
        row_number() over (
            partition by rule_id, kind, incident_number
            order by case when rise_minutes is null then 1 else 0 end, window_end_minute
        ) as rise_rank
    from numbered

),

grouped as (

    select
        rule_id,
        kind,
        incident_number,
        max(event_name) as event_name,
        min(window_end_minute) as first_anomalous_minute,
        max(window_end_minute) as last_anomalous_minute,
        min(window_start) as first_window_start,
        count(*) as anomalous_minutes,
        max(case when peak_rank = 1 then event_count end) as peak_count,
        max(excess) as peak_excess,
        max(case when peak_rank = 1 then expected_count end) as expected_count,
        max(case when peak_rank = 1 then lower_bound end) as lower_bound,
        max(case when peak_rank = 1 then upper_bound end) as upper_bound,
        max(repeated_bursts) as repeated_bursts,
        max(quiet_minutes) as quiet_minutes,
        max(case when quiet_rank = 1 then quiet_minutes end) as quiet_first_minutes,
        max(case when quiet_rank = 1 then quiet_count end) as quiet_count,
        max(case when quiet_rank = 1 then quiet_expected end) as quiet_expected,
        max(rise_minutes) as rise_minutes,
        max(case when rise_rank = 1 then rise_minutes end) as rise_first_minutes,
        max(case when rise_rank = 1 then rise_count end) as rise_count,
        max(case when rise_rank = 1 then rise_expected end) as rise_expected,
        max(detector) as detector,
        max(description) as description,
        max(alert_threshold) as alert_threshold,
        max(time_window_minutes) as time_window_minutes,
        max(alert_channel) as alert_channel,
        max(cooldown_minutes) as cooldown_minutes
    from peaks
    group by rule_id, kind, incident_number

),

totals as (

    select
        grouped.rule_id,
        grouped.kind,
        grouped.incident_number,
        cast(sum(counts.event_count) as {{ dbt.type_bigint() }}) as total_events
    from grouped
    inner join counts
        on
            grouped.rule_id = counts.rule_id
            and grouped.first_window_start <= counts.minute_at
            and grouped.last_anomalous_minute >= counts.minute_at
    group by grouped.rule_id, grouped.kind, grouped.incident_number

),

over_flags as (

    select
        *,
        -- a drop's newest minute lags the current one by the settle time, the minute in progress
        -- and any delay of the data collected (drops_judged_before), so a drop still going on is
        -- not over after a short cooldown, nor while the data stops short of it
        case
            when kind = 'drop' then {{ minutes_between('last_anomalous_minute', drops_judged_before()) }} - 1
            else {{ minutes_between('last_anomalous_minute', detection_now()) }}
        end >= cooldown_minutes as is_over
    from grouped

),

final as (

    select
        {{ dbt.hash(dbt.concat([
            'grouped.rule_id', "'|'", dbt.cast('grouped.first_anomalous_minute', dbt.type_string())
        ])) }} as incident_id,
        grouped.rule_id,
        grouped.event_name,
        grouped.first_anomalous_minute,
        grouped.last_anomalous_minute,
        grouped.first_window_start as started_at,
        case when grouped.is_over then {{ add_minutes('grouped.last_anomalous_minute', 1) }} end as ended_at,
        case when grouped.is_over then 'over' else 'open' end as status,
        grouped.anomalous_minutes,
        grouped.peak_count,
        grouped.peak_excess,
        totals.total_events,
        grouped.alert_threshold,
        grouped.time_window_minutes,
        grouped.alert_channel,
        grouped.cooldown_minutes,
        grouped.kind,
        grouped.expected_count,
        grouped.lower_bound,
        grouped.upper_bound,
        grouped.repeated_bursts,
        grouped.quiet_minutes,
        grouped.quiet_first_minutes,
        grouped.quiet_count,
        grouped.quiet_expected,
        grouped.rise_minutes,
        grouped.rise_first_minutes,
        grouped.rise_count,
        grouped.rise_expected,
        grouped.detector,
        grouped.description
    from over_flags as grouped
    inner join totals
        on
            grouped.rule_id = totals.rule_id
            and coalesce(grouped.kind, '') = coalesce(totals.kind, '')
            and grouped.incident_number = totals.incident_number

)

select * from final
{{ in_time_order('first_anomalous_minute') }}
