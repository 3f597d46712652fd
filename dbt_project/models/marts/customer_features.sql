-- Customer features at every cutoff of this build: one row per customer known at the cutoff (first
-- purchase on or before it) and cutoff date, the feature families (models/intermediate/features/) joined
-- on (customer_id, cutoff_date). The columns are the ones documented in _marts.yml, in that order: a
-- family's new column reaches this table when its YAML entry is added there, as the type it declares (the
-- contract: the same types on every engine, whatever each computes a count or a day difference as).
-- Point in time: the families read only rows dated on or before the cutoff, each in the version known at
-- the end of the cutoff's day, and sessions count only their events up to that day; so later orders,
-- corrections and deletions change nothing here, and a snapshot once built is kept: the families compute
-- only the cutoffs int_cutoffs marks to_build (the scoring cutoff and calendar cutoffs not built yet), and
-- this incremental table adds them; `clv run --full-refresh` rebuilds every snapshot, with the same rows.
{{ config(materialized='incremental', unique_key=['customer_id', 'cutoff_date'],
          incremental_strategy='delete+insert', on_schema_change='fail') }}

select
    {%- for column in model.columns %}
    cast({{ column }} as {{ model.columns[column].data_type }}) as {{ column }}{{ "," if not loop.last }}
    {%- endfor %}
from {{ ref('int_features__rfm') }}
inner join {{ ref('int_features__order_windows') }} using (customer_id, cutoff_date)
inner join {{ ref('int_features__purchase_pattern') }} using (customer_id, cutoff_date)
inner join {{ ref('int_features__sessions') }} using (customer_id, cutoff_date)
inner join {{ ref('int_features__attributes') }} using (customer_id, cutoff_date)
