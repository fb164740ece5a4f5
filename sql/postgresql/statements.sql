-- statements.sql: the statements the PostgreSQL sink runs, each under a
-- "-- name:" line. Values are bound ($1...) or sent with COPY, never spliced.

-- name: stage_tables
-- Per connection: a batch is copied into these, then merged set-based.
CREATE TEMP TABLE IF NOT EXISTS cs_stage_calls (
        idx integer, crime_id text, original_crime_type_name text,
        report_date text, call_date text, offense_date text, call_time text,
        call_date_time text, disposition text, address text, city text,
        state text, agency_id text, address_type text, common_location text,
        call_ts timestamp, kafka_partition integer, kafka_offset bigint,
        watermark_at_count timestamp
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS cs_stage_windows (
        window_spec text, window_start timestamp, window_end timestamp,
        crime_type text, disposition text, calls bigint, late_calls bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS cs_stage_late (
        crime_id text, window_spec text, call_ts timestamp,
        watermark timestamp, windows_dropped integer,
        kafka_partition integer, kafka_offset bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS cs_stage_rejects (
        kafka_partition integer, kafka_offset bigint, reason text,
        payload bytea, payload_size integer
) ON COMMIT DELETE ROWS

-- name: copy_calls
COPY cs_stage_calls FROM STDIN

-- name: insert_calls
-- First valid copy wins. Returns the batch index of each call that was new;
-- rows go in key order so concurrent ingests lock in the same order.
WITH ins AS (
        INSERT INTO calls (crime_id, original_crime_type_name, report_date,
                           call_date, offense_date, call_time, call_date_time,
                           disposition, address, city, state, agency_id,
                           address_type, common_location, call_ts,
                           kafka_topic, kafka_partition, kafka_offset,
                           ingested_at, watermark_at_count, late_policy)
        SELECT crime_id, original_crime_type_name, report_date, call_date,
               offense_date, call_time, call_date_time, disposition, address,
               city, state, agency_id, address_type, common_location, call_ts,
               $1, kafka_partition, kafka_offset,
               now() AT TIME ZONE 'UTC', watermark_at_count, $2
        FROM cs_stage_calls ORDER BY crime_id
        ON CONFLICT (crime_id) DO NOTHING
        RETURNING crime_id
)
SELECT s.idx FROM cs_stage_calls AS s JOIN ins USING (crime_id)

-- name: replace_calls
-- With --on-duplicate update: replaces each stored call whose fields differ
-- from its staged copy, forgets its late_records, and returns the batch
-- index of each with what it was, so its counts can move.
WITH old AS (
        SELECT c.crime_id, c.original_crime_type_name, c.disposition,
               c.call_ts, c.watermark_at_count, c.late_policy
        FROM calls AS c JOIN cs_stage_calls AS s USING (crime_id)
        WHERE (c.original_crime_type_name, c.report_date, c.call_date, c.offense_date, c.call_time, c.call_date_time, c.disposition, c.address, c.city, c.state, c.agency_id, c.address_type, c.common_location)
              IS DISTINCT FROM
              (s.original_crime_type_name, s.report_date, s.call_date, s.offense_date, s.call_time, s.call_date_time, s.disposition, s.address, s.city, s.state, s.agency_id, s.address_type, s.common_location)
        ORDER BY c.crime_id
        FOR UPDATE OF c
), replaced AS (
        UPDATE calls AS c
        SET original_crime_type_name = s.original_crime_type_name,
            report_date = s.report_date,
            call_date = s.call_date,
            offense_date = s.offense_date,
            call_time = s.call_time,
            call_date_time = s.call_date_time,
            disposition = s.disposition,
            address = s.address,
            city = s.city,
            state = s.state,
            agency_id = s.agency_id,
            address_type = s.address_type,
            common_location = s.common_location,
            call_ts = s.call_ts, kafka_topic = $1,
            kafka_partition = s.kafka_partition,
            kafka_offset = s.kafka_offset,
            ingested_at = now() AT TIME ZONE 'UTC',
            watermark_at_count = s.watermark_at_count, late_policy = $2
        FROM cs_stage_calls AS s, old
        WHERE c.crime_id = s.crime_id AND old.crime_id = c.crime_id
), forgotten AS (
        DELETE FROM late_records AS l USING old
        WHERE l.crime_id = old.crime_id
)
SELECT s.idx, old.original_crime_type_name, old.disposition, old.call_ts,
       old.watermark_at_count, old.late_policy
FROM old JOIN cs_stage_calls AS s USING (crime_id)

-- name: drop_empty_windows
-- A window count that moved to zero goes: views list windows with calls.
DELETE FROM window_counts AS w USING cs_stage_windows AS s
WHERE w.window_spec = s.window_spec AND w.window_start = s.window_start
      AND w.crime_type = s.crime_type AND w.disposition = s.disposition
      AND w.calls <= 0

-- name: copy_windows
COPY cs_stage_windows FROM STDIN

-- name: add_window_counts
INSERT INTO window_counts (window_spec, window_start, window_end, crime_type,
                           disposition, calls, late_calls)
SELECT window_spec, window_start, window_end, crime_type, disposition, calls,
       late_calls
FROM cs_stage_windows
ORDER BY window_spec, window_start, crime_type, disposition
ON CONFLICT (window_spec, window_start, crime_type, disposition)
DO UPDATE SET calls = window_counts.calls + excluded.calls,
              late_calls = window_counts.late_calls + excluded.late_calls

-- name: copy_rejects
COPY cs_stage_rejects FROM STDIN

-- name: insert_rejects
INSERT INTO rejected_records (kafka_topic, kafka_partition, kafka_offset,
                              reason, payload, payload_size, rejected_at)
SELECT $1, kafka_partition, kafka_offset, reason, payload, payload_size,
       now() AT TIME ZONE 'UTC'
FROM cs_stage_rejects ORDER BY kafka_partition, kafka_offset
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING

-- name: copy_late
COPY cs_stage_late FROM STDIN

-- name: insert_late_records
INSERT INTO late_records (crime_id, window_spec, call_ts, watermark,
                          windows_dropped, kafka_topic, kafka_partition,
                          kafka_offset, recorded_at)
SELECT crime_id, window_spec, call_ts, watermark, windows_dropped, $1,
       kafka_partition, kafka_offset, now() AT TIME ZONE 'UTC'
FROM cs_stage_late ORDER BY crime_id, window_spec
ON CONFLICT (crime_id, window_spec) DO NOTHING

-- name: store_offsets
-- Never backwards: a batch that arrives late cannot rewind a partition.
INSERT INTO kafka_offsets (topic, kafka_partition, next_offset, updated_at,
                           max_event_ts, allowed_lateness, watermark,
                           high_watermark, calls_total, duplicates_total,
                           rejected_total, late_total)
SELECT $1, p, o, now() AT TIME ZONE 'UTC', m, $6, w, h, c, d, r, l
FROM unnest($2::integer[], $3::bigint[], $4::timestamp[], $5::timestamp[],
            $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
            $11::bigint[])
     AS t (p, o, m, w, h, c, d, r, l)
ORDER BY p
ON CONFLICT (topic, kafka_partition) DO UPDATE
SET next_offset = excluded.next_offset, updated_at = excluded.updated_at,
    high_watermark = COALESCE(excluded.high_watermark,
                              kafka_offsets.high_watermark),
    calls_total = kafka_offsets.calls_total + excluded.calls_total,
    duplicates_total = kafka_offsets.duplicates_total +
                       excluded.duplicates_total,
    rejected_total = kafka_offsets.rejected_total + excluded.rejected_total,
    late_total = kafka_offsets.late_total + excluded.late_total,
    max_event_ts = GREATEST(kafka_offsets.max_event_ts, excluded.max_event_ts),
    allowed_lateness = excluded.allowed_lateness,
    watermark = GREATEST(kafka_offsets.watermark, excluded.watermark)
WHERE excluded.next_offset > kafka_offsets.next_offset

-- name: retain_calls
-- --retention: at most $2 rows a time, so the ingest is never held up long.
-- The horizon is the smallest watermark less $1 seconds.
DELETE FROM calls WHERE ctid IN (
        SELECT ctid FROM calls
        WHERE call_ts < (SELECT MIN(watermark) FROM kafka_offsets) -
                        make_interval(secs => $1)
        LIMIT $2)

-- name: retain_windows
DELETE FROM window_counts WHERE ctid IN (
        SELECT ctid FROM window_counts
        WHERE window_end <= (SELECT MIN(watermark) FROM kafka_offsets) -
                            make_interval(secs => $1)
        LIMIT $2)

-- name: retain_late
DELETE FROM late_records WHERE ctid IN (
        SELECT ctid FROM late_records
        WHERE call_ts < (SELECT MIN(watermark) FROM kafka_offsets) -
                        make_interval(secs => $1)
        LIMIT $2)

-- name: retain_rejects
-- Rejects have no event time: they go by when they were rejected.
DELETE FROM rejected_records WHERE ctid IN (
        SELECT ctid FROM rejected_records
        WHERE rejected_at < now() AT TIME ZONE 'UTC' -
                            make_interval(secs => $1)
        LIMIT $2)

-- name: rebuild_begin
-- rebuild: ingest's window and late writes wait until it commits.
BEGIN;
LOCK TABLE window_counts, late_records IN SHARE ROW EXCLUSIVE MODE

-- name: scan_calls
-- rebuild: the calls whose windows it recomputes.
SELECT crime_id, original_crime_type_name, disposition, call_ts,
       watermark_at_count, late_policy, kafka_topic, kafka_partition,
       kafka_offset
FROM calls WHERE call_ts >= $1 AND call_ts < $2

-- name: clear_windows
DELETE FROM window_counts
WHERE window_spec = $1 AND window_start >= $2 AND window_start < $3

-- name: clear_late
DELETE FROM late_records
WHERE window_spec = $1 AND call_ts >= $2 AND call_ts < $3

-- name: insert_stored_late
INSERT INTO late_records (crime_id, window_spec, call_ts, watermark,
                          windows_dropped, kafka_topic, kafka_partition,
                          kafka_offset, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() AT TIME ZONE 'UTC')
ON CONFLICT (crime_id, window_spec) DO UPDATE
SET call_ts = excluded.call_ts, watermark = excluded.watermark,
    windows_dropped = excluded.windows_dropped

-- name: window_specs
SELECT DISTINCT window_spec FROM window_counts ORDER BY 1

-- name: load_offsets
SELECT kafka_partition, next_offset, max_event_ts, watermark
FROM kafka_offsets
WHERE topic = $1 AND kafka_partition = ANY ($2::integer[])

-- name: lock_migrations
-- One migrating process at a time; the lock ends with the transaction.
SELECT pg_advisory_xact_lock(hashtext('callstream migrate'))

-- name: migration_checksum
SELECT checksum FROM schema_migrations WHERE version = $1

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum, applied_at)
VALUES ($1, $2, $3, now() AT TIME ZONE 'UTC')

-- name: latest_migration
SELECT COALESCE(MAX(version), 0) FROM schema_migrations

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        checksum   text NOT NULL,
        applied_at timestamp NOT NULL
)

-- name: write_gap
-- Offsets lost to retention, in the batch that moves past them; a replay
-- of the same batch finds the row there.
INSERT INTO kafka_gaps (topic, kafka_partition, first_offset, last_offset,
                        detected_at)
VALUES ($1, $2, $3, $4, now() AT TIME ZONE 'UTC')
ON CONFLICT (topic, kafka_partition, first_offset) DO NOTHING

-- name: store_high_watermark
-- While idle: a partition's end as just read from Kafka.
UPDATE kafka_offsets
SET high_watermark = $3, high_watermark_at = now() AT TIME ZONE 'UTC'
WHERE topic = $1 AND kafka_partition = $2
