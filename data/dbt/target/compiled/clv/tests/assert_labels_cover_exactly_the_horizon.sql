-- Label window check: purchase orders dated in (cutoff, cutoff + horizon_days] and nothing else.
-- Recomputed from the order lines; every customer whose label count disagrees fails the test.
with cutoffs as (
    select * from "accuracy-online-retail"."main"."int_cutoffs"
    where cutoff_role = 'training'
),

purchase_lines as (
    select * from "accuracy-online-retail"."main"."stg_shop__orders"
    where not is_return and line_revenue > 0
),

labels as (
    select * from "accuracy-online-retail"."main"."customer_labels"
),

in_window as (
    select
        cutoffs.cutoff_date,
        purchase_lines.customer_id,
        count(distinct purchase_lines.order_id) as orders_count
    from cutoffs
    inner join purchase_lines
        on purchase_lines.order_date > cutoffs.cutoff_date
        and purchase_lines.order_date
            <= cast(

    (cutoffs.cutoff_date + cast(cutoffs.horizon_days as bigint) * interval 1 day) as date)
    group by 1, 2
)

select labels.*, in_window.orders_count as recomputed_orders_count
from labels
left join in_window
    on in_window.customer_id = labels.customer_id
    and in_window.cutoff_date = labels.cutoff_date
where labels.future_orders_count <> coalesce(in_window.orders_count, 0)
    or (coalesce(in_window.orders_count, 0) = 0 and labels.future_revenue > 0)