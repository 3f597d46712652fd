{{ config(materialized='view') }}  -- read only when a model is trained: not rewritten every week
-- The labelled snapshots models train on: features at each training cutoff joined to the label.
with features as (
    select * from {{ ref('customer_features') }}
),

labels as (
    select * from {{ ref('customer_labels') }}
),

joined as (
    select
        features.*,
        labels.horizon_days,
        labels.future_revenue,
        labels.future_orders_count
    from features
    inner join labels
        on labels.customer_id = features.customer_id
        and labels.cutoff_date = features.cutoff_date
)

select * from joined
