with

source as (

    {{ raw_events_or_empty() }}

),

renamed as (

    select
        event_id,
        event_name,
        {{ utc_timestamp_column('event_timestamp') }} as event_at,
        distinct_id,
        insert_id,
        properties,
        {{ utc_timestamp_column('mp_processing_time') }} as processed_at,
        {{ utc_timestamp_column('inserted_at') }} as inserted_at

    from source

)

select * from renamed
