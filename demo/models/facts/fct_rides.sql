{{
    config(
        materialized='incremental',
        unique_key='ride_id',
        on_schema_change='fail',
    )
}}

{#- Resolve the ref up front so the DAG is the same whatever fail_model is
    (refs inside a branch that is not rendered would vanish from the graph). -#}
{%- set enriched = ref('int_rides_enriched') -%}

{% if var('fail_model', false) %}

-- Deliberate run-time failure, for demonstrating skipped descendants.
select * from a_table_that_does_not_exist

{% else %}

select
    ride_id,
    bike_id,
    bike_type,
    start_station_id,
    end_station_id,
    started_at,
    ended_at,
    ride_date,
    duration_minutes,
    fare,
    ride_status,
    is_one_way
from {{ enriched }}

{% if is_incremental() %}
-- Only rides that ended after the newest ride already loaded (re-merged on ride_id).
where ended_at >= (select coalesce(max(ended_at), timestamp '1900-01-01') from {{ this }})
{% endif %}

{% endif %}
