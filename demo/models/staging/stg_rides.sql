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
    -- Minute boundaries crossed (DuckDB's date_diff), as a whole number on every adapter.
    cast({{ dbt.datediff('started_at', 'ended_at', 'minute') }} as bigint) as duration_minutes,
    -- 100.0: an integer division would drop the cents on PostgreSQL.
    cast(fare_cents / 100.0 as decimal(10, 2)) as fare,
    lower(ride_status) as ride_status,
    _loaded_at as loaded_at
from {{ source('bikeshare', 'rides') }}
