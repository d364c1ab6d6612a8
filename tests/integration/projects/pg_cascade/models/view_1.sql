{{ config(materialized='view') }}
select id, 1 as which from {{ ref('base') }}
