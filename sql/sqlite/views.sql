-- views.sql: the views users query (SQLite); recreated by every migrate.
DROP VIEW IF EXISTS call_counts;
DROP VIEW IF EXISTS disposition_counts;
DROP VIEW IF EXISTS watermarks;
DROP VIEW IF EXISTS pipeline_progress;
DROP VIEW IF EXISTS final_watermark;
DROP VIEW IF EXISTS window_counts;
DROP VIEW IF EXISTS calls;

-- One row per deduplicated call, as the table calls was before
-- 012_compact_calls.sql: the rows of call_rows with the crime_id as text
-- and the times as 'YYYY-MM-DD HH:MM:SS[.ffffff]'. Rows deleted here go
-- from call_rows.
CREATE VIEW calls AS
SELECT COALESCE(crime_id, CAST(id AS TEXT)) AS crime_id,
       original_crime_type_name, report_date, call_date, offense_date,
       call_time, call_date_time, disposition, address, city, state,
       agency_id, address_type, common_location,
       datetime(call_sec, 'unixepoch') ||
               CASE WHEN call_usec THEN printf('.%06d', call_usec) ELSE ''
               END AS call_ts,
       kafka_topic, kafka_partition, kafka_offset,
       datetime(ingested_at, 'unixepoch') AS ingested_at,
       datetime(mark_sec, 'unixepoch') ||
               CASE WHEN mark_usec THEN printf('.%06d', mark_usec) ELSE ''
               END AS watermark_at_count,
       CASE WHEN late_drop THEN 'drop' ELSE 'count' END AS late_policy
FROM call_rows;

CREATE TRIGGER calls_delete INSTEAD OF DELETE ON calls
BEGIN
        DELETE FROM call_rows
        WHERE id = COALESCE((SELECT id FROM call_rows
                             WHERE crime_id = OLD.crime_id),
                            CAST(OLD.crime_id AS INTEGER));
END;

-- Calls per window spec, window, crime type and disposition ('' when the
-- call has none), as window_counts was before 010_window_keys.sql: the
-- counts of window_totals with their dictionaries' text and the times as
-- 'YYYY-MM-DD HH:MM:SS'. Rows inserted or deleted here go to
-- window_totals, so scripts that wrote the old table keep working.
CREATE VIEW window_counts AS
SELECT s.window_spec AS window_spec,
       datetime(w.window_start, 'unixepoch') AS window_start,
       datetime(w.window_end, 'unixepoch') AS window_end,
       c.crime_type AS crime_type, d.disposition AS disposition,
       w.calls AS calls, w.late_calls AS late_calls
FROM window_totals AS w
JOIN window_spec_ids AS s ON s.id = w.spec_id
JOIN crime_type_ids AS c ON c.id = w.crime_type_id
JOIN disposition_ids AS d ON d.id = w.disposition_id;

CREATE TRIGGER window_counts_insert INSTEAD OF INSERT ON window_counts
BEGIN
        INSERT INTO window_spec_ids (window_spec) VALUES (NEW.window_spec)
        ON CONFLICT DO NOTHING;
        INSERT INTO crime_type_ids (crime_type) VALUES (NEW.crime_type)
        ON CONFLICT DO NOTHING;
        INSERT INTO disposition_ids (disposition) VALUES (NEW.disposition)
        ON CONFLICT DO NOTHING;
        INSERT INTO window_totals (spec_id, window_start, crime_type_id,
                                   disposition_id, window_end, calls,
                                   late_calls)
        VALUES ((SELECT id FROM window_spec_ids
                 WHERE window_spec = NEW.window_spec),
                CAST(strftime('%s', NEW.window_start) AS INTEGER),
                (SELECT id FROM crime_type_ids
                 WHERE crime_type = NEW.crime_type),
                (SELECT id FROM disposition_ids
                 WHERE disposition = NEW.disposition),
                CAST(strftime('%s', NEW.window_end) AS INTEGER), NEW.calls,
                COALESCE(NEW.late_calls, 0));
END;

CREATE TRIGGER window_counts_delete INSTEAD OF DELETE ON window_counts
BEGIN
        DELETE FROM window_totals
        WHERE spec_id = (SELECT id FROM window_spec_ids
                         WHERE window_spec = OLD.window_spec)
          AND window_start = CAST(strftime('%s', OLD.window_start) AS INTEGER)
          AND crime_type_id = (SELECT id FROM crime_type_ids
                               WHERE crime_type = OLD.crime_type)
          AND disposition_id = (SELECT id FROM disposition_ids
                                WHERE disposition = OLD.disposition);
END;

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
                             WHERE at_end = 1)),
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
       SUM(calls) AS calls, SUM(late_calls) AS late_calls,
       COALESCE(window_end <= (SELECT watermark FROM final_watermark) AND
                NOT EXISTS (SELECT 1 FROM watermarks AS m
                            JOIN replay_sources AS rs ON rs.topic = m.topic
                            WHERE rs.at_end = 1
                              AND m.watermark < window_counts.window_end
                              AND m.max_event_ts >= window_counts.window_start) AND
                NOT EXISTS (SELECT 1 FROM window_specs AS s
                            WHERE s.window_spec = window_counts.window_spec
                              AND NOT s.maintained
                              AND (s.final_until IS NULL OR
                                   window_counts.window_end > s.final_until)),
                0) AS is_final
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
                            WHERE rs.at_end = 1
                              AND m.watermark < w.window_end
                              AND m.max_event_ts >= w.window_start) AND
                NOT EXISTS (SELECT 1 FROM window_specs AS s
                            WHERE s.window_spec = w.window_spec
                              AND NOT s.maintained
                              AND (s.final_until IS NULL OR
                                   w.window_end > s.final_until)),
                0) AS is_final
FROM window_counts AS w
LEFT JOIN radio_codes AS r ON r.disposition_code = w.disposition;

-- Per topic and partition: where the ingest stands and what it has done,
-- for freshness dashboards in plain SQL.
CREATE VIEW pipeline_progress AS
SELECT topic, kafka_partition, next_offset AS stored_offset, high_watermark,
       MAX(high_watermark - next_offset, 0) AS lag, max_event_ts, watermark,
       updated_at AS last_batch_at, calls_total AS calls,
       duplicates_total AS duplicates, rejected_total AS rejected,
       late_total AS late,
       -- when high_watermark (and so lag) was last read from Kafka: by a
       -- batch, or every few seconds while the ingest is idle
       COALESCE(MAX(updated_at, high_watermark_at), updated_at) AS high_watermark_at,
       -- offsets deleted by Kafka's retention before they were read
       -- (kafka_gaps has each gap)
       (SELECT COUNT(*) FROM kafka_gaps AS g
        WHERE g.topic = o.topic AND g.kafka_partition = o.kafka_partition)
               AS retention_gaps,
       (SELECT COALESCE(SUM(g.last_offset - g.first_offset + 1), 0)
        FROM kafka_gaps AS g
        WHERE g.topic = o.topic AND g.kafka_partition = o.kafka_partition)
               AS lost_offsets
FROM kafka_offsets AS o;
