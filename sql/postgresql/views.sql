-- views.sql: the views users query (PostgreSQL); recreated by every migrate.
DROP VIEW IF EXISTS call_counts CASCADE;
DROP VIEW IF EXISTS disposition_counts CASCADE;
DROP VIEW IF EXISTS watermarks CASCADE;
DROP VIEW IF EXISTS pipeline_progress CASCADE;

-- Per topic: the highest event time seen, and the watermark: the smallest
-- of its partitions' (each partition's highest event time less the allowed
-- lateness), so a window is final only when every partition has passed it.
CREATE VIEW watermarks AS
SELECT topic, MAX(max_event_ts) AS max_event_ts, MIN(watermark) AS watermark,
       MAX(allowed_lateness) AS allowed_lateness, MAX(updated_at) AS updated_at
FROM kafka_offsets
WHERE watermark IS NOT NULL
GROUP BY topic;

-- Calls per window spec, window and crime type. A window is final once the
-- watermark (the smallest of all topics') has passed its end; late_calls
-- were counted into it after that.
CREATE VIEW call_counts AS
SELECT window_spec, window_start, window_end, crime_type,
       SUM(calls)::bigint AS calls, SUM(late_calls)::bigint AS late_calls,
       COALESCE(window_end <= (SELECT MIN(watermark) FROM watermarks), false)
               AS is_final
FROM window_counts
GROUP BY window_spec, window_start, window_end, crime_type;

-- The same split by disposition. A LEFT JOIN: a disposition with no radio
-- code (the real data has 'Not recorded') keeps its calls as 'Unknown'.
CREATE VIEW disposition_counts AS
SELECT w.window_spec, w.window_start, w.window_end, w.crime_type,
       NULLIF(w.disposition, '') AS disposition,
       COALESCE(r.description, 'Unknown') AS disposition_description,
       w.calls, w.late_calls,
       COALESCE(w.window_end <= (SELECT MIN(watermark) FROM watermarks),
                false) AS is_final
FROM window_counts AS w
LEFT JOIN radio_codes AS r ON r.disposition_code = w.disposition;

-- Per topic and partition: where the ingest stands and what it has done,
-- for freshness dashboards in plain SQL.
CREATE VIEW pipeline_progress AS
SELECT topic, kafka_partition, next_offset AS stored_offset, high_watermark,
       GREATEST(high_watermark - next_offset, 0) AS lag, max_event_ts, watermark,
       updated_at AS last_batch_at, calls_total AS calls,
       duplicates_total AS duplicates, rejected_total AS rejected,
       late_total AS late,
       -- when high_watermark (and so lag) was last read from Kafka: by a
       -- batch, or every few seconds while the ingest is idle
       GREATEST(updated_at, high_watermark_at) AS high_watermark_at,
       -- offsets deleted by Kafka's retention before they were read
       -- (kafka_gaps has each gap)
       (SELECT COUNT(*) FROM kafka_gaps AS g
        WHERE g.topic = o.topic AND g.kafka_partition = o.kafka_partition)
               AS retention_gaps,
       (SELECT COALESCE(SUM(g.last_offset - g.first_offset + 1), 0)::bigint
        FROM kafka_gaps AS g
        WHERE g.topic = o.topic AND g.kafka_partition = o.kafka_partition)
               AS lost_offsets
FROM kafka_offsets AS o;
