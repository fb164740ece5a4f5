/* pgutil.c: libpq connections and typed rows of both databases for the
 * tests (pgutil.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgutil.h"

/* PostgreSQL type OIDs (catalog/pg_type_d.h is a server header). */
#define OID_BYTEA   17
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_NUMERIC 1700

static void quiet_notices(void *arg, const char *msg)
{
        (void)arg;
        (void)msg;
}

PGconn *th_pg_open(const char *conninfo)
{
        PGconn *c = PQconnectdb(conninfo);

        if (PQstatus(c) != CONNECTION_OK) {
                fprintf(stderr, "# cannot connect to PostgreSQL: %s",
                        PQerrorMessage(c));
                PQfinish(c);
                return NULL;
        }
        PQsetNoticeProcessor(c, quiet_notices, NULL);
        return c;
}

void th_pg_exec_ok(PGconn *c, const char *sql)
{
        PGresult *res = PQexec(c, sql);

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                /* The message belongs to c, not to res. */
                PQclear(res);
                fail_msg("PostgreSQL: %s  in: %s", PQerrorMessage(c), sql);
        }
        PQclear(res);
}

static void put_sep(struct th_buf *b)
{
        if (b->len)
                th_buf_add(b, "|", 1);
        else
                th_buf_add(b, "", 0);
}

int th_lite_lines(sqlite3 *db, const char *sql, const char *prefix,
                  th_col_skip_fn *skip_col, struct th_lines *out)
{
        sqlite3_stmt *stmt = NULL;
        int rc, i, ncol;

        if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
                fprintf(stderr, "# SQLite %s: %s\n#   in: %s\n",
                        sqlite3_db_filename(db, "main"), sqlite3_errmsg(db),
                        sql);
                return -1;
        }
        ncol = sqlite3_column_count(stmt);
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                struct th_buf b = {0};

                if (prefix) {
                        put_sep(&b);
                        th_put_quoted(&b, (const unsigned char *)prefix,
                                      strlen(prefix));
                }
                for (i = 0; i < ncol; i++) {
                        const unsigned char *p = sqlite3_column_blob(stmt, i);
                        size_t n = (size_t)sqlite3_column_bytes(stmt, i);

                        if (skip_col && skip_col(sqlite3_column_name(stmt, i)))
                                continue;
                        put_sep(&b);
                        switch (sqlite3_column_type(stmt, i)) {
                        case SQLITE_NULL:
                                th_buf_add(&b, "NULL", 4);
                                break;
                        case SQLITE_INTEGER:
                                th_buf_addf(&b, "%lld",
                                            (long long)sqlite3_column_int64(
                                                    stmt, i));
                                break;
                        case SQLITE_FLOAT:
                                th_buf_addf(&b, "%.17g",
                                            sqlite3_column_double(stmt, i));
                                break;
                        case SQLITE_BLOB:
                                th_put_hex(&b, p, n);
                                break;
                        default:
                                p = sqlite3_column_text(stmt, i);
                                th_put_quoted(&b, p, n);
                        }
                }
                th_buf_add(&b, "", 0);
                th_lines_add(out, b.p);
        }
        if (rc != SQLITE_DONE)
                fprintf(stderr, "# SQLite %s: %s\n#   in: %s\n",
                        sqlite3_db_filename(db, "main"), sqlite3_errmsg(db),
                        sql);
        sqlite3_finalize(stmt);
        return rc == SQLITE_DONE ? 0 : -1;
}

int th_pg_lines(PGconn *c, const char *sql, struct th_lines *out)
{
        PGresult *res = PQexec(c, sql);
        int row, i, ncol;

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                fprintf(stderr, "# PostgreSQL: %s#   in: %s\n",
                        PQerrorMessage(c), sql);
                PQclear(res);
                return -1;
        }
        ncol = PQnfields(res);
        for (row = 0; row < PQntuples(res); row++) {
                struct th_buf b = {0};

                for (i = 0; i < ncol; i++) {
                        const char *v = PQgetvalue(res, row, i);
                        Oid t = PQftype(res, i);

                        put_sep(&b);
                        if (PQgetisnull(res, row, i)) {
                                th_buf_add(&b, "NULL", 4);
                        } else if (t == OID_INT2 || t == OID_INT4 ||
                                   t == OID_INT8 || t == OID_NUMERIC) {
                                th_buf_addf(&b, "%s", v);
                        } else if (t == OID_BYTEA) {
                                size_t n = 0;
                                unsigned char *p = PQunescapeBytea(
                                        (const unsigned char *)v, &n);

                                assert_non_null(p);
                                th_put_hex(&b, p, n);
                                PQfreemem(p);
                        } else {
                                th_put_quoted(&b, (const unsigned char *)v,
                                              (size_t)PQgetlength(res, row, i));
                        }
                }
                th_buf_add(&b, "", 0);
                th_lines_add(out, b.p);
        }
        PQclear(res);
        return 0;
}
