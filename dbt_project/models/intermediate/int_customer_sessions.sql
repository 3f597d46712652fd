-- One row per session: the days of its first and last event, how long it lasted, how many add-to-cart
-- events it had, and when its latest event landed. Kept, not re-aggregated every week: events are never
-- restated (they are read event by event at each cutoff) and every column is a min, max or count, so a
-- build aggregates only the events landed since the last build and folds them into the sessions they
-- belong to (a session whose events arrive over two loads ends up as a full refresh computes it).
{{ config(materialized='incremental', unique_key=['customer_id', 'session_id'],
          incremental_strategy='delete+insert', on_schema_change='fail') }}

with events as (
    select * from {{ ref('stg_shop__events') }}
    {% if is_incremental() %}
    where loaded_at > {{ latest_in(this, 'last_loaded_at') }}
    {% endif %}
),

landed_sessions as (  -- the sessions as far as these events tell
    select
        customer_id,
        session_id,
        cast(min(event_at) as date) as session_date,  -- cast once per session, not per event
        cast(max(event_at) as date) as last_event_date,
        max(session_duration_s) as session_duration_s,
        count(case when event_type = 'add_to_cart' then 1 end) as add_to_cart_count,
        max(loaded_at) as last_loaded_at
    from events
    group by 1, 2
),

{% if is_incremental() %}
sessions_so_far as (  -- what earlier builds knew of the same sessions
    select kept.*
    from {{ this }} as kept
    inner join landed_sessions
        on landed_sessions.customer_id = kept.customer_id
        and landed_sessions.session_id = kept.session_id
),

sessions as (
    select
        customer_id,
        session_id,
        min(session_date) as session_date,
        max(last_event_date) as last_event_date,
        max(session_duration_s) as session_duration_s,
        cast(sum(add_to_cart_count) as {{ dbt.type_bigint() }}) as add_to_cart_count,
        max(last_loaded_at) as last_loaded_at
    from (
        select * from landed_sessions
        union all
        select * from sessions_so_far
    ) as parts
    group by 1, 2
)
{% else %}
sessions as (
    select * from landed_sessions
)
{% endif %}

select * from sessions
