SELECT * FROM api.latest_readings(:building);
