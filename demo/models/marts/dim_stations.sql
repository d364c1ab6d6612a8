with bikes_per_station as (
    select home_station_id as station_id, count(*) as home_bikes
    from {{ ref('stg_bikes') }}
    group by 1
)

select
    s.station_id,
    s.station_name,
    s.district,
    s.dock_count,
    s.opened_on,
    coalesce(b.home_bikes, 0) as home_bikes
from {{ ref('stg_stations') }} as s
left join bikes_per_station as b using (station_id)
