{#- True for the rows a feature family computes: at a scoring cutoff carried over from the last snapshot
    (int_cutoffs.carried_from), only the customers int_customers_changed_since_carried lists; at every other
    cutoff, all of them. A build carries one cutoff at most (its scoring cutoff), so the list needs no
    cutoff of its own here. -#}
{% macro only_customers_to_recompute(cutoffs, customer_id) -%}
    ({{ cutoffs }}.carried_from is null
        or {{ customer_id }} in (select customer_id from {{ ref('int_customers_changed_since_carried') }}))
{%- endmacro %}

{#- Every window edge a feature counts in, from the features themselves: the days of each customer_features
    column named with its window (`orders_count_14d`: 14; the naming rule of docs/features.md), the window
    vars, and the seasonal windows' edges (the days 185-274 and 275-364 before the cutoff). A feature added
    the documented way brings its window here without another edit. -#}
{% macro feature_window_edges() -%}
    {%- set edges = [] -%}
    {%- for windows in [var('feature_windows_days'), var('session_windows_days'), [185, 275, 365]] -%}
        {%- for edge in windows -%}{%- do edges.append(edge | int) -%}{%- endfor -%}
    {%- endfor -%}
    {%- if execute and graph is defined -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and node.name == 'customer_features' -%}
                {%- for column in node.columns -%}
                    {%- set window = modules.re.search('_([0-9]+)d$', column) -%}
                    {%- if window -%}{%- do edges.append(window.group(1) | int) -%}{%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return(edges | unique | sort) -}}
{%- endmacro %}

{#- True when a row dated `day` is inside a window of the last `edge` days at one of the two cutoffs and not at
    the other: dated in (carried_from - edge, cutoff - edge]. -#}
{% macro crossed_window_edge(day, edge, carried_from, cutoff) -%}
    ({{ day }} > {{ dbt.dateadd('day', -(edge | int), carried_from) }}
        and {{ day }} <= {{ dbt.dateadd('day', -(edge | int), cutoff) }})
{%- endmacro %}

{#- A fingerprint of the feature code: every model's SQL and the feature vars. A snapshot built by other code
    (an upgrade, an edited feature) is not carried over: its rows may hold what the code computes no more. -#}
{% macro feature_code_fingerprint() -%}
    {%- set parts = [var('feature_windows_days') | string, var('session_windows_days') | string,
                     var('order_value_cap_percentile') | string, var('order_value_cap_p99_multiple', 10) | string,
                     var('horizon_days') | string] -%}
    {%- if graph is defined and graph.nodes is defined -%}
        {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
            {%- if node.resource_type == 'model' -%}
                {%- set _ = parts.append(node.unique_id ~ ':' ~ node.raw_code) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return(local_md5(parts | join('\n')) if local_md5 is defined else parts | join('|') | length | string) -}}
{%- endmacro %}
