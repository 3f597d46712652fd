-- Web/app events of known customers.
with source as (
    select * from {{ source('shop', 'events') }}
),

cleaned as (
    select
        customer_id,
        session_id,
        lower(event_type) as event_type,
        session_duration_s,
        event_ts as event_at,
        cast(event_ts as date) as event_date,
        loaded_at
    from source
    where customer_id is not null
)

select * from cleaned
