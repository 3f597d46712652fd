-- The cutoff dates of this build: one scoring cutoff (features only) and the training cutoffs
-- (features + labels), spaced back from the scoring cutoff so that every training label window
-- [cutoff + 1 day, cutoff + horizon_days] ends on or before the scoring cutoff.
{% set horizon_days = var('horizon_days') | int %}
{% set spacing_days = var('snapshot_spacing_days') | int %}

with anchor as (
    {% if var('cutoff_date') %}
    select cast('{{ var("cutoff_date") }}' as date) as scoring_cutoff_date
    {% else %}
    select max(order_date) as scoring_cutoff_date from {{ ref('stg_shop__orders') }}
    {% endif %}
),

cutoffs as (
    select scoring_cutoff_date as cutoff_date, 'scoring' as cutoff_role, 0 as snapshot_index
    from anchor
    {% for k in range(var('training_snapshots') | int) %}
    union all
    select
        cast({{ dbt.dateadd('day', -(horizon_days + k * spacing_days), 'scoring_cutoff_date') }} as date),
        'training',
        {{ k + 1 }}
    from anchor
    {% endfor %}
)

select
    cutoff_date,
    cutoff_role,
    snapshot_index,
    {{ horizon_days }} as horizon_days
from cutoffs
