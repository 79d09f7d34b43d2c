{{
    config(
        materialized='incremental',
        unique_key=['rule_id', 'window_end_minute'],
        on_schema_change='append_new_columns',
        pre_hook=["{{ adopt_rule_ids() }}", "{{ forget_unmonitored_rules() }}",
            "{{ forget_outside_known_data(minute_column='window_end_minute') }}",
            "{{ forget_recomputed_anomalies() }}"],
        incremental_strategy=incremental_strategy_name(),
        partition_column='window_end_minute',
        partition_by=partition_by_day('window_end_minute', 'timestamp'),
        cluster_by=cluster_by_event('window_end_minute'),
    )
}}

{#- The anomalous windows: outside their band (kind spike or drop), and, for baseline rules, the
    windows that continue such a window on the same side of the expected count, minute after
    minute: a burst is one episode until the count is back at what is expected, not a string of
    incidents each time it dips into the band (outside_band false, excess null). A run computes
    each event's windows again from the first minute it may see differently
    (int_detection_starts), reading a day before it, so a run of windows or a burst that began
    before it continues.
    Repeated bursts (baseline rules watching up): a window past its burst bound (int_event_window_bands)
    right after a minute that was not starts a burst; a window past it while at least
    var baseline_burst_count bursts started within var baseline_burst_hours hours is a spike too,
    its upper bound the burst bound and repeated_bursts that count.
    Quiet stretches (baseline rules watching down): over each span of var baseline_quiet_spans
    minutes (at least 3 windows long, every minute known, the baseline known for every window),
    the events counted and expected (the windows' counts and expected counts summed, over the
    window length); a complete window whose span got at most var baseline_quiet_fraction of what
    was expected, with Poisson odds of so few below e^-var baseline_quiet_evidence (a Chernoff
    bound: expected - count - count * ln(expected / count)), is a drop too (quiet_minutes: the
    longest such span): evidence that accumulates, where one window of a modest event is not.
    Sustained rises (baseline rules watching up): over the same spans, for an event whose whole
    hours vary about as chance would (hour_dispersion at most var baseline_rise_dispersion), a window
    whose span got at least var baseline_rise_factor times the events expected, more above them
    than the spike bar is above the median times the square root of the span's windows
    (upper_spread), with Poisson odds of so many below e^-var baseline_quiet_evidence (rise_at), is
    a spike too (rise_minutes: the longest such span): a rise too mild for one window's band, but
    too long to be chance. Sustained: at least var baseline_rise_sustained of the span's windows
    are above their expected count (a day's sharp end, whose hour's median is 0 while its first
    windows still hold the day's last events, is not a rise). A span with a window past its band
    is left to that spike: the burst's own events do not make the calm after it a rise. -#}
{%- set burst_minutes = (var('baseline_burst_hours') | int) * 60 -%}
{%- set epoch_minute = minutes_between("cast('1970-01-01' as " ~ type_utc_timestamp() ~ ")", 'minute_at') -%}
{%- set starts = ref('int_detection_starts') -%}
{%- set low = earliest(starts, 'anomaly_from') -%}
{%- set started_rules = 'select starts_events.rule_id from ' ~ starts ~ ' as starts_events' -%}
{%- set rules_of = ' where starts_events.rule_id in (select rules.rule_id from ' ~ ref('alert_rules')
    ~ ' as rules where rules.detector = ' -%}
{#- a baseline rule's windows with a day of context before the first minute computed again: a run
    or a burst that began before it continues, a quiet stretch or a rise looks back 2 hours. A
    threshold rule's window is judged alone: from that minute on (a no-change run of 50 threshold
    rules reads minutes, not a day each) -#}
{%- set context_from = (low - modules.datetime.timedelta(days=1)) if low is not none
    else modules.datetime.datetime(9999, 1, 1) %}
{%- set threshold_from = low if low is not none else modules.datetime.datetime(9999, 1, 1) %}

-- depends_on: {{ ref('int_event_window_bands') }}
-- depends_on: {{ ref('int_detection_plan') }}
with

starts as (

    select * from {{ starts }}

),

windows as (

    -- the windows with their bands (int_event_window_bands), of the events and days this run
    -- computes: the same macro, bounded; a unit test gives the view's rows as its fixture
    {% if unit_testing() %}
        select * from {{ ref('int_event_window_bands') }}
    {% else %}
        select *
        from ({{ window_bands(since=context_from, rules=started_rules ~ rules_of ~ "'baseline')") }}) as bands
        union all
        select *
        from ({{ window_bands(since=threshold_from, rules=started_rules ~ rules_of ~ "'threshold')") }}) as alone
    {% endif %}

),

bursts as (

    select
        *,
        coalesce(window_count > burst_bound, false) as is_burst,
        lag(coalesce(window_count > burst_bound, false)) over (
            partition by rule_id order by minute_at
        ) as previous_is_burst,
        lag(minute_at) over (partition by rule_id order by minute_at) as previous_minute
    from windows

),

burst_starts as (

    select
        *,
        case
            when not is_burst then 0
            when previous_is_burst is null or not previous_is_burst then 1
            when {{ minutes_between('previous_minute', 'minute_at') }} != 1 then 1
            else 0
        end as starts_burst
    from bursts

),

burst_counts as (

    select
        *,
        sum(starts_burst) over (
            partition by rule_id
            order by {{ epoch_minute }}
            range between {{ burst_minutes - 1 }} preceding and current row
        ) as recent_bursts
    from burst_starts

),

quiet_sums as (

    -- over the last span rows, which are the span's minutes when the first of them is span - 1
    -- minutes back (a frame of rows: a range frame on a computed key is several times slower)
    select
        {% for span in var('baseline_quiet_spans') %}
            sum(window_count) over (
                partition by rule_id order by minute_at
                rows between {{ span - 1 }} preceding and current row
            ) as span_count_{{ span }},
            sum(expected_count) over (
                partition by rule_id order by minute_at
                rows between {{ span - 1 }} preceding and current row
            ) as span_expected_{{ span }},
            count(expected_count) over (
                partition by rule_id order by minute_at
                rows between {{ span - 1 }} preceding and current row
            ) as span_known_{{ span }},
            sum(case when kind = 'spike' then 1 else 0 end) over (
                partition by rule_id order by minute_at
                rows between {{ span - 1 }} preceding and current row
            ) as span_spikes_{{ span }},
            sum(case when window_count > expected_count then 1 else 0 end) over (
                partition by rule_id order by minute_at
                rows between {{ span - 1 }} preceding and current row
            ) as span_above_{{ span }},
            lag(minute_at, {{ span - 1 }}) over (partition by rule_id order by minute_at) as span_first_{{ span }},
        {% endfor %}
        *
    from burst_counts

),

quiet_spans as (

    -- per span: the events in it and expected, as window sums over the window length
    select
        {% for span in var('baseline_quiet_spans') %}
            case
                when
                    detector = 'baseline' and not is_learning and direction in ('down', 'both') and is_complete
                    and span_known_{{ span }} = {{ span }} and time_window_minutes * 3 <= {{ span }}
                    and {{ minutes_between('span_first_' ~ span, 'minute_at') }} = {{ span - 1 }}
                    then 1.0 * span_count_{{ span }} / time_window_minutes
            end as quiet_count_{{ span }},
            case
                when
                    detector = 'baseline' and not is_learning and direction in ('up', 'both')
                    and hour_dispersion <= {{ var('baseline_rise_dispersion') }} and span_spikes_{{ span }} = 0
                    and span_above_{{ span }} >= {{ var('baseline_rise_sustained') }} * {{ span }}
                    and span_known_{{ span }} = {{ span }} and time_window_minutes * 3 <= {{ span }}
                    and {{ minutes_between('span_first_' ~ span, 'minute_at') }} = {{ span - 1 }}
                    then 1.0 * span_count_{{ span }} / time_window_minutes
            end as rise_count_{{ span }},
            1.0 * span_expected_{{ span }} / time_window_minutes as quiet_expected_{{ span }},
        {% endfor %}
        *
    from quiet_sums

),

quiet as (

    -- the longest quiet span (quiet_at) and the longest rise (rise_at), each with its events and
    -- the events expected in it
    select
        *,
        {{ longest_span(quiet_at, 'SPAN') }} as quiet_span_minutes,
        {{ longest_span(quiet_at, 'quiet_count_SPAN') }} as quiet_span_count,
        {{ longest_span(quiet_at, 'quiet_expected_SPAN') }} as quiet_span_expected,
        {{ longest_span(rise_at, 'SPAN') }} as rise_span_minutes,
        {{ longest_span(rise_at, 'rise_count_SPAN') }} as rise_span_count,
        {{ longest_span(rise_at, 'quiet_expected_SPAN') }} as rise_span_expected
    from quiet_spans

),

repeated as (

    -- a repeated burst: past the burst bound, inside the band, while enough bursts began recently;
    -- a sustained rise: inside the band, its span too busy to be chance (whatever this window got,
    -- as a quiet stretch's window)
    select
        *,
        kind is null and is_burst
        and recent_bursts >= {{ var('baseline_burst_count') | int }} as is_repeated_burst,
        kind is null and rise_span_minutes is not null
        and not (is_burst and recent_bursts >= {{ var('baseline_burst_count') | int }}) as is_rise
    from quiet

),

breached as (

    -- breach: the band's (int_event_window_bands), or a repeated burst's, whose upper bound is the
    -- bar it crossed
    select
        *,
        case
            when is_repeated_burst then 'spike'
            when kind is null and quiet_span_minutes is not null then 'drop'
            when is_rise then 'spike'
            else kind
        end as breach,
        case when is_repeated_burst then recent_bursts end as repeated_bursts,
        case when is_repeated_burst then burst_bound else upper_bound end as breached_upper_bound
    from repeated

),

sided as (

    select
        *,
        case
            when breach is not null then breach
            when detector = 'baseline' and window_count > expected_count then 'spike'
            when detector = 'baseline' and is_complete and window_count < expected_count then 'drop'
        end as side
    from breached

),

sided_runs as (

    select
        *,
        lag(side) over (partition by rule_id order by minute_at) as previous_side
    from sided

),

run_starts as (

    -- a run: consecutive minutes on one side of the expected count
    select
        *,
        case
            when side is null then 0
            when previous_side is null or previous_side != side then 1
            when {{ minutes_between('previous_minute', 'minute_at') }} != 1 then 1
            else 0
        end as starts_run
    from sided_runs

),

runs as (

    select
        *,
        sum(starts_run) over (
            partition by rule_id order by minute_at rows between unbounded preceding and current row
        ) as run_number
    from run_starts

),

continued as (

    select
        *,
        max(case when breach is not null then 1 else 0 end) over (
            partition by rule_id, run_number
            order by minute_at rows between unbounded preceding and current row
        ) = 1 as follows_outside
    from runs
    where side is not null

),

recomputed as (

    -- the windows from each event's first minute computed again
    select continued.*
    from continued
    inner join starts on continued.rule_id = starts.rule_id
    where continued.follows_outside and continued.minute_at >= starts.anomaly_from

),

final as (

    select
        rule_id,
        event_name,
        window_start,
        minute_at as window_end_minute,
        time_window_minutes,
        window_count as event_count,
        alert_threshold,
        alert_channel,
        cooldown_minutes,
        side as kind,
        expected_count,
        lower_bound,
        breached_upper_bound as upper_bound,
        detector,
        description,
        min_events,
        repeated_bursts,
        breach is not null as outside_band,
        -- how far past the band: above the upper bound for a spike, below the lower for a drop
        case
            -- a quiet stretch's window may be inside its own band: how far below the expected count
            when breach = 'drop' and kind is null
                then greatest(cast(ceil(expected_count - window_count) as {{ dbt.type_bigint() }}), 1)
            when breach = 'drop' then lower_bound - window_count
            -- a sustained rise's window is inside its band: how far above the expected count
            when is_rise then greatest(cast(ceil(window_count - expected_count) as {{ dbt.type_bigint() }}), 1)
            when breach = 'spike' then window_count - breached_upper_bound
        end as excess,
        case when breach = 'drop' and kind is null then quiet_span_minutes end as quiet_minutes,
        -- the events in the quiet span and those expected in it (window sums over the window length)
        case when breach = 'drop' and kind is null then cast(round(quiet_span_count) as {{ dbt.type_bigint() }}) end
            as quiet_count,
        case when breach = 'drop' and kind is null then quiet_span_expected end as quiet_expected,
        -- a sustained rise: its longest span, the events in it and those expected, the same way
        case when is_rise then rise_span_minutes end as rise_minutes,
        case when is_rise then cast(round(rise_span_count) as {{ dbt.type_bigint() }}) end as rise_count,
        case when is_rise then rise_span_expected end as rise_expected
    from recomputed

)

select * from final
{{ in_time_order('window_end_minute') }}
