-- Per cutoff this build computes (int_cutoffs.to_build): how much shop history a 365-day window can see
-- there, from the shop's first order known at the end of the cutoff's day (early cutoffs see less than a
-- year). One value per cutoff, the same for every customer.
select
    cutoffs.cutoff_date,
    least({{ dbt.datediff('min(orders.order_date)', 'cutoffs.cutoff_date', 'day') }} + 1, 365)
        as observable_history_days
from {{ ref('int_cutoffs') }} as cutoffs
inner join {{ ref('int_order_versions') }} as orders
    on {{ on_or_before('orders.order_date', 'cutoffs.cutoff_date') }}
    and {{ valid_at_end_of('orders', 'cutoffs.cutoff_date') }}
where cutoffs.to_build
group by cutoffs.cutoff_date
