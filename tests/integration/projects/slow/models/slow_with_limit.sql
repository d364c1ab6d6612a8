{{ config(
    meta={'prefect_timeout_seconds': 2},
    pre_hook="copy (select 1 as started) to '" ~ env_var('SLOW_MARKER_PATH', 'slow.started') ~ "' (header)",
) }}
select count(*) as hits
from range({{ var('slow_rows') }}) a, range(100000) b
where (a.range * 7 + b.range) % 13 = 1
