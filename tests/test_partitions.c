/* test_partitions.c: end-to-end tests of per-partition watermarks (issue
 * 4): a generated stream with late, duplicate and malformed messages on
 * four partitions, ingested in one run and in runs killed with kill -9,
 * under both late policies, against the model (test_partitions_count,
 * test_partitions_drop); and the same topic in PostgreSQL, equal to SQLite
 * and the model (test_pg_partitions).
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

/* Runs ingests on db that get kill -9 once the database holds about 15%,
 * 40% and 65% of the topic, then one that finishes. Returns how many kills
 * landed mid-stream (something stored, not everything). */
static int ingest_killed(const struct et *st, const char *db, int drop,
                         long long total)
{
        static const int pct[] = {15, 40, 65};
        int mid = 0;
        size_t k;

        for (k = 0; k < sizeof(pct) / sizeof(pct[0]); k++) {
                char *name = th_asprintf("kill_%s_%zu.err",
                                         drop ? "drop" : "count", k);
                char *log = et_path_in(st, name);
                long long target = total * pct[k] / 100, got = 0;
                int64_t deadline = th_now_ms() + ET_KILL_WAIT_MS;
                struct th_args a = {0};
                int rc = -1;
                pid_t pid;

                et_ingest_args(st, &a, &st->b4, "gen", db, drop,
                               ET_GEN_LATENESS, ET_KILL_BATCH);
                pid = th_spawn_logged(&a, log);
                th_args_free(&a);
                assert_true(pid > 0);
                while ((got = et_progress(db)) < target &&
                       th_now_ms() < deadline && (rc = th_exited(pid)) < 0)
                        th_sleep_ms(1);
                if (rc < 0) {
                        /* A few ms later each time: not always just after
                         * a commit, also in the middle of a batch. */
                        th_sleep_ms(3 * (int64_t)k);
                        kill(pid, SIGKILL);
                        rc = th_wait_until(pid, th_now_ms() + 10000);
                }
                got = et_progress(db);
                fprintf(stderr,
                        "# ingest killed at >= %d%%: status %d, %lld of %lld "
                        "stored\n",
                        pct[k], rc, got, total);
                if (rc != 128 + SIGKILL && rc != 0) {
                        th_show_file_tail("ingest", log);
                        fail_msg("the ingest ended with %d before kill -9", rc);
                }
                mid += rc == 128 + SIGKILL && got > 0 && got < total;
                free(name);
                free(log);
        }
        return mid;
}

/* 3. A generated stream with late, duplicate and malformed messages on four
 * partitions, lateness 30m: one uninterrupted ingest and one killed with
 * kill -9 three times mid-stream then finished give identical tables, and
 * both equal the model with per-partition watermarks. */
static void partitions(struct et *st, int drop)
{
        const char *base =
                et_baseline(st, drop ? ET_B_GEN_DROP : ET_B_GEN_COUNT);
        char *db = et_path_in(st, drop ? "gen_killed_drop.db"
                                       : "gen_killed_count.db");
        struct et_model *m = et_model_build(&st->gen, ET_GEN_LATENESS_S);
        struct th_lines a = {0}, b = {0};
        struct et_tables x = {0};
        int bad, mid, p;

        et_model_expect(m, drop, "gen", st->radio, &x);
        et_model_summary("gen", m, drop, &x);
        assert_int_equal(m->nparts, ET_GEN_PARTS);
        for (p = 0; p < m->nparts; p++) {
                fprintf(stderr,
                        "#   partition %d: %lld messages, %lld calls, %lld "
                        "duplicates, %lld rejected, %lld late\n",
                        p, (long long)m->parts[p].next, m->parts[p].calls,
                        m->parts[p].dups, m->parts[p].rejected,
                        m->parts[p].late);
                /* Each partition has late calls and duplicates to judge. */
                assert_true(m->parts[p].late > 0 && m->parts[p].dups > 0);
        }
        assert_true(m->nrejects > 0);
        if (drop)
                assert_true(x.t[ET_T_LATE_RECORDS].n > 0);
        et_tables_free(&x);

        bad = et_check_sqlite(st, base, m, drop, "gen");

        th_broker_assert_alive(&st->b4);
        mid = ingest_killed(st, db, drop, (long long)st->gen.n);
        et_ingest(st, &st->b4, "gen", db, drop, ET_GEN_LATENESS, ET_KILL_BATCH);
        et_sqlite_dump(base, 0, &a);
        et_sqlite_dump(db, 0, &b);
        bad += th_lines_compare("uninterrupted vs killed", "uninterrupted", &a,
                                "killed       ", &b, ET_MAX_SHOWN) != 0;
        bad += et_check_sqlite(st, db, m, drop, "gen");
        th_lines_free(&a);
        th_lines_free(&b);
        et_model_free(m);
        free(db);
        if (mid == 0)
                fail_msg("no kill -9 landed mid-stream (see the progress "
                         "above)");
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

static void test_partitions_count(void **state)
{
        partitions(*state, 0);
}

static void test_partitions_drop(void **state)
{
        partitions(*state, 1);
}

static void test_pg_partitions(void **state)
{
        et_pg_equivalence(*state, ET_B_GEN_COUNT);
        et_pg_equivalence(*state, ET_B_GEN_DROP);
}

static int group_setup(void **state)
{
        return et_group_setup(state, "test_partitions");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_partitions_count,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_partitions_drop,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_pg_partitions, th_test_teardown),
        };
        const char *only = getenv("ET_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("partitions", tests, group_setup,
                                           et_group_teardown);
}
