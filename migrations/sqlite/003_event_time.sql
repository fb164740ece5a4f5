-- 003_event_time.sql: watermarks, window finality and late data (SQLite).

-- The watermark each call was counted against (NULL: none yet), and the
-- late policy then, so counts can be moved or rebuilt exactly.
ALTER TABLE calls ADD COLUMN watermark_at_count TEXT;
ALTER TABLE calls ADD COLUMN late_policy TEXT NOT NULL DEFAULT 'count';

-- Calls counted into a window after it was final.
ALTER TABLE window_counts ADD COLUMN late_calls INTEGER NOT NULL DEFAULT 0;

-- Per partition, committed with its offset: the highest event time seen
-- and the watermark it gives (NULL until the first valid call).
ALTER TABLE kafka_offsets ADD COLUMN max_event_ts TEXT;
ALTER TABLE kafka_offsets ADD COLUMN allowed_lateness INTEGER;
ALTER TABLE kafka_offsets ADD COLUMN watermark TEXT;

-- Calls left out of final windows under --late-policy drop: one row per
-- call and window spec.
CREATE TABLE late_records (
        crime_id        TEXT NOT NULL,
        window_spec     TEXT NOT NULL,
        call_ts         TEXT NOT NULL,
        watermark       TEXT NOT NULL,  -- the watermark it missed
        windows_dropped INTEGER NOT NULL,
        kafka_topic     TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        kafka_offset    INTEGER NOT NULL,
        recorded_at     TEXT NOT NULL,
        PRIMARY KEY (crime_id, window_spec)
);
CREATE INDEX late_records_call_ts ON late_records (call_ts);
