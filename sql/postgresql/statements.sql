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
COPY cs_stage_calls FROM STDIN (FORMAT binary)

-- name: stored_calls
-- After lock_window_keys: which of a batch's crime_ids (a text array sent
-- in binary) calls holds, by their 1-based position; one probe each, but
-- for those past the largest stored (in the column's own collation), which
-- cannot be there: crime_ids mostly grow with time, and a stream read in
-- time order brings mostly new ones (a tenth of the probes' time).
SELECT k.i
FROM unnest($1::text[]) WITH ORDINALITY AS k (crime_id, i)
CROSS JOIN (SELECT max(crime_id) AS top FROM calls) AS m
CROSS JOIN LATERAL (
        SELECT 1 FROM calls AS c WHERE c.crime_id = k.crime_id LIMIT 1) AS c
WHERE k.crime_id <= m.top

-- The calls stored_calls did not find, copied in whole (ingested_at is
-- the transaction's time, its default since 011); binary, which spares the
-- server parsing text, escapes and timestamps (sink_pg.c, put_call_row).
-- name: copy_new_calls
COPY calls (crime_id, original_crime_type_name, report_date, call_date,
            offense_date, call_time, call_date_time, disposition, address,
            city, state, agency_id, address_type, common_location, call_ts,
            kafka_topic, kafka_partition, kafka_offset, watermark_at_count,
            late_policy) FROM STDIN (FORMAT binary)

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
-- $1..$4: the batch's keys, as add_window_counts.
DELETE FROM window_totals AS w
USING unnest($1::integer[], $2::bigint[], $3::integer[], $4::integer[])
      AS k (spec_id, window_start, crime_type_id, disposition_id)
WHERE w.spec_id = k.spec_id AND w.window_start = k.window_start
      AND w.crime_type_id = k.crime_type_id
      AND w.disposition_id = k.disposition_id AND w.calls <= 0

-- name: stored_window_keys
-- After lock_window_keys: the keys window_totals holds in the stretches
-- of window starts a batch's keys fall in ($1 spec ids, $2 first and $3
-- last starts, arrays sent in binary), at most $4 of them: a range scan
-- of the key each, so that a batch's new keys, most of them when a stream
-- is replayed in event-time order, cost no probe. When a batch spans
-- weeks (partitions read side by side) the stretches hold much of the
-- table: the limit stops the scan, and add_window_counts probes instead.
-- OFFSET 0 keeps the subquery a scan of the key per range: a generic plan
-- would otherwise join a scan of the whole table.
SELECT w.spec_id, w.window_start, w.crime_type_id, w.disposition_id
FROM unnest($1::integer[], $2::bigint[], $3::bigint[]) AS r (spec_id, lo, hi)
CROSS JOIN LATERAL (
        SELECT spec_id, window_start, crime_type_id, disposition_id
        FROM window_totals
        WHERE spec_id = r.spec_id AND window_start >= r.lo
          AND window_start <= r.hi
        OFFSET 0) AS w
LIMIT $4

-- name: add_window_counts
-- After lock_window_keys: the counts of a batch's keys (seven arrays sent
-- in binary, in key order, so concurrent writers lock rows in the same
-- order) added to the ones window_totals holds, one probe each; the keys
-- it holds come back, and the rest go in with copy_window_totals.
UPDATE window_totals AS w
SET calls = w.calls + k.calls, late_calls = w.late_calls + k.late_calls
FROM unnest($1::integer[], $2::bigint[], $3::integer[], $4::integer[],
            $5::bigint[], $6::bigint[], $7::bigint[])
     AS k (spec_id, window_start, crime_type_id, disposition_id, window_end,
           calls, late_calls)
WHERE w.spec_id = k.spec_id AND w.window_start = k.window_start
      AND w.crime_type_id = k.crime_type_id
      AND w.disposition_id = k.disposition_id
RETURNING w.spec_id, w.window_start, w.crime_type_id, w.disposition_id

-- Keys add_window_counts did not find, under lock_window_keys, which every
-- writer of window_totals takes (the ingest, window_counts' trigger), so no
-- one adds them meanwhile: plain rows, binary, in key order.
-- name: copy_window_totals
COPY window_totals FROM STDIN (FORMAT binary)

-- name: find_window_keys
-- The dictionary ids of the texts in $1 (window specs), $2 (crime types)
-- and $3 (dispositions), as (dictionary 0, 1 or 2, id, text).
SELECT 0, id, window_spec FROM window_spec_ids
WHERE window_spec = ANY ($1::text[])
UNION ALL
SELECT 1, id, crime_type FROM crime_type_ids
WHERE crime_type = ANY ($2::text[])
UNION ALL
SELECT 2, id, disposition FROM disposition_ids
WHERE disposition = ANY ($3::text[])

-- name: lock_window_keys
-- Held to the end of the transaction by whoever adds or deletes calls,
-- dictionary ids or window_totals rows (the ingest, --retention, rebuild,
-- window_counts' trigger), so MAX(id) + n is free (no sequence, which a
-- role that only writes rows could not use), and a call or key found
-- missing stays missing until it is copied in, one found stored stays
-- stored. Ingests sharing a database write one batch at a time.
SELECT pg_advisory_xact_lock(hashtext('callstream writes'))

-- name: add_window_keys
-- After lock_window_keys: adds the texts of $1, $2 and $3 (distinct) that
-- are missing, and returns the ids of all, as find_window_keys.
WITH s AS (
        INSERT INTO window_spec_ids (id, window_spec)
        SELECT (SELECT COALESCE(MAX(id), 0) FROM window_spec_ids) +
               row_number() OVER (), t
        FROM unnest($1::text[]) AS t
        WHERE NOT EXISTS (SELECT 1 FROM window_spec_ids WHERE window_spec = t)
        RETURNING id, window_spec
), c AS (
        INSERT INTO crime_type_ids (id, crime_type)
        SELECT (SELECT COALESCE(MAX(id), 0) FROM crime_type_ids) +
               row_number() OVER (), t
        FROM unnest($2::text[]) AS t
        WHERE NOT EXISTS (SELECT 1 FROM crime_type_ids WHERE crime_type = t)
        RETURNING id, crime_type
), d AS (
        INSERT INTO disposition_ids (id, disposition)
        SELECT (SELECT COALESCE(MAX(id), 0) FROM disposition_ids) +
               row_number() OVER (), t
        FROM unnest($3::text[]) AS t
        WHERE NOT EXISTS (SELECT 1 FROM disposition_ids WHERE disposition = t)
        RETURNING id, disposition
)
SELECT 0, id, window_spec FROM s
UNION ALL SELECT 1, id, crime_type FROM c
UNION ALL SELECT 2, id, disposition FROM d
UNION ALL
SELECT 0, id, window_spec FROM window_spec_ids
WHERE window_spec = ANY ($1::text[])
UNION ALL
SELECT 1, id, crime_type FROM crime_type_ids
WHERE crime_type = ANY ($2::text[])
UNION ALL
SELECT 2, id, disposition FROM disposition_ids
WHERE disposition = ANY ($3::text[])

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
-- Per spec through window_totals' key: a window that ended by the horizon
-- started before it.
WITH h AS (
        SELECT extract(epoch FROM MIN(watermark) -
                                  make_interval(secs => $1))::bigint AS t
        FROM kafka_offsets
)
DELETE FROM window_totals WHERE ctid IN (
        SELECT w.ctid
        FROM h, window_spec_ids AS s
        CROSS JOIN LATERAL (
                SELECT ctid FROM window_totals
                WHERE spec_id = s.id AND window_start < h.t
                  AND window_end <= h.t
                LIMIT $2) AS w
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
-- rebuild: ingest's window and late writes wait until it commits. The
-- ingest's lock (lock_window_keys) first, as the ingest takes it, so that
-- neither waits for the other holding what the other needs.
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('callstream writes'));
LOCK TABLE window_totals, late_records IN SHARE ROW EXCLUSIVE MODE

-- name: scan_calls
-- rebuild: the calls whose windows it recomputes.
SELECT crime_id, original_crime_type_name, disposition, call_ts,
       watermark_at_count, late_policy, kafka_topic, kafka_partition,
       kafka_offset
FROM calls WHERE call_ts >= $1 AND call_ts < $2

-- name: clear_windows
-- $2 and $3 in seconds since 1970.
DELETE FROM window_totals
WHERE spec_id = (SELECT id FROM window_spec_ids WHERE window_spec = $1)
      AND window_start >= $2::bigint AND window_start < $3::bigint

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
SELECT window_spec FROM window_spec_ids AS s
WHERE EXISTS (SELECT 1 FROM window_totals WHERE spec_id = s.id)
ORDER BY 1

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

-- Replay sources, window specs and `callstream offsets` (topics.c), run
-- through the sink's query(); every value bound as text.

-- name: replay_source
SELECT path, fingerprint, fingerprint_bytes, at_end::int FROM replay_sources
WHERE topic = $1

-- name: topic_offsets_count
SELECT COUNT(*) FROM kafka_offsets WHERE topic = $1

-- name: store_replay_source
-- The fingerprint grows with the file up to 64 KiB; a replay that changed
-- nothing leaves the row alone.
INSERT INTO replay_sources (topic, path, fingerprint, fingerprint_bytes,
                            at_end, updated_at)
VALUES ($1, $2, $3, $4::bigint, $5::integer <> 0, now() AT TIME ZONE 'UTC')
ON CONFLICT (topic) DO UPDATE
SET path = excluded.path, fingerprint = excluded.fingerprint,
    fingerprint_bytes = excluded.fingerprint_bytes, at_end = excluded.at_end,
    updated_at = excluded.updated_at
WHERE (replay_sources.path, replay_sources.fingerprint,
       replay_sources.fingerprint_bytes, replay_sources.at_end) IS DISTINCT
      FROM (excluded.path, excluded.fingerprint, excluded.fingerprint_bytes,
            excluded.at_end)

-- name: window_spec_rows
SELECT window_spec, maintained::int FROM window_specs ORDER BY 1

-- name: calls_exist
SELECT EXISTS (SELECT 1 FROM calls)::int

-- name: spec_has_counts
SELECT EXISTS (SELECT 1 FROM window_totals
               WHERE spec_id = (SELECT id FROM window_spec_ids
                                WHERE window_spec = $1))::int

-- name: spec_maintain
-- A rerun with the same specs changes nothing.
INSERT INTO window_specs (window_spec, maintained, final_until, updated_at)
VALUES ($1, true, NULL, now() AT TIME ZONE 'UTC')
ON CONFLICT (window_spec) DO UPDATE
SET updated_at = excluded.updated_at, maintained = true,
    final_until = NULL
WHERE NOT window_specs.maintained

-- name: spec_retire
-- Its windows stay final up to the watermark of now, never past it.
UPDATE window_specs
SET maintained = false,
    final_until = (SELECT watermark FROM final_watermark),
    updated_at = now() AT TIME ZONE 'UTC'
WHERE window_spec = $1 AND maintained

-- name: offsets_list
-- GREATEST() skips NULLs: no known end is no lag (NULL), as in SQLite.
SELECT o.topic, o.kafka_partition, o.next_offset, o.watermark,
       CASE WHEN o.high_watermark IS NOT NULL
            THEN GREATEST(o.high_watermark - o.next_offset, 0) END,
       r.path, r.fingerprint,
       r.fingerprint_bytes, r.at_end::int, date_trunc('second', o.updated_at)
FROM kafka_offsets AS o
LEFT JOIN replay_sources AS r ON r.topic = o.topic
ORDER BY o.topic, o.kafka_partition

-- name: offsets_at_time
-- offsets reset --to-timestamp: per partition, the first offset holding a
-- stored call at or after $3 (NULL when there is none).
SELECT o.kafka_partition,
       (SELECT MIN(c.kafka_offset) FROM calls AS c
        WHERE c.kafka_topic = o.topic
          AND c.kafka_partition = o.kafka_partition
          AND c.call_ts >= $3::timestamp)
FROM kafka_offsets AS o
WHERE o.topic = $1 AND ($2::integer IS NULL OR o.kafka_partition = $2::integer)
ORDER BY 1

-- name: offsets_reset
-- Backwards too: unlike store_offsets, this is the user's explicit choice.
UPDATE kafka_offsets
SET next_offset = $3::bigint, updated_at = now() AT TIME ZONE 'UTC'
WHERE topic = $1 AND ($2::integer IS NULL OR kafka_partition = $2::integer)

-- name: offsets_forget
DELETE FROM kafka_offsets WHERE topic = $1

-- name: replay_source_forget
DELETE FROM replay_sources WHERE topic = $1

-- name: schema_exists
SELECT count(*) FROM pg_namespace WHERE nspname = $1

-- name: migrations_table_exists
SELECT to_regclass('schema_migrations') IS NOT NULL

-- name: installed_views
-- The views recorded as installed that still exist, with their checksums;
-- none before migration 009.
SELECT v.name, v.checksum
FROM schema_views AS v
WHERE to_regclass(quote_ident(v.name)) IS NOT NULL

-- name: views_table_exists
SELECT to_regclass('schema_views') IS NOT NULL

-- name: record_view
INSERT INTO schema_views (name, checksum, installed_at)
VALUES ($1, $2, now() AT TIME ZONE 'UTC')
ON CONFLICT (name) DO UPDATE
SET checksum = excluded.checksum, installed_at = excluded.installed_at

-- name: view_dependents
-- Every view, materialized view or rule-bearing relation built on view $1,
-- directly or through others, and whether it is one of ours ($2, in the
-- current schema), dependants last.
WITH RECURSIVE dep (oid, depth) AS (
        SELECT r.ev_class, 1
        FROM pg_depend AS d JOIN pg_rewrite AS r ON r.oid = d.objid
        WHERE d.classid = 'pg_rewrite'::regclass
          AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = to_regclass(quote_ident($1))
          AND r.ev_class <> d.refobjid
        UNION
        SELECT r.ev_class, dep.depth + 1
        FROM dep
        JOIN pg_depend AS d ON d.refobjid = dep.oid
                           AND d.classid = 'pg_rewrite'::regclass
                           AND d.refclassid = 'pg_class'::regclass
        JOIN pg_rewrite AS r ON r.oid = d.objid AND r.ev_class <> d.refobjid
        WHERE dep.depth < 32
)
SELECT c.relname, c.oid::regclass::text,
       c.relnamespace = to_regnamespace(quote_ident(current_schema()))
               AND c.relname = ANY ($2::text[]) AS ours,
       MAX(dep.depth) AS depth
FROM dep JOIN pg_class AS c ON c.oid = dep.oid
GROUP BY c.oid, c.relname
ORDER BY depth DESC, c.relname

-- name: view_grants
-- The grants on views $1 (other than their owner's), as GRANT statements,
-- to give again after the views were dropped and created anew.
SELECT COALESCE(string_agg(format('GRANT %s ON %I TO %s%s;',
                                  a.privilege_type, c.relname,
                                  CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                       ELSE quote_ident(
                                               pg_get_userbyid(a.grantee))
                                  END,
                                  CASE WHEN a.is_grantable
                                       THEN ' WITH GRANT OPTION' ELSE ''
                                  END), ' '), '')
FROM pg_class AS c, aclexplode(c.relacl) AS a
WHERE c.relname = ANY ($1::text[])
  AND c.relnamespace = to_regnamespace(quote_ident(current_schema()))
  AND c.relkind = 'v' AND a.grantee <> c.relowner

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
