
  
  create view "accuracy-online-retail"."main"."stg_shop__customers__dbt_tmp" as (
    -- One row per customer: the most recently landed version of their attributes.
with source as (
    select * from "accuracy-online-retail"."raw"."customers"
),

ranked as (
    select
        *,
        row_number() over (partition by customer_id order by loaded_at desc, row_key) as version_rank
    from source
    where customer_id is not null
),

latest as (
    select
        customer_id,
        country,
        acquisition_channel,
        signup_ts as signed_up_at,
        cast(signup_ts as date) as signup_date
    from ranked
    where version_rank = 1
)

select * from latest
  );
