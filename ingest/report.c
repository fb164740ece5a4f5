/* report.c: `callstream report`: the public views, or the standard report,
 * read through a read-only connection of its own and rendered as CSV,
 * JSON, NDJSON, Markdown or a self-contained HTML page with SVG charts.
 *
 * The queries are built here from a fixed list of view names and fixed
 * filter fragments; every value (window specs, bounds, --top) is bound as
 * a parameter. They are written once for both dialects: `?N` placeholders
 * become `$N` for PostgreSQL. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "cs_report.h"
#include "cs_sink.h"
#include "cs_time.h"

/*
 * The views.
 */

static const struct view {
        const char *name;
        int takes;
        const char *order; /* ORDER BY, or NULL */
} views[] = {
        {"call_counts",
         CS_REPORT_TAKES_WINDOWS | CS_REPORT_TAKES_FINAL | CS_REPORT_TAKES_TOP,
         "window_spec, window_start, calls DESC, crime_type"},
        {"disposition_counts", CS_REPORT_TAKES_WINDOWS | CS_REPORT_TAKES_FINAL,
         "window_spec, window_start, crime_type, calls DESC, disposition"},
        {"recent_call_counts",
         CS_REPORT_TAKES_WINDOWS | CS_REPORT_TAKES_FINAL | CS_REPORT_TAKES_TOP,
         "window_spec, window_start, calls DESC, crime_type"},
        {"top_crime_types",
         CS_REPORT_TAKES_WINDOWS | CS_REPORT_TAKES_FINAL | CS_REPORT_TAKES_TOP,
         "window_spec, window_start, crime_rank, crime_type"},
        {"pipeline_progress", 0, "topic, kafka_partition"},
        {"watermarks", 0, "topic"},
        {"final_watermark", 0, NULL},
};

const char *cs_report_views(void)
{
        return "call_counts, disposition_counts, recent_call_counts, "
               "top_crime_types, pipeline_progress, watermarks, "
               "final_watermark";
}

static const struct view *view_find(const char *name)
{
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(views); i++)
                if (!strcmp(views[i].name, name))
                        return &views[i];
        return NULL;
}

int cs_report_view_takes(const char *name)
{
        const struct view *v;

        if (!name)
                return CS_REPORT_TAKES_WINDOWS | CS_REPORT_TAKES_FINAL |
                       CS_REPORT_TAKES_TOP;
        v = view_find(name);
        return v ? v->takes : -1;
}

int cs_report_format_parse(const char *name, enum cs_report_format *out)
{
        static const char *const names[] = {"csv", "json", "ndjson", "markdown",
                                            "html"};
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(names); i++)
                if (!strcmp(names[i], name)) {
                        *out = (enum cs_report_format)i;
                        return 0;
                }
        if (!strcmp(name, "md")) {
                *out = CS_REPORT_MARKDOWN;
                return 0;
        }
        return -1;
}

/*
 * Result tables: every value as text with its type, so that JSON gets
 * numbers as numbers and booleans as booleans on both databases.
 */

enum { V_NULL, V_INT, V_REAL, V_TEXT, V_BOOL };

struct cell {
        char *text; /* NULL for V_NULL; "0"/"1" for V_BOOL */
        int type;
};

struct table {
        const char *name;  /* "crime_types", or the view's */
        const char *title; /* for Markdown and HTML headings */
        int ncol;
        char **cols;
        size_t nrow, cap;
        struct cell *cells; /* nrow * ncol */
};

static void table_free(struct table *t)
{
        size_t i;
        int j;

        for (j = 0; j < t->ncol; j++)
                free(t->cols[j]);
        free(t->cols);
        for (i = 0; i < t->nrow * (size_t)t->ncol; i++)
                free(t->cells[i].text);
        free(t->cells);
        memset(t, 0, sizeof(*t));
}

static struct cell *cell_at(const struct table *t, size_t row, int col)
{
        return &t->cells[row * (size_t)t->ncol + (size_t)col];
}

static int col_index(const struct table *t, const char *name)
{
        int j;

        for (j = 0; j < t->ncol; j++)
                if (!strcmp(t->cols[j], name))
                        return j;
        return -1;
}

/* Columns that hold a truth value: 0/1 in SQLite, boolean in PostgreSQL. */
static int is_bool_col(const char *name)
{
        return !strcmp(name, "is_final") || !strcmp(name, "maintained") ||
               !strcmp(name, "at_end");
}

/* Columns named "_..." are the query's helpers (a rank), not shown. */
static int hidden_col(const char *name)
{
        return name[0] == '_';
}

static int table_set_cols(struct table *t, int n, const char *const *names)
{
        int j, k = 0;

        if (!(t->cols = calloc((size_t)n + 1, sizeof(*t->cols))))
                return -1;
        for (j = 0; j < n; j++) {
                if (hidden_col(names[j]))
                        continue;
                if (!(t->cols[k] = strdup(names[j])))
                        return -1;
                k++;
        }
        t->ncol = k;
        return 0;
}

/* Adds a row; cells is taken (its texts, not the array). */
static int table_add_row(struct table *t, struct cell *cells)
{
        if (t->nrow == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 64;
                struct cell *p = realloc(
                        t->cells, cap * (size_t)t->ncol * sizeof(*p) + 1);

                if (!p)
                        return -1;
                t->cells = p;
                t->cap = cap;
        }
        memcpy(cell_at(t, t->nrow, 0), cells, (size_t)t->ncol * sizeof(*cells));
        t->nrow++;
        return 0;
}

/*
 * Connections: read-only, one per rendering.
 */

struct param {
        const char *text;
        int is_int;
        long long i;
};

struct conn {
        sqlite3 *lite;
        PGconn *pq;
        char name[256];
};

static int pg_transient(PGconn *c)
{
        const char *msg = PQerrorMessage(c);

        if (PQconnectionNeedsPassword(c) || strstr(msg, "password") ||
            strstr(msg, "authentication") || strstr(msg, "does not exist"))
                return 0;
        return 1;
}

/* The first line of a libpq or SQLite message, for a one-line error. */
static void one_line(char *errstr, size_t errstr_size, const char *prefix,
                     const char *msg)
{
        size_t n = strcspn(msg, "\n");

        snprintf(errstr, errstr_size, "%s: %.*s", prefix, (int)n, msg);
}

static int conn_open(const char *db, const char *schema, struct conn *c,
                     char *errstr, size_t errstr_size)
{
        memset(c, 0, sizeof(*c));
        if (cs_sink_is_postgresql(db)) {
                /* The caller's conninfo (expanded from dbname) comes last,
                 * so it overrides these defaults. */
                static const char *const keys[] = {
                        "connect_timeout", "application_name", "dbname", NULL};
                const char *values[] = {"10", "callstream report", db, NULL};
                PGresult *res;
                int transient;

                c->pq = PQconnectdbParams(keys, values, 1);
                if (!c->pq) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                snprintf(c->name, sizeof(c->name),
                         "PostgreSQL at host %s port %s database %s",
                         PQhost(c->pq) ? PQhost(c->pq) : "?",
                         PQport(c->pq) ? PQport(c->pq) : "?",
                         PQdb(c->pq) ? PQdb(c->pq) : "?");
                if (PQstatus(c->pq) != CONNECTION_OK) {
                        char pre[300];

                        snprintf(pre, sizeof(pre), "%s: cannot connect",
                                 c->name);
                        one_line(errstr, errstr_size, pre,
                                 PQerrorMessage(c->pq));
                        transient = pg_transient(c->pq);
                        PQfinish(c->pq);
                        c->pq = NULL;
                        return transient ? CS_RETRY : -1;
                }
                res = PQexec(c->pq, "SET client_encoding TO 'UTF8'; "
                                    "SET DateStyle TO ISO");
                PQclear(res);
                if (schema) {
                        const char *p[1] = {schema};

                        /* A parameter, not an identifier spliced in. */
                        res = PQexecParams(c->pq,
                                           "SELECT set_config('search_path', "
                                           "quote_ident($1), false)",
                                           1, NULL, p, NULL, NULL, 0);
                        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                                char pre[300];

                                snprintf(pre, sizeof(pre), "%s: --schema",
                                         c->name);
                                one_line(errstr, errstr_size, pre,
                                         PQerrorMessage(c->pq));
                                PQclear(res);
                                return -1;
                        }
                        PQclear(res);
                }
                return 0;
        }
        if (schema) {
                snprintf(errstr, errstr_size,
                         "--schema is for PostgreSQL databases only");
                return -1;
        }
        if (!strncmp(db, "sqlite:", 7))
                db += 7;
        snprintf(c->name, sizeof(c->name), "%s", db);
        if (cs_sink_require_existing(db, errstr, errstr_size) < 0)
                return CS_RETRY; /* a file moved away may come back */
        /* Read-only: the report can never change the database, and its
         * statements are short reads under WAL, which never block the
         * ingest; a checkpoint in progress is waited for a while. */
        if (sqlite3_open_v2(db, &c->lite, SQLITE_OPEN_READONLY, NULL) !=
            SQLITE_OK) {
                snprintf(errstr, errstr_size, "%s: cannot open: %s", db,
                         c->lite ? sqlite3_errmsg(c->lite) : "out of memory");
                sqlite3_close(c->lite);
                c->lite = NULL;
                return CS_RETRY;
        }
        sqlite3_busy_timeout(c->lite, 10000);
        return 0;
}

static void conn_close(struct conn *c)
{
        if (c->pq) {
                PQclear(PQexec(c->pq, "ROLLBACK"));
                PQfinish(c->pq);
        }
        sqlite3_close(c->lite);
        memset(c, 0, sizeof(*c));
}

/* PostgreSQL: the whole report sees one snapshot. */
static int conn_begin(struct conn *c, char *errstr, size_t errstr_size)
{
        PGresult *res;
        int ok;

        if (!c->pq)
                return 0;
        res = PQexec(c->pq, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                            " SET LOCAL statement_timeout = '60s'");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
                char pre[300];

                snprintf(pre, sizeof(pre), "%s: BEGIN", c->name);
                one_line(errstr, errstr_size, pre, PQerrorMessage(c->pq));
                return PQstatus(c->pq) == CONNECTION_BAD ? CS_RETRY : -1;
        }
        return 0;
}

static int lite_query(struct conn *c, const char *sql,
                      const struct param *params, int n, struct table *t,
                      char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        const char *names[256];
        struct cell *row = NULL;
        int i, j, k, ncol, rc, r = -1;

        if (sqlite3_prepare_v2(c->lite, sql, -1, &st, NULL) != SQLITE_OK)
                goto fail;
        for (i = 0; i < n; i++)
                rc = params[i].is_int
                             ? sqlite3_bind_int64(st, i + 1, params[i].i)
                             : sqlite3_bind_text(st, i + 1, params[i].text, -1,
                                                 SQLITE_STATIC);
        ncol = sqlite3_column_count(st);
        if (ncol > 256)
                ncol = 256;
        for (j = 0; j < ncol; j++)
                names[j] = sqlite3_column_name(st, j);
        if (table_set_cols(t, ncol, names) < 0 ||
            !(row = calloc((size_t)ncol + 1, sizeof(*row))))
                goto oom;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                for (j = 0, k = 0; j < ncol; j++) {
                        int type = sqlite3_column_type(st, j);
                        const char *v;

                        if (hidden_col(names[j]))
                                continue;
                        row[k].type = type == SQLITE_INTEGER ? V_INT
                                      : type == SQLITE_FLOAT ? V_REAL
                                      : type == SQLITE_NULL  ? V_NULL
                                                             : V_TEXT;
                        row[k].text = NULL;
                        if (type == SQLITE_FLOAT) {
                                char buf[40];

                                snprintf(buf, sizeof(buf), "%.17g",
                                         sqlite3_column_double(st, j));
                                row[k].text = strdup(buf);
                        } else if (type != SQLITE_NULL) {
                                v = (const char *)sqlite3_column_text(st, j);
                                row[k].text = strdup(v ? v : "");
                        }
                        if (type != SQLITE_NULL && !row[k].text)
                                goto oom;
                        if (type != SQLITE_NULL && is_bool_col(names[j])) {
                                row[k].type = V_BOOL;
                                row[k].text[0] =
                                        strcmp(row[k].text, "0") ? '1' : '0';
                                row[k].text[1] = '\0';
                        }
                        k++;
                }
                if (table_add_row(t, row) < 0)
                        goto oom;
        }
        if (rc != SQLITE_DONE)
                goto fail;
        r = 0;
        goto out;
oom:
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
fail:
        snprintf(errstr, errstr_size, "%s: %s", c->name,
                 sqlite3_errmsg(c->lite));
        rc = sqlite3_errcode(c->lite);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_IOERR ||
            rc == SQLITE_CANTOPEN)
                r = CS_RETRY;
out:
        free(row);
        sqlite3_finalize(st);
        return r;
}

/* `?N` placeholders as PostgreSQL spells them. */
static char *pg_sql(const char *sql)
{
        char *out = malloc(strlen(sql) + 1), *o = out;

        if (!out)
                return NULL;
        for (; *sql; sql++)
                *o++ = *sql == '?' ? '$' : *sql;
        *o = '\0';
        return out;
}

static int pg_query(struct conn *c, const char *sql, const struct param *params,
                    int n, struct table *t, char *errstr, size_t errstr_size)
{
        const char *values[32];
        char ints[32][24];
        const char *names[256];
        struct cell *row = NULL;
        PGresult *res = NULL;
        char *q = pg_sql(sql);
        int i, j, k, ncol, r = -1;

        if (!q || n > 32)
                goto oom;
        for (i = 0; i < n; i++) {
                if (params[i].is_int) {
                        snprintf(ints[i], sizeof(ints[i]), "%lld", params[i].i);
                        values[i] = ints[i];
                } else {
                        values[i] = params[i].text;
                }
        }
        res = PQexecParams(c->pq, q, n, NULL, values, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                char pre[300];

                snprintf(pre, sizeof(pre), "%s", c->name);
                one_line(errstr, errstr_size, pre, PQerrorMessage(c->pq));
                r = PQstatus(c->pq) == CONNECTION_BAD ? CS_RETRY : -1;
                goto out;
        }
        ncol = PQnfields(res);
        if (ncol > 256)
                ncol = 256;
        for (j = 0; j < ncol; j++)
                names[j] = PQfname(res, j);
        if (table_set_cols(t, ncol, names) < 0 ||
            !(row = calloc((size_t)ncol + 1, sizeof(*row))))
                goto oom;
        for (i = 0; i < PQntuples(res); i++) {
                for (j = 0, k = 0; j < ncol; j++) {
                        Oid type = PQftype(res, j);

                        if (hidden_col(names[j]))
                                continue;
                        row[k].text = NULL;
                        row[k].type = V_NULL;
                        if (!PQgetisnull(res, i, j)) {
                                const char *v = PQgetvalue(res, i, j);

                                /* Type OIDs are fixed in pg_type.dat. */
                                row[k].type = type == 16 ? V_BOOL
                                              : type == 20 || type == 21 ||
                                                              type == 23 ||
                                                              type == 1700
                                                      ? V_INT
                                              : type == 700 || type == 701
                                                      ? V_REAL
                                                      : V_TEXT;
                                if (!(row[k].text = strdup(v)))
                                        goto oom;
                                if (row[k].type == V_BOOL)
                                        strcpy(row[k].text,
                                               v[0] == 't' ? "1" : "0");
                                /* numeric with a fraction is a number too */
                                if (type == 1700 && strchr(v, '.'))
                                        row[k].type = V_REAL;
                        }
                        k++;
                }
                if (table_add_row(t, row) < 0)
                        goto oom;
        }
        r = 0;
        goto out;
oom:
        snprintf(errstr, errstr_size, "out of memory");
out:
        free(row);
        free(q);
        PQclear(res);
        return r;
}

static int conn_query(struct conn *c, const char *sql,
                      const struct param *params, int n, struct table *t,
                      char *errstr, size_t errstr_size)
{
        if (c->pq)
                return pg_query(c, sql, params, n, t, errstr, errstr_size);
        return lite_query(c, sql, params, n, t, errstr, errstr_size);
}

/*
 * Queries.
 */

struct sql {
        char text[4096];
        size_t len;
        struct param params[32];
        int n;
        int overflow;
};

static void sql_add(struct sql *q, const char *fmt, ...) CS_PRINTF(2, 3);

static void sql_add(struct sql *q, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(q->text + q->len, sizeof(q->text) - q->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(q->text) - q->len)
                q->overflow = 1;
        else
                q->len += (size_t)n;
}

/* Binds a text value and returns its placeholder number. */
static int bind_text(struct sql *q, const char *text)
{
        if (q->n == 32) {
                q->overflow = 1;
                return 1;
        }
        q->params[q->n].text = text;
        q->params[q->n].is_int = 0;
        return ++q->n;
}

static int bind_int(struct sql *q, long long v)
{
        if (q->n == 32) {
                q->overflow = 1;
                return 1;
        }
        q->params[q->n].is_int = 1;
        q->params[q->n].i = v;
        q->params[q->n].text = NULL;
        return ++q->n;
}

/* The filter's bounds as text, kept alive for the statement. */
struct bounds {
        char from[CS_TS_BUFSZ], to[CS_TS_BUFSZ], since[CS_TS_BUFSZ];
        int has_since; /* --last: 1 a bound, -1 no watermark: nothing */
};

/* " AND ..." for the options that apply: window specs, bounds, finality.
 */
static void add_filters(struct sql *q, const struct cs_report_opts *o,
                        const struct bounds *b, int takes)
{
        int i;

        if (takes & CS_REPORT_TAKES_WINDOWS) {
                if (o->nwindows > 0) {
                        sql_add(q, " AND window_spec IN (");
                        for (i = 0; i < o->nwindows; i++)
                                sql_add(q, "%s?%d", i ? ", " : "",
                                        bind_text(q, o->windows[i]));
                        sql_add(q, ")");
                }
                if (o->has_from)
                        sql_add(q, " AND window_start >= ?%d",
                                bind_text(q, b->from));
                if (o->has_to)
                        sql_add(q, " AND window_start < ?%d",
                                bind_text(q, b->to));
                if (b->has_since > 0)
                        sql_add(q, " AND window_end > ?%d",
                                bind_text(q, b->since));
                else if (b->has_since < 0)
                        sql_add(q, " AND 1 = 0");
        }
        if ((takes & CS_REPORT_TAKES_FINAL) && o->final_only)
                sql_add(q, " AND is_final");
}

/* The rows of a view (or a report table over it) that the options keep;
 * with --top per window the N crime types with most calls (ties share a
 * rank, as RANK() does). */
static int run_view(struct conn *c, const struct cs_report_opts *o,
                    const struct bounds *b, const char *select,
                    const char *from, const char *group, const char *order,
                    int takes, int top, struct table *t, char *errstr,
                    size_t errstr_size)
{
        struct sql q = {0};

        if (top > 0 && !strcmp(from, "top_crime_types")) {
                sql_add(&q, "SELECT %s FROM %s WHERE crime_rank <= ?%d", select,
                        from, bind_int(&q, top));
                top = 0;
        } else if (top > 0) {
                sql_add(&q,
                        "SELECT * FROM (SELECT %s, RANK() OVER (PARTITION BY "
                        "window_spec, window_start ORDER BY calls DESC) AS "
                        "_rank FROM %s WHERE 1 = 1",
                        select, from);
        } else {
                sql_add(&q, "SELECT %s FROM %s WHERE 1 = 1", select, from);
        }
        add_filters(&q, o, b, takes);
        if (group)
                sql_add(&q, " GROUP BY %s", group);
        if (top > 0)
                sql_add(&q, ") AS ranked WHERE _rank <= ?%d",
                        bind_int(&q, top));
        if (order)
                sql_add(&q, " ORDER BY %s", order);
        if (q.overflow) {
                snprintf(errstr, errstr_size, "report query too long");
                return -1;
        }
        return conn_query(c, q.text, q.params, q.n, t, errstr, errstr_size);
}

/* --last: the newest watermark less the duration, as a bound. */
static int find_since(struct conn *c, const struct cs_report_opts *o,
                      struct bounds *b, char *errstr, size_t errstr_size)
{
        struct table t = {0};
        struct cell *v;
        int64_t wm;
        int32_t usec;
        int r;

        r = conn_query(c, "SELECT MAX(watermark) AS watermark FROM watermarks",
                       NULL, 0, &t, errstr, errstr_size);
        if (r < 0)
                return r;
        b->has_since = -1;
        if (t.nrow == 1 && (v = cell_at(&t, 0, 0))->text &&
            cs_time_parse(v->text, strlen(v->text), &wm, &usec) == 0) {
                cs_time_format_bound(wm - o->last, b->since);
                b->has_since = 1;
        }
        table_free(&t);
        return 0;
}

#define N_TABLES 3

struct report {
        struct table t[N_TABLES];
        int n;
        int standard;
        char chart_spec[64];
        char generated[CS_TS_BUFSZ];
};

static void report_free(struct report *rep)
{
        int i;

        for (i = 0; i < N_TABLES; i++)
                table_free(&rep->t[i]);
}

static int query_report(struct conn *c, const struct cs_report_opts *o,
                        struct report *rep, char *errstr, size_t errstr_size)
{
        struct bounds b = {0};
        int r;

        if (o->has_from)
                cs_time_format_bound(o->from, b.from);
        if (o->has_to)
                cs_time_format_bound(o->to, b.to);
        if ((r = conn_begin(c, errstr, errstr_size)) < 0)
                return r;
        if (o->last > 0 && (r = find_since(c, o, &b, errstr, errstr_size)) < 0)
                return r;
        if (o->view) {
                const struct view *v = view_find(o->view);

                if (!v) {
                        snprintf(errstr, errstr_size, "unknown view %s",
                                 o->view);
                        return -1;
                }
                rep->n = 1;
                rep->t[0].name = v->name;
                rep->t[0].title = v->name;
                return run_view(c, o, &b, "*", v->name, NULL, v->order,
                                v->takes, o->top, &rep->t[0], errstr,
                                errstr_size);
        }
        rep->standard = 1;
        rep->n = 3;
        rep->t[0].name = "crime_types";
        rep->t[0].title = "Calls per crime type";
        rep->t[1].name = "dispositions";
        rep->t[1].title = "Calls per disposition";
        rep->t[2].name = "progress";
        rep->t[2].title = "Where the ingest stands";
        r = run_view(c, o, &b,
                     "window_spec, window_start, window_end, crime_type, "
                     "calls, late_calls, is_final",
                     "call_counts", NULL,
                     "window_spec, window_start, calls DESC, crime_type",
                     CS_REPORT_TAKES_WINDOWS | CS_REPORT_TAKES_FINAL, o->top,
                     &rep->t[0], errstr, errstr_size);
        if (r < 0)
                return r;
        r = run_view(c, o, &b,
                     "window_spec, window_start, window_end, disposition, "
                     "disposition_description, CAST(SUM(calls) AS BIGINT) AS "
                     "calls, CAST(SUM(late_calls) AS BIGINT) AS late_calls, "
                     "is_final",
                     "disposition_counts",
                     "window_spec, window_start, window_end, disposition, "
                     "disposition_description, is_final",
                     "window_spec, window_start, calls DESC, disposition",
                     CS_REPORT_TAKES_WINDOWS | CS_REPORT_TAKES_FINAL, 0,
                     &rep->t[1], errstr, errstr_size);
        if (r < 0)
                return r;
        return run_view(c, o, &b,
                        "topic, MIN(watermark) AS watermark, MAX(max_event_ts) "
                        "AS max_event_ts, CAST(SUM(lag) AS BIGINT) AS lag, "
                        "CAST(SUM(calls) AS BIGINT) AS calls, "
                        "CAST(SUM(duplicates) AS BIGINT) AS duplicates, "
                        "CAST(SUM(rejected) AS BIGINT) AS rejected, "
                        "CAST(SUM(late) AS BIGINT) AS late, MAX(last_batch_at) "
                        "AS last_batch_at",
                        "pipeline_progress", "topic", "topic", 0, 0, &rep->t[2],
                        errstr, errstr_size);
}

/*
 * Output.
 */

static int is_number(int type)
{
        return type == V_INT || type == V_REAL;
}

/* A cell as plain text: NULL empty, booleans true/false. */
static const char *plain(const struct cell *v)
{
        if (v->type == V_NULL)
                return "";
        if (v->type == V_BOOL)
                return v->text[0] == '1' ? "true" : "false";
        return v->text;
}

static void csv_field(FILE *f, const char *s)
{
        if (!s[strcspn(s, ",\"\r\n")]) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"')
                        fputc('"', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

/* RFC 4180: CRLF line ends, a header row. The standard report is one
 * table: a "table" column, then the union of its tables' columns. */
static void put_csv(FILE *f, const struct report *rep)
{
        const char *cols[64];
        int ncol = 0, i, j, k;
        size_t r;

        if (rep->standard)
                cols[ncol++] = "table";
        for (i = 0; i < rep->n; i++)
                for (j = 0; j < rep->t[i].ncol; j++) {
                        for (k = 0; k < ncol; k++)
                                if (!strcmp(cols[k], rep->t[i].cols[j]))
                                        break;
                        if (k == ncol && ncol < 64)
                                cols[ncol++] = rep->t[i].cols[j];
                }
        for (k = 0; k < ncol; k++) {
                if (k)
                        fputc(',', f);
                csv_field(f, cols[k]);
        }
        fputs("\r\n", f);
        for (i = 0; i < rep->n; i++) {
                const struct table *t = &rep->t[i];

                for (r = 0; r < t->nrow; r++) {
                        for (k = 0; k < ncol; k++) {
                                if (k)
                                        fputc(',', f);
                                if (rep->standard && k == 0) {
                                        csv_field(f, t->name);
                                        continue;
                                }
                                j = col_index(t, cols[k]);
                                if (j >= 0)
                                        csv_field(f, plain(cell_at(t, r, j)));
                        }
                        fputs("\r\n", f);
                }
        }
}

static void json_string(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;

                if (ch == '"' || ch == '\\')
                        fprintf(f, "\\%c", ch);
                else if (ch == '\n')
                        fputs("\\n", f);
                else if (ch == '\r')
                        fputs("\\r", f);
                else if (ch == '\t')
                        fputs("\\t", f);
                else if (ch < 0x20 || ch == 0x7f)
                        fprintf(f, "\\u%04x", ch);
                /* so that JSON inside a page cannot close a <script> */
                else if (ch == '<' || ch == '>' || ch == '&')
                        fprintf(f, "\\u%04x", ch);
                else
                        fputc(ch, f);
        }
        fputc('"', f);
}

static void json_value(FILE *f, const struct cell *v)
{
        double d;

        switch (v->type) {
        case V_NULL:
                fputs("null", f);
                break;
        case V_BOOL:
                fputs(v->text[0] == '1' ? "true" : "false", f);
                break;
        case V_INT:
                fputs(v->text, f);
                break;
        case V_REAL:
                d = strtod(v->text, NULL);
                if (isfinite(d))
                        fputs(v->text, f);
                else
                        fputs("null", f);
                break;
        default:
                json_string(f, v->text);
        }
}

static void json_row(FILE *f, const struct table *t, size_t r,
                     const char *table_name)
{
        int j;

        fputc('{', f);
        if (table_name) {
                fputs("\"table\":", f);
                json_string(f, table_name);
        }
        for (j = 0; j < t->ncol; j++) {
                if (j || table_name)
                        fputc(',', f);
                json_string(f, t->cols[j]);
                fputc(':', f);
                json_value(f, cell_at(t, r, j));
        }
        fputc('}', f);
}

/* A view: an array of objects. The standard report: an object with an
 * array per table. */
static void put_json(FILE *f, const struct report *rep)
{
        int i;
        size_t r;

        if (rep->standard)
                fputc('{', f);
        for (i = 0; i < rep->n; i++) {
                const struct table *t = &rep->t[i];

                if (rep->standard) {
                        fputs(i ? ",\n" : "\n", f);
                        json_string(f, t->name);
                        fputc(':', f);
                }
                fputc('[', f);
                for (r = 0; r < t->nrow; r++) {
                        fputs(r ? ",\n" : "\n", f);
                        json_row(f, t, r, NULL);
                }
                fputs("\n]", f);
        }
        fputs(rep->standard ? "\n}\n" : "\n", f);
}

static void put_ndjson(FILE *f, const struct report *rep)
{
        int i;
        size_t r;

        for (i = 0; i < rep->n; i++)
                for (r = 0; r < rep->t[i].nrow; r++) {
                        json_row(f, &rep->t[i], r,
                                 rep->standard ? rep->t[i].name : NULL);
                        fputc('\n', f);
                }
}

/* HTML's five: text and attribute values alike. */
static void html_text(FILE *f, const char *s)
{
        for (; *s; s++)
                switch (*s) {
                case '&':
                        fputs("&amp;", f);
                        break;
                case '<':
                        fputs("&lt;", f);
                        break;
                case '>':
                        fputs("&gt;", f);
                        break;
                case '"':
                        fputs("&quot;", f);
                        break;
                case '\'':
                        fputs("&#39;", f);
                        break;
                default:
                        fputc(*s, f);
                }
}

/* A Markdown table cell: what a renderer would take for markup or HTML is
 * escaped, line breaks become <br>. */
static void md_cell(FILE *f, const char *s)
{
        for (; *s; s++)
                switch (*s) {
                case '&':
                        fputs("&amp;", f);
                        break;
                case '<':
                        fputs("&lt;", f);
                        break;
                case '>':
                        fputs("&gt;", f);
                        break;
                case '\n':
                        fputs("<br>", f);
                        break;
                case '\r':
                        fputs("&#13;", f);
                        break;
                case '\\':
                case '|':
                case '*':
                case '_':
                case '`':
                case '[':
                case ']':
                        fputc('\\', f);
                        fputc(*s, f);
                        break;
                default:
                        fputc(*s, f);
                }
}

static void put_markdown(FILE *f, const struct report *rep)
{
        int i, j;
        size_t r;

        if (rep->standard)
                fprintf(f, "# callstream report\n\nGenerated %s UTC.\n\n",
                        rep->generated);
        for (i = 0; i < rep->n; i++) {
                const struct table *t = &rep->t[i];

                if (rep->standard) {
                        fputs("## ", f);
                        md_cell(f, t->title);
                        fputs("\n\n", f);
                }
                for (j = 0; j < t->ncol; j++) {
                        fputs("| ", f);
                        fputs(t->cols[j], f); /* identifiers */
                        fputc(' ', f);
                }
                fputs("|\n", f);
                for (j = 0; j < t->ncol; j++)
                        fputs(t->nrow && is_number(cell_at(t, 0, j)->type)
                                      ? "|---:"
                                      : "|---",
                              f);
                fputs("|\n", f);
                for (r = 0; r < t->nrow; r++) {
                        for (j = 0; j < t->ncol; j++) {
                                fputs("| ", f);
                                md_cell(f, plain(cell_at(t, r, j)));
                                fputc(' ', f);
                        }
                        fputs("|\n", f);
                }
                if (i + 1 < rep->n)
                        fputc('\n', f);
        }
}

static void html_table(FILE *f, const struct table *t)
{
        int j;
        size_t r;

        fprintf(f, "<table id=\"t-%s\">\n<thead><tr>", t->name);
        for (j = 0; j < t->ncol; j++) {
                fputs("<th>", f);
                html_text(f, t->cols[j]);
                fputs("</th>", f);
        }
        fputs("</tr></thead>\n<tbody>\n", f);
        for (r = 0; r < t->nrow; r++) {
                fputs("<tr>", f);
                for (j = 0; j < t->ncol; j++) {
                        const struct cell *v = cell_at(t, r, j);

                        fputs(is_number(v->type) ? "<td class=\"n\">" : "<td>",
                              f);
                        html_text(f, plain(v));
                        fputs("</td>", f);
                }
                fputs("</tr>\n", f);
        }
        fputs("</tbody>\n</table>\n", f);
}

/* A label and its total, for the charts. */
struct bar {
        const char *label;
        const char *detail; /* may be NULL */
        long long value;
};

/* Adds value to label's bar (labels are borrowed from the tables). */
static int bar_add(struct bar **bars, size_t *n, size_t *cap, const char *label,
                   const char *detail, long long value)
{
        size_t i;

        for (i = 0; i < *n; i++)
                if (!strcmp((*bars)[i].label, label)) {
                        (*bars)[i].value += value;
                        return 0;
                }
        if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 32;
                struct bar *p = realloc(*bars, c * sizeof(*p));

                if (!p)
                        return -1;
                *bars = p;
                *cap = c;
        }
        (*bars)[*n].label = label;
        (*bars)[*n].detail = detail;
        (*bars)[*n].value = value;
        (*n)++;
        return 0;
}

static int bar_cmp(const void *a, const void *b)
{
        const struct bar *x = a, *y = b;

        if (x->value != y->value)
                return x->value > y->value ? -1 : 1;
        return strcmp(x->label, y->label);
}

/* The totals per key column of t's rows of the chart's window spec;
 * sorted by value unless in_order (then in the rows' order). */
static struct bar *totals(const struct table *t, const char *spec,
                          const char *key, const char *detail, int in_order,
                          size_t *n)
{
        int js = col_index(t, "window_spec"), jk = col_index(t, key),
            jc = col_index(t, "calls"), jd = detail ? col_index(t, detail) : -1;
        struct bar *bars = NULL;
        size_t r, cap = 0;

        *n = 0;
        if (js < 0 || jk < 0 || jc < 0)
                return NULL;
        for (r = 0; r < t->nrow; r++) {
                const struct cell *c = cell_at(t, r, jc);

                if (strcmp(plain(cell_at(t, r, js)), spec))
                        continue;
                if (bar_add(&bars, n, &cap, plain(cell_at(t, r, jk)),
                            jd >= 0 ? plain(cell_at(t, r, jd)) : NULL,
                            c->text ? atoll(c->text) : 0) < 0) {
                        free(bars);
                        *n = 0;
                        return NULL;
                }
        }
        if (!in_order && *n)
                qsort(bars, *n, sizeof(*bars), bar_cmp);
        return bars;
}

static const char *const palette[] = {
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
        "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
};

/* Horizontal bars, one per crime type (class "bar"). */
static void svg_bars(FILE *f, const struct bar *bars, size_t n)
{
        long long max = 1;
        size_t i;
        int h = 24 * (int)n + 10;

        for (i = 0; i < n; i++)
                if (bars[i].value > max)
                        max = bars[i].value;
        fprintf(f,
                "<svg id=\"chart-crime-types\" class=\"chart\" "
                "xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" "
                "height=\"%d\" viewBox=\"0 0 900 %d\" role=\"img\">\n",
                h, h);
        for (i = 0; i < n; i++) {
                int y = 5 + 24 * (int)i;
                double w = 540.0 * (double)bars[i].value / (double)max;

                fprintf(f, "<text x=\"250\" y=\"%d\" text-anchor=\"end\">",
                        y + 15);
                html_text(f, bars[i].label);
                fprintf(f,
                        "</text><rect class=\"bar\" x=\"260\" y=\"%d\" "
                        "width=\"%.1f\" height=\"18\" fill=\"%s\"><title>",
                        y, w < 1 ? 1 : w, palette[0]);
                html_text(f, bars[i].label);
                fprintf(f,
                        ": %lld</title></rect><text x=\"%.1f\" y=\"%d\">%lld"
                        "</text>\n",
                        bars[i].value, 266 + w, y + 15, bars[i].value);
        }
        fputs("</svg>\n", f);
}

/* One bar split by disposition (class "seg"), with a legend. */
static void svg_stack(FILE *f, const struct bar *bars, size_t n)
{
        long long total = 0;
        double x = 10;
        size_t i;
        int h = 70 + 20 * (int)n;

        for (i = 0; i < n; i++)
                total += bars[i].value;
        if (total <= 0)
                total = 1;
        fprintf(f,
                "<svg id=\"chart-dispositions\" class=\"chart\" "
                "xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" "
                "height=\"%d\" viewBox=\"0 0 900 %d\" role=\"img\">\n",
                h, h);
        for (i = 0; i < n; i++) {
                double w = 880.0 * (double)bars[i].value / (double)total;

                fprintf(f,
                        "<rect class=\"seg\" x=\"%.2f\" y=\"10\" "
                        "width=\"%.2f\" height=\"36\" fill=\"%s\"><title>",
                        x, w, palette[i % CS_ARRAY_SIZE(palette)]);
                html_text(f, bars[i].label);
                if (bars[i].detail) {
                        fputs(" (", f);
                        html_text(f, bars[i].detail);
                        fputc(')', f);
                }
                fprintf(f, ": %lld</title></rect>\n", bars[i].value);
                x += w;
        }
        for (i = 0; i < n; i++) {
                int y = 60 + 20 * (int)i;

                fprintf(f,
                        "<rect x=\"10\" y=\"%d\" width=\"12\" height=\"12\" "
                        "fill=\"%s\"/><text x=\"28\" y=\"%d\">",
                        y, palette[i % CS_ARRAY_SIZE(palette)], y + 11);
                html_text(f, *bars[i].label ? bars[i].label : "(none)");
                if (bars[i].detail) {
                        fputs(" \xe2\x80\x94 ", f);
                        html_text(f, bars[i].detail);
                }
                fprintf(f, ": %lld (%.1f%%)</text>\n", bars[i].value,
                        100.0 * (double)bars[i].value / (double)total);
        }
        fputs("</svg>\n", f);
}

/* Calls per window over time: a polyline, a point per window. */
static void svg_line(FILE *f, const struct bar *pts, size_t n)
{
        long long max = 1;
        size_t i;

        for (i = 0; i < n; i++)
                if (pts[i].value > max)
                        max = pts[i].value;
        fputs("<svg id=\"chart-over-time\" class=\"chart\" "
              "xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" "
              "height=\"260\" viewBox=\"0 0 900 260\" role=\"img\">\n"
              "<line x1=\"60\" y1=\"220\" x2=\"890\" y2=\"220\" "
              "stroke=\"#888\"/><line x1=\"60\" y1=\"10\" x2=\"60\" "
              "y2=\"220\" stroke=\"#888\"/>\n",
              f);
        fprintf(f,
                "<text x=\"55\" y=\"20\" text-anchor=\"end\">%lld</text>"
                "<text x=\"55\" y=\"220\" text-anchor=\"end\">0</text>\n",
                max);
        fputs("<polyline class=\"line\" fill=\"none\" stroke=\"#4e79a7\" "
              "stroke-width=\"2\" points=\"",
              f);
        for (i = 0; i < n; i++)
                fprintf(f, "%s%.1f,%.1f", i ? " " : "",
                        60 + (n > 1 ? 830.0 * (double)i / (double)(n - 1)
                                    : 415.0),
                        220 - 210.0 * (double)pts[i].value / (double)max);
        fputs("\"/>\n", f);
        for (i = 0; i < n; i++) {
                fprintf(f,
                        "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" "
                        "r=\"3\" fill=\"#4e79a7\"><title>",
                        60 + (n > 1 ? 830.0 * (double)i / (double)(n - 1)
                                    : 415.0),
                        220 - 210.0 * (double)pts[i].value / (double)max);
                html_text(f, pts[i].label);
                fprintf(f, ": %lld</title></circle>\n", pts[i].value);
        }
        if (n) {
                fputs("<text x=\"60\" y=\"245\">", f);
                html_text(f, pts[0].label);
                fputs("</text><text x=\"890\" y=\"245\" "
                      "text-anchor=\"end\">",
                      f);
                html_text(f, pts[n - 1].label);
                fputs("</text>\n", f);
        }
        fputs("</svg>\n", f);
}

static const char html_style[] =
        "body{font-family:sans-serif;margin:1.5em;color:#222}"
        "table{border-collapse:collapse;margin:0 0 2em}"
        "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;"
        "white-space:pre-wrap}"
        "td.n{text-align:right}th{background:#f0f0f0}"
        "svg.chart{display:block;margin:0 0 1.5em;font-size:12px}"
        ".summary{font-size:1.1em}";

static void put_charts(FILE *f, const struct report *rep)
{
        struct bar *bars;
        size_t n;

        fputs("<h2>Calls per crime type (", f);
        html_text(f, rep->chart_spec);
        fputs(" windows)</h2>\n", f);
        bars = totals(&rep->t[0], rep->chart_spec, "crime_type", NULL, 0, &n);
        svg_bars(f, bars, n);
        free(bars);
        fputs("<h2>How the calls ended (", f);
        html_text(f, rep->chart_spec);
        fputs(" windows)</h2>\n", f);
        bars = totals(&rep->t[1], rep->chart_spec, "disposition",
                      "disposition_description", 0, &n);
        svg_stack(f, bars, n);
        free(bars);
        fputs("<h2>Calls per ", f);
        html_text(f, rep->chart_spec);
        fputs(" window</h2>\n", f);
        bars = totals(&rep->t[1], rep->chart_spec, "window_start", NULL, 1, &n);
        svg_line(f, bars, n);
        free(bars);
}

/* The ingest's position in one sentence, from the progress table. */
static void put_summary(FILE *f, const struct table *t)
{
        int jw = col_index(t, "watermark"), jl = col_index(t, "lag"),
            jr = col_index(t, "rejected"), jt = col_index(t, "late");
        long long lag = 0, rejected = 0, late = 0;
        const char *wm = NULL;
        size_t r;

        for (r = 0; r < t->nrow; r++) {
                const char *w = plain(cell_at(t, r, jw));

                if (*w && (!wm || strcmp(w, wm) < 0))
                        wm = w;
                lag += atoll(plain(cell_at(t, r, jl)));
                rejected += atoll(plain(cell_at(t, r, jr)));
                late += atoll(plain(cell_at(t, r, jt)));
        }
        fputs("<p class=\"summary\">Watermark ", f);
        html_text(f, wm ? wm : "none yet");
        fprintf(f,
                " &middot; lag %lld messages &middot; %lld rejected "
                "&middot; %lld late</p>\n",
                lag, rejected, late);
}

static void put_html(FILE *f, const struct report *rep)
{
        int i;

        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
              "<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width\">\n"
              "<title>callstream report</title>\n<style>",
              f);
        fputs(html_style, f);
        fputs("</style>\n</head>\n<body>\n<h1>callstream report", f);
        if (!rep->standard) {
                fputs(": ", f);
                html_text(f, rep->t[0].name);
        }
        fprintf(f, "</h1>\n<p>Generated %s UTC.</p>\n", rep->generated);
        if (rep->standard) {
                put_summary(f, &rep->t[2]);
                put_charts(f, rep);
        }
        for (i = 0; i < rep->n; i++) {
                if (rep->standard) {
                        fputs("<h2>", f);
                        html_text(f, rep->t[i].title);
                        fputs("</h2>\n", f);
                }
                html_table(f, &rep->t[i]);
        }
        fputs("</body>\n</html>\n", f);
}

int cs_report_render(const struct cs_report_opts *o, FILE *out, char *errstr,
                     size_t errstr_size)
{
        struct report rep = {0};
        struct conn c;
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = NULL;
        int r;

        cs_time_format((int64_t)time(NULL), 0, rep.generated);
        if ((r = conn_open(o->db, o->schema, &c, errstr, errstr_size)) < 0)
                return r;
        r = query_report(&c, o, &rep, errstr, errstr_size);
        conn_close(&c);
        if (r < 0)
                goto out;
        if (rep.standard) {
                int js = col_index(&rep.t[0], "window_spec");

                if (o->nwindows > 0)
                        snprintf(rep.chart_spec, sizeof(rep.chart_spec), "%s",
                                 o->windows[0]);
                else if (rep.t[0].nrow > 0 && js >= 0)
                        snprintf(rep.chart_spec, sizeof(rep.chart_spec), "%s",
                                 plain(cell_at(&rep.t[0], 0, js)));
        }
        /* Rendered whole first, so a failure writes nothing. */
        if (!(mem = open_memstream(&buf, &len))) {
                snprintf(errstr, errstr_size, "out of memory");
                r = -1;
                goto out;
        }
        switch (o->format) {
        case CS_REPORT_CSV:
                put_csv(mem, &rep);
                break;
        case CS_REPORT_JSON:
                put_json(mem, &rep);
                break;
        case CS_REPORT_NDJSON:
                put_ndjson(mem, &rep);
                break;
        case CS_REPORT_MARKDOWN:
                put_markdown(mem, &rep);
                break;
        case CS_REPORT_HTML:
                put_html(mem, &rep);
                break;
        }
        if (fclose(mem) != 0) {
                snprintf(errstr, errstr_size, "out of memory");
                r = -1;
                goto out;
        }
        if (len && fwrite(buf, 1, len, out) != len) {
                snprintf(errstr, errstr_size, "writing the report: %s",
                         strerror(errno));
                r = -1;
        }
out:
        free(buf);
        report_free(&rep);
        return r;
}
