-- Every completed ride in fct_rides is counted exactly once in mart_station_daily.
-- Returns a row (= failure) when the totals disagree.
with fact as (
    select count(*) as rides, coalesce(sum(fare), 0) as revenue
    from {{ ref('fct_rides') }}
    where ride_status = 'completed'
),

mart as (
    select coalesce(sum(rides), 0) as rides, coalesce(sum(revenue), 0) as revenue
    from {{ ref('mart_station_daily') }}
)

select fact.rides as fact_rides, mart.rides as mart_rides,
       fact.revenue as fact_revenue, mart.revenue as mart_revenue
from fact cross join mart
where fact.rides <> mart.rides or fact.revenue <> mart.revenue
