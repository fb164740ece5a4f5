-- 006_retention.sql: indexes that let --retention find old rows quickly
-- (SQLite).
CREATE INDEX window_counts_end ON window_counts (window_end);
CREATE INDEX rejected_records_at ON rejected_records (rejected_at);
