-- Holds its connection for var('sleep_seconds') seconds, then makes a one-row table.
select 1 as id from (select pg_sleep({{ var('sleep_seconds') }})) as slept
