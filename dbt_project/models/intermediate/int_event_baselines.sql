{{
    config(
        unique_key=['rule_id', 'window_day', 'hour_of_day'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='window_day',
        partition_by=partition_by_day('window_day', 'date'),
        cluster_by=cluster_by_event('window_day'),
        pre_hook=["{{ adopt_rule_ids() }}", "{{ forget_unmonitored_rules() }}",
            "{{ forget_outside_known_data(day_column='window_day') }}",
            "{{ forget_after_the_moment(day_column='window_day', hour_column='hour_of_day') }}"],
    )
}}

{#- The baseline of each baseline rule, per day and hour of day of the window's last minute (in
    DETECTION_TIMEZONE): the quantiles of the same event's complete window counts in the same hour
    of day on comparable earlier days: a weekday learns from the weekdays of the last 14 days and
    the same weekday 21 and 28 days before, a Saturday or a Sunday from the weekend days of the last
    28 days (baseline_reference_days), once var baseline_comparable_days of them have history and
    the two bands differ by more than var baseline_comparable_factor (a weekly rhythm); otherwise
    from every day (days 1 to 7 before, and 7, 14, 21 and 28 days before: the same
    weekday counts twice), as a rule learns (history_days counts those). Only
    history from strictly before the day is used, and the median and a quantile band are robust: an
    earlier spike or outage does not move them. The same hour's totals on the reference days (every day's and the
    comparable ones; the windows summed: hour_q50, hour_q95) say how much whole hours vary beyond
    chance, for sustained rises (anomalies). The band is computed from these quantiles in
    int_event_window_bands, with the rule's sensitivity. The windows come a row per hour
    (int_event_hour_windows). A run computes the baselines its changed windows touch
    (int_detection_baseline_targets). -#}
{%- set low_day = earliest(ref('int_detection_baseline_targets'), 'window_day') -%}
{%- set offset_rows = [] -%}
{%- for days in [1, 2, 3, 4, 5, 6, 7, 7, 14, 21, 28] -%}
    {%- do offset_rows.append((days, 'false')) -%}
{%- endfor -%}
{%- if var('baseline_comparable_days') | int > 0 -%}
    {%- for days in baseline_reference_days() -%}
        {%- do offset_rows.append((days, 'true')) -%}
    {%- endfor -%}
{%- endif -%}
{%- set history_from = (low_day - modules.datetime.timedelta(days=28)) if low_day is not none
    else modules.datetime.date(9999, 12, 31) %}


-- depends_on: {{ ref('int_detection_plan') }}
with

targets as (

    select * from {{ ref('int_detection_baseline_targets') }}

),

hour_windows as (

    -- the hours the targets learn from (28 days before the earliest one): a literal bound
    select hour_windows.*
    from {{ ref('int_event_hour_windows') }} as hour_windows
    where
        hour_windows.window_day >= {{ literal_of(history_from) }}
        and hour_windows.rule_id in (select targets.rule_id from targets)

),

offsets as (

    -- every day: the last 7 days, the same weekday 7 (counted twice), 14, 21 and 28 days before;
    -- comparable days: those of the same kind (weekday, weekend) among the reference days
    {% for days, comparable in offset_rows %}
        {% if not loop.first %}
            union all
        {% endif %}
        select
            {{ days }} as days_before,
            {{ comparable }} as comparable
    {% endfor %}

),

reference_days as (

    select
        targets.rule_id,
        targets.window_day,
        targets.hour_of_day,
        offsets.comparable,
        {{ days_before('targets.window_day', 'offsets.days_before') }} as history_day
    from targets
    cross join offsets
    where
        not offsets.comparable
        or (
            {{ is_weekend('targets.window_day') }}
            = {{ is_weekend(days_before('targets.window_day', 'offsets.days_before')) }}
            -- a weekday: the weekdays of the last two weeks and the same weekday in earlier weeks
            and ({{ is_weekend('targets.window_day') }} or offsets.days_before <= 14 or mod(offsets.days_before, 7) = 0)
        )

),

reference as (

    -- the complete windows of the same event and hour of day on the earlier days
    select
        reference_days.rule_id,
        reference_days.window_day,
        reference_days.hour_of_day,
        reference_days.comparable,
        reference_days.history_day,
        window_count  -- noqa: RF02
    from reference_days
    inner join hour_windows
        on
            reference_days.rule_id = hour_windows.rule_id
            and reference_days.hour_of_day = hour_windows.hour_of_day
            and reference_days.history_day = hour_windows.window_day
    cross join {{ unnest_values('hour_windows.window_counts', 'window_count') }}

),

hour_sums as (

    -- each reference day (every day's and the comparable days alike, up to 28 days before): the
    -- hour's windows summed, as 60 windows (a partial hour and the 25-hour day's repeated hour alike,
    -- at least half an hour of windows): how much whole hours vary from day to day, for sustained
    -- rises (int_event_window_bands)
    select
        rule_id,
        window_day,
        hour_of_day,
        sum(window_count) * 60.0 / count(*) as hour_windows_sum
    from reference
    group by rule_id, window_day, hour_of_day, history_day
    having count(*) >= 30

),

hour_quantiles as (

    select
        rule_id,
        window_day,
        hour_of_day,
        cast({{ band_quantile('hour_windows_sum', 0.5) }} as {{ dbt.type_float() }}) as hour_q50,
        cast({{ band_quantile('hour_windows_sum', 0.95) }} as {{ dbt.type_float() }}) as hour_q95
    from hour_sums
    group by rule_id, window_day, hour_of_day

),

quantiles as (

    select
        rule_id,
        window_day,
        hour_of_day,
        comparable,
        count(distinct history_day) as history_days,
        count(*) as reference_windows,
        cast({{ band_quantile('window_count', 0.05) }} as {{ dbt.type_float() }}) as q05,
        cast({{ band_quantile('window_count', 0.5) }} as {{ dbt.type_float() }}) as q50,
        cast({{ band_quantile('window_count', 0.95) }} as {{ dbt.type_float() }}) as q95
    from reference
    group by rule_id, window_day, hour_of_day, comparable

),

joined as (

    select
        targets.rule_id,
        targets.event_name,
        targets.window_day,
        targets.hour_of_day,
        every_day.q05,
        every_day.q50,
        every_day.q95,
        every_day.history_days,
        every_day.reference_windows,
        alike.q05 as similar_q05,
        alike.q50 as similar_q50,
        alike.q95 as similar_q95,
        alike.reference_windows as similar_reference_windows,
        hours.hour_q50,
        hours.hour_q95,
        -- comparable days when enough of them have history and every day's band is not theirs: the
        -- other kind of day drags its 5% quantile below 1/factor of theirs, or its 95% above factor
        -- times theirs, by more than 3 Poisson sigmas of their median (a weekly rhythm, not noise);
        -- else every day, more recent and more of them
        coalesce(
            {{ var('baseline_comparable_days') | int }} > 0
            and alike.history_days >= {{ var('baseline_comparable_days') | int }}
            and (
                (
                    every_day.q05 * {{ var('baseline_comparable_factor') }} < alike.q05
                    and alike.q05 - every_day.q05 > 3 * sqrt(greatest(alike.q50, 1))
                )
                or (
                    every_day.q95 > {{ var('baseline_comparable_factor') }} * alike.q95
                    and every_day.q95 - alike.q95 > 3 * sqrt(greatest(alike.q50, 1))
                )
            ),
            false
        ) as use_comparable
    from targets
    left join quantiles as every_day
        on
            targets.rule_id = every_day.rule_id
            and targets.window_day = every_day.window_day
            and targets.hour_of_day = every_day.hour_of_day
            and not every_day.comparable
    left join quantiles as alike
        on
            targets.rule_id = alike.rule_id
            and targets.window_day = alike.window_day
            and targets.hour_of_day = alike.hour_of_day
            and alike.comparable
    left join hour_quantiles as hours
        on
            targets.rule_id = hours.rule_id
            and targets.window_day = hours.window_day
            and targets.hour_of_day = hours.hour_of_day

),

final as (

    -- comparable days once baseline_comparable_days of them have history, else every day; a rule
    -- learns while fewer than baseline_min_history_days days (every day) have history
    select
        rule_id,
        event_name,
        window_day,
        hour_of_day,
        hour_q50,
        hour_q95,
        case when use_comparable then similar_q05 else q05 end as q05,
        case when use_comparable then similar_q50 else q50 end as q50,
        case when use_comparable then similar_q95 else q95 end as q95,
        coalesce(history_days, 0) as history_days,
        coalesce(case when use_comparable then similar_reference_windows else reference_windows end, 0)
            as reference_windows
    from joined

)

select * from final
{{ in_time_order('window_day') }}
