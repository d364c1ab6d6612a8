-- Downstream of `broken`: always skipped.
select id from {{ ref('broken') }}
