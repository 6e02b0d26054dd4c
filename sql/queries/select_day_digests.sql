-- The md5 of each compressed day's vals as the server sends them (array_send: the same bytes a
-- binary COPY of the array carries), to prove a table stores exactly what was sent.
SELECT sensor_id, day, md5(array_send(vals)) FROM {days}
