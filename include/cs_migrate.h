/* cs_migrate.h: the numbered migrations and views compiled into the binary.
 *
 * Migrations are migrations/<dialect>/NNN_name.sql, plus the dialect-neutral
 * migrations/any/NNN_name.sql, applied in version order, each in
 * its own transaction, and recorded in schema_migrations with a checksum so an
 * edited migration is caught. Views are sql/<dialect>/views*.sql: SQLite
 * recreates them at every migrate; PostgreSQL installs each CREATE VIEW
 * only when its text changed (schema_views), so grants and users' views on
 * them stay. Backends apply them; this module only lists them. */
#ifndef CS_MIGRATE_H
#define CS_MIGRATE_H

#include "cs_common.h"

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

#endif
