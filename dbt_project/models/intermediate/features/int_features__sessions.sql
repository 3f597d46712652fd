-- Feature family behaviour (web/app sessions): per known customer and cutoff, sessions, their mean length
-- and add-to-cart events in the last N days for N in var('session_windows_days'), the days since the
-- last session, and the sessions and add-to-cart events after the day of the last order (a customer still
-- browsing since buying has not left); counts are zero for a customer without sessions. Sessions as known
-- at each cutoff, event by event: a session that ended by the cutoff's day counts whole; one still running
-- then counts only its events up to that day (its length: first to last of them).
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
    where to_build
),

events as (
    select * from {{ ref('stg_shop__events') }}
),

finished_sessions as (
    select
        cutoffs.cutoff_date,
        sessions.customer_id,
        sessions.session_date,
        sessions.session_duration_s,
        sessions.add_to_cart_count
    from cutoffs
    -- int_customer_sessions is named in both joins rather than once in a CTE: DuckDB would copy a CTE
    -- read twice (millions of sessions) before reading it
    inner join {{ ref('int_customer_sessions') }} as sessions
        on {{ on_or_before('sessions.last_event_date', 'cutoffs.cutoff_date') }}
    where {{ only_customers_to_recompute('cutoffs', 'sessions.customer_id') }}
),

running_sessions as (
    select
        cutoffs.cutoff_date,
        events.customer_id,
        min(events.event_date) as session_date,
        {{ dbt.datediff('min(events.event_at)', 'max(events.event_at)', 'second') }} as session_duration_s,
        count(case when events.event_type = 'add_to_cart' then 1 end) as add_to_cart_count
    from cutoffs
    inner join {{ ref('int_customer_sessions') }} as sessions
        on {{ on_or_before('sessions.session_date', 'cutoffs.cutoff_date') }}
        and sessions.last_event_date > cutoffs.cutoff_date
    inner join events
        on events.customer_id = sessions.customer_id
        and events.session_id = sessions.session_id
        and events.event_date <= cutoffs.cutoff_date
    where {{ only_customers_to_recompute('cutoffs', 'sessions.customer_id') }}
    group by cutoffs.cutoff_date, events.customer_id, events.session_id
),

session_history as (
    select
        known_sessions.*,
        {{ dbt.datediff('known_sessions.session_date', 'known_sessions.cutoff_date', 'day') }} as days_before_cutoff,
        {{ dbt.datediff('known_sessions.session_date', 'known_sessions.cutoff_date', 'day') }}
            < orders.days_since_last_order as is_after_last_order
    from (
        select * from finished_sessions
        union all
        select * from running_sessions
    ) as known_sessions
    inner join {{ ref('int_features__rfm') }} as orders
        on orders.cutoff_date = known_sessions.cutoff_date and orders.customer_id = known_sessions.customer_id
),

session_summary as (
    select
        cutoff_date,
        customer_id,
        {% for w in var('session_windows_days') %}
        count(case when days_before_cutoff < {{ w }} then 1 end) as sessions_count_{{ w }}d,
        cast(avg(case when days_before_cutoff < {{ w }} then session_duration_s end) as {{ type_double() }})
            as session_duration_s_mean_{{ w }}d,
        sum(case when days_before_cutoff < {{ w }} then add_to_cart_count else 0 end) as add_to_cart_count_{{ w }}d,
        {% endfor %}
        min(days_before_cutoff) as days_since_last_session,
        count(case when is_after_last_order then 1 end) as sessions_since_last_order,
        sum(case when is_after_last_order then add_to_cart_count else 0 end) as add_to_cart_since_last_order
    from session_history
    group by 1, 2
)

select
    known.customer_id,
    known.cutoff_date,
    {% for w in var('session_windows_days') %}
    coalesce(session_summary.sessions_count_{{ w }}d, 0) as sessions_count_{{ w }}d,
    session_summary.session_duration_s_mean_{{ w }}d,
    coalesce(session_summary.add_to_cart_count_{{ w }}d, 0) as add_to_cart_count_{{ w }}d,
    {% endfor %}
    session_summary.days_since_last_session,
    coalesce(session_summary.sessions_since_last_order, 0) as sessions_since_last_order,
    coalesce(session_summary.add_to_cart_since_last_order, 0) as add_to_cart_since_last_order
from {{ ref('int_features__rfm') }} as known
left join session_summary
    on session_summary.cutoff_date = known.cutoff_date and session_summary.customer_id = known.customer_id
