/* test_merge.c: the Kafka source merges its partitions by timestamp
 * (kafka_source.c, merge_next()), so that a batch holds a stretch of the
 * stream's time rather than whole fetches of a few partitions:
 *
 *   test_merged_in_time_order  8 partitions, each written whole before the
 *                              next, in many small message sets, with
 *                              timestamps that interleave: read back with
 *                              small queues, every message comes once, each
 *                              partition in offset order, and the
 *                              timestamps never go back
 *   test_idle_partitions       partitions with nothing in them, or at their
 *                              end, hold nothing up: the others are read to
 *                              the end, and a message produced later to one
 *                              of them comes out
 *   test_ingest_merged         an ingest of the interleaved topic, merged
 *                              (--partition-order time, the default) or as
 *                              fetched (fetch), stores every call once,
 *                              with the window counts of a --file ingest
 *                              of the same calls in time order
 *
 * The expected order is the timestamps this test gives the messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <sqlite3.h>

#include "cs_source.h"
#include "harness.h"
#include "pgutil.h"

#define WATCHDOG_S 300
#define NPARTS     8
#define PER_PART   1500            /* messages in each partition of "mix" */
#define BASE_MS    1546300800000LL /* 2019-01-01 00:00:00 UTC */

struct mt {
        char *bin;
        char dir[512];
        struct th_broker broker; /* topics mix, idle, calls: 8 partitions */
};

/* The timestamp of message i of partition p: one minute apart in the whole
 * stream, the partitions taking turns in a shuffled order. */
static int64_t ts_of(int p, int i)
{
        static const int turn[NPARTS] = {5, 2, 7, 0, 3, 6, 1, 4};

        return BASE_MS + ((int64_t)i * NPARTS + turn[p]) * 60000;
}

/* Produces to topic, partition by partition (each whole before the next,
 * so that the log order says nothing of time), in message sets of 50,
 * payload(p, i) with timestamp ts_of(p, i), for the partitions in
 * [0, nparts) and i in [first, first + count). */
static void produce(const struct mt *st, const char *topic, int nparts,
                    int first, int count, char *(*payload)(int p, int i))
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[512];
        rd_kafka_t *rk;
        int p, i;

        assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                           st->broker.brokers, errstr,
                                           sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "batch.num.messages", "50",
                                           errstr, sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "compression.type", "lz4",
                                           errstr, sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        assert_non_null(rk);
        for (p = 0; p < nparts; p++) {
                for (i = first; i < first + count; i++) {
                        char *v = payload(p, i);
                        rd_kafka_resp_err_t err;

                        do {
                                err = rd_kafka_producev(
                                        rk, RD_KAFKA_V_TOPIC(topic),
                                        RD_KAFKA_V_PARTITION(p),
                                        RD_KAFKA_V_VALUE(v, strlen(v)),
                                        RD_KAFKA_V_MSGFLAGS(
                                                RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_TIMESTAMP(ts_of(p, i)),
                                        RD_KAFKA_V_END);
                                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                        rd_kafka_poll(rk, 10);
                        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
                        assert_int_equal(err, 0);
                        free(v);
                }
                /* Whole before the next. */
                assert_int_equal(rd_kafka_flush(rk, 60000), 0);
        }
        assert_int_equal(rd_kafka_outq_len(rk), 0);
        rd_kafka_destroy(rk);
}

static char *plain(int p, int i)
{
        return th_asprintf("%d|%d", p, i);
}

/* A call whose event time is its message's timestamp. */
static char *call(int p, int i)
{
        int64_t s = ts_of(p, i) / 1000;
        int64_t day = s / 86400, sec = s % 86400;
        /* 2019-01-01 is day 17897; the stream stays within January. */
        int mday = (int)(day - 17897) + 1;

        return th_asprintf("{\"crime_id\":\"M%d-%d\",\"original_crime_type_"
                           "name\":\"Type %d\",\"call_date_time\":\"2019-01-"
                           "%02dT%02d:%02d:00\",\"disposition\":\"HAN\"}",
                           p, i, (p + i) % 3, mday, (int)(sec / 3600),
                           (int)(sec % 3600 / 60));
}

static struct cs_source *open_source(const struct mt *st, const char *topic)
{
        struct cs_kafka_source_conf conf = {
                .brokers = st->broker.brokers,
                .topic = topic,
                .from_beginning = 1,
                .exit_at_end = 1,
                .on_assign = th_no_offsets,
                .on_revoke = th_nothing_to_commit,
                .startup_timeout_ms = 30000,
                /* Small queues: many refills and waits. */
                .batch_max_records = 100,
                /* Long enough never to give up on a partition here. */
                .merge_wait_ms = 30000,
        };
        struct cs_source *src;
        char errstr[512];

        assert_int_equal(
                cs_source_kafka_new(&conf, &src, errstr, sizeof(errstr)), 0);
        return src;
}

static void test_merged_in_time_order(void **state)
{
        struct mt *st = *state;
        int next[NPARTS] = {0}, n = 0, p;
        int64_t last = INT64_MIN, deadline;
        struct cs_source *src;

        produce(st, "mix", NPARTS, 0, PER_PART, plain);
        src = open_source(st, "mix");
        deadline = th_now_ms() + 120000;
        while (th_now_ms() < deadline) {
                struct cs_source_msg m;
                int r = cs_source_next(src, 100, &m), i;
                char *want;

                assert_true(r >= 0);
                if (r == 0 && cs_source_at_end(src))
                        break;
                if (r == 0)
                        continue;
                p = m.partition;
                assert_true(p >= 0 && p < NPARTS);
                i = next[p]++;
                assert_int_equal(m.offset, i);
                want = plain(p, i);
                assert_int_equal(m.len, strlen(want));
                assert_memory_equal(m.payload, want, m.len);
                free(want);
                assert_int_equal(m.timestamp, ts_of(p, i));
                if (m.timestamp < last)
                        fail_msg("message %d (partition %d offset %d) at %lld "
                                 "came after one at %lld",
                                 n, p, i, (long long)m.timestamp,
                                 (long long)last);
                last = m.timestamp;
                n++;
        }
        cs_source_close(src);
        for (p = 0; p < NPARTS; p++)
                assert_int_equal(next[p], PER_PART);
        assert_int_equal(n, NPARTS * PER_PART);
}

static void test_idle_partitions(void **state)
{
        struct mt *st = *state;
        int next[NPARTS] = {0}, n = 0, late = 0;
        int64_t deadline;
        struct cs_source *src;

        /* Partitions 0-2 hold 200 messages each, 3-7 none. */
        produce(st, "idle", 3, 0, 200, plain);
        src = open_source(st, "idle");
        deadline = th_now_ms() + 120000;
        while (th_now_ms() < deadline) {
                struct cs_source_msg m;
                int r = cs_source_next(src, 100, &m);

                assert_true(r >= 0);
                if (r == 0 && cs_source_at_end(src)) {
                        if (late)
                                break;
                        /* Read to the end: one more, to partition 1, after
                         * the others have gone quiet. */
                        assert_int_equal(n, 600);
                        produce(st, "idle", 2, 200, 1, plain);
                        late = 1;
                        continue;
                }
                if (r == 0)
                        continue;
                assert_int_equal(m.offset, next[m.partition]++);
                n++;
        }
        cs_source_close(src);
        assert_true(late);
        /* Partitions 0 and 1 got one more each. */
        assert_int_equal(n, 602);
        assert_int_equal(next[0], 201);
        assert_int_equal(next[1], 201);
        assert_int_equal(next[2], 200);
}

/* The rows of sql in the SQLite database at path, one line each. */
static void rows_of(const char *path, const char *sql, struct th_lines *out)
{
        sqlite3 *db = NULL;

        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        assert_int_equal(th_lite_lines(db, sql, NULL, NULL, out), 0);
        sqlite3_close(db);
}

struct stamped {
        int64_t ts;
        int p, i;
};

static int by_ts(const void *a, const void *b)
{
        const struct stamped *x = a, *y = b;

        return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* Ingests topic calls into db with --partition-order order; its -v log
 * names the prefetch, "merged by timestamp" when order is time. */
static void ingest_topic(const struct mt *st, const char *db, const char *order)
{
        struct th_args a = {0};
        struct th_run r;

        th_args_addv(&a, st->bin, "ingest", "-v", "-b", st->broker.brokers,
                     "-t", "calls", "--from-beginning", "--exit-at-end", "--db",
                     db, "--batch-max-records", "100", "--window", "1h",
                     "--window", "1h/15m", "--partition-order", order, NULL);
        th_run_ok(&a, &r);
        assert_non_null(strstr(r.err.p, "Kafka prefetch:"));
        if (!strcmp(order, "time"))
                assert_non_null(strstr(r.err.p, "merged by timestamp"));
        else
                assert_null(strstr(r.err.p, "merged by timestamp"));
        th_run_free(&r);
        th_args_free(&a);
}

/* The window counts of db equal want (sorted). */
static void expect_counts(const char *what, const char *db,
                          const struct th_lines *want)
{
        struct th_lines got = {0};

        rows_of(db, "SELECT * FROM window_counts", &got);
        th_lines_sort(&got);
        assert_int_equal(
                th_lines_compare("window_counts", what, &got, "file", want, 10),
                0);
        th_lines_free(&got);
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM calls"),
                         th_sqlite_int(db, "SELECT count(DISTINCT crime_id) "
                                           "FROM calls"));
}

static void test_ingest_merged(void **state)
{
        enum { N = 300 };
        struct mt *st = *state;
        char *db = th_asprintf("%s/merged.db", st->dir);
        char *odb = th_asprintf("%s/fetched.db", st->dir);
        char *fdb = th_asprintf("%s/file.db", st->dir);
        char *file = th_asprintf("%s/calls.ndjson", st->dir);
        static struct stamped all[NPARTS * N];
        struct th_lines want = {0};
        struct th_args a = {0};
        struct th_buf b = {0};
        int i, p, n = 0;

        produce(st, "calls", NPARTS, 0, N, call);
        /* The same calls in time order, for a --file ingest. */
        for (p = 0; p < NPARTS; p++)
                for (i = 0; i < N; i++)
                        all[n++] = (struct stamped){ts_of(p, i), p, i};
        qsort(all, (size_t)n, sizeof(all[0]), by_ts);
        th_buf_add(&b, "", 0);
        for (i = 0; i < n; i++) {
                char *c = call(all[i].p, all[i].i);

                th_buf_addf(&b, "%s\n", c);
                free(c);
        }
        assert_int_equal(th_write_file(file, b.p, 0), 0);
        th_buf_free(&b);
        th_args_addv(&a, st->bin, "ingest", "-q", "--file", file, "--db", fdb,
                     "--window", "1h", "--window", "1h/15m", NULL);
        th_run_ok_free(&a);
        rows_of(fdb, "SELECT * FROM window_counts", &want);
        assert_true(want.n > 0);
        th_lines_sort(&want);
        /* Merged or as fetched, every call once and the file's counts. */
        ingest_topic(st, db, "time");
        ingest_topic(st, odb, "fetch");
        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM calls"),
                         NPARTS * N);
        assert_int_equal(th_sqlite_int(odb, "SELECT count(*) FROM calls"),
                         NPARTS * N);
        expect_counts("merged", db, &want);
        expect_counts("fetched", odb, &want);
        th_lines_free(&want);
        free(db);
        free(odb);
        free(fdb);
        free(file);
}

static int group_teardown(void **state)
{
        struct mt *st = *state;

        if (!st)
                return 0;
        th_broker_stop(&st->broker);
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st);
        *state = NULL;
        return 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {
                "--partitions", "8",       "--topic", "mix", "--topic",
                "idle",         "--topic", "calls",   NULL};
        struct mt *st = calloc(1, sizeof(*st));
        char *data = NULL, *err;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_merge", WATCHDOG_S);
        r = th_find_bin_data(&st->bin, &data);
        free(data);
        if (r || th_tmpdir_make("callstream-merge", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        err = th_asprintf("%s/broker.err", st->dir);
        r = th_broker_start(&st->broker, st->bin, broker_args, err);
        free(err);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);
        cs_log_threshold = CS_LOG_WARN;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_merged_in_time_order,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_idle_partitions,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_ingest_merged, th_test_teardown),
        };

        return cmocka_run_group_tests_name("merge", tests, group_setup,
                                           group_teardown);
}
