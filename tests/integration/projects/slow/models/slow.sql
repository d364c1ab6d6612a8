{{ config(pre_hook="copy (select 1 as started) to '" ~ env_var('SLOW_MARKER_PATH', 'slow.started') ~ "' (header)") }}
-- var('slow_rows') x 100000 rows: minutes of work, cancellable at any time.
select count(*) as hits
from range({{ var('slow_rows') }}) a, range(100000) b
where (a.range * 7 + b.range) % 13 = 1
