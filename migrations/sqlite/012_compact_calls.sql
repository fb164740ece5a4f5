-- 012_compact_calls.sql: calls under an integer key, with integer times
-- (SQLite).
-- The text primary key of calls was a second B-tree that every insert
-- walked, and its times were text. The calls now live in call_rows: a
-- crime_id that is a plain number (1 to 18 digits, no leading zero) is the
-- rowid itself; any other crime_id is kept as text under a unique index,
-- with a negative rowid. Event times are seconds since 1970 and
-- microseconds, the ingest time seconds, the late policy 0 or 1. The view
-- calls (views.sql) shows them with the old columns and text. And
-- window_totals is keyed by window start first (below).
CREATE TABLE call_rows (
        id                       INTEGER PRIMARY KEY,
        crime_id                 TEXT,  -- NULL when id is the crime_id
        original_crime_type_name TEXT NOT NULL,
        report_date              TEXT,
        call_date                TEXT,
        offense_date             TEXT,
        call_time                TEXT,
        call_date_time           TEXT NOT NULL,
        disposition              TEXT,
        address                  TEXT,
        city                     TEXT,
        state                    TEXT,
        agency_id                TEXT,
        address_type             TEXT,
        common_location          TEXT,
        call_sec                 INTEGER NOT NULL,  -- call_ts: seconds
        call_usec                INTEGER NOT NULL,  -- and microseconds
        kafka_topic              TEXT NOT NULL,
        kafka_partition          INTEGER NOT NULL,
        kafka_offset             INTEGER NOT NULL,
        ingested_at              INTEGER NOT NULL,  -- seconds, UTC
        mark_sec                 INTEGER,  -- watermark_at_count, or NULL
        mark_usec                INTEGER,
        late_drop                INTEGER NOT NULL   -- late_policy 'drop'
);

INSERT INTO call_rows (id, crime_id, original_crime_type_name, report_date,
                       call_date, offense_date, call_time, call_date_time,
                       disposition, address, city, state, agency_id,
                       address_type, common_location, call_sec, call_usec,
                       kafka_topic, kafka_partition, kafka_offset,
                       ingested_at, mark_sec, mark_usec, late_drop)
SELECT CASE WHEN numeric THEN CAST(crime_id AS INTEGER)
            ELSE -(ROW_NUMBER() OVER (PARTITION BY numeric
                                      ORDER BY rowid)) END,
       CASE WHEN numeric THEN NULL ELSE crime_id END,
       original_crime_type_name, report_date, call_date, offense_date,
       call_time, call_date_time, disposition, address, city, state,
       agency_id, address_type, common_location,
       CAST(strftime('%s', substr(call_ts, 1, 19)) AS INTEGER),
       CASE WHEN length(call_ts) > 20
            THEN CAST(substr(call_ts, 21) AS INTEGER) ELSE 0 END,
       kafka_topic, kafka_partition, kafka_offset,
       CAST(strftime('%s', ingested_at) AS INTEGER),
       CAST(strftime('%s', substr(watermark_at_count, 1, 19)) AS INTEGER),
       CASE WHEN watermark_at_count IS NULL THEN NULL
            WHEN length(watermark_at_count) > 20
            THEN CAST(substr(watermark_at_count, 21) AS INTEGER) ELSE 0 END,
       late_policy = 'drop'
FROM (SELECT rowid, *,
             length(crime_id) BETWEEN 1 AND 18 AND crime_id GLOB '[1-9]*'
             AND crime_id NOT GLOB '*[^0-9]*' AS numeric
      FROM calls)
ORDER BY 1;

DROP TABLE calls;

-- Dedup of the crime_ids that are not numbers; --retention and rebuild go
-- by event time.
CREATE UNIQUE INDEX call_rows_crime_id ON call_rows (crime_id)
WHERE crime_id IS NOT NULL;
CREATE INDEX call_rows_call_sec ON call_rows (call_sec);

-- Window counts keyed by their start first: a batch's new windows go at
-- the end of the B-tree, where an insert needs no search from its root.
CREATE TABLE window_totals_by_start (
        window_start   INTEGER NOT NULL,
        spec_id        INTEGER NOT NULL,
        crime_type_id  INTEGER NOT NULL,
        disposition_id INTEGER NOT NULL,
        window_end     INTEGER NOT NULL,
        calls          INTEGER NOT NULL,
        late_calls     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (window_start, spec_id, crime_type_id, disposition_id)
) WITHOUT ROWID;
INSERT INTO window_totals_by_start
SELECT window_start, spec_id, crime_type_id, disposition_id, window_end,
       calls, late_calls
FROM window_totals;
DROP TABLE window_totals;
CREATE TABLE window_totals (
        window_start   INTEGER NOT NULL,  -- seconds since 1970, UTC
        spec_id        INTEGER NOT NULL,
        crime_type_id  INTEGER NOT NULL,
        disposition_id INTEGER NOT NULL,
        window_end     INTEGER NOT NULL,
        calls          INTEGER NOT NULL,
        late_calls     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (window_start, spec_id, crime_type_id, disposition_id)
) WITHOUT ROWID;
INSERT INTO window_totals SELECT * FROM window_totals_by_start;
DROP TABLE window_totals_by_start;
