{{ config(materialized='view') }}
select id, 3 as which from {{ ref('base') }}
