-- Same name as the root project's seed `customers`.
select id, label as name from {{ ref('helpers', 'lookup') }}
