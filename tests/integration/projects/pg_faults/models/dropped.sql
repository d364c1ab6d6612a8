-- Sleeps var('sleep_seconds') until the table var('killed_marker') exists in the
-- build's schema; the test creates that table, then terminates this query's
-- backend, so the first attempt sleeps (and is killed) and a retry does not.
select 1 as id
from (
    select pg_sleep(
        case
            when to_regclass('{{ target.schema }}.{{ var("killed_marker") }}') is null
                then {{ var('sleep_seconds') }}
            else 0
        end
    )
) as slept
