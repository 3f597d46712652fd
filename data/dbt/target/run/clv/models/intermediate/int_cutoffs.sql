
    

    create  table
      "accuracy-online-retail"."main"."int_cutoffs__dbt_tmp"
  
    
    as (
      -- The cutoff dates of this build: one scoring cutoff (features only) and the training cutoffs
-- (features + labels), spaced back from the scoring cutoff so that every training label window
-- [cutoff + 1 day, cutoff + horizon_days] ends on or before the scoring cutoff.



with anchor as (
    
    select max(order_date) as scoring_cutoff_date from "accuracy-online-retail"."main"."stg_shop__orders"
    
),

cutoffs as (
    select scoring_cutoff_date as cutoff_date, 'scoring' as cutoff_role, 0 as snapshot_index
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-180 as bigint) * interval 1 day) as date),
        'training',
        1
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-271 as bigint) * interval 1 day) as date),
        'training',
        2
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-362 as bigint) * interval 1 day) as date),
        'training',
        3
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-453 as bigint) * interval 1 day) as date),
        'training',
        4
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-544 as bigint) * interval 1 day) as date),
        'training',
        5
    from anchor
    
)

select
    cutoff_date,
    cutoff_role,
    snapshot_index,
    180 as horizon_days
from cutoffs
    );
    
  