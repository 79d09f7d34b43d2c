{{
    config(
        unique_key=['rule_id', 'minute_at'],
        on_schema_change='append_new_columns',
        incremental_strategy=incremental_strategy_name(),
        partition_column='minute_at',
        partition_by=partition_by_day('minute_at', 'timestamp'),
        cluster_by=cluster_by_event('minute_at'),
        pre_hook=["{{ adopt_rule_ids() }}", "{{ forget_unmonitored_rules() }}",
            "{{ forget_outside_known_data(minute_column='minute_at') }}"],
    )
}}

{#- Events per whole minute for every enabled rule (rule_id) of its event (event_name), from the
    minute its data is known (int_detection_plan.known_from): every known minute exists, a quiet one
    with 0, so a drop to zero is visible; minutes before it are unknown and absent.

    A run counts what int_detection_ranges says: its 'recount' ranges from the raw table (an
    event's whole history, or the minutes since the last one counted), and its 'delta' minutes,
    already counted, by adding the events that arrived in them since: those whose inserted_at is
    after the minute's counted_through (the newest inserted_at it has counted). counted_through
    makes the addition exact however often a failed run is repeated: an event is added once. -#}
{%- set ranges = ref('int_detection_ranges') -%}
{%- set recount_from = earliest(ranges, 'range_from', "kind = 'recount'") -%}
{%- set delta_from = earliest(ranges, 'range_from', "kind = 'delta'") -%}
{%- set progress = previous_build('int_detection_progress') -%}
{%- set watermark = single_value('select max(inserted_through) from ' ~ progress) if progress is not none else none -%}
{%- set epoch = "cast('1970-01-01 00:00:00' as " ~ type_utc_timestamp() ~ ")" %}

-- depends_on: {{ ref('stg_mixpanel__events') }}

with

plan as (

    select * from {{ ref('int_detection_plan') }}

),

recount_ranges as (

    select * from {{ ranges }}
    where kind = 'recount'

),

recount_minutes as (

    select distinct
        recount_ranges.rule_id,
        cast(minute_at as {{ type_utc_timestamp() }}) as minute_at
    from recount_ranges
    cross join {{ range_minutes('recount_ranges.range_from', 'recount_ranges.range_to') }}

),

recounted as (

    {% if recount_from is not none %}
        select
            recount_ranges.rule_id,
            {{ minute_of('events.event_at') }} as minute_at,
            count(*) as event_count,
            max(events.inserted_at) as counted_through
        from {{ ref('stg_mixpanel__events') }} as events
        inner join recount_ranges
            on
                events.event_name = recount_ranges.event_name
                and events.event_at >= recount_ranges.range_from
                and events.event_at < {{ add_minutes('recount_ranges.range_to', 1) }}
        where events.event_at >= {{ literal_of(recount_from) }}
        group by recount_ranges.rule_id, {{ minute_of('events.event_at') }}
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as rule_id,
            cast(null as {{ type_utc_timestamp() }}) as minute_at,
            cast(0 as {{ dbt.type_bigint() }}) as event_count,
            cast(null as {{ type_utc_timestamp() }}) as counted_through
        from (select 1 as one) as no_rows
        where 1 = 0
    {% endif %}

),

recount_rows as (

    -- a quiet minute has counted everything loaded so far: later events have a later inserted_at
    select
        recount_minutes.rule_id,
        plan.event_name,
        recount_minutes.minute_at,
        coalesce(recounted.event_count, 0) as event_count,
        coalesce(recounted.counted_through, plan.inserted_through) as counted_through
    from recount_minutes
    inner join plan on recount_minutes.rule_id = plan.rule_id
    left join recounted
        on
            recount_minutes.rule_id = recounted.rule_id
            and recount_minutes.minute_at = recounted.minute_at

),

{% if is_incremental() and delta_from is not none and watermark is not none %}

    delta_minutes as (

        select
            rule_id,
            event_name,
            range_from as minute_at
        from {{ ranges }}
        where kind = 'delta'

    ),

    counted_before as (

        select
            counts.rule_id,
            delta_minutes.event_name,
            counts.minute_at,
            counts.event_count,
            coalesce(counts.counted_through, {{ epoch }}) as counted_through
        from {{ this }} as counts
        inner join delta_minutes
            on counts.rule_id = delta_minutes.rule_id and counts.minute_at = delta_minutes.minute_at
        where counts.minute_at >= {{ literal_of(delta_from) }}

    ),

    arrived as (

        -- the events loaded since the watermark, in minutes already counted
        select
            events.event_name,
            {{ minute_of('events.event_at') }} as minute_at,
            events.inserted_at
        from {{ ref('stg_mixpanel__events') }} as events
        where
            events.inserted_at > {{ literal_of(watermark) }}
            and events.event_at >= {{ literal_of(delta_from) }}
            and events.event_name in (select delta_minutes.event_name from delta_minutes)

    ),

    added as (

        select
            counted_before.rule_id,
            counted_before.minute_at,
            count(arrived.inserted_at) as added_events,
            max(arrived.inserted_at) as newest_added
        from counted_before
        inner join arrived
            on
                counted_before.event_name = arrived.event_name
                and counted_before.minute_at = arrived.minute_at
                and arrived.inserted_at > counted_before.counted_through
        group by counted_before.rule_id, counted_before.minute_at

    ),

    delta_rows as (

        select
            counted_before.rule_id,
            counted_before.event_name,
            counted_before.minute_at,
            counted_before.event_count + coalesce(added.added_events, 0) as event_count,
            case
                when added.newest_added > counted_before.counted_through then added.newest_added
                else counted_before.counted_through
            end as counted_through
        from counted_before
        left join added
            on counted_before.rule_id = added.rule_id and counted_before.minute_at = added.minute_at

    ),

{% else %}

    delta_rows as (

        select * from recount_rows
        where 1 = 0

    ),

{% endif %}

final as (

    select * from recount_rows
    union all
    select * from delta_rows

)

select
    rule_id,
    event_name,
    minute_at,
    cast(event_count as {{ dbt.type_bigint() }}) as event_count,
    counted_through
from final
{{ in_time_order('minute_at') }}
