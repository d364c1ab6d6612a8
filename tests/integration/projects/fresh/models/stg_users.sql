select id, name from {{ source('raw', 'users') }}
