-- 009_schema_views.sql: the definition of each view as installed, by
-- checksum, so a start replaces a view only when its text changed and
-- otherwise leaves it alone, with its grants and the user's views on it
-- (PostgreSQL).
CREATE TABLE schema_views (
        name         text PRIMARY KEY,
        checksum     text NOT NULL,
        installed_at timestamp NOT NULL
);
