select id, user_id from {{ source('raw', 'orders') }}
