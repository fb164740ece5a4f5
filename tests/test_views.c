/* test_views.c: the rolling views recent_call_counts and top_crime_types and
 * the settings table that tunes them (issue 4), in SQLite and in a
 * PostgreSQL 15 server the test starts itself, against what the test works
 * out on its own.
 *
 * Two scenarios run in each dialect. "direct": a database made by
 * `callstream migrate`, with window_counts and kafka_offsets rows written
 * here, stepped through watermarks (none, several topics and partitions, a
 * fraction, exact window bounds) and settings (recent_hours, top_n, a
 * missing row, values the table must refuse, a second migrate). "sample":
 * the 700 real calls ($CALLSTREAM_DATA) produced to `callstream broker`
 * and ingested with three window specs. Expected rows come from the test
 * alone: its own reading of call_counts (direct), or its own windows,
 * watermark and late counts from the input file with jansson (sample);
 * row counts of the direct scenario were also worked out by hand. Every
 * view row checked is kept in a transcript, and PostgreSQL's transcripts
 * must equal SQLite's line for line.
 *
 * The server runs from a temporary folder, trusting only its Unix socket
 * (through runuser as postgres when the test is root); the group teardown,
 * a watchdog and the fatal-signal handlers stop it and delete the folder.
 * E2E_KEEP=1 keeps the folder; VIEWS_TEST_FILTER='test_pg*' runs some
 * tests (the PostgreSQL ones compare with the SQLite ones, so run those
 * first). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "model.h"
#include "pgutil.h"

/* Safety nets only: nothing here asserts on speed. */
#define WATCHDOG_S 600

#define MAX_SHOWN    10 /* differences printed per comparison */
#define SAMPLE_FILE  "police-department-calls-for-service.sample.json"
#define SAMPLE_TOPIC "sample"
#define USEC         INT64_C(1000000)
#define HOUR_US      (3600 * USEC)

/* The ingest's default allowed lateness, which the sample runs with. */
#define LATENESS_US HOUR_US

struct vt {
        char dir[PATH_MAX]; /* everything of this run */
        char *bin;          /* callstream */
        char *data_dir;     /* the real sample */
        struct th_broker broker;
        int produced; /* the sample is in SAMPLE_TOPIC */

        /* PostgreSQL: 1 running, -1 failed to start. */
        int pg_state;
        struct th_pg pg;

        /* What SQLite showed, for PostgreSQL to match (n == 0: not run). */
        struct th_lines lite_direct;
        struct th_lines lite_sample;
};

static char *path_in(const struct vt *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/*
 * One database, either dialect, queried as rows of text.
 */

struct db {
        const char *name; /* "sqlite" or "postgresql" */
        int pg;
        char *target; /* what --db gets */
        sqlite3 *lite;
        PGconn *conn;
};

/* A query's rows: cell[row * ncol + col], NULL as "NULL". */
struct table {
        size_t nrow;
        size_t ncol;
        char **cell;
};

static void table_free(struct table *t)
{
        size_t i;

        for (i = 0; i < t->nrow * t->ncol; i++)
                free(t->cell[i]);
        free(t->cell);
        memset(t, 0, sizeof(*t));
}

static const char *cell(const struct table *t, size_t row, size_t col)
{
        return t->cell[row * t->ncol + col];
}

/* Runs sql (any number of statements, no rows wanted). Returns 0, or -1
 * with the database's message in err. */
static int db_try(struct db *d, const char *sql, char *err, size_t size)
{
        int r = 0;

        err[0] = '\0';
        if (d->pg) {
                PGresult *res = PQexec(d->conn, sql);

                if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                        snprintf(err, size, "%s", PQerrorMessage(d->conn));
                        r = -1;
                }
                PQclear(res);
        } else {
                char *msg = NULL;

                if (sqlite3_exec(d->lite, sql, NULL, NULL, &msg) != SQLITE_OK) {
                        snprintf(err, size, "%s",
                                 msg ? msg : sqlite3_errmsg(d->lite));
                        r = -1;
                }
                sqlite3_free(msg);
        }
        return r;
}

/* Runs sql or fails the test. */
static void db_ok(struct db *d, const char *sql)
{
        char err[1024];

        if (db_try(d, sql, err, sizeof(err)))
                fail_msg("%s: %s  in: %s", d->name, err, sql);
}

/* Runs a query; fails the test when the database refuses it. */
static void db_query(struct db *d, const char *sql, struct table *t)
{
        size_t cap = 0, i;

        memset(t, 0, sizeof(*t));
        if (d->pg) {
                PGresult *res = PQexec(d->conn, sql);
                int row, col;

                if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                        PQclear(res);
                        fail_msg("%s: %s  in: %s", d->name,
                                 PQerrorMessage(d->conn), sql);
                }
                t->nrow = (size_t)PQntuples(res);
                t->ncol = (size_t)PQnfields(res);
                t->cell = th_malloc(t->nrow * t->ncol * sizeof(char *));
                for (row = 0; row < PQntuples(res); row++)
                        for (col = 0; col < PQnfields(res); col++)
                                t->cell[(size_t)row * t->ncol + (size_t)col] =
                                        th_strdup(PQgetisnull(res, row, col)
                                                          ? "NULL"
                                                          : PQgetvalue(res, row,
                                                                       col));
                PQclear(res);
        } else {
                sqlite3_stmt *stmt = NULL;
                int rc;

                if (sqlite3_prepare_v2(d->lite, sql, -1, &stmt, NULL) !=
                    SQLITE_OK)
                        fail_msg("%s: %s  in: %s", d->name,
                                 sqlite3_errmsg(d->lite), sql);
                t->ncol = (size_t)sqlite3_column_count(stmt);
                while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                        if ((t->nrow + 1) * t->ncol > cap) {
                                cap = (t->nrow + 1) * t->ncol * 2;
                                t->cell = th_realloc(t->cell,
                                                     cap * sizeof(char *));
                        }
                        for (i = 0; i < t->ncol; i++) {
                                const unsigned char *v =
                                        sqlite3_column_text(stmt, (int)i);

                                t->cell[t->nrow * t->ncol + i] =
                                        th_strdup(v ? (const char *)v : "NULL");
                        }
                        t->nrow++;
                }
                if (rc != SQLITE_DONE) {
                        char *msg = th_strdup(sqlite3_errmsg(d->lite));

                        sqlite3_finalize(stmt);
                        fail_msg("%s: %s  in: %s", d->name, msg, sql);
                }
                sqlite3_finalize(stmt);
        }
}

/* The query's rows as sorted "a|b|c" lines. */
static void db_lines(struct db *d, const char *sql, struct th_lines *out)
{
        struct table t;
        size_t row, col;

        db_query(d, sql, &t);
        for (row = 0; row < t.nrow; row++) {
                struct th_buf b = {0};

                th_buf_add(&b, "", 0);
                for (col = 0; col < t.ncol; col++)
                        th_buf_addf(&b, "%s%s", col ? "|" : "",
                                    cell(&t, row, col));
                th_lines_add(out, b.p);
        }
        table_free(&t);
        th_lines_sort(out);
}

/* The single value of a query, copied; the caller frees it. */
static char *db_value(struct db *d, const char *sql)
{
        struct table t;
        char *v;

        db_query(d, sql, &t);
        if (t.nrow != 1 || t.ncol != 1)
                fail_msg("%s: %zu rows of %zu columns, expected one value, "
                         "in: %s",
                         d->name, t.nrow, t.ncol, sql);
        v = th_strdup(cell(&t, 0, 0));
        table_free(&t);
        return v;
}

static void db_close(struct db *d)
{
        if (d->lite)
                sqlite3_close(d->lite);
        if (d->conn)
                PQfinish(d->conn);
        free(d->target);
        memset(d, 0, sizeof(*d));
}

/* The views' rows, rendered alike in both dialects: window bounds as
 * 'YYYY-MM-DD HH:MM:SS', is_final as 0/1. */
#define PG_TS(col)  "to_char(" col ", 'YYYY-MM-DD HH24:MI:SS')"
#define LITE_WINDOW "window_spec, window_start, window_end, "
#define PG_WINDOW                                                              \
        "window_spec, " PG_TS("window_start") ", " PG_TS("window_end") ", "
#define COUNT_COLS "crime_type, calls, late_calls, "
#define TOP_COLS   "crime_rank, crime_type, calls, "

static const char *const q_counts[2] = {
        "SELECT " LITE_WINDOW COUNT_COLS "is_final FROM call_counts",
        "SELECT " PG_WINDOW COUNT_COLS "is_final::int FROM call_counts"};
static const char *const q_recent[2] = {
        "SELECT " LITE_WINDOW COUNT_COLS "is_final FROM recent_call_counts",
        "SELECT " PG_WINDOW COUNT_COLS "is_final::int FROM recent_call_counts"};
static const char *const q_top[2] = {
        "SELECT " LITE_WINDOW TOP_COLS "is_final FROM top_crime_types",
        "SELECT " PG_WINDOW TOP_COLS "is_final::int FROM top_crime_types"};

/*
 * Expected rows, from call_counts rows (read or modelled).
 */

struct cc {
        char spec[32];
        char start[48];
        char end[48];
        char *crime;
        long long calls;
        long long late;
        int final;
        int64_t start_us;
        int64_t end_us;
};

struct ccs {
        struct cc *v;
        size_t n;
};

static void ccs_free(struct ccs *c)
{
        size_t i;

        for (i = 0; i < c->n; i++)
                free(c->v[i].crime);
        free(c->v);
        memset(c, 0, sizeof(*c));
}

static struct cc *ccs_add(struct ccs *c)
{
        c->v = th_realloc(c->v, (c->n + 1) * sizeof(*c->v));
        memset(&c->v[c->n], 0, sizeof(*c->v));
        return &c->v[c->n++];
}

/* Reads call_counts into c. */
static void read_counts(struct db *d, struct ccs *c)
{
        struct table t;
        size_t row;

        db_query(d, q_counts[d->pg], &t);
        assert_int_equal(t.ncol, 7);
        for (row = 0; row < t.nrow; row++) {
                struct cc *x = ccs_add(c);

                snprintf(x->spec, sizeof(x->spec), "%s", cell(&t, row, 0));
                snprintf(x->start, sizeof(x->start), "%s", cell(&t, row, 1));
                snprintf(x->end, sizeof(x->end), "%s", cell(&t, row, 2));
                x->crime = th_strdup(cell(&t, row, 3));
                x->calls = strtoll(cell(&t, row, 4), NULL, 10);
                x->late = strtoll(cell(&t, row, 5), NULL, 10);
                x->final = atoi(cell(&t, row, 6));
                if (tm_parse_ts(x->start, strlen(x->start), &x->start_us) ||
                    tm_parse_ts(x->end, strlen(x->end), &x->end_us))
                        fail_msg("%s: call_counts has window %s - %s", d->name,
                                 x->start, x->end);
        }
        table_free(&t);
}

static char *count_line(const struct cc *x)
{
        return th_asprintf("%s|%s|%s|%s|%lld|%lld|%d", x->spec, x->start,
                           x->end, x->crime, x->calls, x->late, x->final);
}

/* call_counts as lines. */
static void expect_counts(const struct ccs *c, struct th_lines *out)
{
        size_t i;

        for (i = 0; i < c->n; i++)
                th_lines_add(out, count_line(&c->v[i]));
        th_lines_sort(out);
}

/* recent_call_counts: the windows with end > wm - hours and start < wm;
 * none without a watermark (wm NULL) or without the setting (hours < 0). */
static void expect_recent(const struct ccs *c, const char *wm, long long hours,
                          struct th_lines *out)
{
        int64_t wm_us = 0;
        size_t i;

        if (wm && tm_parse_ts(wm, strlen(wm), &wm_us))
                fail_msg("bad watermark %s in the test", wm);
        for (i = 0; wm && hours >= 0 && i < c->n; i++) {
                const struct cc *x = &c->v[i];

                if (x->end_us > wm_us - hours * HOUR_US && x->start_us < wm_us)
                        th_lines_add(out, count_line(x));
        }
        th_lines_sort(out);
}

static int window_cmp(const void *pa, const void *pb)
{
        const struct cc *a = *(const struct cc *const *)pa;
        const struct cc *b = *(const struct cc *const *)pb;
        int c = strcmp(a->spec, b->spec);

        return c ? c : strcmp(a->start, b->start);
}

/* top_crime_types: per window spec and start, rank = 1 + the number of
 * crime types with more calls; ranks up to top_n. Returns the number of
 * windows where ties at the last rank give more than top_n rows. */
static int expect_top(const struct ccs *c, long long top_n,
                      struct th_lines *out)
{
        const struct cc **w = th_malloc(c->n * sizeof(*w));
        size_t i, j, k, end;
        int over = 0;

        for (i = 0; i < c->n; i++)
                w[i] = &c->v[i];
        if (c->n)
                qsort(w, c->n, sizeof(*w), window_cmp);
        for (i = 0; i < c->n; i = end) {
                long long kept = 0;

                for (end = i + 1; end < c->n && !window_cmp(&w[i], &w[end]);
                     end++)
                        ;
                for (j = i; j < end; j++) {
                        long long rank = 1;

                        for (k = i; k < end; k++)
                                rank += w[k]->calls > w[j]->calls;
                        if (rank > top_n)
                                continue;
                        kept++;
                        th_lines_add(out,
                                     th_asprintf("%s|%s|%s|%lld|%s|%lld|%d",
                                                 w[j]->spec, w[j]->start,
                                                 w[j]->end, rank, w[j]->crime,
                                                 w[j]->calls, w[j]->final));
                }
                over += kept > top_n;
        }
        free(w);
        th_lines_sort(out);
        return over;
}

/* Checks one view's rows against expected (sorted) and appends them to
 * the transcript under step. Returns the number of differing rows. */
static size_t check_view(struct db *d, const char *step, const char *view,
                         const char *sql, const struct th_lines *expected,
                         struct th_lines *transcript)
{
        struct th_lines got = {0};
        char *what = th_asprintf("%s: %s, %s", d->name, step, view);
        size_t i, bad;

        db_lines(d, sql, &got);
        bad = th_lines_compare(what, "expected", expected, "got     ", &got,
                               MAX_SHOWN);
        if (!bad)
                fprintf(stderr, "# %s: %zu rows as expected\n", what, got.n);
        for (i = 0; i < got.n; i++)
                th_lines_add(transcript,
                             th_asprintf("%s|%s|%s", step, view, got.v[i]));
        th_lines_free(&got);
        free(what);
        return bad;
}

/* Sets both settings (a negative value: leave it alone). */
static void set_settings(struct db *d, long long hours, long long top_n)
{
        char sql[160];

        if (hours >= 0) {
                snprintf(sql, sizeof(sql),
                         "UPDATE settings SET value = '%lld' WHERE name = "
                         "'recent_hours'",
                         hours);
                db_ok(d, sql);
        }
        if (top_n >= 0) {
                snprintf(sql, sizeof(sql),
                         "UPDATE settings SET value = '%lld' WHERE name = "
                         "'top_n'",
                         top_n);
                db_ok(d, sql);
        }
}

/* The views' columns, in order, and in PostgreSQL their types. */
static int check_columns(struct db *d)
{
        static const struct {
                const char *view;
                const char *cols[8];
                const char *types[8];
        } want[] = {
                {"recent_call_counts",
                 {"window_spec", "window_start", "window_end", "crime_type",
                  "calls", "late_calls", "is_final", NULL},
                 {"text", "timestamp without time zone",
                  "timestamp without time zone", "text", "bigint", "bigint",
                  "boolean", NULL}},
                {"top_crime_types",
                 {"window_spec", "window_start", "window_end", "crime_rank",
                  "crime_type", "calls", "is_final", NULL},
                 {"text", "timestamp without time zone",
                  "timestamp without time zone", "bigint", "text", "bigint",
                  "boolean", NULL}},
                {"settings", {"name", "value", NULL}, {"text", "text", NULL}},
        };
        size_t i, k, n;
        int bad = 0;

        for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                struct table t;
                char *sql;

                if (d->pg)
                        sql = th_asprintf(
                                "SELECT column_name, data_type FROM "
                                "information_schema.columns WHERE "
                                "table_schema = current_schema() AND "
                                "table_name = '%s' ORDER BY ordinal_position",
                                want[i].view);
                else
                        sql = th_asprintf("SELECT name, 'text' FROM "
                                          "pragma_table_info('%s') ORDER BY "
                                          "cid",
                                          want[i].view);
                db_query(d, sql, &t);
                free(sql);
                for (n = 0; want[i].cols[n]; n++)
                        ;
                if (t.nrow != n) {
                        fprintf(stderr,
                                "# %s: %s has %zu columns, expected "
                                "%zu\n",
                                d->name, want[i].view, t.nrow, n);
                        bad++;
                }
                for (k = 0; k < n && k < t.nrow; k++) {
                        const char *name = cell(&t, k, 0);
                        const char *type = cell(&t, k, 1);

                        if (strcmp(name, want[i].cols[k]) ||
                            (d->pg && strcmp(type, want[i].types[k]))) {
                                fprintf(stderr,
                                        "# %s: %s column %zu is %s %s, "
                                        "expected %s %s\n",
                                        d->name, want[i].view, k + 1, name,
                                        type, want[i].cols[k],
                                        want[i].types[k]);
                                bad++;
                        }
                }
                table_free(&t);
        }
        if (!d->pg) {
                /* SQLite has no column types in views: check the values'. */
                struct th_lines l = {0};

                db_lines(d,
                         "SELECT DISTINCT typeof(window_start), "
                         "typeof(window_end), typeof(calls), "
                         "typeof(late_calls), typeof(is_final) FROM "
                         "recent_call_counts UNION SELECT DISTINCT "
                         "typeof(window_start), typeof(window_end), "
                         "typeof(calls), typeof(crime_rank), typeof(is_final) "
                         "FROM top_crime_types",
                         &l);
                if (l.n != 1 ||
                    strcmp(l.v[0], "text|text|integer|integer|integer")) {
                        fprintf(stderr,
                                "# sqlite: the views' value types are %s "
                                "(%zu kinds), expected "
                                "text|text|integer|integer|integer\n",
                                l.n ? l.v[0] : "(no rows)", l.n);
                        bad++;
                }
                th_lines_free(&l);
        }
        return bad;
}

/*
 * Commands.
 */

static void migrate(const struct vt *st, const char *db, const char *schema)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "migrate", "--db", db, NULL);
        if (schema)
                th_args_addv(&a, "--schema", schema, NULL);
        th_run_ok_free(&a);
}

/* Produces the sample once, into a topic of one partition: consumption
 * order is then file order, which the model's watermark follows. */
static void produce_sample(struct vt *st)
{
        struct th_args a = {0};
        char *file;

        if (st->produced)
                return;
        th_broker_assert_alive(&st->broker);
        file = th_asprintf("%s/" SAMPLE_FILE, st->data_dir);
        th_args_addv(&a, st->bin, "produce", "--brokers", st->broker.brokers,
                     "--topic", SAMPLE_TOPIC, file, NULL);
        th_run_ok_free(&a);
        free(file);
        st->produced = 1;
}

static void ingest_sample(struct vt *st, const char *db)
{
        struct th_args a = {0};

        produce_sample(st);
        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", SAMPLE_TOPIC, "--db", db, "--window", "1h",
                     "--window", "1h/15m", "--window", "1d", "--from-beginning",
                     "--exit-at-end", NULL);
        th_run_ok_free(&a);
}

/*
 * The direct scenario: window counts and watermarks written here.
 */

/* call_counts gets 32 rows: 17 of 1h, 4 of 1h/15m, 7 of 1d, 4 of "1s"
 * (only a name here: one-second windows put window bounds next to a
 * watermark's fraction). Crime B of 2019-01-01 00:00 sums two
 * dispositions; 1h and 1s share a window_start. */
static const char direct_rows[] =
        "INSERT INTO window_counts (window_spec, window_start, window_end, "
        "crime_type, disposition, calls, late_calls) VALUES "
        "('1h', '2018-12-30 08:00:00', '2018-12-30 09:00:00', 'Z', '', 1, 0),"
        "('1h', '2019-01-01 00:00:00', '2019-01-01 01:00:00', 'A', '', 3, 0),"
        "('1h', '2019-01-01 00:00:00', '2019-01-01 01:00:00', 'B', 'ADM', 2, "
        "0),"
        "('1h', '2019-01-01 00:00:00', '2019-01-01 01:00:00', 'B', '', 1, 1),"
        "('1h', '2019-01-01 00:00:00', '2019-01-01 01:00:00', 'C', 'HAN', 1, "
        "1),"
        "('1h', '2019-01-01 00:00:00', '2019-01-01 01:00:00', 'D', '', 1, 0),"
        "('1h', '2019-01-01 01:00:00', '2019-01-01 02:00:00', 'A', '', 5, 0),"
        "('1h', '2019-01-01 01:00:00', '2019-01-01 02:00:00', 'B', '', 4, 0),"
        "('1h', '2019-01-01 01:00:00', '2019-01-01 02:00:00', 'C', '', 4, 0),"
        "('1h', '2019-01-01 01:00:00', '2019-01-01 02:00:00', 'D', '', 2, 0),"
        "('1h', '2019-01-01 01:00:00', '2019-01-01 02:00:00', 'E', '', 1, 0),"
        "('1h', '2019-01-01 06:00:00', '2019-01-01 07:00:00', 'X', '', 2, 0),"
        "('1h', '2019-01-01 07:00:00', '2019-01-01 08:00:00', 'A', '', 1, 0),"
        "('1h', '2019-01-01 07:00:00', '2019-01-01 08:00:00', 'B', '', 1, 0),"
        "('1h', '2019-01-01 08:00:00', '2019-01-01 09:00:00', 'C', '', 3, 0),"
        "('1h', '2019-01-01 09:00:00', '2019-01-01 10:00:00', 'A', '', 2, 0),"
        "('1h', '2019-01-01 09:00:00', '2019-01-01 10:00:00', 'B', '', 1, 0),"
        "('1h', '2019-01-01 10:00:00', '2019-01-01 11:00:00', 'D', '', 1, 0),"
        "('1h/15m', '2019-01-01 07:45:00', '2019-01-01 08:45:00', 'A', '', 1, "
        "0),"
        "('1h/15m', '2019-01-01 08:45:00', '2019-01-01 09:45:00', 'B', '', 2, "
        "0),"
        "('1h/15m', '2019-01-01 08:45:00', '2019-01-01 09:45:00', 'C', '', 2, "
        "0),"
        "('1h/15m', '2019-01-01 09:30:00', '2019-01-01 10:30:00', 'A', '', 1, "
        "0),"
        "('1d', '2018-12-31 00:00:00', '2019-01-01 00:00:00', 'Z', '', 1, 0),"
        "('1d', '2019-01-01 00:00:00', '2019-01-02 00:00:00', 'A', '', 12, 0),"
        "('1d', '2019-01-01 00:00:00', '2019-01-02 00:00:00', 'B', '', 11, 0),"
        "('1d', '2019-01-01 00:00:00', '2019-01-02 00:00:00', 'C', '', 8, 0),"
        "('1d', '2019-01-01 00:00:00', '2019-01-02 00:00:00', 'D', '', 4, 0),"
        "('1d', '2019-01-01 00:00:00', '2019-01-02 00:00:00', 'E', '', 1, 0),"
        "('1d', '2019-01-01 00:00:00', '2019-01-02 00:00:00', 'X', '', 2, 0),"
        "('1s', '2019-01-01 06:59:59', '2019-01-01 07:00:00', 'S', '', 1, 0),"
        "('1s', '2019-01-01 07:00:00', '2019-01-01 07:00:01', 'S', '', 1, 0),"
        "('1s', '2019-01-01 09:00:00', '2019-01-01 09:00:01', 'S', '', 1, 0),"
        "('1s', '2019-01-01 09:00:01', '2019-01-01 09:00:02', 'S', '', 1, 0)";

#define OFFSETS                                                                \
        "INSERT INTO kafka_offsets (topic, kafka_partition, next_offset, "     \
        "updated_at, max_event_ts, watermark) VALUES "
#define SET_P1_WM "UPDATE kafka_offsets SET watermark = '2019-01-01 "

/* Each step changes the database, then both views are checked against
 * what the test expects from the watermark and settings the step leaves
 * (hours < 0: no recent_hours row), and the row counts worked out by hand
 * above each step. */
static const struct step {
        const char *what;
        const char *sql;
        const char *wm;
        long long hours;
        long long top_n;
        size_t recent_rows;
        size_t top_rows;
} direct_steps[] = {
        /* A partition with no valid call yet has no watermark. */
        {"no watermark",
         OFFSETS "('t2', 0, 3, '2019-01-02 00:00:00', NULL, "
                 "NULL)",
         NULL, 24, 10, 0, 32},
        /* The smallest of two topics' partitions: 09:30:00.75. Cut at
         * 2018-12-31 09:30:00.75: all but the 1h windows of 12-30 and of
         * 10:00. */
        {"watermark 09:30:00.75",
         OFFSETS "('t1', 0, 9, '2019-01-02 00:00:00', '2019-01-01 12:00:00', "
                 "'2019-01-01 11:00:00'), ('t1', 1, 9, '2019-01-02 00:00:00', "
                 "'2019-01-01 10:30:00.75', '2019-01-01 09:30:00.75'), ('t3', "
                 "0, 4, '2019-01-02 00:00:00', '2019-01-01 13:00:00', "
                 "'2019-01-01 12:00:00')",
         "2019-01-01 09:30:00.75", 24, 10, 30, 32},
        /* From 07:30:00.75: 1h 07-09 (5), 1h/15m (4), 1d of 01-01 (6), 1s
         * 09:00:00 and :01 (2). */
        {"recent_hours 2", NULL, "2019-01-01 09:30:00.75", 2, 10, 17, 32},
        /* The windows holding the watermark: 1h 09:00 (2), 1h/15m 08:45 and
         * 09:30 (3), 1d (6). */
        {"recent_hours 0", NULL, "2019-01-01 09:30:00.75", 0, 10, 11, 32},
        /* Some 11 years: everything that starts before the watermark. */
        {"recent_hours 100000", NULL, "2019-01-01 09:30:00.75", 100000, 10, 31,
         32},
        /* From 07:00:00.999999: the 1s window ending 07:00:01 is in (the
         * fraction must not be rounded away), the one starting 09:00:01
         * out: 1h 07-09 (5), 1h/15m 07:45, 08:45 (3), 1d (6), 1s (2). */
        {"watermark 09:00:00.999999",
         SET_P1_WM "09:00:00.999999' WHERE topic = 't1' AND kafka_partition = "
                   "1",
         "2019-01-01 09:00:00.999999", 2, 10, 16, 32},
        /* Exact bounds: a window ending at 07:00:00 or starting at
         * 09:00:00 is out: 1h 07, 08 (3), 1h/15m (3), 1d (6), 1s 07:00:00
         * (1). */
        {"watermark 09:00:00",
         SET_P1_WM "09:00:00' WHERE topic = 't1' AND kafka_partition = 1",
         "2019-01-01 09:00:00", 2, 10, 13, 32},
        /* Rank 1 of each of the 17 windows, and the second of three ties
         * (00:00 A and B, 07:00 A and B, 08:45 B and C). */
        {"top_n 1", NULL, "2019-01-01 09:00:00", 2, 1, 13, 20},
        /* 01:00 keeps B and C (rank 2 twice), 09:00 B, 1d of 01-01 B. */
        {"top_n 2", NULL, "2019-01-01 09:00:00", 2, 2, 13, 24},
        /* 00:00 keeps C and D (rank 3 twice): 4 rows for top_n 3. */
        {"top_n 3", NULL, "2019-01-01 09:00:00", 2, 3, 13, 27},
        {"top_n 0", NULL, "2019-01-01 09:00:00", 2, 0, 13, 0},
        {"no recent_hours row",
         "DELETE FROM settings WHERE name = 'recent_hours'",
         "2019-01-01 09:00:00", -1, 0, 0, 0},
        {"recent_hours back",
         "INSERT INTO settings (name, value) VALUES ('recent_hours', '2')",
         "2019-01-01 09:00:00", 2, 3, 13, 27},
};

/* is_final, which both views pass on: the window ends by the watermark.
 * Returns the number of rows where call_counts says otherwise (said). */
static int check_final(const struct db *d, const struct ccs *c, const char *wm)
{
        int64_t wm_us = 0;
        size_t i;
        int bad = 0;

        if (wm && tm_parse_ts(wm, strlen(wm), &wm_us))
                fail_msg("bad watermark %s in the test", wm);
        for (i = 0; i < c->n; i++) {
                int want = wm && c->v[i].end_us <= wm_us;

                if (c->v[i].final != want && bad++ < MAX_SHOWN)
                        fprintf(stderr,
                                "# %s: call_counts says is_final %d for %s "
                                "%s %s, expected %d\n",
                                d->name, c->v[i].final, c->v[i].spec,
                                c->v[i].start, c->v[i].crime, want);
        }
        return bad;
}

/* One step: the change, then both views against the expectation. Returns
 * the number of problems (said). */
static int direct_step(struct db *d, const struct step *s,
                       struct th_lines *transcript)
{
        struct ccs counts = {0};
        struct th_lines want_recent = {0}, want_top = {0};
        int bad = 0;

        if (s->sql)
                db_ok(d, s->sql);
        set_settings(d, s->hours, s->top_n);
        read_counts(d, &counts);
        if (counts.n != 32) {
                fprintf(stderr, "# %s: call_counts has %zu rows, expected 32\n",
                        d->name, counts.n);
                bad++;
        }
        bad += check_final(d, &counts, s->wm);
        expect_recent(&counts, s->wm, s->hours, &want_recent);
        expect_top(&counts, s->top_n, &want_top);
        /* The hand counts keep the test's own arithmetic honest. */
        if (want_recent.n != s->recent_rows || want_top.n != s->top_rows) {
                fprintf(stderr,
                        "# %s: the test expects %zu recent and %zu top rows, "
                        "worked out by hand %zu and %zu\n",
                        s->what, want_recent.n, want_top.n, s->recent_rows,
                        s->top_rows);
                bad++;
        }
        bad += check_view(d, s->what, "recent_call_counts", q_recent[d->pg],
                          &want_recent, transcript) != 0;
        bad += check_view(d, s->what, "top_crime_types", q_top[d->pg],
                          &want_top, transcript) != 0;
        th_lines_free(&want_recent);
        th_lines_free(&want_top);
        ccs_free(&counts);
        return bad;
}

/* The settings table refuses values the views could not read, takes any
 * other setting, and a second migrate keeps what was set. */
static int direct_settings(const struct vt *st, struct db *d)
{
        static const char *const refused[] = {
                "abc", "-1", "",    "1234567", "1.5",     " 2",
                "2 ",  "+3", "1e3", "0x1",     "\xd9\xa3"};
        struct th_lines got = {0};
        char sql[160], err[1024];
        size_t i;
        int bad = 0;

        for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                snprintf(sql, sizeof(sql),
                         "UPDATE settings SET value = '%s' WHERE name = "
                         "'%s'",
                         refused[i], i % 2 ? "top_n" : "recent_hours");
                if (db_try(d, sql, err, sizeof(err)) == 0) {
                        fprintf(stderr, "# %s: accepted: %s\n", d->name, sql);
                        bad++;
                } else if (!strstr(err, "settings_whole_number")) {
                        fprintf(stderr,
                                "# %s: refused without naming the "
                                "constraint: %s\n",
                                d->name, err);
                        bad++;
                }
        }
        db_ok(d, "INSERT INTO settings (name, value) VALUES ('note', 'any "
                 "text')");
        migrate(st, d->target, NULL);
        db_lines(d, "SELECT name, value FROM settings", &got);
        if (got.n != 3 || strcmp(got.v[0], "note|any text") ||
            strcmp(got.v[1], "recent_hours|2") || strcmp(got.v[2], "top_n|3")) {
                fprintf(stderr,
                        "# %s: after a second migrate settings holds %zu "
                        "rows:\n",
                        d->name, got.n);
                for (i = 0; i < got.n; i++)
                        fprintf(stderr, "#   %s\n", got.v[i]);
                bad++;
        }
        th_lines_free(&got);
        return bad;
}

static void run_direct(const struct vt *st, struct db *d,
                       struct th_lines *transcript)
{
        static const struct step again = {"after a second migrate",
                                          NULL,
                                          "2019-01-01 09:00:00",
                                          2,
                                          3,
                                          13,
                                          27};
        char *v;
        size_t i;
        int bad = 0;

        v = db_value(d, "SELECT value FROM settings WHERE name = "
                        "'recent_hours'");
        bad += strcmp(v, "24") != 0;
        free(v);
        v = db_value(d, "SELECT value FROM settings WHERE name = 'top_n'");
        bad += strcmp(v, "10") != 0;
        free(v);
        if (bad)
                fprintf(stderr, "# %s: settings not seeded with 24 and 10\n",
                        d->name);
        db_ok(d, direct_rows);
        for (i = 0; i < sizeof(direct_steps) / sizeof(direct_steps[0]); i++)
                bad += direct_step(d, &direct_steps[i], transcript);
        bad += direct_settings(st, d);
        /* The views were dropped and made again (in PostgreSQL by
         * views.sql's CASCADE, then views_rolling.sql). */
        bad += direct_step(d, &again, transcript);
        bad += check_columns(d);
        th_lines_sort(transcript);
        if (bad)
                fail_msg("%s: %d check(s) failed (details above)", d->name,
                         bad);
}

/*
 * The sample scenario: the real calls, modelled with jansson.
 */

static const struct spec {
        const char *name;
        int64_t size;
        int64_t slide;
} sample_specs[] = {
        {"1h", 3600, 3600},
        {"1h/15m", 3600, 900},
        {"1d", 86400, 86400},
};

/* One call in one of its windows. */
struct hit {
        int spec;
        int64_t start;
        const char *crime; /* borrowed from the JSON */
        int late;
};

static int hit_cmp(const void *pa, const void *pb)
{
        const struct hit *a = pa, *b = pb;
        int c;

        if (a->spec != b->spec)
                return a->spec - b->spec;
        if (a->start != b->start)
                return a->start < b->start ? -1 : 1;
        c = strcmp(a->crime, b->crime);
        return c;
}

/* call_counts as the contract gives it for the sample read in file order
 * from one partition: every call in each of its windows; late when the
 * window had ended by the watermark just before the call (the highest
 * event time so far less an hour); final when it ends by the last
 * watermark, written to wm. */
static void model_sample(const char *path, struct ccs *out, char wm[48])
{
        json_error_t jerr;
        json_t *arr = json_load_file(path, 0, &jerr), *v;
        struct hit *hits = NULL;
        size_t n = 0, cap = 0, i, k, ids;
        int64_t max_ts = INT64_MIN;
        json_t *seen = json_object();

        if (!json_is_array(arr))
                fail_msg("%s: %s", path, jerr.text);
        json_array_foreach(arr, i, v)
        {
                const char *id =
                        json_string_value(json_object_get(v, "crime_id"));
                const char *crime = json_string_value(
                        json_object_get(v, "original_crime_type_name"));
                const char *when =
                        json_string_value(json_object_get(v, "call_date_time"));
                int have_wm = max_ts != INT64_MIN;
                int64_t t, wm_before = have_wm ? max_ts - LATENESS_US : 0;

                if (!id || !crime || !*crime || !when ||
                    tm_parse_ts(when, strlen(when), &t))
                        fail_msg("%s: record %zu is not a plain valid call",
                                 path, i);
                json_object_set_new(seen, id, json_true());
                for (k = 0; k < sizeof(sample_specs) / sizeof(sample_specs[0]);
                     k++) {
                        int64_t size = sample_specs[k].size * USEC;
                        int64_t slide = sample_specs[k].slide * USEC;
                        int64_t s = tm_window_last(t, slide);

                        for (; s > t - size; s -= slide) {
                                if (n == cap) {
                                        cap = cap * 2 + 1024;
                                        hits = th_realloc(hits,
                                                          cap * sizeof(*hits));
                                }
                                hits[n].spec = (int)k;
                                hits[n].start = s;
                                hits[n].crime = crime;
                                hits[n].late = have_wm && s + size <= wm_before;
                                n++;
                        }
                }
                if (t > max_ts)
                        max_ts = t;
        }
        ids = json_object_size(seen);
        json_decref(seen);
        if (ids != json_array_size(arr))
                fail_msg("%s: %zu records but %zu crime_ids: the model "
                         "assumes no duplicates",
                         path, json_array_size(arr), ids);
        qsort(hits, n, sizeof(*hits), hit_cmp);
        for (i = 0; i < n; i++) {
                const struct spec *sp = &sample_specs[hits[i].spec];
                struct cc *x;

                if (i && !hit_cmp(&hits[i - 1], &hits[i])) {
                        out->v[out->n - 1].calls++;
                        out->v[out->n - 1].late += hits[i].late;
                        continue;
                }
                x = ccs_add(out);
                snprintf(x->spec, sizeof(x->spec), "%s", sp->name);
                x->start_us = hits[i].start;
                x->end_us = hits[i].start + sp->size * USEC;
                tm_format_sec(tm_floor_div(x->start_us, USEC), x->start);
                tm_format_sec(tm_floor_div(x->end_us, USEC), x->end);
                x->crime = th_strdup(hits[i].crime);
                x->calls = 1;
                x->late = hits[i].late;
                x->final = x->end_us <= max_ts - LATENESS_US;
        }
        tm_format_sec(tm_floor_div(max_ts - LATENESS_US, USEC), wm);
        free(hits);
        json_decref(arr);
}

static const struct sample_step {
        const char *what;
        long long hours;
        long long top_n;
} sample_steps[] = {
        {"sample, defaults", 24, 10},
        {"sample, recent_hours 2", 2, 10},
        {"sample, recent_hours 0", 0, 10},
        {"sample, recent_hours 5, top_n 3", 5, 3},
        {"sample, recent_hours 1, top_n 1", 1, 1},
};

static void run_sample(struct vt *st, struct db *d, struct th_lines *transcript)
{
        char *file = th_asprintf("%s/" SAMPLE_FILE, st->data_dir);
        struct ccs model = {0};
        struct th_lines want = {0};
        char wm[48], *got_wm;
        size_t i;
        int bad = 0, over = 0;

        model_sample(file, &model, wm);
        free(file);
        ingest_sample(st, d->target);

        /* What the views build on must be right first. */
        expect_counts(&model, &want);
        bad += check_view(d, "sample", "call_counts", q_counts[d->pg], &want,
                          transcript) != 0;
        th_lines_free(&want);
        got_wm = db_value(
                d, d->pg ? "SELECT " PG_TS("MIN(watermark)") " FROM watermarks"
                         : "SELECT MIN(watermark) FROM watermarks");
        fprintf(stderr, "# %s: watermark %s, expected %s; %zu call_counts\n",
                d->name, got_wm, wm, model.n);
        if (strcmp(got_wm, wm)) {
                fprintf(stderr, "# %s: the watermark is %s, expected %s\n",
                        d->name, got_wm, wm);
                bad++;
        }
        free(got_wm);

        for (i = 0; i < sizeof(sample_steps) / sizeof(sample_steps[0]); i++) {
                const struct sample_step *s = &sample_steps[i];

                set_settings(d, s->hours, s->top_n);
                expect_recent(&model, wm, s->hours, &want);
                if (want.n == 0 || want.n == model.n) {
                        fprintf(stderr,
                                "# %s: %zu of %zu rows recent: the step "
                                "proves nothing\n",
                                s->what, want.n, model.n);
                        bad++;
                }
                bad += check_view(d, s->what, "recent_call_counts",
                                  q_recent[d->pg], &want, transcript) != 0;
                th_lines_free(&want);
                over += expect_top(&model, s->top_n, &want);
                bad += check_view(d, s->what, "top_crime_types", q_top[d->pg],
                                  &want, transcript) != 0;
                th_lines_free(&want);
        }
        /* The real data must show ties at the last rank kept. */
        fprintf(stderr, "# %d windows where ties gave more than top_n rows\n",
                over);
        if (!over)
                bad++;
        bad += check_columns(d);
        ccs_free(&model);
        th_lines_sort(transcript);
        if (bad)
                fail_msg("%s: %d check(s) failed (details above)", d->name,
                         bad);
}

/*
 * The databases: PostgreSQL (a server of our own, th_pg_start()) and
 * SQLite, each made by `callstream migrate`.
 */

/* A fresh database name: a database made by `callstream migrate`, and our
 * connection to it (search_path schema, when not NULL). */
static void pg_db(struct vt *st, struct db *d, const char *name,
                  const char *schema)
{
        char *sql;

        if (st->pg_state <= 0)
                fail_msg("PostgreSQL did not start (see the group setup)");
        if (th_pg_createdb(&st->pg, name, NULL) != 0)
                fail_msg("cannot create database %s", name);

        memset(d, 0, sizeof(*d));
        d->name = "postgresql";
        d->pg = 1;
        d->target = th_pg_conninfo(&st->pg, name);
        migrate(st, d->target, schema);
        d->conn = th_pg_open(d->target);
        if (!d->conn)
                fail_msg("cannot connect to %s", name);
        if (schema) {
                sql = th_asprintf("SET search_path TO %s", schema);
                db_ok(d, sql);
                free(sql);
        }
}

static void lite_db(struct vt *st, struct db *d, const char *file)
{
        memset(d, 0, sizeof(*d));
        d->name = "sqlite";
        d->target = path_in(st, file);
        migrate(st, d->target, NULL);
        if (sqlite3_open_v2(d->target, &d->lite, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK)
                fail_msg("cannot open %s", d->target);
        sqlite3_busy_timeout(d->lite, 10000);
}

/*
 * Fixture.
 */

static int group_teardown(void **state)
{
        struct vt *st = *state;
        int failed = 0;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_pg_stop(&st->pg);
        if (th_broker_stop(&st->broker) < 0)
                failed = 1;
        th_fatal_broker(0, 0);
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        th_lines_free(&st->lite_direct);
        th_lines_free(&st->lite_sample);
        free(st->bin);
        free(st->data_dir);
        free(st);
        *state = NULL;
        return failed ? -1 : 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {
                "--partitions", "1", "--topic", SAMPLE_TOPIC, NULL};
        struct vt *st = calloc(1, sizeof(*st));
        char *p;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_views", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data_dir))
                goto fail;
        if (th_tmpdir_make("callstream-views", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);

        p = path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, p);
        free(p);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);

        /* Without PostgreSQL the SQLite tests still run; the others fail. */
        st->pg_state = th_pg_start(&st->pg, st->dir, 0) == 0 ? 1 : -1;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

/*
 * Tests.
 */

/* Compares a PostgreSQL transcript with SQLite's. */
static void assert_same_as_sqlite(const char *what, const struct th_lines *lite,
                                  const struct th_lines *pg)
{
        if (lite->n == 0)
                fail_msg("%s: no SQLite transcript to compare with (its test "
                         "failed or did not run)",
                         what);
        if (th_lines_compare(what, "sqlite    ", lite, "postgresql", pg,
                             MAX_SHOWN))
                fail_msg("%s: PostgreSQL differs from SQLite", what);
        fprintf(stderr, "# %s: %zu view rows, identical in both dialects\n",
                what, pg->n);
}

/* 1. Direct inserts in SQLite. */
static void test_sqlite_direct(void **state)
{
        struct vt *st = *state;
        struct th_lines l = {0};
        struct db d;

        lite_db(st, &d, "direct.db");
        run_direct(st, &d, &l);
        db_close(&d);
        /* Only a passing run is what PostgreSQL must match. */
        th_lines_free(&st->lite_direct);
        st->lite_direct = l;
}

/* 2. The real sample ingested into SQLite. */
static void test_sqlite_sample(void **state)
{
        struct vt *st = *state;
        struct th_lines l = {0};
        struct db d;

        lite_db(st, &d, "sample.db");
        run_sample(st, &d, &l);
        db_close(&d);
        /* Only a passing run is what PostgreSQL must match. */
        th_lines_free(&st->lite_sample);
        st->lite_sample = l;
}

/* 3. Direct inserts in PostgreSQL: as expected, and as in SQLite. */
static void test_pg_direct(void **state)
{
        struct vt *st = *state;
        struct th_lines pg = {0};
        struct db d;

        pg_db(st, &d, "cs_direct", NULL);
        run_direct(st, &d, &pg);
        db_close(&d);
        assert_same_as_sqlite("direct", &st->lite_direct, &pg);
        th_lines_free(&pg);
}

/* 4. The real sample ingested into PostgreSQL: as expected, and as in
 * SQLite. */
static void test_pg_sample(void **state)
{
        struct vt *st = *state;
        struct th_lines pg = {0};
        struct db d;

        pg_db(st, &d, "cs_sample", NULL);
        run_sample(st, &d, &pg);
        db_close(&d);
        assert_same_as_sqlite("sample", &st->lite_sample, &pg);
        th_lines_free(&pg);
}

/* 5. --schema: the settings table and both views land in that schema and
 * read its tables, and nothing is left in public. */
static void test_pg_schema(void **state)
{
        struct vt *st = *state;
        struct th_lines l = {0};
        char *recent, *top;
        struct db d;
        int bad = 0;

        pg_db(st, &d, "cs_schema", "analytics");
        db_lines(&d,
                 "SELECT n.nspname || '.' || c.relname || ':' || "
                 "c.relkind::text "
                 "FROM pg_class c JOIN pg_namespace n ON n.oid = "
                 "c.relnamespace WHERE c.relname IN ('settings', "
                 "'recent_call_counts', 'top_crime_types')",
                 &l);
        if (l.n != 3 || strcmp(l.v[0], "analytics.recent_call_counts:v") ||
            strcmp(l.v[1], "analytics.settings:r") ||
            strcmp(l.v[2], "analytics.top_crime_types:v")) {
                fprintf(stderr, "# %zu objects, expected 3 in analytics:\n",
                        l.n);
                bad++;
        }
        th_lines_free(&l);
        db_ok(&d, direct_rows);
        db_ok(&d, OFFSETS "('t', 0, 1, '2019-01-02 00:00:00', "
                          "'2019-01-01 10:00:00', '2019-01-01 09:00:00')");
        db_ok(&d, "UPDATE settings SET value = '2' WHERE name = "
                  "'recent_hours'");
        db_ok(&d, "UPDATE settings SET value = '3' WHERE name = 'top_n'");
        /* As in the direct scenario's last step: 13 and 27 rows. */
        recent = db_value(&d, "SELECT count(*) FROM recent_call_counts");
        top = db_value(&d, "SELECT count(*) FROM top_crime_types");
        fprintf(stderr, "# analytics: %s recent rows, %s top rows\n", recent,
                top);
        if (strcmp(recent, "13") || strcmp(top, "27")) {
                fprintf(stderr, "# expected 13 and 27\n");
                bad++;
        }
        free(recent);
        free(top);
        db_close(&d);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_sqlite_direct, th_test_teardown),
                cmocka_unit_test_teardown(test_sqlite_sample, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_direct, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_sample, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_schema, th_test_teardown),
        };
        const char *only = getenv("VIEWS_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("views", tests, group_setup,
                                           group_teardown);
}
