/* test_file_replay.c: end-to-end tests of `ingest --file` (issue 4,
 * feature 4) in SQLite: the sample replayed from a JSON array and from
 * NDJSON equals the Kafka path row for row and the model
 * (test_file_replay); --file with --brokers or --group is a usage error
 * (test_file_usage).
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
 * 4. File replay.
 */

/* The views and tables of a run, without what names the source (topic,
 * offsets) or when it ran: equal for the same input by any path. */
static const struct {
        const char *what;
        const char *sql;
} same_views[] = {
        {"call_counts", "SELECT * FROM call_counts"},
        {"disposition_counts", "SELECT * FROM disposition_counts"},
        {"window_counts", "SELECT * FROM window_counts"},
        {"calls", "SELECT " FT_CALL_FIELDS "call_ts, kafka_partition, "
                  "watermark_at_count, late_policy FROM calls"},
        {"late_records", "SELECT crime_id, window_spec, call_ts, watermark, "
                         "windows_dropped, kafka_partition FROM "
                         "late_records"},
        {"watermarks", "SELECT max_event_ts, watermark, allowed_lateness FROM "
                       "watermarks"},
        {"pipeline_progress", "SELECT kafka_partition, max_event_ts, "
                              "watermark, calls, duplicates, rejected, late "
                              "FROM pipeline_progress"},
};

static int compare_paths(struct ft_db *kafka, struct ft_db *file,
                         const char *name)
{
        size_t i;
        int bad = 0;

        for (i = 0; i < sizeof(same_views) / sizeof(same_views[0]); i++) {
                struct th_lines a = {0}, b = {0};
                char *what = th_asprintf("%s vs kafka: %s", name,
                                         same_views[i].what);

                ft_db_lines(kafka, same_views[i].sql, &a);
                ft_db_lines(file, same_views[i].sql, &b);
                bad += ft_compare_dumps(what, "kafka", &a, "file ", &b) != 0;
                if (a.n == 0) {
                        fprintf(stderr, "# %s: empty\n", what);
                        bad++;
                }
                th_lines_free(&a);
                th_lines_free(&b);
                free(what);
        }
        return bad;
}

static int check_offsets(struct ft_db *d, const char *topic, long long next)
{
        struct th_lines want = {0}, got = {0};
        int bad;

        th_lines_addf(&want, "%s|0|%lld", topic, next);
        ft_db_lines(d,
                    "SELECT topic, kafka_partition, next_offset FROM "
                    "kafka_offsets",
                    &got);
        bad = ft_compare_dumps("kafka_offsets", "expected", &want, "got     ",
                               &got) != 0;
        th_lines_free(&want);
        th_lines_free(&got);
        return bad;
}

/* The sample as NDJSON, one blank line between records: record i is on
 * line 2i + 1. */
static void write_ndjson_blank(const char *array_path, const char *out)
{
        json_error_t jerr;
        json_t *arr = json_load_file(array_path, 0, &jerr), *v;
        struct th_buf b = {0};
        size_t i;

        if (!json_is_array(arr))
                fail_msg("%s: %s", array_path, jerr.text);
        th_buf_add(&b, "", 0);
        json_array_foreach(arr, i, v)
        {
                char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

                th_buf_addf(&b, "%s%s\n", i ? "\n" : "", s);
                free(s);
        }
        ft_write_text(out, b.p, b.len);
        th_buf_free(&b);
        json_decref(arr);
}

static void test_file_replay(void **state)
{
        static const struct ft_spec specs[] = {
                {"1h", FT_HOUR_S, FT_HOUR_S},
                {"30m/10m", 1800, 600},
        };
        struct ft *st = *state;
        char *nd = ft_path_in(st, "sample.ndjson");
        struct ft_input in_k, in_a, in_n;
        struct ft_mconf c = {specs, 2, 1200, 1, 0, FT_SAMPLE_TOPIC};
        struct ft_db k, a, n;
        struct ft_opts o = {0};
        struct ft_want w;
        int bad = 0, round;

        ft_opts_add(&o, "--window", "1h", "--window", "30m/10m",
                    "--allowed-lateness", "20m", "--late-policy", "drop",
                    "--batch-max-records", "50", NULL);
        write_ndjson_blank(st->sample, nd);
        ft_input_array(st->sample, 1, &in_k);
        ft_input_array(st->sample, 0, &in_a);
        ft_input_ndjson(nd, 0, &in_n);
        assert_int_equal(in_a.next_offset, 701);
        assert_int_equal(in_n.next_offset, 1400);

        if (!st->produced_sample) {
                ft_produce(st, FT_SAMPLE_TOPIC, st->sample);
                st->produced_sample = 1;
        }
        ft_new_db(st, &k, 0, "replay_kafka", NULL);
        ft_new_db(st, &a, 0, "replay_array", NULL);
        ft_new_db(st, &n, 0, "replay_ndjson", NULL);
        ft_ingest_kafka(st, &k, FT_SAMPLE_TOPIC, o.v);
        ft_ingest_file(st, &a, st->sample, o.v);
        ft_ingest_file(st, &n, nd, o.v);

        /* Each as the model says, offsets included. */
        ft_model(st, &in_k, &c, &w);
        bad += ft_check_want(&k, "kafka", &w, NULL);
        ft_want_free(&w);
        c.topic = st->sample;
        ft_model(st, &in_a, &c, &w);
        bad += ft_check_want(&a, "array", &w, NULL);
        assert_true(w.late.n > 0);
        ft_want_free(&w);
        c.topic = nd;
        ft_model(st, &in_n, &c, &w);
        bad += ft_check_want(&n, "ndjson", &w, NULL);
        ft_want_free(&w);

        /* kafka_offsets: the number of the next element or line. */
        bad += check_offsets(&k, FT_SAMPLE_TOPIC, 700);
        bad += check_offsets(&a, st->sample, 701);
        bad += check_offsets(&n, nd, 1400);

        /* The same as the Kafka path. */
        bad += compare_paths(&k, &a, "array");
        bad += compare_paths(&k, &n, "ndjson");

        /* A second replay changes nothing. */
        for (round = 0; round < 2; round++) {
                struct ft_db *d = round ? &n : &a;
                struct th_lines before = {0}, after = {0};
                char *what = th_asprintf("%s replayed twice",
                                         round ? "ndjson" : "array");

                ft_dump_all(d, &before);
                ft_ingest_file(st, d, round ? nd : st->sample, o.v);
                ft_dump_all(d, &after);
                bad += ft_compare_dumps(what, "once ", &before, "twice",
                                        &after) != 0;
                th_lines_free(&before);
                th_lines_free(&after);
                free(what);
        }
        ft_input_free(&in_k);
        ft_input_free(&in_a);
        ft_input_free(&in_n);
        ft_db_close(&k);
        ft_db_close(&a);
        ft_db_close(&n);
        free(nd);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 4b. --file replaces Kafka: with --brokers or --group it is a usage
 * error, and no database is made. */
static void test_file_usage(void **state)
{
        struct ft *st = *state;
        char *db = ft_path_in(st, "usage.db");
        int i, bad = 0;

        for (i = 0; i < 2; i++) {
                struct th_args a = {0};
                struct th_run r;
                char *cmd;

                th_args_addv(&a, st->bin, "ingest", "--file", st->sample,
                             "--db", db, NULL);
                if (i)
                        th_args_addv(&a, "--group", "g", NULL);
                else
                        th_args_addv(&a, "--brokers", st->broker.brokers,
                                     "--topic", "x", NULL);
                cmd = th_args_str(&a);
                th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                fprintf(stderr, "# $ %s  -> %d: %.*s\n", cmd, r.status,
                        (int)strcspn(r.err.p, "\n"), r.err.p);
                if (r.status != 2 || th_count_lines(r.err.p, r.err.len) != 1 ||
                    !strstr(r.err.p, "--file") ||
                    !strstr(r.err.p, i ? "--group" : "--brokers")) {
                        fprintf(stderr, "#   expected exit 2 and one line "
                                        "naming the flags\n");
                        bad++;
                }
                if (access(db, F_OK) == 0) {
                        fprintf(stderr, "#   %s was created\n", db);
                        bad++;
                }
                th_run_free(&r);
                th_args_free(&a);
                free(cmd);
        }
        free(db);
        if (bad)
                fail_msg("%d case(s) failed (details above)", bad);
}

static int group_setup(void **state)
{
        return ft_group_setup(state, "test_file_replay", 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_file_replay, th_test_teardown),
                cmocka_unit_test_teardown(test_file_usage, th_test_teardown),
        };
        const char *only = getenv("FEATURES_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("file_replay", tests, group_setup,
                                           ft_group_teardown);
}
