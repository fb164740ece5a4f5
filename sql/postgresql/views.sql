-- views.sql: the views users query (PostgreSQL). Each statement is one
-- CREATE VIEW; migrate installs it (as CREATE OR REPLACE VIEW) only when its
-- text changed since it was installed, so grants and user views stay.

-- Calls per window spec, window, crime type and disposition ('' when the
-- call has none), as window_counts was before 011_window_keys.sql: the
-- counts of window_totals with their dictionaries' text and the times as
-- timestamps. Rows inserted into or deleted from it go to window_totals
-- (the trigger window_counts_write of 011).
CREATE VIEW window_counts AS
SELECT s.window_spec AS window_spec,
       to_timestamp(w.window_start) AT TIME ZONE 'UTC' AS window_start,
       to_timestamp(w.window_end) AT TIME ZONE 'UTC' AS window_end,
       c.crime_type AS crime_type, d.disposition AS disposition,
       w.calls AS calls, w.late_calls AS late_calls
FROM window_totals AS w
JOIN window_spec_ids AS s ON s.id = w.spec_id
JOIN crime_type_ids AS c ON c.id = w.crime_type_id
JOIN disposition_ids AS d ON d.id = w.disposition_id;

-- Per topic: the highest event time seen, and the watermark: the smallest
-- of its partitions' (each partition's highest event time less the allowed
-- lateness), so a window is final only when every partition has passed it.
-- allowed_lateness is shown as a duration, as --allowed-lateness takes it
-- ('1h', '90m', '0'); kafka_offsets keeps it in seconds.
CREATE VIEW watermarks AS
SELECT topic, max_event_ts, watermark,
       CASE WHEN lateness = 0 THEN '0'
            WHEN lateness % 86400 = 0 THEN (lateness / 86400) || 'd'
            WHEN lateness % 3600 = 0 THEN (lateness / 3600) || 'h'
            WHEN lateness % 60 = 0 THEN (lateness / 60) || 'm'
            ELSE lateness || 's' END AS allowed_lateness,
       updated_at
FROM (SELECT topic, MAX(max_event_ts) AS max_event_ts,
             MIN(watermark) AS watermark, MAX(allowed_lateness) AS lateness,
             MAX(updated_at) AS updated_at
      FROM kafka_offsets
      WHERE watermark IS NOT NULL
      GROUP BY topic) AS w;

-- The watermark is_final and the rolling views compare with: the smallest
-- of the live topics' watermarks. A file replay read to its end
-- (replay_sources.at_end) adds nothing more, so it is not live: it keeps
-- only the windows of its own last stretch from being final (see
-- call_counts) and no longer holds the others back. With no live topic,
-- the latest finished replay's watermark.
CREATE VIEW final_watermark AS
SELECT COALESCE(
        (SELECT MIN(watermark) FROM watermarks
         WHERE topic NOT IN (SELECT topic FROM replay_sources
                             WHERE at_end)),
        (SELECT MAX(watermark) FROM watermarks)) AS watermark;

-- Calls per window spec, window and crime type. A window is final once the
-- watermark (final_watermark) has passed its end, unless a finished replay
-- has calls at or after its start and its own watermark has not passed
-- its end (a replay alone is final where the same stream through Kafka
-- would be), or its spec is no longer maintained (window_specs) and it
-- ends after final_until, the watermark when the ingest stopped counting
-- it. late_calls were counted into it after it was final.
CREATE VIEW call_counts AS
SELECT window_spec, window_start, window_end, crime_type,
       SUM(calls)::bigint AS calls, SUM(late_calls)::bigint AS late_calls,
       COALESCE(window_end <= (SELECT watermark FROM final_watermark) AND
                NOT EXISTS (SELECT 1 FROM watermarks AS m
                            JOIN replay_sources AS rs ON rs.topic = m.topic
                            WHERE rs.at_end
                              AND m.watermark < window_counts.window_end
                              AND m.max_event_ts >= window_counts.window_start) AND
                NOT EXISTS (SELECT 1 FROM window_specs AS s
                            WHERE s.window_spec = window_counts.window_spec
                              AND NOT s.maintained
                              AND (s.final_until IS NULL OR
                                   window_counts.window_end > s.final_until)),
                false) AS is_final
FROM window_counts
GROUP BY window_spec, window_start, window_end, crime_type;

-- The same split by disposition. A LEFT JOIN: a disposition with no radio
-- code (the real data has 'Not recorded') keeps its calls as 'Unknown'.
CREATE VIEW disposition_counts AS
SELECT w.window_spec, w.window_start, w.window_end, w.crime_type,
       NULLIF(w.disposition, '') AS disposition,
       COALESCE(r.description, 'Unknown') AS disposition_description,
       w.calls, w.late_calls,
       COALESCE(w.window_end <= (SELECT watermark FROM final_watermark) AND
                NOT EXISTS (SELECT 1 FROM watermarks AS m
                            JOIN replay_sources AS rs ON rs.topic = m.topic
                            WHERE rs.at_end
                              AND m.watermark < w.window_end
                              AND m.max_event_ts >= w.window_start) AND
                NOT EXISTS (SELECT 1 FROM window_specs AS s
                            WHERE s.window_spec = w.window_spec
                              AND NOT s.maintained
                              AND (s.final_until IS NULL OR
                                   w.window_end > s.final_until)),
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
