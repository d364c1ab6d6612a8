select id, 'v2' as version, name from {{ ref('tricky', 'customers') }}
