select o.id, l.label from {{ ref('orders', v=2) }} o join {{ ref('helpers', 'lookup') }} l on o.id = l.id
