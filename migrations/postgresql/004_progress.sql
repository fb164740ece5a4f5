-- 004_progress.sql: what each partition has done, for pipeline_progress
-- (PostgreSQL).
ALTER TABLE kafka_offsets ADD COLUMN high_watermark bigint;  -- its end, last seen
ALTER TABLE kafka_offsets ADD COLUMN calls_total bigint NOT NULL DEFAULT 0;
ALTER TABLE kafka_offsets ADD COLUMN duplicates_total bigint NOT NULL DEFAULT 0;
ALTER TABLE kafka_offsets ADD COLUMN rejected_total bigint NOT NULL DEFAULT 0;
ALTER TABLE kafka_offsets ADD COLUMN late_total bigint NOT NULL DEFAULT 0;
