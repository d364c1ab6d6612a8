{{ config(materialized='view') }}
select id, 8 as which from {{ ref('base') }}
