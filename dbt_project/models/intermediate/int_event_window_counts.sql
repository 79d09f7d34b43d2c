{{
    config(
        unique_key=['rule_id', 'minute_at'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='minute_at',
        partition_by=partition_by_day('minute_at', 'timestamp'),
        cluster_by=cluster_by_event('minute_at'),
        pre_hook=["{{ adopt_rule_ids() }}", "{{ forget_unmonitored_rules() }}",
            "{{ forget_outside_known_data(minute_column='minute_at') }}",
            "{{ forget_after_the_moment(minute_column='minute_at') }}"],
    )
}}

{#- For each enabled rule and each minute m, the count over its window: the W whole minutes ending
    with m (W = time_window_minutes), with the rule's threshold. A run computes the windows that
    hold a minute it counted (int_detection_windows), from the counts they need only: the ranges' counts,
    merged where they overlap into islands, each summed as running totals (a window is the
    difference of two totals W minutes apart). -#}
{%- set low = earliest(ref('int_detection_windows'), 'window_from') -%}
{%- set counts_from = (low - modules.datetime.timedelta(days=1)) if low is not none
    else modules.datetime.datetime(9999, 12, 31) %}


-- depends_on: {{ ref('int_detection_plan') }}
with

rules as (

    select * from {{ ref('alert_rules') }}
    where enabled

),

changed as (

    select * from {{ ref('int_detection_windows') }}

),

ordered as (

    -- the count ranges the windows need, [read_from, window_to], merged into islands where they touch
    select
        *,
        max(window_to) over (
            partition by rule_id order by read_from, window_to rows between unbounded preceding and 1 preceding
        ) as reach_before
    from changed

),

island_starts as (

    select
        *,
        case when reach_before is null or read_from > {{ add_minutes('reach_before', 1) }} then 1 else 0 end
            as starts_island
    from ordered

),

numbered as (

    select
        *,
        sum(starts_island) over (
            partition by rule_id order by read_from, window_to rows between unbounded preceding and current row
        ) as island
    from island_starts

),

islands as (

    select
        rule_id,
        island,
        min(read_from) as island_from,
        max(window_to) as island_to
    from numbered
    group by rule_id, island

),

wanted as (

    select distinct
        changed.rule_id,
        cast(minute_at as {{ type_utc_timestamp() }}) as minute_at
    from changed
    cross join {{ range_minutes('changed.window_from', 'changed.window_to') }}

),

counts as (

    -- bounded by a literal (at the end of time when no window changed): older partitions are not read
    select
        all_counts.rule_id,
        all_counts.minute_at,
        all_counts.event_count,
        islands.island
    from {{ ref('int_event_counts_per_minute') }} as all_counts
    inner join islands
        on
            all_counts.rule_id = islands.rule_id
            and all_counts.minute_at >= islands.island_from
            and all_counts.minute_at <= islands.island_to
    where all_counts.minute_at >= {{ literal_of(counts_from) }}

),

running_totals as (

    -- running totals over the known (zero-filled) minutes of each island: a window's count is the
    -- difference of two running totals W minutes apart, found by an equality join
    select
        rule_id,
        island,
        minute_at,
        event_count,
        -- a 64-bit count (DuckDB's sum would widen it to 128 bits, a float in pandas)
        cast(sum(event_count) over (
            partition by rule_id, island order by minute_at rows between unbounded preceding and current row
        ) as {{ dbt.type_bigint() }}) as running_count,
        row_number() over (partition by rule_id, island order by minute_at) as running_minutes,
        min(minute_at) over (partition by rule_id, island) as first_minute
    from counts

),

segments as (

    -- known minutes come in contiguous segments (a gap is a time no data is known for: an event
    -- enabled again whose history is still coming); within one, minute - row number is constant
    select
        *,
        {{ minutes_between('first_minute', 'minute_at') }} - running_minutes as segment
    from running_totals

),

running as (

    -- the totals just before the segment's first minute: a window whose minute W before is
    -- unknown counts the known minutes of its segment only
    select
        rule_id,
        island,
        minute_at,
        running_count,
        running_minutes,
        first_value(running_count - event_count) over (
            partition by rule_id, island, segment order by minute_at
            rows between unbounded preceding and current row
        ) as segment_base_count,
        first_value(running_minutes - 1) over (
            partition by rule_id, island, segment order by minute_at
            rows between unbounded preceding and current row
        ) as segment_base_minutes
    from segments

),

windowed as (

    -- the window of minute m is the W whole minutes ending with m
    select
        window_end.rule_id,
        rules.event_name,
        window_end.minute_at,
        rules.time_window_minutes,
        rules.alert_threshold,
        rules.alert_channel,
        rules.cooldown_minutes,
        window_end.running_count
        - coalesce(before_window.running_count, window_end.segment_base_count) as window_count,
        window_end.running_minutes
        - coalesce(before_window.running_minutes, window_end.segment_base_minutes) as minutes_in_window
    from running as window_end
    inner join wanted
        on window_end.rule_id = wanted.rule_id and window_end.minute_at = wanted.minute_at
    inner join rules on window_end.rule_id = rules.rule_id
    left join running as before_window
        on
            window_end.rule_id = before_window.rule_id
            and window_end.island = before_window.island
            and {{ add_minutes('window_end.minute_at', '-1 * rules.time_window_minutes') }}
            = before_window.minute_at

),

final as (

    select
        rule_id,
        event_name,
        {{ add_minutes('minute_at', '1 - time_window_minutes') }} as window_start,
        minute_at,
        time_window_minutes,
        window_count,
        minutes_in_window,
        alert_threshold,
        alert_channel,
        cooldown_minutes,
        window_count > alert_threshold as is_anomalous
    from windowed

)

select * from final
{{ in_time_order('minute_at') }}
