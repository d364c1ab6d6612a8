-- Ephemeral: inlined as a CTE into fct_rides, never built on its own.
select
    r.ride_id,
    r.bike_id,
    b.bike_type,
    r.start_station_id,
    r.end_station_id,
    r.started_at,
    r.ended_at,
    cast(r.started_at as date) as ride_date,
    r.duration_minutes,
    r.fare,
    r.ride_status,
    r.start_station_id <> r.end_station_id as is_one_way
from {{ ref('stg_rides') }} as r
left join {{ ref('stg_bikes') }} as b using (bike_id)
