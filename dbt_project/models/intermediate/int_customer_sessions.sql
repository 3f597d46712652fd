{{ config(materialized="view") }}  -- one consumer (customer_features): computed there, not written to disk
-- One row per session: the days of its first and last event, how long it lasted, how many add-to-cart
-- events it had.
with events as (
    select * from {{ ref('stg_shop__events') }}
),

sessions as (
    select
        customer_id,
        session_id,
        cast(min(event_at) as date) as session_date,  -- cast once per session, not per event
        cast(max(event_at) as date) as last_event_date,
        max(session_duration_s) as session_duration_s,
        count(case when event_type = 'add_to_cart' then 1 end) as add_to_cart_count
    from events
    group by 1, 2
)

select * from sessions
