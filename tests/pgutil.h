/* pgutil.h: the tests' side of the databases: libpq connections, and rows
 * of SQLite and PostgreSQL rendered alike as typed text lines, to compare
 * the two dialects row for row. Test code only; it links libpq and
 * sqlite3 and no project module. */
#ifndef TH_PGUTIL_H
#define TH_PGUTIL_H

#include <libpq-fe.h>
#include <sqlite3.h>

#include "harness.h"

/* A connection as conninfo says, its notices silenced, or NULL after
 * saying why on stderr (not the conninfo, which may hold a password). The
 * caller finishes it with PQfinish(). */
PGconn *th_pg_open(const char *conninfo);

/* Runs sql, which returns no rows, or fails the test with the server's
 * message. */
void th_pg_exec_ok(PGconn *c, const char *sql);

/* Skips the SQLite column named name when it returns non-zero. */
typedef int th_col_skip_fn(const char *name);

/* Appends the rows of sql on db as typed lines "a|b|c": integers bare,
 * reals as %.17g, text quoted and blobs as hex (th_put_quoted(),
 * th_put_hex()), NULL bare. prefix (may be NULL) comes first as a quoted
 * column; skip_col (may be NULL) leaves columns out. The lines are not sorted.
 * Returns 0 or -1 (said on stderr). db is borrowed. */
int th_lite_lines(sqlite3 *db, const char *sql, const char *prefix,
                  th_col_skip_fn *skip_col, struct th_lines *out);

/* The same on PostgreSQL: int2, int4, int8 and numeric bare, bytea as
 * hex, NULL bare, everything else quoted, so the rows of a query that
 * renders its timestamps as SQLite's text equal SQLite's. Returns 0 or -1
 * (said on stderr). */
int th_pg_lines(PGconn *c, const char *sql, struct th_lines *out);

#endif
