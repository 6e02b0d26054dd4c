-- A critical health finding (or its recovery) reported by the health sensor.
INSERT INTO health_alerts (concern, status, message, details, alerted)
VALUES (%(concern)s, %(status)s, %(message)s, %(details)s::jsonb, %(alerted)s)
