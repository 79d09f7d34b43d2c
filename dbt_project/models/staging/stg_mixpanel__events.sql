with

source as (

    {{ raw_events_or_empty() }}

),

renamed as (

    select
        event_id,
        event_name,
        cast(event_timestamp as {{ type_utc_timestamp() }}) as event_at,
        distinct_id,
        insert_id,
        properties,
        cast(mp_processing_time as {{ type_utc_timestamp() }}) as processed_at,
        cast(inserted_at as {{ type_utc_timestamp() }}) as inserted_at

    from source

)

select * from renamed
