{{ config(materialized='view') }}
select id, 7 as which from {{ ref('base') }}
