-- Usage per bike, against the bike's current record in the snapshot.
with current_bikes as (
    select bike_id, bike_type, home_station_id, bike_status
    from {{ ref('snap_bikes') }}
    where dbt_valid_to is null
),

usage as (
    select
        bike_id,
        count(*) filter (where ride_status = 'completed') as completed_rides,
        coalesce(sum(duration_minutes) filter (where ride_status = 'completed'), 0)
            as minutes_ridden,
        max(ended_at) as last_ride_ended_at
    from {{ ref('fct_rides') }}
    group by 1
)

select
    b.bike_id,
    b.bike_type,
    b.home_station_id,
    b.bike_status,
    coalesce(u.completed_rides, 0) as completed_rides,
    coalesce(u.minutes_ridden, 0) as minutes_ridden,
    u.last_ride_ended_at
from current_bikes as b
left join usage as u using (bike_id)
