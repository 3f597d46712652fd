-- Order lines, cleaned, as versions valid over [valid_from, valid_to) in business time. Business rules:
--   * lines without a customer id are dropped (they cannot be attributed to anyone);
--   * a line is a return when its quantity is negative (Online Retail's C invoices carry negative quantities);
--   * lines with a zero or negative unit price are kept for counts but carry no revenue;
--   * a line the source identifies (line_id) may arrive again with other values (an OLTP row edited after an
--     earlier extraction): each landed version is kept. The first is valid from the beginning, a later one
--     from the source's change time (updated_at) when it sends one, else from its load time, until the next
--     (versions follow the order they were landed in; within one load, the order of updated_at);
--   * a tombstone (deleted_at) ends the line at its deletion time: it stops counting from then on;
--   * a line without line_id is a fact of its own, valid from the beginning (until its deleted_at, if any).
-- Features and labels read the versions valid at the end of their day (macro valid_at_end_of).
-- Each branch reads the landed table itself: a CTE of it read by both would be copied whole by DuckDB first,
-- and a filter of the reader (the rows landed since the last build) could not reach the table's scan.

-- a line without line_id has one version (no window over them: most lines of most shops)
with unkeyed_lines as (
    select
        *,
        cast(null as timestamp) as changed_at,  -- never used: an unkeyed line has no later version
        1 as version_number,
        cast(null as timestamp) as next_changed_at,
        deleted_at as line_deleted_at
    from {{ source('shop', 'orders') }}
    where customer_id is not null and line_id is null
),

-- a keyed line's versions change at the source's change time, else at their load time (in business time)
keyed_lines as (
    select
        *,
        coalesce(updated_at, {{ in_business_time('loaded_at') }}) as changed_at
    from {{ source('shop', 'orders') }}
    where customer_id is not null and line_id is not null
),

keyed_line_versions as (
    select
        *,
        row_number() over (partition by line_id order by loaded_at, changed_at, row_key) as version_number,
        lead(changed_at) over (partition by line_id order by loaded_at, changed_at, row_key) as next_changed_at,
        min(deleted_at) over (partition by line_id) as line_deleted_at
    from keyed_lines
),

ordered as (
    select * from unkeyed_lines
    union all
    select * from keyed_line_versions
),

cleaned as (
    select
        -- ids
        row_key as order_line_id,
        line_id,
        customer_id,
        order_id,
        product_id,

        -- numerics
        quantity,
        unit_price,
        case when unit_price > 0 then quantity * unit_price else 0 end as line_revenue,
        quantity < 0 as is_return,

        -- timestamps
        order_ts as ordered_at,
        cast(order_ts as date) as order_date,

        -- validity of this version
        case when version_number = 1 then {{ beginning_of_time() }} else changed_at end as valid_from,
        least(coalesce(next_changed_at, {{ end_of_time() }}), coalesce(line_deleted_at, {{ end_of_time() }}))
            as valid_to,
        loaded_at

    from ordered
)

select * from cleaned
