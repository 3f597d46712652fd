
    

    create  table
      "accuracy-online-retail"."main"."int_customer_sessions__dbt_tmp"
  
    
    as (
      -- One row per session: when it started, how long it lasted, how many add-to-cart events it had.
with events as (
    select * from "accuracy-online-retail"."main"."stg_shop__events"
),

sessions as (
    select
        customer_id,
        session_id,
        min(event_date) as session_date,
        max(session_duration_s) as session_duration_s,
        count(case when event_type = 'add_to_cart' then 1 end) as add_to_cart_count
    from events
    group by 1, 2
)

select * from sessions
    );
    
  