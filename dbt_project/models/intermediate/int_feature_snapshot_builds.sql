-- One row per feature snapshot in customer_features: how far the inputs had landed when it was last built
-- (the latest loaded_at of the raw customers, orders and events) and by which feature code (a fingerprint
-- of the models' SQL and the feature vars). The next scoring snapshot carries customers over from the
-- latest of these built by the same code (int_cutoffs.carried_from) and recomputes every customer with a
-- row landed after it. Built after customer_features (and not when its build fails), so a snapshot is
-- listed only once it is complete; `clv loads undo` deletes the rows of snapshots built after the load it
-- removes, so nothing is carried over from them.
-- depends_on: {{ ref('customer_features') }}
{{ config(materialized='incremental', unique_key='cutoff_date', incremental_strategy='delete+insert') }}

with landed as (
    select max(loaded_at) as loaded_at from {{ source('shop', 'customers') }}
    union all
    select max(loaded_at) from {{ source('shop', 'orders') }}
    union all
    select max(loaded_at) from {{ source('shop', 'events') }}
)

select
    cutoffs.cutoff_date,
    (select max(landed.loaded_at) from landed) as landed_through,
    '{{ feature_code_fingerprint() }}' as feature_code
from {{ ref('int_cutoffs') }} as cutoffs
where cutoffs.to_build
