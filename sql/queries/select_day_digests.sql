-- The md5 of each compressed day's arrays as the server sends them (array_send: the same bytes a
-- binary COPY of the arrays carries), to prove a table stores exactly what was sent.
SELECT sensor_id, day,
       md5(array_send(vals) || array_send(hour_n) || array_send(hour_min)
           || array_send(hour_max) || array_send(hour_sum))
FROM {days}
