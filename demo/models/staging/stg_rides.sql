-- The source table is filled by the raw_rides seed; a source has no edge to
-- the seed, so declare one or `dbt build` may create this view before the seed.
-- depends_on: {{ ref('raw_rides') }}

select
    ride_id,
    bike_id,
    start_station_id,
    end_station_id,
    started_at,
    ended_at,
    date_diff('minute', started_at, ended_at) as duration_minutes,
    cast(fare_cents / 100 as decimal(10, 2)) as fare,
    lower(ride_status) as ride_status,
    _loaded_at as loaded_at
from {{ source('bikeshare', 'rides') }}
