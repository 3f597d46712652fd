
    
    

with all_values as (

    select
        cutoff_role as value_field,
        count(*) as n_records

    from "accuracy-online-retail"."main"."int_cutoffs"
    group by cutoff_role

)

select *
from all_values
where value_field not in (
    'scoring','training'
)


