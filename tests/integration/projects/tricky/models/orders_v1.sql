select id, 'v1' as version from {{ ref('tricky', 'customers') }}
