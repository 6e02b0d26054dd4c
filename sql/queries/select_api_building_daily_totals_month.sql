SELECT * FROM api.building_daily_totals(
    :building,
    (:m0::date + make_interval(months => :m))::date,
    (:m0::date + make_interval(months => :m_end))::date - 1
);
