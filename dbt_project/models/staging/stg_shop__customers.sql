-- Customer attributes as versions: one row per landed version of a customer, valid over
-- [valid_from, valid_to). The first version of a customer is valid from the beginning (a first backfill
-- describes the past as well as it can); a later one from the source's change time (updated_at) when it
-- sends one, else from its load time; it ends where the next version starts. Versions follow the order they
-- were landed in (within one load, e.g. a backfill of a history of changes, the order of updated_at).
-- Features at a cutoff read the version valid at the end of that day, so a correction landed later never
-- rewrites an old snapshot.
with source as (
    select * from {{ source('shop', 'customers') }}
),

versions as (
    select
        customer_id,
        country,
        acquisition_channel,
        signup_ts,
        coalesce(updated_at, {{ in_business_time('loaded_at') }}) as changed_at,
        loaded_at,
        row_key
    from source
    where customer_id is not null
),

ordered as (
    select
        *,
        row_number() over (partition by customer_id order by loaded_at, changed_at, row_key) as version_number,
        lead(changed_at) over (partition by customer_id order by loaded_at, changed_at, row_key)
            as next_changed_at
    from versions
)

select
    customer_id,
    country,
    acquisition_channel,
    signup_ts as signed_up_at,
    cast(signup_ts as date) as signup_date,
    version_number,
    case when version_number = 1 then {{ beginning_of_time() }} else changed_at end as valid_from,
    coalesce(next_changed_at, {{ end_of_time() }}) as valid_to
from ordered
