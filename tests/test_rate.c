/* test_rate.c: ingest --max-rate-per-partition (issue 11). The token
 * bucket alone (cs_rate.h, on a clock of the test's own: test_rate_bucket);
 * and with the real binary (CALLSTREAM_BIN): a generated stream with
 * duplicates and malformed messages on four partitions, ingested at a
 * limited rate, uninterrupted and killed with kill -9 then resumed, gives
 * exactly the tables of an unlimited ingest, and takes at least as long as
 * the limit allows (test_rate_kafka, a lower bound only); the same for a
 * file replay (test_rate_file); a bad value is a usage error
 * (test_rate_usage).
 *
 * E2E_KEEP=1 keeps the folder; RATE_TEST_FILTER='test_rate_k*' runs some
 * tests. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_rate.h"
#include "harness.h"
#include "pgutil.h"

#define WATCHDOG_S 900
#define TOPIC      "rate"
#define NPARTS     4
#define COUNT      2400 /* generated messages */
#define RATE       150  /* --max-rate-per-partition of the Kafka runs */
#define FILE_RATE  400  /* and of the file runs */

static struct {
        char dir[512];
        char *bin;
        char *data;
        char *stream; /* dir/stream.ndjson */
        struct th_broker broker;
        int produced;
        long long per_part[NPARTS]; /* messages per partition, from kcat */
} g;

static char *path_in(const char *name)
{
        return th_asprintf("%s/%s", g.dir, name);
}

/*
 * The bucket alone.
 */

/* A greedy reader on a simulated clock: it takes a message whenever the
 * bucket lets it, waits as told when not, and never gets more than rate
 * per second plus one bucket (rate) over 20 s, nor much less. */
static void test_rate_bucket(void **state)
{
        struct cs_rate r;
        int64_t now = 1000000, end = now + 20000;
        long long taken = 0;
        int i;

        (void)state;
        /* rate 10: a bucket of 10, a pause until half of it is back. */
        cs_rate_init(&r, 10, now);
        for (i = 0; i < 9; i++)
                assert_int_equal(cs_rate_take(&r, now), 1);
        assert_int_equal(cs_rate_take(&r, now), 0);
        assert_int_equal(cs_rate_wait_ms(&r, now), 500);
        assert_int_equal(cs_rate_wait_ms(&r, now + 499), 1);
        assert_int_equal(cs_rate_wait_ms(&r, now + 500), 0);

        /* No limit: never waits. */
        cs_rate_init(&r, 0, now);
        for (i = 0; i < 100000; i++)
                assert_int_equal(cs_rate_take(&r, now), 1);
        assert_int_equal(cs_rate_wait_ms(&r, now), 0);

        cs_rate_init(&r, 250, now);
        while (now < end) {
                int64_t w = cs_rate_wait_ms(&r, now);

                if (w > 0) {
                        now += w;
                        continue;
                }
                while (now < end) {
                        taken++;
                        if (!cs_rate_take(&r, now))
                                break;
                        now += 1; /* a message a millisecond, faster */
                }
        }
        fprintf(stderr, "# 20 s at 250/s: %lld taken\n", taken);
        assert_true(taken <= 250 * (20 + 1));
        assert_true(taken >= 250 * 20 * 9 / 10);
}

/*
 * End to end.
 */

/* The tables of an ingest that must not depend on how fast it ran (no
 * ingested_at, no batch times). */
static const char *const same_sql[] = {
        "SELECT crime_id, original_crime_type_name, call_date_time, "
        "disposition, address, call_ts, kafka_topic, kafka_partition, "
        "kafka_offset, watermark_at_count, late_policy FROM calls",
        "SELECT * FROM window_counts",
        "SELECT window_spec, window_start, window_end, crime_type, calls, "
        "late_calls, is_final FROM call_counts",
        "SELECT kafka_topic, kafka_partition, kafka_offset, reason, payload "
        "FROM rejected_records",
        "SELECT topic, kafka_partition, stored_offset, max_event_ts, "
        "watermark, calls, duplicates, rejected, late FROM pipeline_progress",
};

static void dump(const char *db, struct th_lines *out)
{
        sqlite3 *h = NULL;
        size_t i;

        assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        for (i = 0; i < sizeof(same_sql) / sizeof(same_sql[0]); i++) {
                char *tag = th_asprintf("q%zu", i);

                assert_int_equal(th_lite_lines(h, same_sql[i], tag, NULL, out),
                                 0);
                free(tag);
        }
        sqlite3_close(h);
        th_lines_sort(out);
}

static void assert_same(const char *a, const char *b)
{
        struct th_lines x = {0}, y = {0};

        dump(a, &x);
        dump(b, &y);
        assert_true(x.n > COUNT / 2);
        assert_int_equal(
                th_lines_compare("tables", "unlimited", &x, "limited", &y, 12),
                0);
        th_lines_free(&x);
        th_lines_free(&y);
}

/* The messages whose offsets db has stored, all partitions. */
static long long stored_messages(const char *db)
{
        struct th_lines l = {0};
        sqlite3 *h = NULL;
        long long n = 0;

        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
                th_lite_lines(h,
                              "SELECT coalesce(sum(stored_offset), 0) FROM "
                              "pipeline_progress",
                              NULL, NULL, &l);
        sqlite3_close(h);
        if (l.n == 1)
                n = atoll(l.v[0]);
        th_lines_free(&l);
        return n;
}

/* The generated stream, produced once into the 4-partition topic; the
 * messages of each partition counted by kcat, independently. */
static void produce_once(void)
{
        struct th_args a = {0};
        struct th_run r = {0};
        char *count = th_asprintf("%d", COUNT);
        const char *p;

        if (g.produced)
                return;
        th_args_addv(&a, g.bin, "generate", "--count", count, "--seed", "11",
                     "--duplicates", "0.05", "--malformed", "0.02", "--output",
                     g.stream, NULL);
        th_run_ok_free(&a);
        free(count);
        th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t", TOPIC,
                     "-q", g.stream, NULL);
        th_run_ok_free(&a);

        th_args_addv(&a, "kcat", "-C", "-b", g.broker.brokers, "-t", TOPIC,
                     "-o", "beginning", "-e", "-q", "-f", "%p\n", NULL);
        th_run_ok(&a, &r);
        for (p = r.out.p; p && *p; p = strchr(p, '\n') + 1) {
                int part = atoi(p);

                assert_true(part >= 0 && part < NPARTS);
                g.per_part[part]++;
                if (!strchr(p, '\n'))
                        break;
        }
        th_run_free(&r);
        th_args_free(&a);
        g.produced = 1;
}

static void ingest_args(struct th_args *a, const char *db, int rate)
{
        th_args_addv(a, g.bin, "ingest", "-b", g.broker.brokers, "-t", TOPIC,
                     "--db", db, "--from-beginning", "--exit-at-end",
                     "--window", "1h", "--window", "1h/15m",
                     "--allowed-lateness", "30m", "--batch-max-records", "100",
                     "-q", NULL);
        if (rate) {
                char *v = th_asprintf("%d", rate);

                th_args_addv(a, "--max-rate-per-partition", v, NULL);
                free(v);
        }
}

static void test_rate_kafka(void **state)
{
        char *plain = path_in("kafka_plain.db");
        char *limited = path_in("kafka_limited.db");
        char *killed = path_in("kafka_killed.db");
        char *log = path_in("kafka_killed.log");
        struct th_args a = {0};
        struct th_run r = {0};
        long long most = 0, stored;
        double floor_ms;
        int mid = 0;
        int i, rc;
        pid_t pid;

        (void)state;
        produce_once();
        for (i = 0; i < NPARTS; i++) {
                fprintf(stderr, "# partition %d: %lld messages\n", i,
                        g.per_part[i]);
                if (g.per_part[i] > most)
                        most = g.per_part[i];
        }
        ingest_args(&a, plain, 0);
        th_run_ok_free(&a);

        ingest_args(&a, limited, RATE);
        th_run_ok(&a, &r);
        th_args_free(&a);
        /* The bucket starts full (a second's worth), so the busiest
         * partition needs at least most / RATE - 1 seconds. */
        floor_ms = ((double)most / RATE - 1) * 1000;
        fprintf(stderr, "# limited to %d/s: %lld ms (at least %.0f)\n", RATE,
                (long long)r.ms, floor_ms);
        assert_true((double)r.ms >= floor_ms);
        th_run_free(&r);
        assert_same(plain, limited);

        /* Killed mid-stream twice, then to the end: still the same. */
        for (i = 0; i < 2; i++) {
                ingest_args(&a, killed, RATE);
                pid = th_spawn_logged(&a, log);
                th_args_free(&a);
                assert_true(pid > 0);
                th_sleep_ms(1200 + 700 * i);
                kill(pid, SIGKILL);
                rc = th_wait_until(pid, th_now_ms() + 10000);
                fprintf(stderr, "# killed run %d: status %d\n", i, rc);
                /* A later run may finish what the first left before the
                 * kill comes: fine, once the first was cut short. */
                if (rc == 0 && i > 0)
                        break;
                if (rc != 128 + SIGKILL)
                        th_show_file_tail("ingest", log);
                assert_int_equal(rc, 128 + SIGKILL);
                stored = stored_messages(killed);
                fprintf(stderr, "# killed run %d: %lld of %d stored\n", i,
                        stored, COUNT);
                mid += stored > 0 && stored < COUNT;
        }
        /* The slow ingest makes the first kill land mid-stream. */
        assert_true(mid > 0);
        ingest_args(&a, killed, RATE);
        th_run_ok_free(&a);
        assert_same(plain, killed);

        free(plain);
        free(limited);
        free(killed);
        free(log);
}

static void test_rate_file(void **state)
{
        char *plain = path_in("file_plain.db");
        char *limited = path_in("file_limited.db");
        char *lines = th_asprintf("%d", COUNT / 2);
        char *stream = path_in("file.ndjson");
        char *rate = th_asprintf("%d", FILE_RATE);
        struct th_args a = {0};
        struct th_run r = {0};
        double floor_ms = ((double)(COUNT / 2) / FILE_RATE - 1) * 1000;

        (void)state;
        th_args_addv(&a, g.bin, "generate", "--count", lines, "--seed", "12",
                     "--duplicates", "0.05", "--malformed", "0.02", "--output",
                     stream, NULL);
        th_run_ok_free(&a);
        th_args_addv(&a, g.bin, "ingest", "--file", stream, "--topic", "f",
                     "--db", plain, "-q", NULL);
        th_run_ok_free(&a);
        th_args_addv(&a, g.bin, "ingest", "--file", stream, "--topic", "f",
                     "--db", limited, "-q", "--max-rate-per-partition", rate,
                     NULL);
        th_run_ok(&a, &r);
        th_args_free(&a);
        fprintf(stderr, "# file limited to %d/s: %lld ms (at least %.0f)\n",
                FILE_RATE, (long long)r.ms, floor_ms);
        assert_true((double)r.ms >= floor_ms);
        th_run_free(&r);
        assert_same(plain, limited);
        free(plain);
        free(limited);
        free(lines);
        free(stream);
        free(rate);
}

static void test_rate_usage(void **state)
{
        static const char *const bad[] = {"0", "-5", "abc", "1.5", ""};
        char *db = path_in("usage.db");
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct th_args a = {0};
                struct th_run r = {0};

                th_args_addv(&a, g.bin, "ingest", "--file",
                             g.stream ? g.stream : "x", "--topic", "u", "--db",
                             db, "--max-rate-per-partition", bad[i], NULL);
                th_run_args(&a, 30000, &r);
                assert_int_equal(r.status, 2);
                assert_non_null(strstr(r.err.p, "--max-rate-per-partition"));
                assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
                th_run_free(&r);
                th_args_free(&a);
        }
        assert_int_not_equal(access(db, F_OK), 0);
        free(db);
}

/*
 * Fixture.
 */

static int group_setup(void **state)
{
        static const char *const extra[] = {"--partitions", "4", "--topic",
                                            TOPIC, NULL};
        char *err;
        int r;

        (void)state;
        th_fatal_handlers("test_rate", WATCHDOG_S);
        if (th_find_bin_data(&g.bin, &g.data) ||
            th_tmpdir_make("cs_test_rate", g.dir, sizeof(g.dir)))
                return -1;
        th_fatal_dir(g.dir);
        g.stream = path_in("stream.ndjson");
        err = path_in("broker.err");
        r = th_broker_start(&g.broker, g.bin, extra, err);
        free(err);
        if (r < 0)
                return -1;
        th_fatal_broker(0, g.broker.pid);
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        th_broker_stop(&g.broker);
        th_fatal_broker(0, 0);
        if (*g.dir)
                th_tmpdir_remove(g.dir);
        free(g.bin);
        free(g.data);
        free(g.stream);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rate_bucket),
                cmocka_unit_test_teardown(test_rate_usage, th_test_teardown),
                cmocka_unit_test_teardown(test_rate_kafka, th_test_teardown),
                cmocka_unit_test_teardown(test_rate_file, th_test_teardown),
        };
        const char *only = getenv("RATE_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("rate", tests, group_setup,
                                           group_teardown);
}
