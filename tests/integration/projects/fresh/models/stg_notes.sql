select id, body from {{ source('raw', 'notes') }}
