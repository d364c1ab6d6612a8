-- Rides started and revenue per station per day (completed rides only).
select
    r.start_station_id as station_id,
    s.station_name,
    r.ride_date,
    count(*) as rides,
    -- DuckDB's type for this sum, spelled out: PostgreSQL's would have no fixed scale.
    cast(sum(r.fare) as decimal(38, 2)) as revenue,
    round(avg(r.duration_minutes), 1) as avg_duration_minutes
from {{ ref('fct_rides') }} as r
inner join {{ ref('dim_stations') }} as s on s.station_id = r.start_station_id
where r.ride_status = 'completed'
group by 1, 2, 3
