/* test_watermark.c: end-to-end tests of event-time watermarks (issue 4):
 * a restart keeps the stored watermark (test_restart_keeps_watermark), and
 * a hand-written stream at the edges of windows and of the watermark,
 * under both late policies, against the model and against hand-worked
 * rows (test_edge_stream).
 *
 * Like test_e2e it drives build/callstream (CALLSTREAM_BIN) through
 * fork/exec only and links no project module; the model and fixture are in
 * eventtime.c.
 *
 * E2E_KEEP=1 keeps the folder; ET_TEST_FILTER='test_pg*' runs some tests;
 * PG_BINDIR names the PostgreSQL server binaries. */
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
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "eventtime.h"
#include "model.h"

/*
 * Tests.
 */

/* Writes messages [from, to) of m as NDJSON to path. */
static void write_ndjson(const struct et_msgs *m, size_t from, size_t to,
                         const char *path)
{
        FILE *f = fopen(path, "w");
        size_t i;

        assert_non_null(f);
        for (i = from; i < to; i++) {
                assert_int_equal(fwrite(m->v[i].p, 1, m->v[i].len, f),
                                 m->v[i].len);
                assert_int_not_equal(fputc('\n', f), EOF);
        }
        assert_int_equal(fclose(f), 0);
}

/* The first n messages of m, as a topic holding only them would. */
static void msgs_prefix(const struct et_msgs *m, size_t n, struct et_msgs *out)
{
        size_t i;

        for (i = 0; i < n; i++)
                et_msgs_add(out, m->v[i].part, m->v[i].off, m->v[i].p,
                            m->v[i].len);
}

/* 2. Restarts keep the watermark: the first half of the sample ingested to
 * the end, then the second half produced and ingested by a new process
 * into the same database: the single run's result, under both policies. */
static void test_restart_keeps_watermark(void **state)
{
        struct et *st = *state;
        char *half[2] = {et_path_in(st, "half1.ndjson"),
                         et_path_in(st, "half2.ndjson")};
        char *db[2] = {et_path_in(st, "halves_count.db"),
                       et_path_in(st, "halves_drop.db")};
        struct et_msgs first = {0};
        struct et_model *m1, *m;
        size_t n;
        int bad = 0, drop, step;

        et_ensure_sample(st);
        n = st->sample.n / 2;
        write_ndjson(&st->sample, 0, n, half[0]);
        write_ndjson(&st->sample, n, st->sample.n, half[1]);
        msgs_prefix(&st->sample, n, &first);
        m1 = et_model_build(&first, 0);
        m = et_model_build(&st->sample, 0);
        for (step = 0; step < 2; step++) {
                th_broker_assert_alive(&st->b1);
                et_produce(st, &st->b1, "halves", half[step]);
                for (drop = 0; drop < 2; drop++) {
                        et_ingest(st, &st->b1, "halves", db[drop], drop,
                                  ET_SAMPLE_LATENESS, ET_SAMPLE_BATCH);
                        bad += et_check_sqlite(st, db[drop], step ? m : m1,
                                               drop, "halves");
                }
        }
        /* The single run of the whole file, row for row: every table and
         * view but the topic's name and when things happened. */
        for (drop = 0; drop < 2; drop++) {
                struct th_lines a = {0}, b = {0};
                const char *single = et_baseline(st, drop ? ET_B_SAMPLE_DROP
                                                          : ET_B_SAMPLE_COUNT);

                et_sqlite_dump(single, 1, &a);
                et_sqlite_dump(db[drop], 1, &b);
                bad += th_lines_compare(
                               drop ? "single run vs restarted (drop)"
                                    : "single run vs restarted (count)",
                               "single   ", &a, "restarted", &b,
                               ET_MAX_SHOWN) != 0;
                th_lines_free(&a);
                th_lines_free(&b);
        }
        et_model_free(m1);
        et_model_free(m);
        et_msgs_free(&first);
        free(half[0]);
        free(half[1]);
        free(db[0]);
        free(db[1]);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* Test 2b's hand-written stream, one partition, lateness 30m: where the
 * real data and the generator never put them, what moves the watermark (a
 * duplicate, changed, with a later time) and what must not (rejected
 * messages with later times), a fractional watermark, and window ends
 * exactly on the watermark. */
static const char *const edge_lines[] = {
        /* 0: no crime_id: rejected, no watermark from its 2030 time. */
        "{\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2030-01-01T00:00:00\"}",
        /* 1: E1, the first valid call: no watermark, not late. */
        "{\"crime_id\":\"E1\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-01-01T10:00:00\",\"disposition\":\"ADM\"}",
        /* 2: an impossible date: rejected. */
        "{\"crime_id\":\"E2\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-02-30T10:00:00\"}",
        /* 3: its windows end in year 10000: rejected, and must not move
         * the watermark, or everything after would be final. */
        "{\"crime_id\":\"E3\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"9999-12-31T23:30:00\"}",
        /* 4: E4 at 09:15 against 09:30: the 1h/15m window [08:30, 09:30)
         * ends exactly on it and is final; the others are not. */
        "{\"crime_id\":\"E4\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-01-01T09:15:00\",\"disposition\":\"CIT\"}",
        /* 5: E1 again, changed and later: not stored, but it moves the
         * watermark to 12:00:00.5. */
        "{\"crime_id\":\"E1\",\"original_crime_type_name\":\"Changed\","
        "\"call_date_time\":\"2019-01-01T12:30:00.5\"}",
        /* 6: E5 just before noon: [11:00, 12:00) is final in both specs. */
        "{\"crime_id\":\"E5\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-01-01T11:59:59.999999\","
        "\"disposition\":\"\"}",
        /* 7: E6 at noon: no window of it ends by 12:00:00.5. */
        "{\"crime_id\":\"E6\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-01-01T12:00:00\"}",
        /* 8: an integer id, a space, no seconds: all five windows final. */
        "{\"crime_id\":7,\"original_crime_type_name\":\"Int id\","
        "\"call_date_time\":\"2019-01-01 11:00\"}",
        /* 9: not JSON. */
        "{\"crime_id\":\"E9\",",
        /* 10, 11: E7 at 13:00 (watermark 12:30), then an exact copy. */
        "{\"crime_id\":\"E7\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-01-01T13:00:00\"}",
        "{\"crime_id\":\"E7\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-01-01T13:00:00\"}",
        /* 12: E8 at 12:29:59: [11:30, 12:30) ends on the watermark. */
        "{\"crime_id\":\"E8\",\"original_crime_type_name\":\"T\","
        "\"call_date_time\":\"2019-01-01T12:29:59\","
        "\"disposition\":\"Not recorded\"}",
};

/* 2b. The edge stream under both policies, against the model and against
 * values worked out by hand from the comments above. */
static void test_edge_stream(void **state)
{
        static const char *const want_late_records[] = {
                "'7'|'1h'|'2019-01-01 11:00:00'|'2019-01-01 12:00:00.500000'"
                "|1|'edge'|0|8",
                "'7'|'1h/15m'|'2019-01-01 11:00:00'|'2019-01-01 "
                "12:00:00.500000'|4|'edge'|0|8",
                "'E4'|'1h/15m'|'2019-01-01 09:15:00'|'2019-01-01 09:30:00'|1|"
                "'edge'|0|4",
                "'E5'|'1h'|'2019-01-01 11:59:59.999999'|'2019-01-01 "
                "12:00:00.500000'|1|'edge'|0|6",
                "'E5'|'1h/15m'|'2019-01-01 11:59:59.999999'|'2019-01-01 "
                "12:00:00.500000'|1|'edge'|0|6",
                "'E8'|'1h/15m'|'2019-01-01 12:29:59'|'2019-01-01 12:30:00'|1|"
                "'edge'|0|12",
        };
        static const char *const want_progress =
                "'edge'|0|13|13|0|'2019-01-01 13:00:00'|'2019-01-01 "
                "12:30:00'|7|2|4|4";
        struct et *st = *state;
        char *file = et_path_in(st, "edge.ndjson");
        struct et_msgs in = {0};
        struct et_model *m;
        struct et_tables x = {0};
        size_t i;
        int bad = 0, drop;
        FILE *f;

        th_broker_assert_alive(&st->b1);
        f = fopen(file, "w");
        assert_non_null(f);
        for (i = 0; i < sizeof(edge_lines) / sizeof(edge_lines[0]); i++) {
                fprintf(f, "%s\n", edge_lines[i]);
                et_msgs_add(&in, 0, (int64_t)i, edge_lines[i],
                            strlen(edge_lines[i]));
        }
        assert_int_equal(fclose(f), 0);
        et_produce(st, &st->b1, "edge", file);
        m = et_model_build(&in, 1800);

        /* The model agrees with the hand-worked values. */
        et_model_expect(m, 1, "edge", st->radio, &x);
        assert_int_equal(x.t[ET_T_LATE_RECORDS].n,
                         sizeof(want_late_records) /
                                 sizeof(want_late_records[0]));
        for (i = 0; i < x.t[ET_T_LATE_RECORDS].n; i++)
                assert_string_equal(x.t[ET_T_LATE_RECORDS].v[i],
                                    want_late_records[i]);
        assert_int_equal(x.t[ET_T_PROGRESS].n, 1);
        assert_string_equal(x.t[ET_T_PROGRESS].v[0], want_progress);
        et_tables_free(&x);

        for (drop = 0; drop < 2; drop++) {
                char *db =
                        et_path_in(st, drop ? "edge_drop.db" : "edge_count.db");
                char *name = th_asprintf("cs_edge_%s", drop ? "drop" : "count");
                char *ci;
                struct et_tables lite = {0}, pg = {0};

                et_ingest(st, &st->b1, "edge", db, drop, "30m", "4");
                bad += et_check_sqlite(st, db, m, drop, "edge");
                et_ensure_pg(st);
                ci = et_pg_create_db(st, name);
                et_ingest(st, &st->b1, "edge", ci, drop, "30m", "4");
                et_sqlite_tables(db, 0, &lite);
                et_pg_tables(st, name, &pg);
                bad += et_tables_compare(name, "sqlite    ", &lite,
                                         "postgresql", &pg);
                et_tables_free(&lite);
                et_tables_free(&pg);
                free(ci);
                free(name);
                free(db);
        }
        et_model_free(m);
        et_msgs_free(&in);
        free(file);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

static int group_setup(void **state)
{
        return et_group_setup(state, "test_watermark");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_restart_keeps_watermark,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_edge_stream, th_test_teardown),
        };
        const char *only = getenv("ET_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("watermark", tests, group_setup,
                                           et_group_teardown);
}
