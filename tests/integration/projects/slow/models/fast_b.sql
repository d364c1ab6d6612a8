select id + 1 as id from {{ ref('fast_a') }}
