-- 007_sources.sql: what each replayed file was, and which window specs the
-- ingest maintains (SQLite).

-- One row per topic that a file replay (ingest --file) stores its calls
-- under: the file's first bytes (at most 64 KiB) as an FNV-1a hash and
-- their number, so a replay resumes only over the same input; at_end says
-- the last replay read it to its end (a finished replay no longer holds
-- is_final back, see the view final_watermark).
CREATE TABLE replay_sources (
        topic             TEXT PRIMARY KEY,
        path              TEXT NOT NULL,     -- its real path, '-' for stdin
        fingerprint       TEXT NOT NULL,     -- 16 hex digits
        fingerprint_bytes INTEGER NOT NULL,  -- bytes hashed
        at_end            INTEGER NOT NULL DEFAULT 0,
        updated_at        TEXT NOT NULL      -- UTC
) WITHOUT ROWID;

-- One row per window spec an ingest has counted: maintained = 1 while the
-- latest ingest counts it. Rows change only when that does, so a rerun
-- changes nothing. A spec the ingest stopped counting keeps its
-- rows, but its windows past final_until (the watermark then) are never
-- final.
CREATE TABLE window_specs (
        window_spec      TEXT PRIMARY KEY,
        maintained       INTEGER NOT NULL DEFAULT 1,
        final_until      TEXT,           -- NULL while maintained
        updated_at       TEXT NOT NULL   -- UTC, when maintained last changed
) WITHOUT ROWID;

-- The specs that have counts now were counted by the ingests so far.
INSERT INTO window_specs (window_spec, updated_at)
SELECT DISTINCT window_spec, strftime('%Y-%m-%d %H:%M:%S', 'now')
FROM window_counts;
