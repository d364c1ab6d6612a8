{{ config(materialized='view') }}
select id, 2 as which from {{ ref('base') }}
