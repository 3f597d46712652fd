{#- True for the rows a feature family computes: at a scoring cutoff carried over from the last snapshot
    (int_cutoffs.carried_from), only the customers int_customers_changed_since_carried lists; at every other
    cutoff, all of them. A build carries one cutoff at most (its scoring cutoff), so the list needs no
    cutoff of its own here. -#}
{% macro only_customers_to_recompute(cutoffs, customer_id) -%}
    ({{ cutoffs }}.carried_from is null
        or {{ customer_id }} in (select customer_id from {{ ref('int_customers_changed_since_carried') }}))
{%- endmacro %}

{#- True when a row dated `day` is inside a window of the last `edge` days at one of the two cutoffs and not at
    the other: dated in (carried_from - edge, cutoff - edge]. -#}
{% macro crossed_window_edge(day, edge, carried_from, cutoff) -%}
    ({{ day }} > {{ dbt.dateadd('day', -(edge | int), carried_from) }}
        and {{ day }} <= {{ dbt.dateadd('day', -(edge | int), cutoff) }})
{%- endmacro %}
