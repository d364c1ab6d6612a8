{{ config(materialized='view') }}
select id, 4 as which from {{ ref('base') }}
