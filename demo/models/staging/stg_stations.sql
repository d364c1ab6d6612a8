select
    station_id,
    station_name,
    district,
    dock_count,
    cast(opened_on as date) as opened_on
from {{ ref('raw_stations') }}
