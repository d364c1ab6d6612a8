-- a table; its sleep keeps one worker busy while the other root starts
select 1 as id, 'b' as root from (select pg_sleep({{ var('root_seconds') }})) as held
