{{ config(materialized='view') }}
select id, 6 as which from {{ ref('base') }}
