/* test_tuning.c: the settings that bound an ingest's memory and its commit
 * latency (issue 9): librdkafka's prefetch sized from --batch-max-records
 * with -X still overriding it, the Kafka source's handling of a failed
 * allocation (an allocator that fails the Nth call), and the SQLite
 * settings: --durability, read back from the connection, and the
 * checkpoint thread. */
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

#include "cs_kafka.h"
#include "harness.h"

#define CLI_TIMEOUT_MS (120 * 1000) /* hang guard of one command */
#define WATCHDOG_S     600
#define TOPIC          "tune"

struct tuning {
        char *bin, *data;
        char dir[512];
        struct th_broker broker; /* topic tune, 4 partitions */
};

static char *path_in(const struct tuning *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* The value of a librdkafka property as a source made with batch and
 * props would get it. */
static char *effective_of(size_t batch, int partitions,
                          const char *const *props, size_t nprops,
                          const char *name)
{
        struct cs_kafka_source_conf conf = {
                .props = props,
                .nprops = nprops,
                .batch_max_records = batch,
        };
        char value[64], errstr[256];

        assert_int_equal(cs_kafka_effective_prop(&conf, partitions, name, value,
                                                 sizeof(value), errstr,
                                                 sizeof(errstr)),
                         0);
        return th_strdup(value);
}

static char *effective(size_t batch, const char *const *props, size_t nprops,
                       const char *name)
{
        return effective_of(batch, 0, props, nprops, name);
}

/* librdkafka's own default for name, from a configuration untouched. */
static char *librdkafka_default(const char *name)
{
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        char value[64];
        size_t size = sizeof(value);

        assert_int_equal(rd_kafka_conf_get(kc, name, value, &size),
                         RD_KAFKA_CONF_OK);
        rd_kafka_conf_destroy(kc);
        return th_strdup(value);
}

static void expect_prop(size_t batch, const char *const *props, size_t nprops,
                        const char *name, const char *want)
{
        char *got = effective(batch, props, nprops, name);

        if (strcmp(got, want))
                fail_msg("batch %zu: %s is %s, expected %s", batch, name, got,
                         want);
        free(got);
}

/* 0.4 KB of queue per record of the batch (1 to 64 MB), fetches of a
 * quarter of that (1 to 50 MB), 4 batches of messages (1,000 to 100,000). */
static void test_prefetch_from_batch(void **state)
{
        char *def;

        (void)state;
        expect_prop(10000, NULL, 0, "queued.min.messages", "40000");
        expect_prop(10000, NULL, 0, "queued.max.messages.kbytes", "4000");
        expect_prop(10000, NULL, 0, "fetch.max.bytes", "1048576");
        expect_prop(80000, NULL, 0, "queued.max.messages.kbytes", "32000");
        expect_prop(80000, NULL, 0, "fetch.max.bytes", "8192000");
        expect_prop(100, NULL, 0, "queued.min.messages", "1000");
        expect_prop(100, NULL, 0, "queued.max.messages.kbytes", "1024");
        expect_prop(100, NULL, 0, "fetch.max.bytes", "1048576");
        expect_prop(1000000, NULL, 0, "queued.min.messages", "100000");
        expect_prop(1000000, NULL, 0, "queued.max.messages.kbytes", "65536");
        expect_prop(1000000, NULL, 0, "fetch.max.bytes", "16777216");
        /* No batch size: librdkafka's defaults. */
        def = librdkafka_default("queued.min.messages");
        expect_prop(0, NULL, 0, "queued.min.messages", def);
        free(def);
        def = librdkafka_default("fetch.max.bytes");
        expect_prop(0, NULL, 0, "fetch.max.bytes", def);
        free(def);
}

static void expect_split(size_t batch, int partitions, const char *const *props,
                         size_t nprops, const char *name, const char *want)
{
        char *got = effective_of(batch, partitions, props, nprops, name);

        if (strcmp(got, want))
                fail_msg("batch %zu, %d partitions: %s is %s, expected %s",
                         batch, partitions, name, got, want);
        free(got);
}

/* Partitions merged by time each have a queue of their own, and
 * librdkafka's limits apply to each: the same total shared out, at least
 * 64 KB and 100 messages each, and fetches of a partition no larger than
 * its share; -X still wins. */
static void test_prefetch_per_partition(void **state)
{
        static const char *const props[] = {"fetch.message.max.bytes=9999",
                                            "queued.max.messages.kbytes=333"};
        char *def;

        (void)state;
        expect_split(10000, 4, NULL, 0, "queued.min.messages", "10000");
        expect_split(10000, 4, NULL, 0, "queued.max.messages.kbytes", "1000");
        expect_split(10000, 4, NULL, 0, "fetch.message.max.bytes", "1024000");
        expect_split(10000, 64, NULL, 0, "queued.min.messages", "625");
        expect_split(10000, 64, NULL, 0, "queued.max.messages.kbytes", "64");
        expect_split(10000, 64, NULL, 0, "fetch.message.max.bytes", "65536");
        expect_split(10000, 1000, NULL, 0, "queued.min.messages", "100");
        expect_split(10000, 1000, NULL, 0, "queued.max.messages.kbytes", "64");
        /* The total fetch is the batch's, however many partitions. */
        expect_split(10000, 64, NULL, 0, "fetch.max.bytes", "1048576");
        expect_split(10000, 64, props, 2, "fetch.message.max.bytes", "9999");
        expect_split(10000, 64, props, 2, "queued.max.messages.kbytes", "333");
        /* One partition is read from the consumer's queue: unchanged. */
        def = librdkafka_default("fetch.message.max.bytes");
        expect_split(10000, 1, NULL, 0, "fetch.message.max.bytes", def);
        free(def);
        expect_split(10000, 1, NULL, 0, "queued.max.messages.kbytes", "4000");
}

/* -X wins over the sizes derived from the batch; a larger message.max.bytes
 * keeps librdkafka's fetch.max.bytes rather than being refused. */
static void test_prefetch_user_wins(void **state)
{
        static const char *const props[] = {
                "queued.min.messages=777",
                "queued.max.messages.kbytes=3000",
                "fetch.max.bytes=4000000",
        };
        static const char *const big[] = {"message.max.bytes=30000000"};
        static const char *const clash[] = {"message.max.bytes=30000000",
                                            "fetch.max.bytes=1048576"};
        char errstr[256], *def;

        (void)state;
        expect_prop(10000, props, 3, "queued.min.messages", "777");
        expect_prop(10000, props, 3, "queued.max.messages.kbytes", "3000");
        expect_prop(10000, props, 3, "fetch.max.bytes", "4000000");
        def = librdkafka_default("fetch.max.bytes");
        expect_prop(100, big, 1, "fetch.max.bytes", def);
        free(def);
        expect_prop(100, big, 1, "queued.min.messages", "1000");
        assert_int_equal(
                cs_kafka_check_props(big, 1, 100, errstr, sizeof(errstr)), 0);
        /* The rule that guard keeps: librdkafka refuses the pair. */
        assert_int_equal(
                cs_kafka_check_props(clash, 2, 100, errstr, sizeof(errstr)),
                -1);
        assert_non_null(strstr(errstr, "fetch.max.bytes"));
}

/* The allocator that fails its Nth call (counted from 0) and counts the
 * blocks it has handed out and not had back. */
static struct {
        long calls, fail_at, live;
} fa;

static void *failing_alloc(void *ptr, size_t size)
{
        void *p;

        if (size == 0) {
                free(ptr);
                fa.live--;
                return NULL;
        }
        if (fa.calls++ == fa.fail_at)
                return NULL;
        p = realloc(ptr, size);
        if (p && !ptr)
                fa.live++;
        return p;
}

/* Every allocation of a new source (itself, then the assignment's two
 * arrays) fails in turn: each failure is a clean error with nothing left
 * allocated, and nothing freed twice (the sanitized build checks that). */
static void test_allocation_failures(void **state)
{
        struct tuning *st = *state;
        struct cs_kafka_source_conf conf = {
                .brokers = st->broker.brokers,
                .topic = TOPIC,
                .on_assign = th_no_offsets,
                .on_revoke = th_nothing_to_commit,
                .startup_timeout_ms = 30000,
                .batch_max_records = 100,
        };
        struct cs_kafka_source *src;
        char errstr[512];
        int r, failures = 0;

        cs_kafka_set_allocator(failing_alloc);
        for (fa.fail_at = 0; fa.fail_at < 50; fa.fail_at++) {
                fa.calls = fa.live = 0;
                errstr[0] = '\0';
                src = NULL;
                r = cs_kafka_source_new(&conf, &src, errstr, sizeof(errstr));
                if (fa.calls <= fa.fail_at) {
                        /* Nothing failed: a working source. */
                        assert_int_equal(r, 0);
                        cs_kafka_source_destroy(src);
                        assert_int_equal(fa.live, 0);
                        break;
                }
                if (r != -1)
                        fail_msg("allocation %ld failed: returned %d",
                                 fa.fail_at, r);
                assert_null(src);
                assert_int_equal(fa.live, 0);
                if (fa.fail_at == 0)
                        assert_string_equal(errstr, "out of memory");
                else
                        assert_string_equal(errstr,
                                            "assigning " TOPIC " failed");
                failures++;
        }
        cs_kafka_set_allocator(NULL);
        /* The source, its assignment and the offsets asked for. */
        assert_int_equal(failures, 3);
}

/* The number of calls stored in db. */
static long count_calls(const char *db)
{
        sqlite3 *h = NULL;
        sqlite3_stmt *q = NULL;
        long n = -1;

        assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        if (sqlite3_prepare_v2(h, "SELECT count(*) FROM calls", -1, &q, NULL) ==
                    SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
                n = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        sqlite3_close(h);
        return n;
}

/* Writes count generated calls (seed 9) to FILE in the test's folder. */
static char *generate(const struct tuning *st, const char *name, int count)
{
        char *file = path_in(st, name), *cmd;
        struct th_args a = {0};

        cmd = th_asprintf("'%s' generate --count %d --seed 9 > '%s'", st->bin,
                          count, file);
        th_args_addv(&a, "sh", "-c", cmd, NULL);
        th_run_ok_free(&a);
        free(cmd);
        return file;
}

/* Runs ingest -v of file into db with the extra arguments (NULL-ended)
 * and returns its stderr; fails the test unless it exits 0. */
static char *ingest_log(const struct tuning *st, const char *db, ...)
{
        struct th_args a = {0};
        struct th_run r = {0};
        const char *arg;
        char *log;
        va_list ap;

        th_args_addv(&a, st->bin, "ingest", "-v", "--db", db, NULL);
        va_start(ap, db);
        while ((arg = va_arg(ap, const char *)))
                th_args_add(&a, arg);
        va_end(ap);
        th_run_ok(&a, &r);
        log = th_strdup(r.err.p ? r.err.p : "");
        th_run_free(&r);
        th_args_free(&a);
        return log;
}

static void expect_in(const char *log, const char *what)
{
        if (!strstr(log, what)) {
                th_show_tail("ingest stderr", log, strlen(log));
                fail_msg("expected \"%s\" in the log", what);
        }
}

/* The most WAL pages a "checkpoint: N of M WAL pages copied" line of log
 * says were copied, or -1 without one. */
static long copied_pages(const char *log)
{
        const char *p = log;
        long most = -1, n;

        while ((p = strstr(p, "checkpoint: "))) {
                p += strlen("checkpoint: ");
                if (sscanf(p, "%ld of", &n) == 1 && n > most)
                        most = n;
        }
        if (most <= 0)
                th_show_tail("ingest stderr", log, strlen(log));
        return most;
}

/* --durability sets synchronous on the writer's connection (read back
 * from it at -v: 1 NORMAL, 2 FULL); the WAL is checkpointed by the
 * thread, and every call is stored either way. */
static void test_durability_and_checkpoints(void **state)
{
        struct tuning *st = *state;
        char *file = generate(st, "calls.ndjson", 20000);
        char *normal = path_in(st, "normal.db"), *full = path_in(st, "full.db");
        char *log;

        log = ingest_log(st, normal, "--file", file, "--batch-max-records",
                         "2000", NULL);
        expect_in(log, "synchronous=1 (1 NORMAL, 2 FULL)");
        expect_in(log, "cache_size=-12288 mmap_size=0 ");
        expect_in(log, "checkpoint thread");
        /* 10 batches of ~1 MB: the WAL passes 1000 pages at least once,
         * and the thread copies it back. */
        assert_true(copied_pages(log) > 0);
        assert_int_equal(count_calls(normal), 20000);
        free(log);

        log = ingest_log(st, full, "--file", file, "--durability", "full",
                         NULL);
        expect_in(log, "synchronous=2 (1 NORMAL, 2 FULL)");
        assert_int_equal(count_calls(full), 20000);
        free(log);
        free(normal);
        free(full);
        free(file);
}

static void test_durability_usage(void **state)
{
        struct tuning *st = *state;
        struct th_args a = {0};
        struct th_run r = {0};
        char *db = path_in(st, "usage.db");

        th_args_addv(&a, st->bin, "ingest", "--file", "-", "--topic", "t",
                     "--db", db, "--durability", "sometimes", NULL);
        th_run_args(&a, CLI_TIMEOUT_MS, &r);
        assert_int_equal(r.status, 2);
        assert_non_null(r.err.p);
        assert_non_null(strstr(r.err.p, "invalid --durability 'sometimes': "
                                        "expected normal or full"));
        th_run_free(&r);
        th_args_free(&a);
        free(db);
}

/* Against the broker: the consumer runs with the prefetch derived from
 * the batch, or with -X's, as its -v log line (read back from
 * librdkafka's configuration) says, and stores every call. */
static void test_kafka_prefetch_in_effect(void **state)
{
        struct tuning *st = *state;
        char *file = generate(st, "kafka.ndjson", 2000);
        char *db1 = path_in(st, "k1.db"), *db2 = path_in(st, "k2.db");
        struct th_args a = {0};
        char *log;

        th_args_addv(&a, st->bin, "produce", "-q", "-b", st->broker.brokers,
                     "-t", TOPIC, file, NULL);
        th_run_ok_free(&a);
        log = ingest_log(st, db1, "-b", st->broker.brokers, "-t", TOPIC,
                         "--from-beginning", "--exit-at-end",
                         "--batch-max-records", "500", NULL);
        /* The batch's 1 MB shared by the topic's 4 partitions. */
        expect_in(log, "Kafka prefetch: queued.min.messages=500 "
                       "queued.max.messages.kbytes=256 "
                       "fetch.max.bytes=1048576 "
                       "fetch.message.max.bytes=262144 for each of 4 "
                       "partitions, merged by timestamp");
        assert_int_equal(count_calls(db1), 2000);
        free(log);
        log = ingest_log(st, db2, "-b", st->broker.brokers, "-t", TOPIC,
                         "--from-beginning", "--exit-at-end", "-X",
                         "queued.min.messages=777", "-X",
                         "queued.max.messages.kbytes=3000", NULL);
        expect_in(log, "Kafka prefetch: queued.min.messages=777 "
                       "queued.max.messages.kbytes=3000 "
                       "fetch.max.bytes=1048576 "
                       "fetch.message.max.bytes=1024000 for each of 4 "
                       "partitions");
        assert_int_equal(count_calls(db2), 2000);
        free(log);
        free(db1);
        free(db2);
        free(file);
}

static int group_teardown(void **state)
{
        struct tuning *st = *state;
        int failed = 0;

        if (!st)
                return 0;
        if (st->broker.pid > 0 && th_broker_stop(&st->broker) < 0)
                failed = 1;
        th_fatal_broker(0, 0);
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        free(st->bin);
        free(st->data);
        free(st);
        return failed ? -1 : 0;
}

static int group_setup(void **state)
{
        struct tuning *st = calloc(1, sizeof(*st));
        static const char *const broker_args[] = {"--topic", TOPIC,
                                                  "--partitions", "4", NULL};
        char *err_path;
        int r;

        if (!st)
                return -1;
        *state = st;
        /* The source's own log lines would only clutter the TAP output. */
        cs_log_threshold = CS_LOG_ERROR;
        th_fatal_handlers("test_tuning", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data))
                goto fail;
        if (th_tmpdir_make("callstream-tuning", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        err_path = path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, err_path);
        free(err_path);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prefetch_from_batch),
                cmocka_unit_test(test_prefetch_user_wins),
                cmocka_unit_test(test_prefetch_per_partition),
                cmocka_unit_test_teardown(test_allocation_failures,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_durability_and_checkpoints,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_durability_usage,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_kafka_prefetch_in_effect,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("tuning", tests, group_setup,
                                           group_teardown);
}
