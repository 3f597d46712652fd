
    
    

select
    order_line_id as unique_field,
    count(*) as n_records

from "accuracy-online-retail"."main"."stg_shop__orders"
where order_line_id is not null
group by order_line_id
having count(*) > 1


