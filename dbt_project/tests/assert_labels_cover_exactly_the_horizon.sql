-- Label window check: purchase orders dated in (cutoff, cutoff + horizon_days] and nothing else, for
-- every label horizon, in the versions known at the window's end. Recomputed from the order lines;
-- every customer whose label count disagrees fails.
with labels as (  -- the labels of the snapshots this build computed
    select * from {{ ref('customer_labels') }}
    where cutoff_date in (
        select built.cutoff_date from {{ ref('int_cutoffs') }} as built
        where built.to_build
    )
),

windows as (
    select distinct cutoff_date, horizon_days from labels
),

purchase_lines as (
    select * from {{ ref('stg_shop__orders') }}
    where not is_return and line_revenue > 0
),

in_window as (
    select
        windows.cutoff_date,
        windows.horizon_days,
        purchase_lines.customer_id,
        count(distinct purchase_lines.order_id) as orders_count
    from windows
    inner join purchase_lines
        on purchase_lines.order_date > windows.cutoff_date
        and purchase_lines.order_date
            <= cast({{ dbt.dateadd('day', 'windows.horizon_days', 'windows.cutoff_date') }} as date)
        and {{ valid_at_end_of('purchase_lines',
                               "cast(" ~ dbt.dateadd('day', 'windows.horizon_days', 'windows.cutoff_date') ~ " as date)") }}
    group by 1, 2, 3
)

select labels.*, in_window.orders_count as recomputed_orders_count
from labels
left join in_window
    on in_window.customer_id = labels.customer_id
    and in_window.cutoff_date = labels.cutoff_date
    and in_window.horizon_days = labels.horizon_days
where labels.future_orders_count <> coalesce(in_window.orders_count, 0)
    or (coalesce(in_window.orders_count, 0) = 0 and labels.future_revenue > 0)
