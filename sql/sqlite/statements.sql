-- statements.sql: the statements the SQLite sink prepares, each under a
-- "-- name:" line. Values are always bound, never spliced in.

-- name: begin
BEGIN IMMEDIATE

-- name: commit
COMMIT

-- name: rollback
ROLLBACK

-- name: insert_call
-- First valid copy wins: a stored crime_id is left alone, and the sink
-- learns from sqlite3_changes() whether this copy was new. ?24 is the
-- crime_id as a number when it is one (012_compact_calls.sql); any other
-- gets the next negative id, and its text in crime_id. Times are seconds
-- and microseconds.
INSERT INTO call_rows (id, crime_id, original_crime_type_name, report_date,
                       call_date, offense_date, call_time, call_date_time,
                       disposition, address, city, state, agency_id,
                       address_type, common_location, call_sec, call_usec,
                       kafka_topic, kafka_partition, kafka_offset,
                       ingested_at, mark_sec, mark_usec, late_drop)
VALUES (COALESCE(?24, (SELECT MIN(COALESCE(MIN(id), 0), 0) - 1
                       FROM call_rows)),
        CASE WHEN ?24 IS NULL THEN ?1 END, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
        ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)
ON CONFLICT DO NOTHING

-- name: max_call_id
-- The largest numeric crime_id stored: a larger one is new.
SELECT MAX(id) FROM call_rows

-- name: insert_numeric_calls
-- insert_call for calls known to be new (numeric crime_ids above
-- max_call_id), the id bound directly: the sink repeats the VALUES row to
-- write many calls in one step, so its parameters are plain ?, in column
-- order.
INSERT INTO call_rows (id, original_crime_type_name, report_date, call_date,
                       offense_date, call_time, call_date_time, disposition,
                       address, city, state, agency_id, address_type,
                       common_location, call_sec, call_usec, kafka_topic,
                       kafka_partition, kafka_offset, ingested_at, mark_sec,
                       mark_usec, late_drop)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING

-- name: stored_call
-- With --on-duplicate update: the stored copy, to compare and to move its
-- counts; by the numeric crime_id.
SELECT COALESCE(crime_id, CAST(id AS TEXT)), original_crime_type_name,
       report_date, call_date, offense_date, call_time, call_date_time,
       disposition, address, city, state, agency_id, address_type,
       common_location, call_sec, call_usec, mark_sec, mark_usec, late_drop,
       id
FROM call_rows WHERE id = ?1

-- name: stored_text_call
-- The same by a crime_id that is not a number.
SELECT crime_id, original_crime_type_name, report_date, call_date,
       offense_date, call_time, call_date_time, disposition, address, city,
       state, agency_id, address_type, common_location, call_sec, call_usec,
       mark_sec, mark_usec, late_drop, id
FROM call_rows WHERE crime_id = ?1

-- name: replace_call
-- ?25: the stored row's id.
UPDATE call_rows
SET original_crime_type_name = ?2, report_date = ?3, call_date = ?4,
    offense_date = ?5, call_time = ?6, call_date_time = ?7, disposition = ?8,
    address = ?9, city = ?10, state = ?11, agency_id = ?12,
    address_type = ?13, common_location = ?14, call_sec = ?15,
    call_usec = ?16, kafka_topic = ?17, kafka_partition = ?18,
    kafka_offset = ?19, ingested_at = ?20, mark_sec = ?21, mark_usec = ?22,
    late_drop = ?23
WHERE id = ?25

-- name: forget_late_records
DELETE FROM late_records WHERE crime_id = ?1

-- name: drop_empty_window
-- A window count that moves to zero goes: views list windows with calls.
DELETE FROM window_totals
WHERE spec_id = ?1 AND window_start = ?2 AND crime_type_id = ?3
      AND disposition_id = ?4 AND calls <= 0

-- name: add_window_count
-- Keys are dictionary ids and seconds since 1970 (010_window_keys.sql).
-- The sink also prepares it with the VALUES row repeated, to write many
-- rows in one step: so its parameters are plain ?, in column order.
INSERT INTO window_totals (spec_id, window_start, crime_type_id,
                           disposition_id, window_end, calls, late_calls)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (spec_id, window_start, crime_type_id, disposition_id)
DO UPDATE SET calls = calls + excluded.calls,
              late_calls = late_calls + excluded.late_calls

-- The dictionaries' ids: looked up once per text and connection, added
-- when missing (ids are never reused, so they can be kept in memory).
-- name: spec_id
SELECT id FROM window_spec_ids WHERE window_spec = ?1

-- name: add_spec_id
INSERT INTO window_spec_ids (window_spec) VALUES (?1) ON CONFLICT DO NOTHING

-- name: crime_type_id
SELECT id FROM crime_type_ids WHERE crime_type = ?1

-- name: add_crime_type_id
INSERT INTO crime_type_ids (crime_type) VALUES (?1) ON CONFLICT DO NOTHING

-- name: disposition_id
SELECT id FROM disposition_ids WHERE disposition = ?1

-- name: add_disposition_id
INSERT INTO disposition_ids (disposition) VALUES (?1) ON CONFLICT DO NOTHING

-- name: insert_reject
INSERT INTO rejected_records (kafka_topic, kafka_partition, kafka_offset,
                              reason, payload, payload_size, rejected_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING

-- name: store_offset
-- Never backwards: a batch that arrives late cannot rewind a partition. The
-- text forms of times order like the times; MAX() is NULL if either is.
INSERT INTO kafka_offsets (topic, kafka_partition, next_offset, updated_at,
                           max_event_ts, allowed_lateness, watermark,
                           high_watermark, calls_total, duplicates_total,
                           rejected_total, late_total)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
ON CONFLICT (topic, kafka_partition) DO UPDATE
SET next_offset = excluded.next_offset, updated_at = excluded.updated_at,
    high_watermark = COALESCE(excluded.high_watermark, high_watermark),
    calls_total = calls_total + excluded.calls_total,
    duplicates_total = duplicates_total + excluded.duplicates_total,
    rejected_total = rejected_total + excluded.rejected_total,
    late_total = late_total + excluded.late_total,
    max_event_ts = COALESCE(MAX(max_event_ts, excluded.max_event_ts),
                            max_event_ts, excluded.max_event_ts),
    allowed_lateness = excluded.allowed_lateness,
    watermark = COALESCE(MAX(watermark, excluded.watermark), watermark,
                         excluded.watermark)
WHERE excluded.next_offset > kafka_offsets.next_offset

-- name: insert_late_record
INSERT INTO late_records (crime_id, window_spec, call_ts, watermark,
                          windows_dropped, kafka_topic, kafka_partition,
                          kafka_offset, recorded_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (crime_id, window_spec) DO NOTHING

-- name: retain_calls
-- --retention: at most ?2 rows a time, so the ingest is never held up long.
-- The horizon is the smallest watermark less ?1 seconds, in whole seconds
-- (as call_ts < the text horizon was).
DELETE FROM call_rows WHERE rid IN (
        SELECT rid FROM call_rows
        WHERE call_sec < (SELECT CAST(strftime('%s', datetime(
                                        MIN(watermark), '-' || ?1 ||
                                        ' seconds')) AS INTEGER)
                          FROM kafka_offsets)
        LIMIT ?2)

-- name: retain_windows
-- The horizon in whole seconds, as the text window_end compared with it.
-- A window starts before it ends: the key's first column limits the scan
-- to the old windows (012_compact_calls.sql).
DELETE FROM window_totals
WHERE (window_start, spec_id, crime_type_id, disposition_id) IN (
        SELECT window_start, spec_id, crime_type_id, disposition_id
        FROM window_totals
        WHERE window_start < (SELECT CAST(strftime('%s', datetime(
                                        MIN(watermark), '-' || ?1 ||
                                        ' seconds')) AS INTEGER)
                              FROM kafka_offsets)
          AND window_end <= (SELECT CAST(strftime('%s', datetime(
                                        MIN(watermark), '-' || ?1 ||
                                        ' seconds')) AS INTEGER)
                             FROM kafka_offsets)
        LIMIT ?2)

-- name: retain_late
DELETE FROM late_records WHERE (crime_id, window_spec) IN (
        SELECT crime_id, window_spec FROM late_records
        WHERE call_ts < (SELECT datetime(MIN(watermark), '-' || ?1 ||
                                         ' seconds') FROM kafka_offsets)
        LIMIT ?2)

-- name: retain_rejects
-- Rejects have no event time: they go by when they were rejected.
DELETE FROM rejected_records WHERE id IN (
        SELECT id FROM rejected_records
        WHERE rejected_at < datetime('now', '-' || ?1 || ' seconds')
        LIMIT ?2)

-- name: scan_calls
-- rebuild: the calls whose windows it recomputes, ?1 <= call_sec < ?2.
SELECT COALESCE(crime_id, CAST(id AS TEXT)), original_crime_type_name,
       disposition, call_sec, call_usec, mark_sec, mark_usec, late_drop,
       kafka_topic, kafka_partition, kafka_offset
FROM call_rows WHERE call_sec >= ?1 AND call_sec < ?2

-- name: clear_windows
-- ?2 and ?3 in seconds since 1970.
DELETE FROM window_totals
WHERE spec_id = (SELECT id FROM window_spec_ids WHERE window_spec = ?1)
      AND window_start >= ?2 AND window_start < ?3

-- name: clear_late
DELETE FROM late_records
WHERE window_spec = ?1 AND call_ts >= ?2 AND call_ts < ?3

-- name: insert_stored_late
INSERT INTO late_records (crime_id, window_spec, call_ts, watermark,
                          windows_dropped, kafka_topic, kafka_partition,
                          kafka_offset, recorded_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, strftime('%Y-%m-%d %H:%M:%S', 'now'))
ON CONFLICT (crime_id, window_spec) DO UPDATE
SET call_ts = excluded.call_ts, watermark = excluded.watermark,
    windows_dropped = excluded.windows_dropped

-- name: window_specs
SELECT window_spec FROM window_spec_ids AS s
WHERE EXISTS (SELECT 1 FROM window_totals WHERE spec_id = s.id)
ORDER BY 1

-- name: load_offset
SELECT next_offset, max_event_ts, watermark FROM kafka_offsets
WHERE topic = ?1 AND kafka_partition = ?2

-- name: migration_checksum
SELECT checksum FROM schema_migrations WHERE version = ?1

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum, applied_at)
VALUES (?1, ?2, ?3, strftime('%Y-%m-%d %H:%M:%S', 'now'))

-- name: latest_migration
SELECT COALESCE(MAX(version), 0) FROM schema_migrations

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        checksum   TEXT NOT NULL,
        applied_at TEXT NOT NULL
)

-- Replay sources, window specs and `callstream offsets` (topics.c), run
-- through the sink's query(); every value bound as text.

-- name: replay_source
SELECT path, fingerprint, fingerprint_bytes, at_end FROM replay_sources
WHERE topic = ?1

-- name: topic_offsets_count
SELECT COUNT(*) FROM kafka_offsets WHERE topic = ?1

-- name: store_replay_source
-- The fingerprint grows with the file up to 64 KiB; a replay that changed
-- nothing leaves the row alone.
INSERT INTO replay_sources (topic, path, fingerprint, fingerprint_bytes,
                            at_end, updated_at)
VALUES (?1, ?2, ?3, CAST(?4 AS INTEGER), CAST(?5 AS INTEGER),
        strftime('%Y-%m-%d %H:%M:%S', 'now'))
ON CONFLICT (topic) DO UPDATE
SET path = excluded.path, fingerprint = excluded.fingerprint,
    fingerprint_bytes = excluded.fingerprint_bytes, at_end = excluded.at_end,
    updated_at = excluded.updated_at
WHERE (replay_sources.path, replay_sources.fingerprint,
       replay_sources.fingerprint_bytes, replay_sources.at_end) IS NOT
      (excluded.path, excluded.fingerprint, excluded.fingerprint_bytes,
       excluded.at_end)

-- name: window_spec_rows
SELECT window_spec, maintained FROM window_specs ORDER BY 1

-- name: calls_exist
SELECT EXISTS (SELECT 1 FROM call_rows)

-- name: spec_has_counts
SELECT EXISTS (SELECT 1 FROM window_totals
               WHERE spec_id = (SELECT id FROM window_spec_ids
                                WHERE window_spec = ?1))

-- name: spec_maintain
-- A rerun with the same specs changes nothing.
INSERT INTO window_specs (window_spec, maintained, final_until, updated_at)
VALUES (?1, 1, NULL, strftime('%Y-%m-%d %H:%M:%S', 'now'))
ON CONFLICT (window_spec) DO UPDATE
SET updated_at = excluded.updated_at, maintained = 1,
    final_until = NULL
WHERE NOT window_specs.maintained

-- name: spec_retire
-- Its windows stay final up to the watermark of now, never past it.
UPDATE window_specs
SET maintained = 0, final_until = (SELECT watermark FROM final_watermark),
    updated_at = strftime('%Y-%m-%d %H:%M:%S', 'now')
WHERE window_spec = ?1 AND maintained = 1

-- name: offsets_list
SELECT o.topic, o.kafka_partition, o.next_offset, o.watermark,
       MAX(o.high_watermark - o.next_offset, 0), r.path, r.fingerprint,
       r.fingerprint_bytes, r.at_end, o.updated_at
FROM kafka_offsets AS o
LEFT JOIN replay_sources AS r ON r.topic = o.topic
ORDER BY o.topic, o.kafka_partition

-- name: offsets_at_time
-- offsets reset --to-timestamp: per partition, the first offset holding a
-- stored call at or after ?3 (NULL when there is none), a whole second.
SELECT o.kafka_partition,
       (SELECT MIN(c.kafka_offset) FROM call_rows AS c
        WHERE c.kafka_topic = o.topic
          AND c.kafka_partition = o.kafka_partition
          AND c.call_sec >= CAST(strftime('%s', ?3) AS INTEGER))
FROM kafka_offsets AS o
WHERE o.topic = ?1 AND (?2 IS NULL OR o.kafka_partition = CAST(?2 AS INTEGER))
ORDER BY 1

-- name: offsets_reset
-- Backwards too: unlike store_offset, this is the user's explicit choice.
UPDATE kafka_offsets
SET next_offset = CAST(?3 AS INTEGER),
    updated_at = strftime('%Y-%m-%d %H:%M:%S', 'now')
WHERE topic = ?1 AND (?2 IS NULL OR kafka_partition = CAST(?2 AS INTEGER))

-- name: offsets_forget
DELETE FROM kafka_offsets WHERE topic = ?1

-- name: replay_source_forget
DELETE FROM replay_sources WHERE topic = ?1

-- name: write_gap
-- Offsets lost to retention, in the batch that moves past them; a replay
-- of the same batch finds the row there.
INSERT INTO kafka_gaps (topic, kafka_partition, first_offset, last_offset,
                        detected_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (topic, kafka_partition, first_offset) DO NOTHING

-- name: store_high_watermark
-- While idle: a partition's end as just read from Kafka.
UPDATE kafka_offsets
SET high_watermark = ?3,
    high_watermark_at = strftime('%Y-%m-%d %H:%M:%S', 'now')
WHERE topic = ?1 AND kafka_partition = ?2
