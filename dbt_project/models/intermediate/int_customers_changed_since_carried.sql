{#- The windows' edges come from the features themselves (macro feature_window_edges): a feature named with
    its window, as docs/features.md asks, is recomputed when an order or a session crosses its edge. -#}

-- The customers whose features at a carried scoring cutoff C may differ from their row in the snapshot it
-- carries over, B (int_cutoffs.carried_from), other than by the days elapsed: customer_features recomputes
-- these at C and carries every other customer's row of B over. A customer is listed when
--   * a row of theirs (customer record, order line, event) landed after B's snapshot was built
--     (int_cutoffs.carried_landed_through): new data, corrections, deletions, late events;
--   * a version of their customer record or of one of their orders starts or ends between the end of day B
--     and the end of day C (a correction or deletion dated in between);
--   * an order of theirs is dated in (B, C] (new orders, new customers), or crosses the edge of a window
--     the order features count in: dated in (B - N, C - N] for each edge N;
--   * a session of theirs has an event after day B (new sessions, sessions running at B), or started in
--     (B - N, C - N] for each session window N;
--   * they signed up in (B, C];
--   * an order of theirs is above the lower of B's and C's order-value caps, when the two differ.
-- Listing a customer needlessly costs time, not correctness; missing one would carry a stale row over:
-- tests/dbt_project/test_incremental_snapshots.py compares a carried build with a full one row by row.
with carried as (
    select
        cutoff_date,
        carried_from,
        carried_landed_through,
        {{ end_of_day('carried_from') }} as carried_day_end,
        {{ end_of_day('cutoff_date') }} as cutoff_day_end
    from {{ ref('int_cutoffs') }}
    where to_build and carried_from is not null
),

caps as (
    select * from {{ ref('int_order_value_caps') }}
),

landed_rows as (
    select customer_id, loaded_at from {{ source('shop', 'customers') }}
    union all
    select customer_id, loaded_at from {{ source('shop', 'orders') }}
),

landed_since as (  -- rows landed after the carried snapshot was built: new data, corrections, deletions
    select carried.cutoff_date, landed_rows.customer_id
    from carried
    inner join landed_rows on landed_rows.loaded_at > carried.carried_landed_through
),

changed_customer_records as (
    select carried.cutoff_date, customers.customer_id
    from carried
    inner join {{ ref('stg_shop__customers') }} as customers
        on (customers.valid_from > carried.carried_day_end and customers.valid_from <= carried.cutoff_day_end)
        or (customers.valid_to > carried.carried_day_end and customers.valid_to <= carried.cutoff_day_end)
        or (customers.signup_date > carried.carried_from and customers.signup_date <= carried.cutoff_date)
),

-- an order's versions start and end where its lines' versions do (int_order_versions cuts it there)
changed_orders as (
    select carried.cutoff_date, orders.customer_id
    from carried
    inner join {{ ref('int_order_versions') }} as orders
        on (orders.valid_from > carried.carried_day_end and orders.valid_from <= carried.cutoff_day_end)
        or (orders.valid_to > carried.carried_day_end and orders.valid_to <= carried.cutoff_day_end)
        or (orders.order_date > carried.carried_from and orders.order_date <= carried.cutoff_date)
        {% for edge in feature_window_edges() %}
        or {{ crossed_window_edge('orders.order_date', edge, 'carried.carried_from', 'carried.cutoff_date') }}
        {% endfor %}
),

orders_over_a_changed_cap as (
    select carried.cutoff_date, orders.customer_id
    from carried
    left join caps as carried_cap on carried_cap.cutoff_date = carried.carried_from
    inner join caps as new_cap on new_cap.cutoff_date = carried.cutoff_date
    inner join {{ ref('int_order_versions') }} as orders
        on carried_cap.order_value_cap is distinct from new_cap.order_value_cap
        and (orders.purchase_value > least(carried_cap.order_value_cap, new_cap.order_value_cap)
             or orders.returned_value > least(carried_cap.order_value_cap, new_cap.order_value_cap))
),

changed_sessions as (
    select carried.cutoff_date, sessions.customer_id
    from carried
    inner join {{ ref('int_customer_sessions') }} as sessions
        on sessions.last_event_date > carried.carried_from
        or sessions.last_loaded_at > carried.carried_landed_through
        {% for edge in feature_window_edges() %}
        or {{ crossed_window_edge('sessions.session_date', edge, 'carried.carried_from', 'carried.cutoff_date') }}
        {% endfor %}
)

select cutoff_date, customer_id from landed_since
union
select cutoff_date, customer_id from changed_customer_records
union
select cutoff_date, customer_id from changed_orders
union
select cutoff_date, customer_id from orders_over_a_changed_cap
union
select cutoff_date, customer_id from changed_sessions
