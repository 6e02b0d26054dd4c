SELECT * FROM api.zone_comfort(
    :building,
    (:m0::date + make_interval(months => :m))::date,
    (:m0::date + make_interval(months => :m_end))::date - 1
);
