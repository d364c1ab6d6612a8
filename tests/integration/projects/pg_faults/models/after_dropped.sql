-- Downstream of `dropped`: runs once `dropped` has succeeded (after its retry).
select id from {{ ref('dropped') }}
