-- 007_sources.sql: what each replayed file was, and which window specs the
-- ingest maintains (PostgreSQL).

-- One row per topic that a file replay (ingest --file) stores its calls
-- under: the file's first bytes (at most 64 KiB) as an FNV-1a hash and
-- their number, so a replay resumes only over the same input; at_end says
-- the last replay read it to its end (a finished replay no longer holds
-- is_final back, see the view final_watermark).
CREATE TABLE replay_sources (
        topic             text PRIMARY KEY,
        path              text NOT NULL,     -- its real path, '-' for stdin
        fingerprint       text NOT NULL,     -- 16 hex digits
        fingerprint_bytes bigint NOT NULL,   -- bytes hashed
        at_end            boolean NOT NULL DEFAULT false,
        updated_at        timestamp NOT NULL   -- UTC
);

-- One row per window spec an ingest has counted: maintained while the
-- latest ingest counts it. Rows change only when that does, so a rerun
-- changes nothing. A spec the ingest stopped counting keeps its
-- rows, but its windows past final_until (the watermark then) are never
-- final.
CREATE TABLE window_specs (
        window_spec      text PRIMARY KEY,
        maintained       boolean NOT NULL DEFAULT true,
        final_until      timestamp,           -- NULL while maintained
        updated_at       timestamp NOT NULL   -- UTC, when maintained changed
);

-- The specs that have counts now were counted by the ingests so far.
INSERT INTO window_specs (window_spec, updated_at)
SELECT DISTINCT window_spec, now() AT TIME ZONE 'UTC'
FROM window_counts;
