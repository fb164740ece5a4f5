/* test_late_policy.c: end-to-end tests of the late policy on the real
 * sample (one partition, descending event times; issue 4): every call
 * counted in every window under count, late ones also in late_calls, and
 * only the calls not late for a window under drop, with late_records and
 * is_final against the final watermark (test_sample_count,
 * test_sample_drop); --allowed-lateness 1h against 0 (test_lateness_1h);
 * and the same in PostgreSQL, equal to SQLite and the model
 * (test_pg_sample).
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

/* 1a, 1c, 1d: the real sample (descending event times, one partition),
 * lateness 0, late policy count: every call counted in every window, late
 * ones also in late_calls, against the model; is_final against the final
 * watermark. */
static void test_sample_count(void **state)
{
        struct et *st = *state;
        const char *db = et_baseline(st, ET_B_SAMPLE_COUNT);
        struct et_model *m = et_model_build(&st->sample, 0);
        struct et_tables x = {0};
        int bad;

        et_model_expect(m, 0, "sample", st->radio, &x);
        et_model_summary("sample", m, 0, &x);
        /* Descending times: almost every call is late. */
        assert_int_equal(m->ncalls, 700);
        assert_true(et_model_late(m) > 600);
        assert_int_equal(x.t[ET_T_LATE_RECORDS].n, 0);
        et_tables_free(&x);

        bad = et_check_sqlite(st, db, m, 0, "sample");
        bad += et_check_int(db, "sum(calls) of 1h windows",
                            "SELECT SUM(calls) FROM call_counts WHERE "
                            "window_spec = '1h'",
                            700);
        bad += et_check_int(db, "sum(calls) of 1h/15m windows",
                            "SELECT SUM(calls) FROM call_counts WHERE "
                            "window_spec = '1h/15m'",
                            4 * 700);
        /* The window of the latest call is open, the others final. */
        bad += et_check_int(db, "distinct is_final values",
                            "SELECT COUNT(DISTINCT is_final) FROM call_counts",
                            2);
        bad += et_check_int(db, "calls without a watermark",
                            "SELECT COUNT(*) FROM calls WHERE "
                            "watermark_at_count IS NULL",
                            1);
        bad += et_check_int(db, "late (pipeline_progress)",
                            "SELECT late FROM pipeline_progress",
                            et_model_late(m));
        et_model_free(m);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 1b, 1c, 1d: the same under late policy drop: windows hold only the calls
 * that were not late for them; one late_records row per call and spec it
 * was dropped from. */
static void test_sample_drop(void **state)
{
        struct et *st = *state;
        const char *db = et_baseline(st, ET_B_SAMPLE_DROP);
        struct et_model *m = et_model_build(&st->sample, 0);
        struct et_tables x = {0};
        int bad;

        et_model_expect(m, 1, "sample", st->radio, &x);
        et_model_summary("sample", m, 1, &x);
        assert_true(x.t[ET_T_LATE_RECORDS].n > 600);
        et_tables_free(&x);

        bad = et_check_sqlite(st, db, m, 1, "sample");
        bad += et_check_int(db, "1h: sum(calls) + late_records rows",
                            "SELECT (SELECT SUM(calls) FROM call_counts WHERE "
                            "window_spec = '1h') + (SELECT COUNT(*) FROM "
                            "late_records WHERE window_spec = '1h')",
                            700);
        bad += et_check_int(db, "late_calls under drop",
                            "SELECT SUM(late_calls) FROM window_counts", 0);
        bad += et_check_int(db, "late (pipeline_progress)",
                            "SELECT late FROM pipeline_progress",
                            et_model_late(m));
        et_model_free(m);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 2. --allowed-lateness 1h against 0 on the sample: other late calls,
 * other finality, each as the model computes. */
static void test_lateness_1h(void **state)
{
        struct et *st = *state;
        struct et_model *m0, *m1;
        int bad = 0, drop;

        et_ensure_sample(st);
        m0 = et_model_build(&st->sample, 0);
        m1 = et_model_build(&st->sample, 3600);
        fprintf(stderr,
                "# late calls: %lld with lateness 0, %lld with lateness 1h\n",
                et_model_late(m0), et_model_late(m1));
        assert_true(et_model_late(m1) > 0);
        assert_true(et_model_late(m1) < et_model_late(m0));
        for (drop = 0; drop < 2; drop++) {
                char *db = et_path_in(st, drop ? "late1h_drop.db"
                                               : "late1h_count.db");
                const char *db0 = et_baseline(st, drop ? ET_B_SAMPLE_DROP
                                                       : ET_B_SAMPLE_COUNT);

                et_ingest(st, &st->b1, "sample", db, drop, "1h",
                          ET_SAMPLE_BATCH);
                bad += et_check_sqlite(st, db, m1, drop, "sample");
                bad += et_check_int(db, "late, lateness 1h",
                                    "SELECT late FROM pipeline_progress",
                                    et_model_late(m1));
                bad += et_check_int(db0, "late, lateness 0",
                                    "SELECT late FROM pipeline_progress",
                                    et_model_late(m0));
                free(db);
        }
        et_model_free(m0);
        et_model_free(m1);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

static void test_pg_sample(void **state)
{
        et_pg_equivalence(*state, ET_B_SAMPLE_COUNT);
        et_pg_equivalence(*state, ET_B_SAMPLE_DROP);
}

static int group_setup(void **state)
{
        return et_group_setup(state, "test_late_policy");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_sample_count, th_test_teardown),
                cmocka_unit_test_teardown(test_sample_drop, th_test_teardown),
                cmocka_unit_test_teardown(test_lateness_1h, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_sample, th_test_teardown),
        };
        const char *only = getenv("ET_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("late_policy", tests, group_setup,
                                           et_group_teardown);
}
