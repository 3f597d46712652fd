
    
    

select
    cutoff_date as unique_field,
    count(*) as n_records

from "accuracy-online-retail"."main"."int_cutoffs"
where cutoff_date is not null
group by cutoff_date
having count(*) > 1


