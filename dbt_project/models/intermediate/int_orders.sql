{{ config(materialized="view") }}
-- The orders as known now (the current version of every order): what monitoring and the scoring run's
-- recent-orders read. Snapshots read int_order_versions as of their cutoff instead.
select customer_id, order_id, order_date, purchase_value, returned_value, purchase_lines_count
from {{ ref('int_order_versions') }}
where valid_to = {{ end_of_time() }}
