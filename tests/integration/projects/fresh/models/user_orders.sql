select u.id as user_id, count(o.id) as orders
from {{ ref('stg_users') }} as u
left join {{ ref('stg_orders') }} as o on o.user_id = u.id
group by 1
