/* test_threads.c: the ingest's consumer and writer threads (issue 9), run
 * in-process through cs_pipeline_run() with a sink wrapper that slows the
 * writer (so that batches queue up behind it) and fails some batch commits
 * as an outage would:
 *
 *   test_outage_file       a replay whose batch commits fail every few
 *                          batches while the next batch waits: the batches
 *                          queued before each outage are dropped (epoch)
 *                          and read again, nothing lost or counted twice
 *   test_outage_kafka      the same over 4 Kafka partitions
 *   test_rebalance_in_flight  a second group member joins while the first
 *                          has batches in flight (PostgreSQL, shared by
 *                          both): the first commits them before it gives
 *                          partitions up, so every call counts once
 *
 * Every expected value follows from the stream the test writes (one call a
 * minute, known duplicates and malformed lines), worked out here, not by
 * the code under test. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "cs_pipeline.h"
#include "cs_sink.h"
#include "harness.h"
#include "model.h"
#include "pgutil.h"

#define WATCHDOG_S 600
#define NCALLS     2400 /* one a minute: 40 hours */
#define DUP_EVERY  10   /* after every 10th call, a copy of an earlier one */
#define BAD_EVERY  200  /* and after every 200th, a malformed line */
#define NTYPES     3
#define T0         "2019-01-02 00:00:00"

struct thr {
        char *bin;
        char dir[512];
        char *stream;            /* the NDJSON file */
        struct th_broker broker; /* topics thr and reb, 4 partitions */
        struct th_pg pg;
};

static char *path_in(const struct thr *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

static int64_t t0_sec(void)
{
        int64_t us;

        assert_int_equal(tm_parse_ts(T0, strlen(T0), &us), 0);
        return us / TM_USEC;
}

/* The stream: call i ("C<i>", type i % NTYPES) at T0 + i minutes; after
 * every DUP_EVERY-th call an exact copy of call i - 5, after every
 * BAD_EVERY-th a line that is not JSON. */
static void write_stream(const char *path)
{
        struct th_buf b = {0};
        char ts[TM_TS_SIZE];
        int64_t t0 = t0_sec();
        int i;

        th_buf_add(&b, "", 0);
        for (i = 0; i < NCALLS; i++) {
                int k, copies = (i + 1) % DUP_EVERY == 0 ? 2 : 1;

                for (k = 0; k < copies; k++) {
                        int id = k ? i - 5 : i;

                        tm_format_sec(t0 + (int64_t)id * 60, ts);
                        ts[10] = 'T';
                        th_buf_addf(&b,
                                    "{\"crime_id\":\"C%d\",\"original_crime_"
                                    "type_name\":\"Type %d\",\"call_date_"
                                    "time\":\"%s\",\"disposition\":\"HAN\"}\n",
                                    id, id % NTYPES, ts);
                }
                if ((i + 1) % BAD_EVERY == 0)
                        th_buf_addf(&b, "not json %d\n", i);
        }
        assert_int_equal(th_write_file(path, b.p, 0), 0);
        th_buf_free(&b);
}

/* The call_counts rows the stream must give, "spec|start|type|calls", for
 * windows 1h and 1h/30m, each call once. */
static void expected_counts(struct th_lines *out)
{
        static const struct {
                const char *name;
                int64_t size, slide;
        } specs[] = {{"1h", 3600, 3600}, {"1h/30m", 3600, 1800}};
        enum { MAXW = NCALLS / 30 + 8 };
        static long n[2][MAXW][NTYPES];
        int64_t t0 = t0_sec(), w;
        char ts[TM_TS_SIZE];
        int s, i, t;

        memset(n, 0, sizeof(n));
        for (s = 0; s < 2; s++)
                for (i = 0; i < NCALLS; i++) {
                        int64_t sec = t0 + (int64_t)i * 60;

                        for (w = tm_window_first(sec, specs[s].size,
                                                 specs[s].slide);
                             w <= tm_window_last(sec, specs[s].slide);
                             w += specs[s].slide)
                                n[s][(w - t0 + 3600) / 1800][i % NTYPES]++;
                }
        for (s = 0; s < 2; s++)
                for (i = 0; i < MAXW; i++)
                        for (t = 0; t < NTYPES; t++) {
                                if (!n[s][i][t])
                                        continue;
                                tm_format_sec(t0 - 3600 + (int64_t)i * 1800,
                                              ts);
                                th_lines_addf(out, "%s|%s|Type %d|%ld",
                                              specs[s].name, ts, t, n[s][i][t]);
                        }
        th_lines_sort(out);
}

/*
 * The sink wrapper: write_calls slowed, every fail_every-th batch commit
 * failed as an outage (nothing committed; the pipeline rolls back).
 */

static struct {
        pthread_mutex_t mu;
        const struct cs_sink_ops *real;
        struct cs_sink_ops ops;
        long batches, failures, reconnects;
        long fail_every; /* 0: never */
        long slow_ms;
} fault = {.mu = PTHREAD_MUTEX_INITIALIZER};

static __thread int in_batch;

static int slow_write_calls(struct cs_sink *s, const struct cs_batch *b,
                            unsigned char *outcome, struct cs_old_call *old,
                            char *errstr, size_t errstr_size)
{
        in_batch = 1;
        if (fault.slow_ms)
                th_sleep_ms(fault.slow_ms);
        return fault.real->write_calls(s, b, outcome, old, errstr, errstr_size);
}

static int failing_commit(struct cs_sink *s, char *errstr, size_t errstr_size)
{
        int fail = 0;

        if (in_batch) {
                in_batch = 0;
                pthread_mutex_lock(&fault.mu);
                fault.batches++;
                if (fault.fail_every && fault.batches % fault.fail_every == 0) {
                        fault.failures++;
                        fail = 1;
                }
                pthread_mutex_unlock(&fault.mu);
        }
        if (fail) {
                snprintf(errstr, errstr_size, "injected outage");
                return CS_RETRY;
        }
        return fault.real->commit(s, errstr, errstr_size);
}

static int counting_reconnect(struct cs_sink *s, char *errstr,
                              size_t errstr_size)
{
        pthread_mutex_lock(&fault.mu);
        fault.reconnects++;
        pthread_mutex_unlock(&fault.mu);
        return fault.real->reconnect(s, errstr, errstr_size);
}

static void wrap_sink(struct cs_sink *s)
{
        pthread_mutex_lock(&fault.mu);
        fault.real = s->ops;
        fault.ops = *s->ops;
        fault.ops.write_calls = slow_write_calls;
        fault.ops.commit = failing_commit;
        fault.ops.reconnect = counting_reconnect;
        s->ops = &fault.ops;
        pthread_mutex_unlock(&fault.mu);
}

static void faults(long fail_every, long slow_ms)
{
        pthread_mutex_lock(&fault.mu);
        fault.batches = fault.failures = fault.reconnects = 0;
        fault.fail_every = fail_every;
        fault.slow_ms = slow_ms;
        pthread_mutex_unlock(&fault.mu);
}

/*
 * Pipelines in-process.
 */

struct run {
        struct cs_window_spec specs[2];
        struct cs_pipeline_conf conf;
        volatile sig_atomic_t stop;
        pthread_t thread;
        int rc;
};

static void run_init(struct run *r, const char *db, const char *topic)
{
        char errstr[128];

        memset(r, 0, sizeof(*r));
        assert_int_equal(cs_window_spec_parse("1h", &r->specs[0], errstr, 128),
                         0);
        assert_int_equal(
                cs_window_spec_parse("1h/30m", &r->specs[1], errstr, 128), 0);
        r->conf.db = db;
        r->conf.topic = topic;
        r->conf.specs = r->specs;
        r->conf.nspecs = 2;
        r->conf.from_beginning = 1;
        r->conf.allowed_lateness = 30 * 86400; /* nothing is late */
        r->conf.max_future = -1;
        r->conf.startup_timeout_ms = 60000;
        r->conf.batch_max_records = 40;
        r->conf.batch_max_ms = 1000;
}

static void *run_main(void *arg)
{
        struct run *r = arg;

        r->rc = cs_pipeline_run(&r->conf, &r->stop);
        return NULL;
}

/* The rows of sql, columns joined by '|', sorted. */
static void lite_rows(const char *db, const char *sql, struct th_lines *out)
{
        sqlite3 *h = NULL;
        sqlite3_stmt *q = NULL;
        int i, n;

        assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &q, NULL), SQLITE_OK);
        n = sqlite3_column_count(q);
        while (sqlite3_step(q) == SQLITE_ROW) {
                struct th_buf b = {0};

                th_buf_add(&b, "", 0);
                for (i = 0; i < n; i++) {
                        const unsigned char *v = sqlite3_column_text(q, i);

                        th_buf_addf(&b, "%s%s", i ? "|" : "",
                                    v ? (const char *)v : "NULL");
                }
                th_lines_add(out, b.p);
        }
        sqlite3_finalize(q);
        sqlite3_close(h);
        th_lines_sort(out);
}

static void pg_rows(const char *ci, const char *sql, struct th_lines *out)
{
        PGconn *c = th_pg_open(ci);
        PGresult *res;
        int i, j;

        assert_non_null(c);
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
                fail_msg("%s: %s", sql, PQerrorMessage(c));
        for (i = 0; i < PQntuples(res); i++) {
                struct th_buf b = {0};

                th_buf_add(&b, "", 0);
                for (j = 0; j < PQnfields(res); j++)
                        th_buf_addf(&b, "%s%s", j ? "|" : "",
                                    PQgetisnull(res, i, j)
                                            ? "NULL"
                                            : PQgetvalue(res, i, j));
                th_lines_add(out, b.p);
        }
        PQclear(res);
        PQfinish(c);
        th_lines_sort(out);
}

static const char counts_sql[] =
        "SELECT window_spec, CAST(window_start AS TEXT), crime_type, calls "
        "FROM call_counts";
static const char totals_sql[] =
        "SELECT (SELECT COUNT(*) FROM calls), SUM(calls), SUM(duplicates), "
        "SUM(rejected), SUM(late), (SELECT COUNT(*) FROM rejected_records) "
        "FROM pipeline_progress";

/* What totals_sql must give: every call once, every copy a duplicate,
 * every malformed line rejected once, nothing late. */
static char *expected_totals(void)
{
        return th_asprintf("%d|%d|%d|%d|0|%d", NCALLS, NCALLS,
                           NCALLS / DUP_EVERY, NCALLS / BAD_EVERY,
                           NCALLS / BAD_EVERY);
}

/* Fails unless db (SQLite, or PostgreSQL conninfo with pg) holds exactly
 * what the stream must give. */
static void check_exact(const char *db, int pg, const char *label)
{
        struct th_lines want = {0}, got = {0}, tot = {0};
        char *totals = expected_totals();
        int bad = 0;

        expected_counts(&want);
        if (pg) {
                pg_rows(db, counts_sql, &got);
                pg_rows(db, totals_sql, &tot);
        } else {
                lite_rows(db, counts_sql, &got);
                lite_rows(db, totals_sql, &tot);
        }
        if (th_lines_compare(label, "got", &got, "expected", &want, 10))
                bad++;
        if (tot.n != 1 || strcmp(tot.v[0], totals)) {
                fprintf(stderr,
                        "# %s: calls|new|duplicates|rejected|late|"
                        "rejected rows: %s, expected %s\n",
                        label, tot.n ? tot.v[0] : "(none)", totals);
                bad++;
        }
        th_lines_free(&want);
        th_lines_free(&got);
        th_lines_free(&tot);
        free(totals);
        if (bad)
                fail_msg("%s: the database differs from the stream", label);
}

static void test_outage_file(void **state)
{
        struct thr *st = *state;
        char *db = path_in(st, "outage-file.db");
        struct run r;

        run_init(&r, db, "outage-file");
        r.conf.file = st->stream;
        faults(4, 3);
        cs_pipeline_set_sink_hook(wrap_sink);
        assert_int_equal(cs_pipeline_run(&r.conf, &r.stop), 0);
        cs_pipeline_set_sink_hook(NULL);
        fprintf(stderr, "# %ld batch commits, %ld failed, %ld reconnects\n",
                fault.batches, fault.failures, fault.reconnects);
        /* The outages happened, and each was recovered from. */
        assert_true(fault.failures >= 3);
        assert_true(fault.reconnects >= fault.failures);
        check_exact(db, 0, "outage-file");
        free(db);
}

/* Produces the stream into topic (keyed by crime_id). */
static void produce(const struct thr *st, const char *topic)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "produce", "-b", st->broker.brokers, "-t",
                     topic, "-q", st->stream, NULL);
        th_run_ok_free(&a);
}

static void test_outage_kafka(void **state)
{
        struct thr *st = *state;
        char *db = path_in(st, "outage-kafka.db");
        struct run r;

        produce(st, "thr");
        run_init(&r, db, "thr");
        r.conf.brokers = st->broker.brokers;
        r.conf.exit_at_end = 1;
        r.conf.broker_timeout_ms = 60000;
        faults(4, 3);
        cs_pipeline_set_sink_hook(wrap_sink);
        assert_int_equal(cs_pipeline_run(&r.conf, &r.stop), 0);
        cs_pipeline_set_sink_hook(NULL);
        fprintf(stderr, "# %ld batch commits, %ld failed, %ld reconnects\n",
                fault.batches, fault.failures, fault.reconnects);
        assert_true(fault.failures >= 3);
        assert_true(fault.reconnects >= fault.failures);
        check_exact(db, 0, "outage-kafka");
        free(db);
}

/* The sum of the stored offsets of topic in PostgreSQL: every message
 * consumed when it reaches the number of messages produced. */
static long pg_consumed(const char *ci)
{
        PGconn *c = th_pg_open(ci);
        PGresult *res;
        long n = 0;

        assert_non_null(c);
        /* Before the ingest has migrated the database: nothing yet. */
        res = PQexec(c, "SELECT COALESCE(SUM(stored_offset), 0) FROM "
                        "pipeline_progress");
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
                n = atol(PQgetvalue(res, 0, 0));
        PQclear(res);
        PQfinish(c);
        return n;
}

static void test_rebalance_in_flight(void **state)
{
        struct thr *st = *state;
        const long messages = NCALLS + NCALLS / DUP_EVERY + NCALLS / BAD_EVERY;
        struct run a, b;
        int64_t deadline;
        char *ci;

        if (th_pg_start(&st->pg, st->dir, 0) < 0 ||
            th_pg_createdb(&st->pg, "reb", NULL) < 0)
                fail_msg("PostgreSQL did not start");
        ci = th_pg_conninfo(&st->pg, "reb");
        produce(st, "reb");
        run_init(&a, ci, "reb");
        a.conf.brokers = st->broker.brokers;
        a.conf.group = "thr-group";
        a.conf.broker_timeout_ms = 60000;
        b = a;
        b.conf.specs = b.specs;
        /* A slow writer: batches are always in flight. */
        faults(0, 20);
        cs_pipeline_set_sink_hook(wrap_sink);
        assert_int_equal(pthread_create(&a.thread, NULL, run_main, &a), 0);
        deadline = th_now_ms() + 120000;
        while (pg_consumed(ci) < messages / 8 && th_now_ms() < deadline)
                th_sleep_ms(50);
        assert_true(pg_consumed(ci) < messages); /* still going */
        /* The second member joins: the first gives partitions up
         * mid-stream, with a batch being written and one waiting. */
        assert_int_equal(pthread_create(&b.thread, NULL, run_main, &b), 0);
        while (pg_consumed(ci) < messages && th_now_ms() < deadline)
                th_sleep_ms(100);
        a.stop = 1;
        b.stop = 1;
        pthread_join(a.thread, NULL);
        pthread_join(b.thread, NULL);
        cs_pipeline_set_sink_hook(NULL);
        assert_int_equal(pg_consumed(ci), messages);
        assert_int_equal(a.rc, 0);
        assert_int_equal(b.rc, 0);
        check_exact(ci, 1, "rebalance");
        free(ci);
}

static int group_teardown(void **state)
{
        struct thr *st = *state;

        if (!st)
                return 0;
        th_pg_stop(&st->pg);
        th_broker_stop(&st->broker);
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->stream);
        free(st);
        *state = NULL;
        return 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {
                "--partitions", "4", "--topic", "thr", "--topic", "reb", NULL};
        struct thr *st = calloc(1, sizeof(*st));
        char *data = NULL, *err;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_threads", WATCHDOG_S);
        r = th_find_bin_data(&st->bin, &data);
        free(data);
        if (r || th_tmpdir_make("callstream-threads", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        err = path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, err);
        free(err);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);
        st->stream = path_in(st, "stream.ndjson");
        write_stream(st->stream);
        cs_log_threshold = CS_LOG_WARN;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_outage_file, th_test_teardown),
                cmocka_unit_test_teardown(test_outage_kafka, th_test_teardown),
                cmocka_unit_test_teardown(test_rebalance_in_flight,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("threads", tests, group_setup,
                                           group_teardown);
}
