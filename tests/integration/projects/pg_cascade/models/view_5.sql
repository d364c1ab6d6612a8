{{ config(materialized='view') }}
select id, 5 as which from {{ ref('base') }}
