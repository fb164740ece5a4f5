-- 008_kafka_gaps.sql: offsets lost to Kafka's retention, and when the high
-- watermark was last read (PostgreSQL).
--
-- A row per gap: offsets first_offset..last_offset of a partition were
-- deleted by the topic's retention before the ingest read them. Written in
-- the transaction of the batch that moves past the gap, so a gap is
-- recorded exactly once, whatever stops the ingest.
CREATE TABLE kafka_gaps (
        topic           text NOT NULL,
        kafka_partition integer NOT NULL,
        first_offset    bigint NOT NULL,
        last_offset     bigint NOT NULL,
        detected_at     timestamp NOT NULL,
        PRIMARY KEY (topic, kafka_partition, first_offset)
);

-- Refreshed every few seconds while the ingest is idle, so lag is current
-- even when no batch is written.
ALTER TABLE kafka_offsets ADD COLUMN high_watermark_at timestamp;
