-- 003_event_time.sql: watermarks, window finality and late data
-- (PostgreSQL).

-- The watermark each call was counted against (NULL: none yet), and the
-- late policy then, so counts can be moved or rebuilt exactly.
ALTER TABLE calls ADD COLUMN watermark_at_count timestamp;
ALTER TABLE calls ADD COLUMN late_policy text NOT NULL DEFAULT 'count';

-- Calls counted into a window after it was final.
ALTER TABLE window_counts ADD COLUMN late_calls bigint NOT NULL DEFAULT 0;

-- Per partition, committed with its offset: the highest event time seen
-- and the watermark it gives (NULL until the first valid call).
ALTER TABLE kafka_offsets ADD COLUMN max_event_ts timestamp;
ALTER TABLE kafka_offsets ADD COLUMN allowed_lateness bigint;
ALTER TABLE kafka_offsets ADD COLUMN watermark timestamp;

-- Calls left out of final windows under --late-policy drop: one row per
-- call and window spec.
CREATE TABLE late_records (
        crime_id        text NOT NULL,
        window_spec     text NOT NULL,
        call_ts         timestamp NOT NULL,
        watermark       timestamp NOT NULL,  -- the watermark it missed
        windows_dropped integer NOT NULL,
        kafka_topic     text NOT NULL,
        kafka_partition integer NOT NULL,
        kafka_offset    bigint NOT NULL,
        recorded_at     timestamp NOT NULL,
        PRIMARY KEY (crime_id, window_spec)
);
CREATE INDEX late_records_call_ts ON late_records (call_ts);
