-- 010_window_keys.sql: window counts under small integer keys (SQLite).
-- B-tree seeks on the wide text keys of window_counts were most of an
-- ingest's time; the counts now live in window_totals, keyed by ids from
-- three dictionaries and window starts in seconds since 1970. The view
-- window_counts (views.sql) shows them with the old columns and text.

-- Ids are assigned once and never reused or deleted, so a writer may keep
-- them in memory.
CREATE TABLE window_spec_ids (
        id          INTEGER PRIMARY KEY,
        window_spec TEXT NOT NULL UNIQUE
);
CREATE TABLE crime_type_ids (
        id         INTEGER PRIMARY KEY,
        crime_type TEXT NOT NULL UNIQUE
);
-- '' when the call has none, as in window_counts.
CREATE TABLE disposition_ids (
        id          INTEGER PRIMARY KEY,
        disposition TEXT NOT NULL UNIQUE
);

CREATE TABLE window_totals (
        spec_id        INTEGER NOT NULL,
        window_start   INTEGER NOT NULL,  -- seconds since 1970, UTC
        crime_type_id  INTEGER NOT NULL,
        disposition_id INTEGER NOT NULL,
        window_end     INTEGER NOT NULL,
        calls          INTEGER NOT NULL,
        late_calls     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (spec_id, window_start, crime_type_id, disposition_id)
) WITHOUT ROWID;

INSERT INTO window_spec_ids (window_spec)
SELECT DISTINCT window_spec FROM window_counts ORDER BY 1;
INSERT INTO crime_type_ids (crime_type)
SELECT DISTINCT crime_type FROM window_counts ORDER BY 1;
INSERT INTO disposition_ids (disposition)
SELECT DISTINCT disposition FROM window_counts ORDER BY 1;

INSERT INTO window_totals (spec_id, window_start, crime_type_id,
                           disposition_id, window_end, calls, late_calls)
SELECT s.id, CAST(strftime('%s', w.window_start) AS INTEGER), c.id, d.id,
       CAST(strftime('%s', w.window_end) AS INTEGER), w.calls, w.late_calls
FROM window_counts AS w
JOIN window_spec_ids AS s ON s.window_spec = w.window_spec
JOIN crime_type_ids AS c ON c.crime_type = w.crime_type
JOIN disposition_ids AS d ON d.disposition = w.disposition;

DROP TABLE window_counts;
