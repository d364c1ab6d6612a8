select
    bike_id,
    frame_code,
    lower(bike_type) as bike_type,
    home_station_id,
    lower(bike_status) as bike_status,
    cast(commissioned_on as date) as commissioned_on
from {{ ref('raw_bikes') }}
