/* test_update.c: end-to-end tests of --on-duplicate update (issue 4,
 * feature 1): update and ignore, file and Kafka paths, count and drop,
 * batches of 2 and one batch, in SQLite against the model and a model
 * checked by hand, then the same in PostgreSQL (test_pg_update), which
 * must also equal SQLite's rows.
 *
 * With the real binary (CALLSTREAM_BIN); like test_e2e it links no project
 * module. Expected rows come from the model of the contract in features.c,
 * worked out independently of the code under test; where the contract
 * says two runs must agree their tables and views are compared row for
 * row as well, and PostgreSQL's rows must equal SQLite's.
 *
 * E2E_KEEP=1 keeps the folder; FEATURES_TEST_FILTER='test_x*' runs some
 * tests (test_pg_update compares with test_update, so run that first);
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
 * 1. --on-duplicate update.
 */

/* A call as the stream writes it: id is JSON (a quoted string or an
 * integer), disp JSON (a quoted string or null). */
#define CALL(id, crime, when, disp, addr)                                      \
        "{\"crime_id\": " id ", \"original_crime_type_name\": \"" crime        \
        "\", \"call_date\": \"2019-01-01T00:00:00.000\", \"call_time\": "      \
        "\"" when "\", \"call_date_time\": \"2019-01-01T" when                 \
        ":00.000\", \"disposition\": " disp ", \"address\": \"" addr           \
        "\", \"city\": \"San Francisco\", \"state\": \"CA\", "                 \
        "\"agency_id\": \"1\"}\n"

/* Windows 1h and 1h/30m, allowed lateness 0: the watermark is the highest
 * valid event time so far. Comments: the watermark just before a line, and
 * what the line does to the stored call under update. */
static const char update_stream[] =
        /* 1: A new (no watermark yet) */
        CALL("\"100\"", "Traffic Stop", "10:05", "\"ADM\"", "Geary Bl")
        /* 2: B new (wm 10:05) */
        CALL("\"200\"", "Burglary", "10:20", "\"CIT\"", "Howard St")
        /* 3: C new, no disposition (wm 10:20) */
        CALL("\"300\"", "Theft", "10:40", "null", "Market St")
        /* 4: A changes crime type, disposition and window (wm 10:40): the
         * 10:00 Traffic Stop and the 10:00 window of A lose one */
        CALL("\"100\"", "Assault", "11:10", "\"ARR\"", "Geary Bl")
        /* 5: D new (wm 11:10) */
        CALL("\"400\"", "Traffic Stop", "11:30", "\"HAN\"", "Mission St")
        /* 6: A again, identical to line 4 (other key order, spacing and an
         * unknown field): nothing changes */
        "{ \"extra\": 1, \"agency_id\": \"1\", \"state\": \"CA\", "
        "\"city\": \"San Francisco\", \"address\": \"Geary Bl\", "
        "\"disposition\": \"ARR\", \"call_date_time\": "
        "\"2019-01-01T11:10:00.000\", \"call_time\": \"11:10\", "
        "\"call_date\": \"2019-01-01T00:00:00.000\", "
        "\"original_crime_type_name\": \"Assault\", \"crime_id\": \"100\" }\n"
        /* 7: B changes disposition, late in every window (wm 11:30) */
        CALL("\"200\"", "Burglary", "10:25", "\"ADV\"", "Howard St")
        /* 8: E new (wm 11:30) */
        CALL("\"500\"", "Vandalism", "12:45", "\"ADM\"", "Polk St")
        /* 9: not a valid call (empty crime type): rejected, and its time
         * must not move the watermark */
        "{\"crime_id\": \"300\", \"original_crime_type_name\": \"\", "
        "\"call_date_time\": \"2019-01-01T23:00:00.000\"}\n"
        /* 10: C gets disposition "Not recorded" (no radio code), late
         * (wm 12:45) */
        CALL("\"300\"", "Theft", "10:50", "\"Not recorded\"", "Market St")
        /* 11: F new (wm 12:45) */
        CALL("\"600\"", "Theft", "12:50", "\"CIT\"", "Castro St")
        /* 12: E moves to the 13:00 window (wm 12:50): its 12:00 rows fall
         * to zero */
        CALL("\"500\"", "Vandalism", "13:10", "\"ADM\"", "Polk St")
        /* 13: G new and late (wm 13:10) */
        CALL("\"700\"", "Burglary", "09:00", "\"ADV\"", "Hyde St")
        /* 14: B again, byte for byte line 7: nothing changes, the stored
         * copy stays line 7 with its watermark */
        CALL("\"200\"", "Burglary", "10:25", "\"ADV\"", "Howard St")
        /* 15: D moves back to 09:40, late (wm 13:10) */
        CALL("\"400\"", "Traffic Stop", "09:40", "\"HAN\"", "Mission St")
        /* 16: H new (wm 13:10) */
        CALL("\"800\"", "Traffic Stop", "13:20", "\"ADM\"", "Turk St")
        /* 17: A back to line 1 exactly, which differs from the stored line
         * 4: replaced again, now late (wm 13:20) */
        CALL("\"100\"", "Traffic Stop", "10:05", "\"ADM\"", "Geary Bl")
        /* 18: G moves to 13:30, no longer late (wm 13:20): its late
         * records go */
        CALL("\"700\"", "Burglary", "13:30", "\"ADV\"", "Hyde St")
        /* 19: I, with an integer id (wm 13:30) */
        CALL("900", "Assault", "13:35", "\"ARR\"", "Pine St")
        /* 20: I as a string id, another disposition (wm 13:35): with
         * --batch-max-records 2 lines 19 and 20 share a batch */
        CALL("\"900\"", "Assault", "13:35", "\"CIT\"", "Pine St")
        /* 21: K new (wm 13:35) */
        CALL("\"1100\"", "Fraud", "13:40", "\"CIT\"", "Bush St")
        /* 22: K moves to the 14:00 window within its batch (wm 13:40) */
        CALL("\"1100\"", "Fraud", "14:05", "\"CIT\"", "Bush St");

static const struct ft_spec update_specs[] = {
        {"1h", FT_HOUR_S, FT_HOUR_S},
        {"1h/30m", FT_HOUR_S, 1800},
};

struct update_run {
        const char *label;
        int kafka;
        int update;
        int drop;
        const char *batch; /* --batch-max-records; NULL: one batch */
};

static const struct update_run update_runs[] = {
        {"file update count batch2", 0, 1, 0, "2"},
        {"file update count onebatch", 0, 1, 0, NULL},
        {"file update drop batch2", 0, 1, 1, "2"},
        {"file update drop onebatch", 0, 1, 1, NULL},
        {"kafka update count batch2", 1, 1, 0, "2"},
        {"kafka update drop onebatch", 1, 1, 1, NULL},
        {"file ignore count batch2", 0, 0, 0, "2"},
        {"file ignore drop onebatch", 0, 0, 1, NULL},
        {"kafka ignore drop batch2", 1, 0, 1, "2"},
};

static void update_conf(const struct ft *st, const struct update_run *r,
                        struct ft_mconf *c)
{
        memset(c, 0, sizeof(*c));
        c->specs = update_specs;
        c->nspecs = sizeof(update_specs) / sizeof(update_specs[0]);
        c->lateness = 0;
        c->drop = r->drop;
        c->update = r->update;
        c->topic = r->kafka ? FT_UPD_TOPIC : st->updates;
}

/* Worked out by hand from the comments of update_stream, under drop:
 * late records ("%s" the topic) and the 1h window counts, with update and
 * with ignore. They anchor the model, so that matching it proves what the
 * contract says, not only what the model computes. */
static const char *const hand_late_update[] = {
        "100|1h|2019-01-01 10:05:00|2019-01-01 13:20:00|1|%s|0|17",
        "100|1h/30m|2019-01-01 10:05:00|2019-01-01 13:20:00|2|%s|0|17",
        "200|1h|2019-01-01 10:25:00|2019-01-01 11:30:00|1|%s|0|7",
        "200|1h/30m|2019-01-01 10:25:00|2019-01-01 11:30:00|2|%s|0|7",
        "300|1h|2019-01-01 10:50:00|2019-01-01 12:45:00|1|%s|0|10",
        "300|1h/30m|2019-01-01 10:50:00|2019-01-01 12:45:00|2|%s|0|10",
        "400|1h|2019-01-01 09:40:00|2019-01-01 13:10:00|1|%s|0|15",
        "400|1h/30m|2019-01-01 09:40:00|2019-01-01 13:10:00|2|%s|0|15",
        NULL};
static const char *const hand_late_ignore[] = {
        "700|1h|2019-01-01 09:00:00|2019-01-01 13:10:00|1|%s|0|13",
        "700|1h/30m|2019-01-01 09:00:00|2019-01-01 13:10:00|2|%s|0|13", NULL};
static const char *const hand_1h_update[] = {
        "1h|2019-01-01 12:00:00|2019-01-01 13:00:00|Theft|CIT|1|0",
        "1h|2019-01-01 13:00:00|2019-01-01 14:00:00|Assault|CIT|1|0",
        "1h|2019-01-01 13:00:00|2019-01-01 14:00:00|Burglary|ADV|1|0",
        "1h|2019-01-01 13:00:00|2019-01-01 14:00:00|Traffic Stop|ADM|1|0",
        "1h|2019-01-01 13:00:00|2019-01-01 14:00:00|Vandalism|ADM|1|0",
        "1h|2019-01-01 14:00:00|2019-01-01 15:00:00|Fraud|CIT|1|0",
        NULL};
static const char *const hand_1h_ignore[] = {
        "1h|2019-01-01 10:00:00|2019-01-01 11:00:00|Burglary|CIT|1|0",
        "1h|2019-01-01 10:00:00|2019-01-01 11:00:00|Theft||1|0",
        "1h|2019-01-01 10:00:00|2019-01-01 11:00:00|Traffic Stop|ADM|1|0",
        "1h|2019-01-01 11:00:00|2019-01-01 12:00:00|Traffic Stop|HAN|1|0",
        "1h|2019-01-01 12:00:00|2019-01-01 13:00:00|Theft|CIT|1|0",
        "1h|2019-01-01 12:00:00|2019-01-01 13:00:00|Vandalism|ADM|1|0",
        "1h|2019-01-01 13:00:00|2019-01-01 14:00:00|Assault|ARR|1|0",
        "1h|2019-01-01 13:00:00|2019-01-01 14:00:00|Fraud|CIT|1|0",
        "1h|2019-01-01 13:00:00|2019-01-01 14:00:00|Traffic Stop|ADM|1|0",
        NULL};

static int hand_check(const char *what, const char *const *hand,
                      const char *topic, const struct th_lines *model_rows,
                      const char *prefix)
{
        struct th_lines a = {0}, b = {0};
        size_t i;
        int bad;

        for (; *hand; hand++)
                th_lines_add(&a, th_asprintf(*hand, topic));
        for (i = 0; i < model_rows->n; i++)
                if (!strncmp(model_rows->v[i], prefix, strlen(prefix)))
                        th_lines_add(&b, th_strdup(model_rows->v[i]));
        th_lines_sort(&a);
        th_lines_sort(&b);
        bad = th_lines_compare(what, "by hand", &a, "model  ", &b,
                               FT_MAX_SHOWN) != 0;
        th_lines_free(&a);
        th_lines_free(&b);
        return bad;
}

static void check_model_by_hand(const struct ft *st, const struct ft_input *in)
{
        struct update_run upd = {"", 0, 1, 1, NULL};
        struct update_run ign = {"", 0, 0, 1, NULL};
        struct ft_mconf c;
        struct ft_want w;
        int bad = 0;

        update_conf(st, &upd, &c);
        ft_model(st, in, &c, &w);
        bad += hand_check("update, drop: late_records", hand_late_update,
                          st->updates, &w.late, "");
        bad += hand_check("update, drop: 1h window_counts", hand_1h_update,
                          st->updates, &w.wc, "1h|");
        ft_want_free(&w);
        update_conf(st, &ign, &c);
        ft_model(st, in, &c, &w);
        bad += hand_check("ignore, drop: late_records", hand_late_ignore,
                          st->updates, &w.late, "");
        bad += hand_check("ignore, drop: 1h window_counts", hand_1h_ignore,
                          st->updates, &w.wc, "1h|");
        ft_want_free(&w);
        if (bad)
                fail_msg("the model differs from the hand-worked rows: a "
                         "bug in the test");
}

static void scenario_update(struct ft *st, int pg, struct th_lines *transcript)
{
        struct ft_input in_file, in_kafka;
        size_t i;
        int bad = 0;

        ft_input_ndjson(st->updates, 0, &in_file);
        ft_input_ndjson(st->updates, 1, &in_kafka);
        check_model_by_hand(st, &in_file);
        if (!st->produced_updates) {
                ft_produce(st, FT_UPD_TOPIC, st->updates);
                st->produced_updates = 1;
        }
        for (i = 0; i < sizeof(update_runs) / sizeof(update_runs[0]); i++) {
                const struct update_run *r = &update_runs[i];
                struct ft_opts o = {0};
                char name[32];
                struct ft_mconf c;
                struct ft_want w;
                struct ft_db d;

                ft_opts_add(&o, "--window", "1h", "--window", "1h/30m",
                            "--allowed-lateness", "0", "--late-policy",
                            r->drop ? "drop" : "count", "--on-duplicate",
                            r->update ? "update" : "ignore", NULL);
                if (r->batch)
                        ft_opts_add(&o, "--batch-max-records", r->batch, NULL);
                snprintf(name, sizeof(name), "upd_%zu", i);
                ft_new_db(st, &d, pg, name, NULL);
                if (r->kafka)
                        ft_ingest_kafka(st, &d, FT_UPD_TOPIC, o.v);
                else
                        ft_ingest_file(st, &d, st->updates, o.v);
                update_conf(st, r, &c);
                ft_model(st, r->kafka ? &in_kafka : &in_file, &c, &w);
                bad += ft_check_want(&d, r->label, &w, transcript);
                ft_want_free(&w);
                ft_db_close(&d);
        }
        ft_input_free(&in_file);
        ft_input_free(&in_kafka);
        if (bad)
                fail_msg("%d table(s) differ from the model (details above)",
                         bad);
}

/* 1. --on-duplicate update (and ignore) in SQLite against the model. */
static void test_update(void **state)
{
        struct ft *st = *state;
        struct th_lines l = {0};

        scenario_update(st, 0, &l);
        /* Only a passing run is what PostgreSQL must match. */
        th_lines_free(&st->lite_update);
        st->lite_update = l;
}

/* 5a. The same in PostgreSQL: as the model, and as in SQLite. */
static void test_pg_update(void **state)
{
        struct ft *st = *state;
        struct th_lines l = {0};

        scenario_update(st, 1, &l);
        ft_assert_same_as_sqlite("update", &st->lite_update, &l);
        th_lines_free(&l);
}

static int group_setup(void **state)
{
        struct ft *st;

        if (ft_group_setup(state, "test_update", FT_PG) < 0)
                return -1;
        st = *state;
        st->updates = ft_path_in(st, "updates.ndjson");
        ft_write_text(st->updates, update_stream, sizeof(update_stream) - 1);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_update, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_update, th_test_teardown),
        };
        const char *only = getenv("FEATURES_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("update", tests, group_setup,
                                           ft_group_teardown);
}
