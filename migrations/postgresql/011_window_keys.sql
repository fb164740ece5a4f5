-- 011_window_keys.sql: window counts under small integer keys
-- (PostgreSQL). Inserting a batch's window counts into window_counts, a
-- table keyed by four wide text and timestamp columns with two more
-- indexes, was half of an ingest's time; the counts now live in
-- window_totals, keyed by ids from three dictionaries and window starts in
-- seconds since 1970, with its primary key as its only index. The view
-- window_counts (views.sql) shows them with the old columns, types and
-- text, so the views built on it and users' queries see no change.

-- Ids are assigned once and never reused, changed or deleted, so a writer
-- may keep them in memory. They come from MAX(id) + n under an advisory
-- lock, not from a sequence: an ingest role that only reads and writes
-- rows may add them.
CREATE TABLE window_spec_ids (
        id          integer PRIMARY KEY,
        window_spec text NOT NULL UNIQUE
);
CREATE TABLE crime_type_ids (
        id         integer PRIMARY KEY,
        crime_type text NOT NULL UNIQUE
);
-- '' when the call has none, as in window_counts.
CREATE TABLE disposition_ids (
        id          integer PRIMARY KEY,
        disposition text NOT NULL UNIQUE
);

CREATE TABLE window_totals (
        spec_id        integer NOT NULL,
        window_start   bigint NOT NULL,  -- seconds since 1970, UTC
        crime_type_id  integer NOT NULL,
        disposition_id integer NOT NULL,
        window_end     bigint NOT NULL,
        calls          bigint NOT NULL,
        late_calls     bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (spec_id, window_start, crime_type_id, disposition_id)
);

INSERT INTO window_spec_ids (id, window_spec)
SELECT row_number() OVER (ORDER BY window_spec), window_spec
FROM (SELECT DISTINCT window_spec FROM window_counts) AS d;
INSERT INTO crime_type_ids (id, crime_type)
SELECT row_number() OVER (ORDER BY crime_type), crime_type
FROM (SELECT DISTINCT crime_type FROM window_counts) AS d;
INSERT INTO disposition_ids (id, disposition)
SELECT row_number() OVER (ORDER BY disposition), disposition
FROM (SELECT DISTINCT disposition FROM window_counts) AS d;

-- Window bounds are whole seconds; extract() reads a timestamp as UTC.
INSERT INTO window_totals (spec_id, window_start, crime_type_id,
                           disposition_id, window_end, calls, late_calls)
SELECT s.id, extract(epoch FROM w.window_start)::bigint, c.id, d.id,
       extract(epoch FROM w.window_end)::bigint, w.calls, w.late_calls
FROM window_counts AS w
JOIN window_spec_ids AS s ON s.window_spec = w.window_spec
JOIN crime_type_ids AS c ON c.crime_type = w.crime_type
JOIN disposition_ids AS d ON d.disposition = w.disposition
ORDER BY 1, 2, 3, 4;

-- The sink copies new calls in (COPY cannot call now()).
ALTER TABLE calls ALTER COLUMN ingested_at SET DEFAULT (now() AT TIME ZONE 'UTC');

-- Rows inserted into or deleted from the view go to window_totals, so
-- scripts that wrote the old table keep working, under the lock every
-- writer of window_totals and the dictionaries takes
-- (sql/postgresql/statements.sql, lock_window_keys).
CREATE FUNCTION window_counts_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
        spec integer;
        ct integer;
        disp integer;
BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('callstream writes'));
        IF TG_OP = 'DELETE' THEN
                DELETE FROM window_totals AS w
                USING window_spec_ids AS s, crime_type_ids AS c,
                      disposition_ids AS d
                WHERE s.window_spec = OLD.window_spec AND w.spec_id = s.id
                  AND w.window_start = extract(epoch FROM OLD.window_start)
                  AND c.crime_type = OLD.crime_type
                  AND w.crime_type_id = c.id
                  AND d.disposition = OLD.disposition
                  AND w.disposition_id = d.id;
                RETURN OLD;
        END IF;
        INSERT INTO window_spec_ids (id, window_spec)
        SELECT COALESCE(MAX(id), 0) + 1, NEW.window_spec FROM window_spec_ids
        ON CONFLICT (window_spec) DO NOTHING;
        INSERT INTO crime_type_ids (id, crime_type)
        SELECT COALESCE(MAX(id), 0) + 1, NEW.crime_type FROM crime_type_ids
        ON CONFLICT (crime_type) DO NOTHING;
        INSERT INTO disposition_ids (id, disposition)
        SELECT COALESCE(MAX(id), 0) + 1, NEW.disposition FROM disposition_ids
        ON CONFLICT (disposition) DO NOTHING;
        SELECT id INTO spec FROM window_spec_ids
        WHERE window_spec = NEW.window_spec;
        SELECT id INTO ct FROM crime_type_ids WHERE crime_type = NEW.crime_type;
        SELECT id INTO disp FROM disposition_ids
        WHERE disposition = NEW.disposition;
        INSERT INTO window_totals (spec_id, window_start, crime_type_id,
                                   disposition_id, window_end, calls,
                                   late_calls)
        VALUES (spec, extract(epoch FROM NEW.window_start)::bigint, ct, disp,
                extract(epoch FROM NEW.window_end)::bigint, NEW.calls,
                COALESCE(NEW.late_calls, 0));
        RETURN NEW;
END
$$;

-- The table becomes the view. CASCADE is never used: the views of ours
-- built on the table are pointed at the view with their own definitions
-- (CREATE OR REPLACE keeps their grants and the views built on them), the
-- table's grants go to the view, and an object of anyone else's that
-- depends on the table stops the migration, naming it, before anything
-- changed.
DO $$
DECLARE
        ours CONSTANT text[] := ARRAY['call_counts', 'disposition_counts',
                                      'recent_call_counts', 'top_crime_types',
                                      'watermarks', 'final_watermark',
                                      'pipeline_progress'];
        tbl CONSTANT oid := 'window_counts'::regclass;
        others text;
        names text[];
        defs text[];
        grants text;
        i integer;
BEGIN
        -- Whatever depends on the table but its row type, default, the
        -- indexes and key of our migrations and our views: a view (by its
        -- rewrite rule) is named as the view.
        SELECT string_agg(DISTINCT CASE
                       WHEN r.oid IS NOT NULL
                       THEN pg_describe_object('pg_class'::regclass,
                                               r.ev_class, 0)
                       ELSE pg_describe_object(d.classid, d.objid,
                                               d.objsubid) END, ', ')
        INTO others
        FROM pg_depend AS d
        LEFT JOIN pg_rewrite AS r
               ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
        LEFT JOIN pg_class AS v ON v.oid = r.ev_class
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl
          AND d.deptype <> 'i'
          AND d.classid <> 'pg_attrdef'::regclass
          AND NOT (v.relkind = 'v' AND v.relname = ANY (ours)
                   AND v.relnamespace = (SELECT relnamespace FROM pg_class
                                         WHERE oid = tbl))
          AND NOT (d.classid = 'pg_class'::regclass AND d.objid IN (
                   SELECT oid FROM pg_class
                   WHERE relname IN ('window_counts_start',
                                     'window_counts_end')))
          AND NOT (d.classid = 'pg_constraint'::regclass AND d.objid IN (
                   SELECT oid FROM pg_constraint
                   WHERE conname = 'window_counts_pkey'));
        IF others IS NOT NULL THEN
                RAISE EXCEPTION 'window_counts becomes a view of '
                        'window_totals (migration 011_window_keys.sql), but '
                        'these depend on the table: %; drop them, migrate, '
                        'then create them anew', others;
        END IF;
        SELECT array_agg(v.oid::regclass::text ORDER BY v.relname),
               array_agg(rtrim(pg_get_viewdef(v.oid), ';') ORDER BY v.relname)
        INTO names, defs
        FROM pg_class AS v
        WHERE v.relkind = 'v' AND v.oid IN (
                SELECT r.ev_class FROM pg_depend AS d
                JOIN pg_rewrite AS r ON r.oid = d.objid
                WHERE d.classid = 'pg_rewrite'::regclass
                  AND d.refclassid = 'pg_class'::regclass
                  AND d.refobjid = tbl AND r.ev_class <> tbl);
        SELECT string_agg(format('GRANT %s ON window_counts TO %s%s;',
                                 a.privilege_type,
                                 CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                      ELSE quote_ident(
                                              pg_get_userbyid(a.grantee))
                                 END,
                                 CASE WHEN a.is_grantable
                                      THEN ' WITH GRANT OPTION' ELSE ''
                                 END), ' ')
        INTO grants
        FROM pg_class AS c, aclexplode(c.relacl) AS a
        WHERE c.oid = tbl AND a.grantee <> c.relowner
          AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE',
                                   'REFERENCES', 'TRIGGER');

        ALTER TABLE window_counts RENAME TO window_counts_before_011;
        -- As in views.sql, which installs it again by its checksum.
        CREATE VIEW window_counts AS
        SELECT s.window_spec AS window_spec,
               to_timestamp(w.window_start) AT TIME ZONE 'UTC' AS window_start,
               to_timestamp(w.window_end) AT TIME ZONE 'UTC' AS window_end,
               c.crime_type AS crime_type, d.disposition AS disposition,
               w.calls AS calls, w.late_calls AS late_calls
        FROM window_totals AS w
        JOIN window_spec_ids AS s ON s.id = w.spec_id
        JOIN crime_type_ids AS c ON c.id = w.crime_type_id
        JOIN disposition_ids AS d ON d.id = w.disposition_id;
        CREATE TRIGGER window_counts_write
        INSTEAD OF INSERT OR DELETE ON window_counts
        FOR EACH ROW EXECUTE FUNCTION window_counts_write();
        FOR i IN 1 .. coalesce(cardinality(names), 0) LOOP
                EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', names[i],
                               defs[i]);
        END LOOP;
        IF grants IS NOT NULL THEN
                EXECUTE grants;
        END IF;
        DROP TABLE window_counts_before_011;
END
$$;
