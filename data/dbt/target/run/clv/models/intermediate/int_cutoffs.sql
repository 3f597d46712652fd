
    

    create  table
      "accuracy-synthetic"."main"."int_cutoffs__dbt_tmp"
  
    
    as (
      -- The cutoff dates of this build: one scoring cutoff (features only) and the training cutoffs
-- (features + labels), spaced back from the scoring cutoff so that every training label window
-- [cutoff + 1 day, cutoff + horizon_days] ends on or before the scoring cutoff.



with anchor as (
    
    select max(order_date) as scoring_cutoff_date from "accuracy-synthetic"."main"."stg_shop__orders"
    
),

cutoffs as (
    select scoring_cutoff_date as cutoff_date, 'scoring' as cutoff_role, 0 as snapshot_index
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-365 as bigint) * interval 1 day) as date),
        'training',
        1
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-456 as bigint) * interval 1 day) as date),
        'training',
        2
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-547 as bigint) * interval 1 day) as date),
        'training',
        3
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-638 as bigint) * interval 1 day) as date),
        'training',
        4
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-729 as bigint) * interval 1 day) as date),
        'training',
        5
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-820 as bigint) * interval 1 day) as date),
        'training',
        6
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-911 as bigint) * interval 1 day) as date),
        'training',
        7
    from anchor
    
    union all
    select
        cast(

    (scoring_cutoff_date + cast(-1002 as bigint) * interval 1 day) as date),
        'training',
        8
    from anchor
    
)

select
    cutoff_date,
    cutoff_role,
    snapshot_index,
    365 as horizon_days
from cutoffs
    );
    
  