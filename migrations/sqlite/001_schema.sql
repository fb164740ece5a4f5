-- 001_schema.sql: the tables of callstream (SQLite).

-- One row per deduplicated call: the first valid copy of each crime_id.
CREATE TABLE calls (
        crime_id                 TEXT PRIMARY KEY,
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
        call_ts                  TEXT NOT NULL,  -- 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        kafka_topic              TEXT NOT NULL,
        kafka_partition          INTEGER NOT NULL,
        kafka_offset             INTEGER NOT NULL,
        ingested_at              TEXT NOT NULL   -- UTC, when its batch committed
);
CREATE INDEX calls_call_ts ON calls (call_ts);

-- Messages that are not valid calls, with why (payload cut at 4096 bytes).
CREATE TABLE rejected_records (
        id              INTEGER PRIMARY KEY,
        kafka_topic     TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        kafka_offset    INTEGER NOT NULL,
        reason          TEXT NOT NULL,
        payload         BLOB NOT NULL,
        payload_size    INTEGER NOT NULL,  -- size before truncation
        rejected_at     TEXT NOT NULL,
        UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

-- The next offset to consume per partition, committed with each batch.
CREATE TABLE kafka_offsets (
        topic           TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        next_offset     INTEGER NOT NULL,
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (topic, kafka_partition)
) WITHOUT ROWID;

-- Calls per window, crime type and disposition ('' when the call has none).
CREATE TABLE window_counts (
        window_spec  TEXT NOT NULL,
        window_start TEXT NOT NULL,
        window_end   TEXT NOT NULL,
        crime_type   TEXT NOT NULL,
        disposition  TEXT NOT NULL,
        calls        INTEGER NOT NULL,
        PRIMARY KEY (window_spec, window_start, crime_type, disposition)
) WITHOUT ROWID;

CREATE TABLE radio_codes (
        disposition_code TEXT PRIMARY KEY,
        description      TEXT NOT NULL
);
