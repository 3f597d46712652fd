-- One row per session: the days of its first and last event, how long it lasted, how many add-to-cart
-- events it had, and when its latest event landed. Kept, not re-aggregated every week: a build recomputes
-- only the sessions with events landed since the last build (from all of their events, so a session whose
-- events arrive over two loads ends up as a full refresh would compute it); events are never restated
-- (they are read event by event at each cutoff), so no other session can change.
{{ config(materialized='incremental', unique_key=['customer_id', 'session_id'],
          incremental_strategy='delete+insert', on_schema_change='fail') }}

with events as (
    select * from {{ ref('stg_shop__events') }}
),

{% if is_incremental() %}
sessions_with_new_events as (
    select distinct customer_id, session_id
    from events
    where loaded_at > (select coalesce(max(last_loaded_at), {{ beginning_of_time() }}) from {{ this }})
),
{% endif %}

sessions as (
    select
        events.customer_id,
        events.session_id,
        cast(min(events.event_at) as date) as session_date,  -- cast once per session, not per event
        cast(max(events.event_at) as date) as last_event_date,
        max(events.session_duration_s) as session_duration_s,
        count(case when events.event_type = 'add_to_cart' then 1 end) as add_to_cart_count,
        max(events.loaded_at) as last_loaded_at
    from events
    {% if is_incremental() %}
    inner join sessions_with_new_events
        on sessions_with_new_events.customer_id = events.customer_id
        and sessions_with_new_events.session_id = events.session_id
    {% endif %}
    group by 1, 2
)

select * from sessions
