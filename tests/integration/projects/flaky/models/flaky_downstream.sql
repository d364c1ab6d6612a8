select id, upper(label) as label from {{ ref('flaky') }}
