/* test_sqlite_store.c: how the SQLite sink stores calls and window counts
 * (migration 012_compact_calls.sql, sink_sqlite.c's write path).
 *
 *   test_views_match_model      the views calls and window_counts after a
 *                               replay with duplicates, changed copies, late
 *                               calls, numeric and text crime_ids, with and
 *                               without --retention, in batches of 3 and of
 *                               100: row for row what an independent model
 *                               of the same input gives
 *   test_many_rows              more window rows and calls in a batch than
 *                               one statement step writes: counts and
 *                               dedup stay exact, for crime_ids above the
 *                               largest stored, below it, and copies
 *   test_migration_carries_calls  a database with the text-keyed calls
 *                               table: migrate carries every row over, the
 *                               view shows them as they were, dedup holds
 *                               against them, a DELETE on the view works
 *   test_settings_and_memory    -v shows cache_size, mmap_size and
 *                               page_size as the README states, and the
 *                               database has that page size; a replay's
 *                               peak RSS stays under 64 MB */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "model.h"

#define WATCHDOG_S 600

struct st {
        char dir[PATH_MAX];
        char *bin;
};

static char *path_in(const struct st *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* Runs callstream with the NULL-terminated args; fails unless it exits 0.
 * Returns its stderr (the caller frees it). */
static char *run_ok(const struct st *st, ...)
{
        struct th_args a = {0};
        struct th_run r = {0};
        const char *s;
        char *err;
        va_list ap;

        th_args_add(&a, st->bin);
        va_start(ap, st);
        while ((s = va_arg(ap, const char *)) != NULL)
                th_args_add(&a, s);
        va_end(ap);
        th_run_ok(&a, &r);
        err = th_strndup(r.err.p ? r.err.p : "", r.err.len);
        th_run_free(&r);
        th_args_free(&a);
        return err;
}

static sqlite3 *db_open(const char *path)
{
        sqlite3 *db;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK)
                fail_msg("cannot open %s", path);
        sqlite3_busy_timeout(db, 5000);
        return db;
}

static void exec_sql(const char *path, const char *sql)
{
        sqlite3 *db = db_open(path);
        char *msg = NULL;

        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
                fail_msg("%s: %s", sql, msg ? msg : "?");
        sqlite3_close(db);
}

/* The rows of a query, each "a|b|c" with NULL for SQL NULL, sorted. */
static void query_lines(const char *path, const char *sql, struct th_lines *out)
{
        sqlite3 *db = db_open(path);
        sqlite3_stmt *st;
        int i, n;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct th_buf b = {0};

                n = sqlite3_column_count(st);
                for (i = 0; i < n; i++) {
                        const char *v =
                                (const char *)sqlite3_column_text(st, i);

                        th_buf_addf(&b, "%s%s", i ? "|" : "", v ? v : "NULL");
                }
                th_lines_add(out, th_strndup(b.p, b.len));
                th_buf_free(&b);
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        th_lines_sort(out);
}

static void expect_same(const char *what, struct th_lines *want,
                        struct th_lines *got)
{
        th_lines_sort(want);
        if (th_lines_compare(what, "model", want, "database", got, 20))
                fail_msg("%s: the database differs from the model", what);
        fprintf(stderr, "# %s: %zu rows as the model has them\n", what, got->n);
}

/*
 * The stream and its model.
 */

struct msg {
        const char *id;   /* crime_id as JSON; NULL: a malformed line */
        const char *type; /* original_crime_type_name */
        const char *disp; /* NULL: no disposition */
        const char *when; /* call_date_time */
        const char *addr;
};

/* With --allowed-lateness 1h: the watermark before message 10 is 11:00,
 * so 190000004 (09:05) is late for every window it falls in, and A-1's
 * changed copy (11) moves its counts into late ones. 190000002 changes
 * disposition (6), then time (14). 190000003 comes as a JSON number, then
 * as a string. 0190000001, 1234567890123456789 (19 digits), A-1 and B-2
 * are kept as text; 999999999999999999 is the largest numeric key. */
static const struct msg stream[] = {
        {"\"190000001\"", "Theft", "HAN", "2019-01-01T08:00:00.000",
         "1 Main St"},
        {"\"A-1\"", "Assault", NULL, "2019-01-01T08:10:30.250", "2 Oak St"},
        {"\"190000002\"", "Theft", "GOA", "2019-01-01T08:20:00.000",
         "3 Elm St"},
        {NULL, NULL, NULL, NULL, NULL},
        {"\"190000001\"", "Theft", "HAN", "2019-01-01T08:00:00.000",
         "1 Main St"},
        {"\"0190000001\"", "Noise", "ADV", "2019-01-01T09:00:00.000",
         "4 Pine St"},
        {"\"190000002\"", "Theft", "CIT", "2019-01-01T08:20:00.000",
         "3 Elm St"},
        {"190000003", "Theft", "HAN", "2019-01-01T10:00:00.500", "5 Ash St"},
        {"\"190000003\"", "Theft", "HAN", "2019-01-01T10:00:00.500",
         "5 Ash St"},
        {"\"1234567890123456789\"", "Fraud", "HAN", "2019-01-01T12:00:00.000",
         "6 Bay St"},
        {"\"190000004\"", "Theft", "HAN", "2019-01-01T09:05:00.000",
         "7 Fir St"},
        {"\"A-1\"", "Assault", NULL, "2019-01-01T08:10:30.250", "2 Oak Street"},
        {"\"999999999999999999\"", "Theft", "HAN", "2019-01-01T14:00:00.000",
         "8 Elm St"},
        {"\"190000005\"", "Theft", NULL, "2019-01-01T14:30:00.000", "9 Elm St"},
        {"\"190000002\"", "Theft", "CIT", "2019-01-01T13:10:00.000",
         "3 Elm St"},
        {"\"B-2\"", "Noise", "ADV", "2019-01-01T13:59:59.999999", "10 Elm St"},
};

#define NMSG       (sizeof(stream) / sizeof(stream[0]))
#define LATENESS_S 3600

static const struct {
        const char *name;
        int64_t size, slide;
} specs[] = {{"1h", 3600, 3600}, {"1h/15m", 3600, 900}};

static void write_stream(const char *path)
{
        struct th_buf b = {0};
        size_t i;

        th_buf_add(&b, "", 0);
        for (i = 0; i < NMSG; i++) {
                const struct msg *m = &stream[i];

                if (!m->id) {
                        th_buf_addf(&b, "{\"crime_id\": \"X-9\", \"origin\n");
                        continue;
                }
                th_buf_addf(&b,
                            "{\"crime_id\":%s,\"original_crime_type_name\":"
                            "\"%s\",\"call_date_time\":\"%s\",\"address\":"
                            "\"%s\"",
                            m->id, m->type, m->when, m->addr);
                if (m->disp)
                        th_buf_addf(&b, ",\"disposition\":\"%s\"", m->disp);
                th_buf_addf(&b, "}\n");
        }
        if (th_write_file(path, b.p, 0))
                fail_msg("cannot write %s", path);
        th_buf_free(&b);
}

/* The crime_id's text: the JSON string's, or the number's digits. */
static void id_text(const struct msg *m, char *out, size_t size)
{
        size_t n = strlen(m->id);

        if (m->id[0] == '"')
                snprintf(out, size, "%.*s", (int)(n - 2), m->id + 1);
        else
                snprintf(out, size, "%s", m->id);
}

static int64_t us_of(const char *when)
{
        int64_t us;

        if (tm_parse_ts(when, strlen(when), &us))
                fail_msg("bad time '%s' in the test", when);
        return us;
}

static int same_copy(const struct msg *a, const struct msg *b)
{
        return !strcmp(a->type, b->type) && !strcmp(a->when, b->when) &&
               !strcmp(a->addr, b->addr) &&
               (a->disp && b->disp ? !strcmp(a->disp, b->disp)
                                   : a->disp == b->disp);
}

/* The copy that stands for each crime_id, and the watermark it was counted
 * against: the first copy, replaced by each later copy that differs from
 * the one standing (--on-duplicate update). */
struct standing {
        char id[32];
        size_t msg;
        int has_mark;
        int64_t mark_us;
};

static size_t model_calls(struct standing *out, int64_t *watermark_us)
{
        int64_t max_us = 0;
        int any = 0;
        size_t i, j, n = 0;

        for (i = 0; i < NMSG; i++) {
                const struct msg *m = &stream[i];
                char id[32];

                if (!m->id)
                        continue;
                id_text(m, id, sizeof(id));
                for (j = 0; j < n && strcmp(out[j].id, id); j++)
                        ;
                if (j == n) {
                        snprintf(out[n].id, sizeof(out[n].id), "%s", id);
                        n++;
                } else if (same_copy(&stream[out[j].msg], m)) {
                        goto seen;
                }
                out[j].msg = i;
                out[j].has_mark = any;
                out[j].mark_us = max_us - LATENESS_S * TM_USEC;
        seen:
                /* Every valid message moves the watermark, copies too. */
                if (!any || us_of(m->when) > max_us)
                        max_us = us_of(m->when);
                any = 1;
        }
        *watermark_us = max_us - LATENESS_S * TM_USEC;
        return n;
}

/* The offset of message i: its line number, from 1. */
static void expected_calls(const struct standing *calls, size_t n,
                           int64_t horizon, struct th_lines *out)
{
        char ts[TM_TS_SIZE], mark[TM_TS_SIZE];
        size_t i;

        for (i = 0; i < n; i++) {
                const struct msg *m = &stream[calls[i].msg];
                int64_t us = us_of(m->when);

                if (tm_floor_div(us, TM_USEC) < horizon)
                        continue;
                tm_format_ts(us, ts);
                if (calls[i].has_mark)
                        tm_format_ts(calls[i].mark_us, mark);
                th_lines_addf(out, "%s|%s|%s|%s|%s|%s|t|0|%zu|%s|count",
                              calls[i].id, m->type, m->disp ? m->disp : "NULL",
                              m->when, m->addr, ts, calls[i].msg + 1,
                              calls[i].has_mark ? mark : "NULL");
        }
}

struct wrow {
        size_t spec;
        int64_t start;
        const char *type, *disp;
        int64_t calls, late;
};

/* Every standing copy in each window of each spec that holds it, late
 * where its watermark had passed the window's end; the rows with calls,
 * ending after the horizon. */
static void expected_windows(const struct standing *calls, size_t n,
                             int64_t horizon, struct th_lines *out)
{
        struct wrow rows[256];
        size_t nrows = 0, i, s, k;
        char a[TM_TS_SIZE], b[TM_TS_SIZE];

        for (i = 0; i < n; i++) {
                const struct msg *m = &stream[calls[i].msg];
                int64_t sec = tm_floor_div(us_of(m->when), TM_USEC);
                const char *disp = m->disp ? m->disp : "";

                for (s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
                        int64_t w, last = tm_window_last(sec, specs[s].slide);

                        for (w = tm_window_first(sec, specs[s].size,
                                                 specs[s].slide);
                             w <= last; w += specs[s].slide) {
                                int late =
                                        calls[i].has_mark &&
                                        w + specs[s].size <=
                                                tm_floor_div(calls[i].mark_us,
                                                             TM_USEC);

                                for (k = 0; k < nrows; k++)
                                        if (rows[k].spec == s &&
                                            rows[k].start == w &&
                                            !strcmp(rows[k].type, m->type) &&
                                            !strcmp(rows[k].disp, disp))
                                                break;
                                if (k == nrows) {
                                        assert_true(nrows < 256);
                                        rows[nrows++] = (struct wrow){
                                                s, w, m->type, disp, 0, 0};
                                }
                                rows[k].calls++;
                                rows[k].late += late;
                        }
                }
        }
        for (k = 0; k < nrows; k++) {
                int64_t end = rows[k].start + specs[rows[k].spec].size;

                if (end <= horizon)
                        continue;
                tm_format_sec(rows[k].start, a);
                tm_format_sec(end, b);
                th_lines_addf(out, "%s|%s|%s|%s|%s|%lld|%lld",
                              specs[rows[k].spec].name, a, b, rows[k].type,
                              rows[k].disp, (long long)rows[k].calls,
                              (long long)rows[k].late);
        }
}

#define CALLS_COLS                                                             \
        "SELECT crime_id, original_crime_type_name, disposition, "             \
        "call_date_time, address, call_ts, kafka_topic, kafka_partition, "     \
        "kafka_offset, watermark_at_count, late_policy FROM calls"
#define WINDOW_COLS                                                            \
        "SELECT window_spec, window_start, window_end, crime_type, "           \
        "disposition, calls, late_calls FROM window_counts"

/* One replay of the stream, compared with the model. retention: seconds,
 * or 0 for none. */
static void replay_and_compare(struct st *st, const char *batch,
                               int64_t retention)
{
        char *file = path_in(st, "stream.ndjson");
        char *db = th_asprintf("%s/b%s_r%lld.db", st->dir, batch,
                               (long long)retention);
        char keep[32], what[96];
        struct standing calls[NMSG];
        struct th_lines want = {0}, got = {0};
        int64_t mark_us, horizon = INT64_MIN;
        size_t n;

        write_stream(file);
        snprintf(keep, sizeof(keep), "%llds", (long long)retention);
        free(run_ok(st, "ingest", "--file", file, "--topic", "t", "--db", db,
                    "--window", "1h", "--window", "1h/15m",
                    "--allowed-lateness", "1h", "--on-duplicate", "update",
                    "--batch-max-records", batch, "-q",
                    retention ? "--retention" : NULL, keep, NULL));
        /* Retention steps are due every few seconds while a run lasts,
         * and at its end: a second run, with nothing new to read, ends
         * with every step still due. */
        if (retention)
                free(run_ok(st, "ingest", "--file", file, "--topic", "t",
                            "--db", db, "--window", "1h", "--window", "1h/15m",
                            "--allowed-lateness", "1h", "--on-duplicate",
                            "update", "-q", "--retention", keep, NULL));
        n = model_calls(calls, &mark_us);
        /* --retention deletes what is older than the watermark, in whole
         * seconds, less the retention. */
        if (retention)
                horizon = tm_floor_div(mark_us, TM_USEC) - retention;

        expected_calls(calls, n, horizon, &want);
        query_lines(db, CALLS_COLS, &got);
        snprintf(what, sizeof(what), "calls, batches of %s, retention %llds",
                 batch, (long long)retention);
        expect_same(what, &want, &got);
        th_lines_free(&want);
        th_lines_free(&got);

        expected_windows(calls, n, horizon, &want);
        query_lines(db, WINDOW_COLS, &got);
        snprintf(what, sizeof(what),
                 "window_counts, batches of %s, retention %llds", batch,
                 (long long)retention);
        expect_same(what, &want, &got);
        th_lines_free(&want);
        th_lines_free(&got);

        /* The view's types and ingest times are those of the old table. */
        assert_int_equal(
                th_sqlite_int(db, "SELECT count(*) FROM calls WHERE "
                                  "typeof(crime_id) != 'text' OR "
                                  "typeof(call_ts) != 'text' OR "
                                  "typeof(kafka_offset) != 'integer' OR "
                                  "ingested_at NOT GLOB '[0-9][0-9][0-9][0-9]-"
                                  "[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:"
                                  "[0-9][0-9]'"),
                0);
        free(file);
        free(db);
}

static void test_views_match_model(void **state)
{
        struct st *st = *state;

        replay_and_compare(st, "3", 0);
        replay_and_compare(st, "100", 0);
        /* The watermark ends at 13:30: the horizon is 09:30. */
        replay_and_compare(st, "3", 4 * 3600);
        replay_and_compare(st, "100", 4 * 3600);
}

/* n calls "<id>", id from first, an hour apart from start + hour * 3600,
 * in 7 types and 3 dispositions, appended to b. */
static void add_hourly(struct th_buf *b, int first, int n, int64_t start,
                       int hour)
{
        static const char *const disp[] = {"HAN", "GOA", "CIT"};
        char ts[TM_TS_SIZE];
        int i;

        for (i = 0; i < n; i++, hour++) {
                tm_format_sec(start + (int64_t)hour * 3600 + 60 * (hour % 7),
                              ts);
                ts[10] = 'T';
                th_buf_addf(b,
                            "{\"crime_id\":\"%d\",\"original_crime_type_"
                            "name\":\"Type %d\",\"call_date_time\":\"%s\","
                            "\"disposition\":\"%s\"}\n",
                            first + i, hour % 7, ts, disp[hour % 3]);
        }
}

/* 300 calls an hour apart in 7 types and 3 dispositions, one batch: 1500
 * window rows, written 64 to a statement step, then the rest, and calls
 * with growing numeric ids, 32 to a step; the view's totals and a few rows
 * checked against the arithmetic. Then one batch of 40 copies, 40 calls
 * above the largest id and 40 below it, new: each counted once. */
static void test_many_rows(void **state)
{
        struct st *st = *state;
        char *file = path_in(st, "many.ndjson"), *db = path_in(st, "many.db");
        char *more = path_in(st, "more.ndjson");
        struct th_buf b = {0};
        int64_t start = us_of("2019-03-01T00:00:00") / TM_USEC;

        th_buf_add(&b, "", 0);
        add_hourly(&b, 500000, 300, start, 0);
        if (th_write_file(file, b.p, 0))
                fail_msg("cannot write %s", file);
        th_buf_free(&b);
        free(run_ok(st, "ingest", "--file", file, "--topic", "m", "--db", db,
                    "--window", "1h", "--window", "1h/15m", "-q", NULL));
        /* Each call is in one 1h window and four 1h/15m ones, each its
         * own row (an hour apart, minutes 0 to 6 past the hour). */
        assert_int_equal(
                th_sqlite_int(db, "SELECT count(*) FROM window_counts"),
                300 * 5);
        assert_int_equal(th_sqlite_int(db,
                                       "SELECT sum(calls) FROM window_counts "
                                       "WHERE window_spec = '1h/15m'"),
                         300 * 4);
        assert_int_equal(th_sqlite_int(db,
                                       "SELECT count(*) FROM window_counts "
                                       "WHERE calls != 1 OR late_calls != 0"),
                         0);
        /* Call 100 (Type 2, GOA) at 2019-03-05 04:02. */
        assert_int_equal(
                th_sqlite_int(db, "SELECT count(*) FROM window_counts WHERE "
                                  "crime_type = 'Type 2' AND disposition = "
                                  "'GOA' AND window_start IN ('2019-03-05 "
                                  "03:15:00', '2019-03-05 03:30:00', "
                                  "'2019-03-05 03:45:00', '2019-03-05 "
                                  "04:00:00') AND window_end = "
                                  "datetime(window_start, '+1 hour')"),
                5);

        /* Copies of 500100..500139, new 600000..600039 (above the largest
         * id) and 400000..400039 (below it), at hours 300 to 419. */
        th_buf_add(&b, "", 0);
        add_hourly(&b, 500100, 40, start, 100);
        add_hourly(&b, 600000, 40, start, 300);
        add_hourly(&b, 400000, 40, start, 340);
        if (th_write_file(more, b.p, 0))
                fail_msg("cannot write %s", more);
        th_buf_free(&b);
        free(run_ok(st, "ingest", "--file", more, "--topic", "m2", "--db", db,
                    "--window", "1h", "--window", "1h/15m", "-q", NULL));
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM calls"), 380);
        assert_int_equal(th_sqlite_int(db,
                                       "SELECT calls_total * 1000 + "
                                       "duplicates_total FROM kafka_offsets "
                                       "WHERE topic = 'm2'"),
                         80 * 1000 + 40);
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM calls WHERE "
                                           "kafka_topic = 'm2' AND (crime_id "
                                           "BETWEEN '600000' AND '600039' OR "
                                           "crime_id BETWEEN '400000' AND "
                                           "'400039')"),
                         80);
        assert_int_equal(
                th_sqlite_int(db, "SELECT count(*) FROM window_counts"),
                380 * 5);
        assert_int_equal(th_sqlite_int(db,
                                       "SELECT count(*) FROM window_counts "
                                       "WHERE calls != 1 OR late_calls != 0"),
                         0);
        free(more);
        free(file);
        free(db);
}

/* The calls table as migrations 001, 003 made it, and rows as the ingest
 * wrote them before 012: numeric and text crime_ids, times with and
 * without fractions, before 1970 and in year 1, no watermark, policy
 * drop. */
static const char *const old_rows[] = {
        "'190000001', 'Theft', NULL, NULL, NULL, NULL, "
        "'2019-01-01T08:00:00.000', 'HAN', '1 Main St', NULL, NULL, NULL, "
        "NULL, NULL, '2019-01-01 08:00:00', 'calls', 3, 17, "
        "'2026-01-01 10:00:00', NULL, 'count'",
        "'A-1', 'Assault', NULL, NULL, NULL, NULL, "
        "'2019-01-01T08:10:30.25', NULL, '2 Oak St', NULL, NULL, NULL, NULL, "
        "NULL, '2019-01-01 08:10:30.250000', 'calls', 0, 5, "
        "'2026-01-01 10:00:01', '2019-01-01 07:00:00.500000', 'drop'",
        "'0190000002', 'Noise', NULL, NULL, NULL, NULL, "
        "'1969-12-31T23:59:59.5', 'ADV', NULL, NULL, NULL, NULL, NULL, NULL, "
        "'1969-12-31 23:59:59.500000', 'calls', 1, 9, "
        "'2026-01-01 10:00:02', '1969-12-31 22:00:00', 'count'",
        "'1234567890123456789', 'Fraud', NULL, NULL, NULL, NULL, "
        "'0001-01-01T00:00:00', 'HAN', NULL, NULL, NULL, NULL, NULL, NULL, "
        "'0001-01-01 00:00:00', 'calls', 2, 1, '2026-01-01 10:00:03', "
        "NULL, 'count'",
        "'999999999999999999', 'Theft', 'r', 'c', 'o', 't', "
        "'9999-12-31T23:59:59.999999', 'CIT', 'a', 'ci', 'st', 'ag', 'at', "
        "'cl', '9999-12-31 23:59:59.999999', 'calls', 2, 2, "
        "'2026-01-01 10:00:04', '9999-12-31 22:59:59.999999', 'drop'",
};

static void test_migration_carries_calls(void **state)
{
        struct st *st = *state;
        char *db = path_in(st, "old.db"), *file = path_in(st, "more.ndjson");
        struct th_lines want = {0}, got = {0}, wwant = {0};
        struct th_buf sql = {0};
        size_t i;

        free(run_ok(st, "migrate", "--db", db, NULL));
        /* Window counts, which 012 moves to a table keyed by start. */
        exec_sql(db, "INSERT INTO window_counts VALUES ('1h', '2019-01-01 "
                     "08:00:00', '2019-01-01 09:00:00', 'Theft', 'HAN', 3, "
                     "1), ('1h/15m', '1969-12-31 23:15:00', '1970-01-01 "
                     "00:15:00', 'Noise', '', 2, 0)");
        query_lines(db, "SELECT * FROM window_counts", &wwant);
        th_buf_addf(&sql,
                    "DROP VIEW calls; DROP TABLE call_rows; "
                    "DELETE FROM schema_migrations WHERE version >= 12; "
                    "CREATE TABLE calls (crime_id TEXT PRIMARY KEY, "
                    "original_crime_type_name TEXT NOT NULL, report_date "
                    "TEXT, call_date TEXT, offense_date TEXT, call_time TEXT, "
                    "call_date_time TEXT NOT NULL, disposition TEXT, "
                    "address TEXT, city TEXT, state TEXT, agency_id TEXT, "
                    "address_type TEXT, common_location TEXT, call_ts TEXT "
                    "NOT NULL, kafka_topic TEXT NOT NULL, kafka_partition "
                    "INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, "
                    "ingested_at TEXT NOT NULL, watermark_at_count TEXT, "
                    "late_policy TEXT NOT NULL DEFAULT 'count'); "
                    "CREATE INDEX calls_call_ts ON calls (call_ts);");
        for (i = 0; i < sizeof(old_rows) / sizeof(old_rows[0]); i++)
                th_buf_addf(&sql, "INSERT INTO calls VALUES (%s);",
                            old_rows[i]);
        th_buf_add(&sql, "", 1);
        exec_sql(db, sql.p);
        th_buf_free(&sql);
        query_lines(db, "SELECT * FROM calls", &want);

        free(run_ok(st, "migrate", "--db", db, NULL));
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM "
                                           "sqlite_schema WHERE type = "
                                           "'table' AND name = 'calls'"),
                         0);
        query_lines(db, "SELECT * FROM calls", &got);
        expect_same("calls carried over by 012", &want, &got);
        th_lines_free(&got);
        query_lines(db, "SELECT * FROM window_counts", &got);
        expect_same("window counts carried over by 012", &wwant, &got);
        th_lines_free(&got);
        th_lines_free(&wwant);
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM "
                                           "pragma_index_xinfo('sqlite_"
                                           "autoindex_window_totals_1') WHERE "
                                           "seqno = 0 AND name = "
                                           "'window_start'"),
                         1);
        /* Numbers became keys, the rest stayed text. */
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM call_rows "
                                           "WHERE crime_id IS NULL"),
                         2);

        /* Copies of carried calls are duplicates; a new text id gets a key
         * of its own. */
        th_write_file(file,
                      "{\"crime_id\":\"190000001\",\"original_crime_type_"
                      "name\":\"Theft\",\"call_date_time\":\"2019-01-01T08:"
                      "00:00.000\"}\n"
                      "{\"crime_id\":\"A-1\",\"original_crime_type_"
                      "name\":\"Assault\",\"call_date_time\":\"2019-01-01T08:"
                      "10:30.25\"}\n"
                      "{\"crime_id\":\"B-2\",\"original_crime_type_"
                      "name\":\"Noise\",\"call_date_time\":\"2019-01-01T09:"
                      "00:00\"}\n",
                      0);
        free(run_ok(st, "ingest", "--file", file, "--topic", "more", "--db", db,
                    "-q", NULL));
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM calls"), 6);
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM calls WHERE "
                                           "kafka_topic = 'more'"),
                         1);
        assert_int_equal(
                th_sqlite_int(db, "SELECT sum(calls) FROM window_counts"),
                3 + 2 + 1);
        query_lines(db, "SELECT crime_id FROM calls WHERE crime_id = 'B-2'",
                    &got);
        assert_int_equal(got.n, 1);
        th_lines_free(&got);

        /* Deleting through the view reaches call_rows, by either key. */
        exec_sql(db, "DELETE FROM calls WHERE crime_id IN ('A-1', "
                     "'190000001', '0190000002')");
        query_lines(db, "SELECT crime_id FROM calls", &got);
        assert_int_equal(got.n, 3);
        assert_string_equal(got.v[0], "1234567890123456789");
        assert_string_equal(got.v[1], "999999999999999999");
        assert_string_equal(got.v[2], "B-2");
        th_lines_free(&got);
        th_lines_free(&want);
        free(db);
        free(file);
}

/* The writer's connection runs with the README's settings, and a replay's
 * memory is bounded: the page cache, not the stream, sets it. */
static void test_settings_and_memory(void **state)
{
        struct st *st = *state;
        char *file = path_in(st, "gen.ndjson"), *db = path_in(st, "gen.db");
        char *log = path_in(st, "gen.log"), *err;
        struct th_args a = {0};
        struct rusage ru;
        pid_t pid;
        int ws;

        free(run_ok(st, "generate", "--count", "60000", "--seed", "7",
                    "--duplicates", "0.05", "--output", file, NULL));
        err = run_ok(st, "ingest", "--file", file, "--db", db, "--window", "1h",
                     "--window", "1h/15m", "-v", "--batch-max-records", "20000",
                     NULL);
        if (!strstr(err, "cache_size=-12288") || !strstr(err, "mmap_size=0 ") ||
            !strstr(err, "page_size=8192 "))
                fail_msg("settings not as the README says:\n%s", err);
        free(err);
        assert_int_equal(th_sqlite_int(db, "PRAGMA page_size"), 8192);

        /* Peak RSS of a fresh replay of the same file: a child of ours,
         * waited for alone. */
        unlink(db);
        th_args_addv(&a, st->bin, "ingest", "--file", file, "--db", db,
                     "--window", "1h", "--window", "1h/15m", "-q", NULL);
        pid = th_spawn_logged(&a, log);
        assert_true(pid > 0);
        assert_int_equal(wait4(pid, &ws, 0, &ru), pid);
        th_child_forget(pid);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
                th_show_file_tail("ingest", log);
                fail_msg("the replay ended with status %d", ws);
        }
        fprintf(stderr, "# peak RSS of a replay of 60000 calls: %ld KB\n",
                ru.ru_maxrss);
        assert_true(ru.ru_maxrss < 64 * 1024);
        th_args_free(&a);
        free(log);
        free(file);
        free(db);
}

static int group_setup(void **state)
{
        struct st *st = calloc(1, sizeof(*st));
        char *data = NULL;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_sqlite_store", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data)) {
                free(data);
                return -1;
        }
        free(data);
        if (th_tmpdir_make("callstream-store", st->dir, sizeof(st->dir)))
                return -1;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        return 0;
}

static int group_teardown(void **state)
{
        struct st *st = *state;

        if (!st)
                return 0;
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st);
        *state = NULL;
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_views_match_model,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_many_rows, th_test_teardown),
                cmocka_unit_test_teardown(test_migration_carries_calls,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_settings_and_memory,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("sqlite_store", tests, group_setup,
                                           group_teardown);
}
