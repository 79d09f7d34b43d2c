{#- The windows with their bands (see int_event_window_bands, which is this with no bound): with
    `since` (a datetime) and `rules` (a SQL list or subquery of rule ids), only the windows of
    those rules from `since` on, reading only the baselines and daily surprises they need. -#}
{% macro window_bands(since=none, rules=none) %}
with

rules as (

    select * from {{ ref('alert_rules') }}
    where enabled

),

windows as (

    select * from {{ ref('int_event_window_counts') }}
    {% if since is not none %}
        where minute_at >= {{ literal_of(since) }} and rule_id in ({{ rules }})
    {% endif %}

),

baselines as (

    select * from {{ ref('int_event_baselines') }}
    {% if since is not none %}
        where window_day >= {{ literal_of(local_date_floor(since)) }} and rule_id in ({{ rules }})
    {% endif %}

),

daily_surprise as (

    select * from {{ ref('int_event_daily_surprise') }}
    {% if since is not none %}
        where
            window_day >= {{ literal_of(local_date_floor(since) - modules.datetime.timedelta(days=var('baseline_surprise_days') | int)) }}
            and rule_id in ({{ rules }})
    {% endif %}

),

surprise_levels as (

    -- per event and day: the median of the previous days' largest surprise (the event's own
    -- burstiness), which raises its spike bar (var baseline_surprise_factor)
    select
        target_days.rule_id,
        target_days.window_day,
        {{ band_quantile('history.max_surprise', 0.5) }} as typical_max_surprise
    from daily_surprise as target_days
    inner join daily_surprise as history
        on
            target_days.rule_id = history.rule_id
            and target_days.window_day > history.window_day
            and {{ days_before('target_days.window_day', var('baseline_surprise_days') | int) }} <= history.window_day
    group by target_days.rule_id, target_days.window_day

),

joined as (

    select
        windows.rule_id,
        windows.event_name,
        windows.window_start,
        windows.minute_at,
        windows.time_window_minutes,
        windows.window_count,
        windows.minutes_in_window,
        (
            windows.minutes_in_window >= windows.time_window_minutes
            and windows.minute_at < {{ drops_judged_before() }}
        ) as is_complete,
        rules.detector,
        rules.direction,
        rules.sensitivity,
        rules.alert_threshold,
        rules.min_events,
        rules.alert_channel,
        rules.cooldown_minutes,
        rules.description,
        coalesce(baselines.history_days, 0) as history_days,
        (
            rules.detector = 'baseline'
            and coalesce(baselines.history_days, 0) < {{ baseline_min_history_days() }}
        ) as is_learning,
        baselines.q05,
        baselines.q50,
        baselines.q95,
        baselines.hour_q50,
        baselines.hour_q95,
        greatest(
            {{ baseline_k('up', 'rules.sensitivity') }},
            {{ baseline_surprise_factor('rules.sensitivity') }} * coalesce(surprise_levels.typical_max_surprise, 0)
        ) as k_up
    from windows
    inner join rules on windows.rule_id = rules.rule_id
    left join baselines
        on
            rules.detector = 'baseline'
            and windows.rule_id = baselines.rule_id
            and {{ local_date('windows.minute_at') }} = baselines.window_day
            and {{ local_hour('windows.minute_at') }} = baselines.hour_of_day
    left join surprise_levels
        on
            rules.detector = 'baseline'
            and windows.rule_id = surprise_levels.rule_id
            and {{ local_date('windows.minute_at') }} = surprise_levels.window_day

),

learned as (

    select
        *,
        case
            when detector = 'baseline' and not is_learning and direction in ('up', 'both')
                then cast(floor(
                    q50 + k_up
                    * {{ baseline_sigma('q50', 'q95') }}
                ) as {{ dbt.type_bigint() }})
        end as learned_upper,
        case
            when detector = 'baseline' and not is_learning and direction in ('down', 'both')
                then cast(greatest(
                    ceil(
                        q50 - {{ baseline_k('down', 'sensitivity') }}
                        * {{ baseline_sigma('q50', 'q05') }}
                    ),
                    floor(q05 * {{ var('baseline_drop_fraction_of_q05') }}),
                    0
                ) as {{ dbt.type_bigint() }})
        end as learned_lower,
        case
            when detector = 'baseline' and not is_learning and direction in ('up', 'both')
                then cast(floor(
                    q50 + {{ baseline_k('burst', 'sensitivity') }}
                    * {{ baseline_sigma('q50', 'q95') }}
                ) as {{ dbt.type_bigint() }})
        end as burst_bound,
        -- how far above the median the spike bar is (k_up sigmas), and how much more whole hours
        -- vary than chance would (the variance of the hour's events over their median, 1 for a
        -- Poisson count): a sustained rise's scale and gate (anomalies)
        case
            when detector = 'baseline' and not is_learning and direction in ('up', 'both')
                then k_up * {{ baseline_sigma('q50', 'q95') }}
        end as upper_spread,
        power((hour_q95 - hour_q50) / time_window_minutes / 1.645, 2)
        / greatest(hour_q50 / time_window_minutes, 1) as hour_dispersion
    from joined

),

banded as (

    select
        *,
        case when detector = 'baseline' and not is_learning then q50 end as expected_count,
        least(coalesce(learned_upper, alert_threshold), coalesce(alert_threshold, learned_upper)) as upper_bound,
        greatest(coalesce(learned_lower, min_events), coalesce(min_events, learned_lower)) as lower_bound
    from learned

),

final as (

    select
        rule_id,
        event_name,
        window_start,
        minute_at,
        time_window_minutes,
        window_count,
        minutes_in_window,
        is_complete,
        detector,
        direction,
        alert_threshold,
        min_events,
        alert_channel,
        cooldown_minutes,
        description,
        history_days,
        is_learning,
        expected_count,
        lower_bound,
        upper_bound,
        burst_bound,
        upper_spread,
        hour_dispersion,
        case
            when window_count > upper_bound then 'spike'
            when is_complete and window_count < lower_bound then 'drop'
        end as kind
    from banded

)

select * from final
{% endmacro %}
