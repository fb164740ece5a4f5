-- 008_kafka_gaps.sql: offsets lost to Kafka's retention, and when the high
-- watermark was last read (SQLite).
--
-- A row per gap: offsets first_offset..last_offset of a partition were
-- deleted by the topic's retention before the ingest read them. Written in
-- the transaction of the batch that moves past the gap, so a gap is
-- recorded exactly once, whatever stops the ingest.
CREATE TABLE kafka_gaps (
        topic           TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        first_offset    INTEGER NOT NULL,
        last_offset     INTEGER NOT NULL,
        detected_at     TEXT NOT NULL,
        PRIMARY KEY (topic, kafka_partition, first_offset)
);

-- Refreshed every few seconds while the ingest is idle, so lag is current
-- even when no batch is written.
ALTER TABLE kafka_offsets ADD COLUMN high_watermark_at TEXT;
