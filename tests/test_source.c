/* test_source.c: the source interface (cs_source.h) over its two
 * implementations, and the Kafka source's allocation failures in a group:
 *
 *   test_file_and_kafka_alike  the same lines read from a file and from a
 *                              one-partition topic they were produced to:
 *                              the same payloads in the same order, the
 *                              file numbered from 1, Kafka from 0, keys
 *                              and timestamps only from Kafka
 *   test_file_rewind           a file source starts at the offset its
 *                              owner stores, pauses, and rewinds to the
 *                              offset stored then
 *   test_group_assign_failures every allocation of a group assignment
 *                              (made in the rebalance callback) failing
 *                              in turn: the poll fails, nothing leaks or is
 *                              freed twice (the sanitized build checks)
 *
 * The expected messages are the lines this test writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cs_sink.h"
#include "cs_source.h"
#include "harness.h"

#define WATCHDOG_S 300
#define NLINES     300
#define TOPIC      "src"

struct srct {
        char *bin;
        char dir[512];
        char *file;
        char *lines[NLINES];     /* what the file holds, line by line */
        struct th_broker broker; /* topics src and grp, 1 partition each */
};

/* The owner's side: stored offsets handed out by on_assign. */
struct owner {
        int64_t stored; /* next offset of every partition, -1: none */
        int assigned;   /* partitions assigned so far */
};

static int owner_assign(void *opaque, struct cs_partition_offset *offs,
                        size_t n)
{
        struct owner *o = opaque;
        size_t i;

        for (i = 0; i < n; i++)
                offs[i].next_offset = o->stored;
        o->assigned += (int)n;
        return 0;
}

static int owner_revoke(void *opaque)
{
        (void)opaque;
        return 0;
}

/* Reads every message of src until it is at its end (at most timeout_ms),
 * as "partition|offset|key|payload" lines. */
static void read_all(struct cs_source *src, struct th_lines *out, int *n,
                     int timeout_ms)
{
        int64_t deadline = th_now_ms() + timeout_ms;
        struct cs_source_msg m;

        *n = 0;
        while (th_now_ms() < deadline) {
                int r = cs_source_next(src, 100, &m);

                assert_true(r >= 0);
                if (r == 0 && cs_source_at_end(src))
                        break;
                if (r == 0)
                        continue;
                assert_null(m.reject);
                th_lines_addf(out, "%d|%lld|%.*s|%.*s", (int)m.partition,
                              (long long)m.offset, (int)m.key_len,
                              m.key ? (const char *)m.key : "", (int)m.len,
                              (const char *)m.payload);
                (*n)++;
        }
}

static void test_file_and_kafka_alike(void **state)
{
        struct srct *st = *state;
        struct owner o = {.stored = -1};
        struct cs_source_file_conf fconf = {.on_assign = owner_assign,
                                            .opaque = &o};
        struct cs_kafka_source_conf kconf = {
                .brokers = st->broker.brokers,
                .topic = TOPIC,
                .from_beginning = 1,
                .exit_at_end = 1,
                .on_assign = owner_assign,
                .on_revoke = owner_revoke,
                .opaque = &o,
                .startup_timeout_ms = 30000,
                .batch_max_records = 100,
        };
        struct th_lines want_file = {0}, want_kafka = {0}, got_file = {0},
                        got_kafka = {0};
        struct cs_file_source *f;
        struct cs_source *src;
        struct th_args a = {0};
        char errstr[512];
        int i, n;

        for (i = 0; i < NLINES; i++) {
                th_lines_addf(&want_file, "0|%d||%s", i + 1, st->lines[i]);
                /* produce keys each call by its crime_id, C<i>. */
                th_lines_addf(&want_kafka, "0|%d|C%d|%s", i, i, st->lines[i]);
        }

        f = cs_file_source_open(st->file, errstr, sizeof(errstr));
        assert_non_null(f);
        assert_int_equal(
                cs_source_file_new(f, &fconf, &src, errstr, sizeof(errstr)), 0);
        assert_string_equal(src->ops->kind, "file");
        read_all(src, &got_file, &n, 30000);
        assert_int_equal(n, NLINES);
        assert_int_equal(cs_source_high_watermark(src, 0), -1);
        cs_source_close(src);
        cs_file_source_close(f);

        th_args_addv(&a, st->bin, "produce", "-b", st->broker.brokers, "-t",
                     TOPIC, "-q", st->file, NULL);
        th_run_ok_free(&a);
        o.assigned = 0;
        assert_int_equal(
                cs_source_kafka_new(&kconf, &src, errstr, sizeof(errstr)), 0);
        assert_string_equal(src->ops->kind, "kafka");
        assert_int_equal(o.assigned, 1);
        read_all(src, &got_kafka, &n, 60000);
        assert_int_equal(n, NLINES);
        assert_int_equal(cs_source_high_watermark(src, 0), NLINES);
        cs_source_close(src);

        /* In order: compared unsorted. */
        for (i = 0; i < NLINES; i++) {
                assert_string_equal(got_file.v[i], want_file.v[i]);
                assert_string_equal(got_kafka.v[i], want_kafka.v[i]);
        }
        th_lines_free(&want_file);
        th_lines_free(&want_kafka);
        th_lines_free(&got_file);
        th_lines_free(&got_kafka);
}

static void test_file_rewind(void **state)
{
        struct srct *st = *state;
        struct owner o = {.stored = 101};
        struct cs_source_file_conf fconf = {.on_assign = owner_assign,
                                            .opaque = &o};
        struct cs_file_source *f;
        struct cs_source *src;
        struct cs_source_msg m;
        char errstr[512];
        int i;

        f = cs_file_source_open(st->file, errstr, sizeof(errstr));
        assert_non_null(f);
        assert_int_equal(
                cs_source_file_new(f, &fconf, &src, errstr, sizeof(errstr)), 0);
        /* From the stored offset: line 101 on. */
        for (i = 0; i < 10; i++) {
                assert_int_equal(cs_source_next(src, 100, &m), 1);
                assert_int_equal(m.offset, 101 + i);
                assert_int_equal(m.len, strlen(st->lines[100 + i]));
                assert_memory_equal(m.payload, st->lines[100 + i], m.len);
        }
        /* Paused: nothing comes, and it is not at its end. */
        cs_source_pause(src);
        assert_int_equal(cs_source_next(src, 10, &m), 0);
        assert_false(cs_source_at_end(src));
        /* The owner stored offset 7 meanwhile (reset backwards). */
        o.stored = 7;
        assert_int_equal(cs_source_rewind(src), 0);
        assert_int_equal(cs_source_next(src, 100, &m), 1);
        assert_int_equal(m.offset, 7);
        assert_memory_equal(m.payload, st->lines[6], m.len);
        /* To the end: NLINES - 7 more, then at end. */
        for (i = 8; i <= NLINES; i++) {
                assert_int_equal(cs_source_next(src, 100, &m), 1);
                assert_int_equal(m.offset, i);
        }
        assert_int_equal(cs_source_next(src, 10, &m), 0);
        assert_true(cs_source_at_end(src));
        cs_source_close(src);
        cs_file_source_close(f);
}

/* The allocator that fails its Nth call (from 0) and counts the blocks it
 * has handed out and not had back. */
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

/* In a group the assignment comes in the rebalance callback, during a
 * poll: each of its allocations failing makes the poll fail, and the
 * source is destroyed without a leak or a double free. The last run,
 * with no failure, is assigned and consumes. */
static void test_group_assign_failures(void **state)
{
        struct srct *st = *state;
        struct owner o = {.stored = -1};
        int failures = 0;

        cs_kafka_set_allocator(failing_alloc);
        for (fa.fail_at = 1; fa.fail_at < 20; fa.fail_at++) {
                char group[32];
                struct cs_kafka_source_conf conf = {
                        .brokers = st->broker.brokers,
                        .topic = "grp",
                        .group = group,
                        .from_beginning = 1,
                        .on_assign = owner_assign,
                        .on_revoke = owner_revoke,
                        .opaque = &o,
                        .startup_timeout_ms = 30000,
                        .batch_max_records = 100,
                };
                struct cs_kafka_source *src = NULL;
                char errstr[512];
                int64_t deadline;
                int failed = 0;

                /* A group of its own each time: no rebalance to wait for. */
                snprintf(group, sizeof(group), "grp-%ld", fa.fail_at);
                fa.calls = fa.live = 0;
                o.assigned = 0;
                assert_int_equal(cs_kafka_source_new(&conf, &src, errstr,
                                                     sizeof(errstr)),
                                 0);
                deadline = th_now_ms() + 60000;
                while (!failed && !o.assigned && th_now_ms() < deadline) {
                        rd_kafka_message_t *m =
                                cs_kafka_source_poll(src, 100, &failed);

                        if (m)
                                rd_kafka_message_destroy(m);
                }
                cs_kafka_source_destroy(src);
                assert_int_equal(fa.live, 0);
                if (fa.calls <= fa.fail_at) {
                        /* Nothing failed: assigned. */
                        assert_false(failed);
                        assert_int_equal(o.assigned, 1);
                        break;
                }
                assert_true(failed);
                failures++;
        }
        cs_kafka_set_allocator(NULL);
        /* The assignment and the offsets asked for. */
        assert_int_equal(failures, 2);
}

static int group_teardown(void **state)
{
        struct srct *st = *state;
        int i;

        if (!st)
                return 0;
        th_broker_stop(&st->broker);
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        for (i = 0; i < NLINES; i++)
                free(st->lines[i]);
        free(st->bin);
        free(st->file);
        free(st);
        *state = NULL;
        return 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {
                "--partitions", "1", "--topic", TOPIC, "--topic", "grp", NULL};
        struct srct *st = calloc(1, sizeof(*st));
        struct th_buf b = {0};
        char *data = NULL, *err;
        int i, r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_source", WATCHDOG_S);
        r = th_find_bin_data(&st->bin, &data);
        free(data);
        if (r || th_tmpdir_make("callstream-source", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        err = th_asprintf("%s/broker.err", st->dir);
        r = th_broker_start(&st->broker, st->bin, broker_args, err);
        free(err);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);
        th_buf_add(&b, "", 0);
        for (i = 0; i < NLINES; i++) {
                st->lines[i] = th_asprintf(
                        "{\"crime_id\":\"C%d\",\"original_crime_type_name\":"
                        "\"Type %d\",\"call_date_time\":\"2019-01-02T%02d:"
                        "%02d:00\",\"disposition\":\"HAN\"}",
                        i, i % 5, (i / 60) % 24, i % 60);
                th_buf_addf(&b, "%s\n", st->lines[i]);
        }
        st->file = th_asprintf("%s/lines.ndjson", st->dir);
        if (th_write_file(st->file, b.p, 0) < 0)
                goto fail;
        th_buf_free(&b);
        cs_log_threshold = CS_LOG_WARN;
        return 0;
fail:
        th_buf_free(&b);
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_file_and_kafka_alike,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_file_rewind, th_test_teardown),
                cmocka_unit_test_teardown(test_group_assign_failures,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("source", tests, group_setup,
                                           group_teardown);
}
