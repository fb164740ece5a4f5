-- views.sql: the views users query (PostgreSQL); recreated by every migrate.
DROP VIEW IF EXISTS call_counts;
DROP VIEW IF EXISTS disposition_counts;

-- Calls per window spec, window and crime type.
CREATE VIEW call_counts AS
SELECT window_spec, window_start, window_end, crime_type,
       SUM(calls)::bigint AS calls
FROM window_counts
GROUP BY window_spec, window_start, window_end, crime_type;

-- The same split by disposition. A LEFT JOIN: a disposition with no radio
-- code (the real data has 'Not recorded') keeps its calls as 'Unknown'.
CREATE VIEW disposition_counts AS
SELECT w.window_spec, w.window_start, w.window_end, w.crime_type,
       NULLIF(w.disposition, '') AS disposition,
       COALESCE(r.description, 'Unknown') AS disposition_description,
       w.calls
FROM window_counts AS w
LEFT JOIN radio_codes AS r ON r.disposition_code = w.disposition;
