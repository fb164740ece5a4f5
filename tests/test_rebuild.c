/* test_rebuild.c: end-to-end tests of `callstream rebuild` (issue 4,
 * feature 3): a full and a partial rebuild against a fresh ingest and the
 * model in SQLite (test_rebuild), its usage errors (test_rebuild_usage),
 * and the same in PostgreSQL in a --schema of its own (test_pg_rebuild),
 * which must also equal SQLite's rows.
 *
 * With the real binary (CALLSTREAM_BIN); like test_e2e it links no project
 * module. Expected rows come from the model of the contract in features.c,
 * worked out independently of the code under test; where the contract
 * says two runs must agree their tables and views are compared row for
 * row as well, and PostgreSQL's rows must equal SQLite's.
 *
 * E2E_KEEP=1 keeps the folder; FEATURES_TEST_FILTER='test_x*' runs some
 * tests (test_pg_rebuild compares with test_rebuild, so run that first);
 * PG_BINDIR names the PostgreSQL server binaries. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "features.h"
#include "model.h"

/*
 * 3. callstream rebuild.
 */

static const struct ft_spec spec_1h[] = {{"1h", FT_HOUR_S, FT_HOUR_S}};
static const struct ft_spec spec_both[] = {
        {"1h", FT_HOUR_S, FT_HOUR_S},
        {"1h/15m", FT_HOUR_S, 900},
};

/* What a rebuild must keep exactly: window rows, late records but their
 * recorded_at, and the calls with the watermark and policy they were
 * counted with. */
static void dump_counts(struct ft_db *d, struct th_lines *out)
{
        struct th_lines l = {0};

        ft_db_q(d, FT_Q_WC, &l);
        ft_lines_tagged(out, "window_counts", &l);
        th_lines_free(&l);
        ft_db_q(d, FT_Q_LATE, &l);
        ft_lines_tagged(out, "late_records", &l);
        th_lines_free(&l);
        ft_db_q(d, FT_Q_CALLS, &l);
        ft_lines_tagged(out, "calls", &l);
        th_lines_free(&l);
        th_lines_sort(out);
}

/* Rows the partial rebuild below must not bring back: outside its time
 * range (the 1h window at 19:00, 1h late records of calls before 20:00) or
 * of a spec it does not name (1h/15m windows at 20:00 and 20:15). */
#define OUTSIDE_WC                                                             \
        "(window_spec = '1h' AND window_start = '2018-12-31 19:00:00') OR "    \
        "(window_spec = '1h/15m' AND window_start >= '2018-12-31 20:00:00' "   \
        "AND window_start < '2018-12-31 20:30:00')"
#define INSIDE_WC                                                              \
        "window_spec = '1h' AND window_start >= '2018-12-31 20:00:00' AND "    \
        "window_start < '2018-12-31 22:00:00'"
#define OUTSIDE_LATE                                                           \
        "window_spec = '1h' AND call_ts >= '2018-12-31 19:00:00' AND "         \
        "call_ts < '2018-12-31 20:00:00'"
#define INSIDE_LATE                                                            \
        "window_spec = '1h' AND call_ts >= '2018-12-31 20:00:00' AND "         \
        "call_ts < '2018-12-31 22:00:00'"

static void partial_rebuild(struct ft *st, struct ft_db *d, const char *step,
                            const struct th_lines *before, int *bad,
                            struct th_lines *transcript)
{
        struct ft_opts range = {0};
        struct th_lines gone = {0}, l = {0}, want = {0}, got = {0};
        char *what;
        char n_in[32];

        /* The rows deleted outside the range, as the dump renders them. */
        ft_db_q(d, FT_Q_WC " WHERE " OUTSIDE_WC, &l);
        ft_lines_tagged(&gone, "window_counts", &l);
        th_lines_free(&l);
        ft_db_q(d, FT_Q_LATE " WHERE " OUTSIDE_LATE, &l);
        ft_lines_tagged(&gone, "late_records", &l);
        th_lines_free(&l);
        th_lines_sort(&gone);
        ft_db_lines(
                d,
                "SELECT (SELECT count(*) FROM window_counts WHERE " INSIDE_WC
                ") || '/' || (SELECT count(*) FROM late_records "
                "WHERE " INSIDE_LATE ")",
                &l);
        snprintf(n_in, sizeof(n_in), "%s", l.v[0]);
        th_lines_free(&l);
        fprintf(stderr,
                "# %s: deleting %s rows in range (window_counts/late_records) "
                "and %zu outside it\n",
                step, n_in, gone.n);
        if (gone.n == 0 || !strcmp(n_in, "0/0"))
                fail_msg("%s: nothing to delete: the step proves nothing",
                         step);

        ft_db_exec(d, "DELETE FROM window_counts WHERE " INSIDE_WC
                      " OR " OUTSIDE_WC);
        ft_db_exec(d, "DELETE FROM late_records WHERE " INSIDE_LATE
                      " OR " OUTSIDE_LATE);
        ft_opts_add(&range, "--from", "2018-12-31 20:00", "--to",
                    "2018-12-31 22:00", "--window", "1h", NULL);
        ft_rebuild_ok(st, d, range.v);
        ft_lines_minus(before, &gone, &want);
        dump_counts(d, &got);
        what = th_asprintf("%s: rebuild --from/--to --window 1h (%s)", step,
                           d->name);
        *bad += ft_compare_dumps(what, "expected", &want, "got     ", &got) !=
                0;
        free(what);
        what = th_asprintf("%s: partial rebuild", step);
        ft_lines_tagged(transcript, what, &got);
        free(what);
        th_lines_free(&want);
        th_lines_free(&got);
        th_lines_free(&gone);

        /* A full rebuild brings back the rest. */
        ft_rebuild_ok(st, d, NULL);
        dump_counts(d, &got);
        what = th_asprintf("%s: full rebuild after the partial (%s)", step,
                           d->name);
        *bad += ft_compare_dumps(what, "expected", before, "got     ", &got) !=
                0;
        free(what);
        th_lines_free(&got);
}

static void scenario_rebuild(struct ft *st, int pg, struct th_lines *transcript)
{
        static const char *const add_spec[] = {"--window", "1h/15m", NULL};
        struct ft_input in;
        int policy, bad = 0;

        ft_input_array(st->sample, 0, &in);
        for (policy = 0; policy < 2; policy++) {
                const char *pol = policy ? "drop" : "count";
                struct ft_opts one = {0}, two = {0};
                struct ft_mconf c = {spec_1h, 1, 0, policy, 0, st->sample};
                struct th_lines fresh = {0}, got = {0}, before = {0};
                struct ft_db r, f;
                struct ft_want w;
                char name[32], step[64];
                char *what;

                snprintf(name, sizeof(name), "rebuild_%s", pol);
                ft_new_db(st, &r, pg, name, pg ? "cs" : NULL);
                snprintf(name, sizeof(name), "fresh_%s", pol);
                ft_new_db(st, &f, pg, name, pg ? "cs" : NULL);
                ft_opts_add(&one, "--window", "1h", "--allowed-lateness", "0",
                            "--late-policy", pol, "--batch-max-records", "7",
                            NULL);
                ft_opts_add(&two, "--window", "1h", "--window", "1h/15m",
                            "--allowed-lateness", "0", "--late-policy", pol,
                            "--batch-max-records", "7", NULL);
                ft_ingest_file(st, &r, st->sample, one.v);
                ft_ingest_file(st, &f, st->sample, two.v);

                /* Both ingests as the contract says. */
                snprintf(step, sizeof(step), "%s 1h", pol);
                ft_model(st, &in, &c, &w);
                bad += ft_check_want(&r, step, &w, transcript);
                ft_want_free(&w);
                c.specs = spec_both;
                c.nspecs = 2;
                snprintf(step, sizeof(step), "%s 1h+1h/15m", pol);
                ft_model(st, &in, &c, &w);
                bad += ft_check_want(&f, step, &w, transcript);
                if (policy)
                        assert_true(w.late.n > 0);

                /* Adding a spec equals the fresh ingest. */
                ft_rebuild_ok(st, &r, add_spec);
                snprintf(step, sizeof(step), "%s rebuild 1h/15m", pol);
                bad += ft_check_want(&r, step, &w, transcript);
                ft_want_free(&w);
                dump_counts(&f, &fresh);
                dump_counts(&r, &before);
                what = th_asprintf("%s: rebuild vs fresh ingest (%s)", step,
                                   r.name);
                bad += ft_compare_dumps(what, "fresh  ", &fresh, "rebuilt",
                                        &before) != 0;
                free(what);

                /* Idempotent. */
                ft_rebuild_ok(st, &r, NULL);
                dump_counts(&r, &got);
                what = th_asprintf("%s %s: rebuild again (%s)", pol,
                                   "no --window", r.name);
                bad += ft_compare_dumps(what, "before", &before, "after ",
                                        &got) != 0;
                free(what);
                th_lines_free(&got);

                snprintf(step, sizeof(step), "%s", pol);
                partial_rebuild(st, &r, step, &before, &bad, transcript);

                th_lines_free(&fresh);
                th_lines_free(&before);
                ft_db_close(&r);
                ft_db_close(&f);
        }
        ft_input_free(&in);
        if (bad)
                fail_msg("%d comparison(s) failed (details above)", bad);
}

/*
 * 3b. rebuild's usage errors.
 */

static void test_rebuild_usage(void **state)
{
        static const struct usage {
                const char *args[5];
                const char *flag;
        } cases[] = {
                {{"--from", "2018-12-31 22:00", "--to", "2018-12-31 20:00"},
                 "--from"},
                {{"--from", "2019-01-01", "--to", "2018-12-31"}, "--to"},
                {{"--window", "1x"}, "--window"},
                {{"--window", "0m"}, "--window"},
                {{"--window", "30m/1h"}, "--window"},
                {{"--from", "yesterday"}, "--from"},
                {{"--from", "2018-02-30"}, "--from"},
                {{"--from", "2018-12-31 24:00"}, "--from"},
                {{"--to", "2018-12-31T20:00:00Z"}, "--to"},
        };
        struct ft *st = *state;
        struct th_lines before = {0};
        struct ft_opts one = {0};
        struct ft_db d;
        size_t i;
        int bad = 0;

        ft_opts_add(&one, "--window", "1h", "--late-policy", "drop",
                    "--allowed-lateness", "0", NULL);
        ft_new_db(st, &d, 0, "rebuild_usage", NULL);
        ft_ingest_file(st, &d, st->sample, one.v);
        ft_dump_all(&d, &before);
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct th_args a = {0};
                struct th_lines after = {0};
                struct th_run r;
                char *cmd;

                th_args_addv(&a, st->bin, "rebuild", "--db", d.target, NULL);
                ft_add_opts(&a, cases[i].args);
                cmd = th_args_str(&a);
                th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                fprintf(stderr, "# $ %s  -> %d: %.*s\n", cmd, r.status,
                        (int)strcspn(r.err.p, "\n"), r.err.p);
                if (r.status != 2 || th_count_lines(r.err.p, r.err.len) != 1 ||
                    !strstr(r.err.p, cases[i].flag) || r.out.len) {
                        fprintf(stderr,
                                "#   expected exit 2 and one line on stderr "
                                "naming %s, nothing on stdout\n",
                                cases[i].flag);
                        bad++;
                }
                ft_dump_all(&d, &after);
                if (ft_compare_dumps("database after a usage error", "before",
                                     &before, "after ", &after))
                        bad++;
                th_lines_free(&after);
                th_run_free(&r);
                th_args_free(&a);
                free(cmd);
        }
        th_lines_free(&before);
        ft_db_close(&d);
        if (bad)
                fail_msg("%d case(s) failed (details above)", bad);
}

/* 3. rebuild in SQLite. */
static void test_rebuild(void **state)
{
        struct ft *st = *state;
        struct th_lines l = {0};

        scenario_rebuild(st, 0, &l);
        th_lines_free(&st->lite_rebuild);
        st->lite_rebuild = l;
}

/* 5b. rebuild in PostgreSQL, in a schema of its own. */
static void test_pg_rebuild(void **state)
{
        struct ft *st = *state;
        struct th_lines l = {0};

        scenario_rebuild(st, 1, &l);
        ft_assert_same_as_sqlite("rebuild", &st->lite_rebuild, &l);
        th_lines_free(&l);
}

static int group_setup(void **state)
{
        return ft_group_setup(state, "test_rebuild", FT_PG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_rebuild, th_test_teardown),
                cmocka_unit_test_teardown(test_rebuild_usage, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_rebuild, th_test_teardown),
        };
        const char *only = getenv("FEATURES_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("rebuild", tests, group_setup,
                                           ft_group_teardown);
}
