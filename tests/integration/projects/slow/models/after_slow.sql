select hits from {{ ref('slow') }}
