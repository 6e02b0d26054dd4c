SELECT * FROM api.sensor_series(:sensor, to_timestamp(:t), to_timestamp(:t_end), 'hour');
