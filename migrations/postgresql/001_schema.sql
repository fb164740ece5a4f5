-- 001_schema.sql: the tables of callstream (PostgreSQL). Same names and
-- columns as the SQLite schema, with PostgreSQL's types.

-- One row per deduplicated call: the first valid copy of each crime_id.
CREATE TABLE calls (
        crime_id                 text PRIMARY KEY,
        original_crime_type_name text NOT NULL,
        report_date              text,
        call_date                text,
        offense_date             text,
        call_time                text,
        call_date_time           text NOT NULL,
        disposition              text,
        address                  text,
        city                     text,
        state                    text,
        agency_id                text,
        address_type             text,
        common_location          text,
        call_ts                  timestamp NOT NULL,
        kafka_topic              text NOT NULL,
        kafka_partition          integer NOT NULL,
        kafka_offset             bigint NOT NULL,
        ingested_at              timestamp NOT NULL  -- UTC
);
CREATE INDEX calls_call_ts ON calls (call_ts);
CREATE INDEX calls_crime_type_call_ts ON calls (original_crime_type_name, call_ts);

-- Messages that are not valid calls, with why (payload cut at 4096 bytes).
CREATE TABLE rejected_records (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kafka_topic     text NOT NULL,
        kafka_partition integer NOT NULL,
        kafka_offset    bigint NOT NULL,
        reason          text NOT NULL,
        payload         bytea NOT NULL,
        payload_size    integer NOT NULL,  -- size before truncation
        rejected_at     timestamp NOT NULL,
        UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

-- The next offset to consume per partition, committed with each batch.
CREATE TABLE kafka_offsets (
        topic           text NOT NULL,
        kafka_partition integer NOT NULL,
        next_offset     bigint NOT NULL,
        updated_at      timestamp NOT NULL,
        PRIMARY KEY (topic, kafka_partition)
);

-- Calls per window, crime type and disposition ('' when the call has none).
CREATE TABLE window_counts (
        window_spec  text NOT NULL,
        window_start timestamp NOT NULL,
        window_end   timestamp NOT NULL,
        crime_type   text NOT NULL,
        disposition  text NOT NULL,
        calls        bigint NOT NULL,
        PRIMARY KEY (window_spec, window_start, crime_type, disposition)
);
CREATE INDEX window_counts_start ON window_counts (window_start);

CREATE TABLE radio_codes (
        disposition_code text PRIMARY KEY,
        description      text NOT NULL
);
