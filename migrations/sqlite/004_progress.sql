-- 004_progress.sql: what each partition has done, for pipeline_progress
-- (SQLite).
ALTER TABLE kafka_offsets ADD COLUMN high_watermark INTEGER;  -- its end, last seen
ALTER TABLE kafka_offsets ADD COLUMN calls_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kafka_offsets ADD COLUMN duplicates_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kafka_offsets ADD COLUMN rejected_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kafka_offsets ADD COLUMN late_total INTEGER NOT NULL DEFAULT 0;
