/* cs_migrate.h: the numbered migrations and views compiled into the binary.
 *
 * Migrations are migrations/<dialect>/NNN_name.sql, plus the dialect-neutral
 * migrations/any/NNN_name.sql, applied in version order, each in
 * its own transaction, and recorded in schema_migrations with a checksum so an
 * edited migration is caught. Views are sql/<dialect>/views*.sql: SQLite
 * recreates them at every migrate; PostgreSQL installs each CREATE VIEW
 * only when its text changed (schema_views), so grants and users' views on
 * them stay. cs_migrate_run() is the one algorithm that applies them;
 * backends give it a few primitives (struct cs_migrate_ops) and their
 * sink's query() for the schema_migrations statements. */
#ifndef CS_MIGRATE_H
#define CS_MIGRATE_H

#include "cs_common.h"

struct cs_sink;

#define CS_MIGRATIONS_MAX 64

struct cs_migration {
        int version;      /* NNN */
        const char *path; /* "migrations/sqlite/001_schema.sql" */
        const char *sql;
        char checksum[17]; /* FNV-1a 64 of sql, hex */
};

/* Fills out with the dialect's migrations in version order; returns how
 * many. Static data: nothing to free. */
int cs_migrations(const char *dialect, struct cs_migration *out, int max);

/* Fills out with the dialect's view scripts (sql/<dialect>/views.sql, then
 * any views_*.sql, which may use it) and returns how many. */
#define CS_VIEWS_MAX 8
int cs_views(const char *dialect, const char **out, int max);

/* Finds the statement under "-- name: NAME" in sql/<dialect>/statements.sql:
 * returns its text (not NUL-terminated: it runs to the next "-- name:") and
 * its length in *len, or NULL when there is no such statement. */
const char *cs_sql_statement(const char *dialect, const char *name,
                             size_t *len);

/* What a backend gives cs_migrate_run(). Each returns 0, or CS_RETRY
 * or -1 with a one-line reason in errstr. */
struct cs_migrate_ops {
        /* Begins a transaction that holds the migration lock, so that one
         * process migrates at a time (SQLite: BEGIN IMMEDIATE; PostgreSQL:
         * an advisory lock that ends with the transaction). what names the
         * step in errors. On error no transaction is left open. */
        int (*lock)(struct cs_sink *s, const char *what, char *errstr,
                    size_t errstr_size);
        /* Ends the transaction of lock(), releasing the lock: commits it
         * (what names the step in errors; a failed commit is rolled back),
         * or rolls it back when what is NULL (then it cannot fail). */
        int (*unlock)(struct cs_sink *s, const char *what, char *errstr,
                      size_t errstr_size);
        /* Runs sql, a script of statements without parameters, in the
         * open transaction; what names it in errors. */
        int (*exec)(struct cs_sink *s, const char *sql, const char *what,
                    char *errstr, size_t errstr_size);
        /* Optional, under the lock: makes what schema_migrations needs,
         * schema_migrations included. NULL: the statement
         * create_migrations_table is run. */
        int (*prepare)(struct cs_sink *s, char *errstr, size_t errstr_size);
        /* Optional: installs the views after the migrations. NULL: every
         * view script of cs_views() is run under the lock, in one
         * transaction. */
        int (*install_views)(struct cs_sink *s, char *errstr,
                             size_t errstr_size);
};

/* Creates or upgrades the schema of sink s (dialect s->ops->dialect), then
 * installs its views: under the lock, prepares schema_migrations; refuses
 * a schema newer than the newest migration compiled in; applies each
 * migration not recorded in schema_migrations, in version order, each in a
 * transaction of its own under the lock with its record; and fails,
 * naming it, on an applied migration whose checksum changed. The
 * statements migration_checksum, record_migration, latest_migration and
 * create_migrations_table of the dialect's statements.sql run through
 * s->ops->query(). Returns 0, or what the failing step returned. */
int cs_migrate_run(struct cs_sink *s, const struct cs_migrate_ops *ops,
                   char *errstr, size_t errstr_size) CS_MUSTCHECK;

#endif
