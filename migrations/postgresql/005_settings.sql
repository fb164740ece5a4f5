-- 005_settings.sql: settings the views read, one row per setting
-- (PostgreSQL). Change one with e.g. UPDATE settings SET value = '6' WHERE
-- name = 'recent_hours'; the views read it at once, and migrate never
-- resets it.
--
--   recent_hours  recent_call_counts shows the windows that overlap the
--                 last recent_hours hours before the watermark (default 24)
--   top_n         top_crime_types keeps the crime types ranked 1 to top_n
--                 in each window, ties included (default 10)
--
-- Both are whole numbers of at most six digits: the CHECK refuses anything
-- else when it is written, rather than a view failing (PostgreSQL) or
-- reading it as 0 (SQLite) later. A missing row leaves its view empty.
CREATE TABLE settings (
        name  text PRIMARY KEY,
        value text NOT NULL,
        CONSTRAINT settings_whole_number
                CHECK (name NOT IN ('recent_hours', 'top_n') OR
                       value ~ '^[0-9]{1,6}$')
);

INSERT INTO settings (name, value) VALUES
        ('recent_hours', '24'),
        ('top_n', '10');

COMMENT ON TABLE settings IS 'Settings the views read: recent_hours '
        '(recent_call_counts, default 24), top_n (top_crime_types, '
        'default 10).';
