-- Cleaning rule: extreme order values are capped, never dropped. The cap for a cutoff is the
-- `order_value_cap_percentile` (default 0.999) of purchase order values on or before that cutoff, so it
-- uses no data from after the cutoff (and the order versions known at its end), and at most
-- `order_value_cap_p99_multiple` (default 10) times their 99th percentile, which a burst of outliers
-- (over 0.1% of orders) moves only when it is over 1% of orders. Null percentile (or >= 1) disables the cap.
{% set percentile = var('order_value_cap_percentile') %}
{% set p99_multiple = var('order_value_cap_p99_multiple', 10) %}

{{ config(materialized='incremental', unique_key='cutoff_date', incremental_strategy='delete+insert') }}

with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
    {% if is_incremental() %}
    where to_build
    {% endif %}
),

orders as (
    select * from {{ ref('int_order_versions') }}
    where purchase_value > 0
),

caps as (
    select
        cutoffs.cutoff_date,
        {% if percentile is not none and percentile | float < 1 %}
        least(
            percentile_cont({{ percentile | float }}) within group (order by orders.purchase_value),
            {{ p99_multiple | float }} * percentile_cont(0.99) within group (order by orders.purchase_value)
        )
        {% else %}
        cast(null as {{ type_double() }})
        {% endif %} as order_value_cap
    from cutoffs
    left join orders
        on {{ on_or_before('orders.order_date', 'cutoffs.cutoff_date') }}
        and {{ valid_at_end_of('orders', 'cutoffs.cutoff_date') }}
    group by 1
)

select * from caps
