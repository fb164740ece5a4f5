/* test_retention.c: end-to-end tests of --retention (issue 4, feature 2)
 * in SQLite: the sample with --retention 1h against the same run without
 * it (test_retention), and more old rows than one retention step deletes
 * (test_retention_steps).
 *
 * With the real binary (CALLSTREAM_BIN); like test_e2e it links no project
 * module. Expected rows come from the model of the contract in features.c,
 * worked out independently of the code under test; where the contract
 * says two runs must agree their tables and views are compared row for
 * row as well, and PostgreSQL's rows must equal SQLite's.
 *
 * E2E_KEEP=1 keeps the folder; FEATURES_TEST_FILTER='test_x*' runs some
 * tests; PG_BINDIR names the PostgreSQL server binaries. */
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
 * 2. --retention.
 */

/* Rows of table, all of them or those where "where" (e.g. "call_ts <")
 * holds against the horizon h. */
static long long db_count(struct ft_db *d, const char *table, const char *where,
                          const char *h)
{
        char *sql = where ? th_asprintf("SELECT count(*) FROM %s WHERE %s '%s'",
                                        table, where, h)
                          : th_asprintf("SELECT count(*) FROM %s", table);
        char *v = ft_db_value(d, sql);
        long long n = strtoll(v, NULL, 10);

        free(v);
        free(sql);
        return n;
}

/* One table of the retention run against the rows of the run without
 * retention that the horizon keeps ("kept_if" the horizon, e.g.
 * "call_ts >="). When must_expire, the run without retention must have had
 * rows past the horizon, or nothing was proven. */
static int compare_retained(struct ft_db *full, struct ft_db *kept,
                            const char *what, const char *q_all,
                            const char *kept_if, const char *horizon,
                            int must_expire)
{
        struct th_lines a = {0}, b = {0}, all = {0};
        char *cond = th_asprintf("%s '%s'", kept_if, horizon);
        char *sql = th_asprintf("%s WHERE %s", q_all, cond);
        char *label = th_asprintf("retention: %s", what);
        int bad;

        ft_db_q(full, sql, &a);
        ft_db_q(full, q_all, &all);
        ft_db_q(kept, q_all, &b);
        bad = ft_compare_dumps(label, "no retention, restricted", &a,
                               "--retention 1h           ", &b) != 0;
        fprintf(stderr, "# %s: %zu of %zu rows kept\n", label, b.n, all.n);
        if (must_expire && all.n == a.n) {
                fprintf(stderr, "# %s: no row was past the horizon\n", label);
                bad = 1;
        }
        th_lines_free(&a);
        th_lines_free(&b);
        th_lines_free(&all);
        free(cond);
        free(sql);
        free(label);
        return bad;
}

/* The highest valid event time of an input, and how many distinct calls
 * are at or after t (kept) and before it (old). */
static int64_t input_max(const struct ft_input *in)
{
        int64_t max = INT64_MIN;
        size_t i;

        for (i = 0; i < in->n; i++)
                if (in->v[i].valid && in->v[i].t > max)
                        max = in->v[i].t;
        assert_true(max != INT64_MIN);
        return max;
}

static void input_split(const struct ft_input *in, int64_t t, long long *kept,
                        long long *old)
{
        json_t *seen = json_object();
        size_t i;

        *kept = *old = 0;
        for (i = 0; i < in->n; i++) {
                const struct ft_msg *m = &in->v[i];

                if (!m->valid || json_object_get(seen, m->f[0]))
                        continue;
                json_object_set_new(seen, m->f[0], json_true());
                if (m->t >= t)
                        (*kept)++;
                else
                        (*old)++;
        }
        json_decref(seen);
}

/* 2a. The sample with --retention 1h and lateness 0: the horizon is the
 * latest call (23:57) less an hour. Under count the window counts show
 * what expires; under drop (where only the last hour's windows have
 * counts) the late records do. */
static void test_retention(void **state)
{
        struct ft *st = *state;
        struct ft_input in;
        long long n_kept, n_old;
        char h[48];
        int bad = 0, drop;

        ft_input_array(st->sample, 0, &in);
        tm_format_ts(input_max(&in) - FT_HOUR_S * FT_USEC, h);
        input_split(&in, input_max(&in) - FT_HOUR_S * FT_USEC, &n_kept, &n_old);
        ft_input_free(&in);
        fprintf(stderr,
                "# horizon %s: %lld calls at or after it, %lld before\n", h,
                n_kept, n_old);
        assert_string_equal(h, "2018-12-31 22:57:00");

        for (drop = 0; drop < 2; drop++) {
                struct ft_opts o = {0};
                struct th_lines a = {0}, b = {0};
                struct ft_db full, kept;
                char name[32];
                long long n;
                char *v;

                snprintf(name, sizeof(name), "ret_full_%d", drop);
                ft_new_db(st, &full, 0, name, NULL);
                snprintf(name, sizeof(name), "ret_kept_%d", drop);
                ft_new_db(st, &kept, 0, name, NULL);
                ft_opts_add(&o, "--window", "1h", "--window", "1h/15m",
                            "--allowed-lateness", "0", "--late-policy",
                            drop ? "drop" : "count", NULL);
                ft_ingest_file(st, &full, st->sample, o.v);
                ft_opts_add(&o, "--retention", "1h", NULL);
                ft_ingest_file(st, &kept, st->sample, o.v);

                n = db_count(&kept, "calls", NULL, NULL);
                fprintf(stderr, "# %s: %lld calls kept, expected %lld\n",
                        drop ? "drop" : "count", n, n_kept);
                bad += n != n_kept;
                bad += compare_retained(&full, &kept, "calls", FT_Q_CALLS,
                                        "call_ts >=", h, 1);
                bad += compare_retained(&full, &kept, "window_counts", FT_Q_WC,
                                        "window_end >", h, !drop);
                bad += compare_retained(&full, &kept, "late_records", FT_Q_LATE,
                                        "call_ts >=", h, drop);
                bad += compare_retained(&full, &kept, "call_counts", FT_Q_CC,
                                        "window_end >", h, !drop);
                bad += compare_retained(&full, &kept, "disposition_counts",
                                        FT_Q_DC, "window_end >", h, !drop);
                /* Progress and watermarks are not data to expire. */
                ft_db_q(&full, FT_Q_PROGRESS, &a);
                ft_db_q(&kept, FT_Q_PROGRESS, &b);
                bad += ft_compare_dumps("retention: pipeline_progress", "full",
                                        &a, "kept", &b) != 0;
                th_lines_free(&a);
                th_lines_free(&b);
                v = ft_db_value(&kept, "SELECT MIN(watermark) FROM watermarks");
                if (strcmp(v, "2018-12-31 23:57:00")) {
                        fprintf(stderr,
                                "# watermark %s, expected 2018-12-31 "
                                "23:57:00\n",
                                v);
                        bad++;
                }
                free(v);
                ft_db_close(&full);
                ft_db_close(&kept);
        }
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 2b. More old rows than one retention step deletes (5000): a generated
 * stream of 30000 calls over 15 hours, default lateness (1h), --retention
 * 1h: once the ingest has ended nothing older than the horizon remains. */
static void test_retention_steps(void **state)
{
        static const char *const ret[] = {"--retention", "1h", NULL};
        struct ft *st = *state;
        char *gen = ft_path_in(st, "gen31.ndjson");
        struct th_args a = {0};
        struct ft_input in;
        struct ft_db d;
        long long n_kept, n_old, n;
        int64_t max;
        char h[48], wm[48], *v;
        int bad = 0;

        th_args_addv(&a, st->bin, "generate", "--count", "30000", "--seed",
                     "31", "--per-hour", "2000", "--output", gen, NULL);
        th_run_ok_free(&a);
        ft_input_ndjson(gen, 0, &in);
        max = input_max(&in);
        tm_format_ts(max - FT_HOUR_S * FT_USEC, wm);
        tm_format_ts(max - 2 * FT_HOUR_S * FT_USEC, h);
        input_split(&in, max - 2 * FT_HOUR_S * FT_USEC, &n_kept, &n_old);
        ft_input_free(&in);
        fprintf(stderr,
                "# watermark %s, horizon %s: %lld calls at or after "
                "it, %lld before\n",
                wm, h, n_kept, n_old);
        assert_true(n_old > 2 * 5000 && n_kept > 0);

        ft_new_db(st, &d, 0, "ret_steps", NULL);
        ft_ingest_file(st, &d, gen, ret);
        v = ft_db_value(&d, "SELECT MIN(watermark) FROM watermarks");
        if (strcmp(v, wm)) {
                fprintf(stderr, "# watermark %s, expected %s\n", v, wm);
                bad++;
        }
        free(v);
        n = db_count(&d, "calls", "call_ts <", h);
        if (n) {
                v = ft_db_value(&d, "SELECT MIN(call_ts) FROM calls");
                fprintf(stderr,
                        "# %lld calls before the horizon %s remain (of %lld; "
                        "oldest %s)\n",
                        n, h, n_old, v);
                free(v);
                bad++;
        }
        n = db_count(&d, "calls", "call_ts >=", h);
        if (n != n_kept) {
                fprintf(stderr,
                        "# %lld calls after the horizon, expected %lld\n", n,
                        n_kept);
                bad++;
        }
        n = db_count(&d, "window_counts", "window_end <=", h);
        if (n) {
                fprintf(stderr,
                        "# %lld window_counts rows end by the horizon\n", n);
                bad++;
        }
        n = db_count(&d, "late_records", "call_ts <", h);
        if (n) {
                fprintf(stderr, "# %lld late_records before the horizon\n", n);
                bad++;
        }
        ft_db_close(&d);
        free(gen);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

static int group_setup(void **state)
{
        return ft_group_setup(state, "test_retention", 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_retention, th_test_teardown),
                cmocka_unit_test_teardown(test_retention_steps,
                                          th_test_teardown),
        };
        const char *only = getenv("FEATURES_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("retention", tests, group_setup,
                                           ft_group_teardown);
}
