/* test_progress.c: `callstream ingest --progress` (issue 11), end to end
 * with the real binary and a local broker whose topic has 4 partitions:
 *
 *   test_json          a generated stream (duplicates, malformed lines)
 *       produced with `callstream produce` and read back with kcat for
 *       each partition's offsets; the ingest's --progress-file lines parse
 *       with jansson, have the fields of Spark's StreamingQueryProgress
 *       (id and runId UUIDs, batchId, timestamp, rates, durationMs by
 *       stage, eventTime, sources, callstream's counts); numInputRows adds
 *       up to the messages kcat saw, each report's offsets carry on from
 *       the last one's and end where kcat says, rates are positive; the
 *       counts add up to the rows and agree with the database; and the
 *       default (no --progress, stderr not a terminal) writes none;
 *   test_second_run    more messages, a second run with --progress json on
 *       stderr: the same id, a new runId, starting where the first ended;
 *   test_interval      --progress-interval 1h: the first batch, then one
 *       report adding up the rest at the end;
 *   test_human         --progress human: a line redrawn in place (\r and
 *       erase-line), ended with a newline;
 *   test_usage         bad --progress, --progress-interval, human with a
 *       file: exit 2 and one line; a file that cannot be opened: exit 1
 *       and one line, no database made.
 *
 * Links no project module. */
#include <errno.h>
#include <limits.h>
#include <regex.h>
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
#include <jansson.h>

#include "harness.h"

#define WATCHDOG_S  600
#define TOPIC       "prog"
#define NPARTITIONS 4

struct pt {
        char dir[PATH_MAX];
        char *bin, *data;
        struct th_broker broker;
        char *db;
        /* What kcat reads in each partition: message count and next
         * offset. */
        long long count[NPARTITIONS], next[NPARTITIONS];
        long long total;
        /* Where the first run's reports left each partition, and its id. */
        long long ended[NPARTITIONS];
        char id[64], run_id[64];
};

static struct pt *g;

/* Produces count generated lines (seed) to TOPIC. */
static void produce_generated(const char *count, const char *seed)
{
        char *file = th_asprintf("%s/gen-%s.ndjson", g->dir, seed);
        struct th_args a = {0};

        th_args_addv(&a, g->bin, "generate", "--count", count, "--seed", seed,
                     "--duplicates", "0.05", "--malformed", "0.03",
                     "--out-of-order", "0.1", "--output", file, NULL);
        th_run_ok_free(&a);
        memset(&a, 0, sizeof(a));
        th_args_addv(&a, g->bin, "produce", "-q", "--brokers",
                     g->broker.brokers, "--topic", TOPIC, file, NULL);
        th_run_ok_free(&a);
        free(file);
}

/* Reads the whole topic with kcat: each partition's messages and next
 * offset. */
static void kcat_offsets(void)
{
        struct th_args a = {0};
        struct th_run r;
        const char *p;
        int i;

        th_args_addv(&a, "kcat", "-C", "-b", g->broker.brokers, "-t", TOPIC,
                     "-o", "beginning", "-e", "-q", "-f", "%p %o\\n", NULL);
        th_run_ok(&a, &r);
        for (i = 0; i < NPARTITIONS; i++)
                g->count[i] = g->next[i] = 0;
        g->total = 0;
        for (p = r.out.p; p && *p;) {
                int part;
                long long off;

                assert_int_equal(sscanf(p, "%d %lld", &part, &off), 2);
                assert_true(part >= 0 && part < NPARTITIONS);
                g->count[part]++;
                if (off + 1 > g->next[part])
                        g->next[part] = off + 1;
                g->total++;
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        th_run_free(&r);
        th_args_free(&a);
        fprintf(stderr, "# kcat: %lld messages\n", g->total);
}

static int matches(const char *re, const char *s)
{
        regex_t rx;
        int r;

        assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
        r = regexec(&rx, s, 0, NULL, 0) == 0;
        regfree(&rx);
        return r;
}

#define UUID_RE "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
#define TS_RE                                                                  \
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$"
#define EVENT_RE                                                               \
        "^[0-9]{4}-[0-9]{2}-[0-9]{2} "                                         \
        "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{6})?$"

static json_t *member(json_t *o, const char *key, int type)
{
        json_t *v = json_object_get(o, key);

        if (!v || (int)json_typeof(v) != type)
                fail_msg("progress: '%s' missing or of the wrong type", key);
        return v;
}

static double number(json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);

        if (!json_is_number(v))
                fail_msg("progress: '%s' is not a number", key);
        return json_number_value(v);
}

/* What the reports of one run added up to. */
struct run_sum {
        long long rows, calls, duplicates, rejected, late, updated;
        long long batches, reports, last_batch_id;
        long long end[NPARTITIONS]; /* where they left each partition */
        char id[64], run_id[64];
};

/* Checks every line of text as a progress report; start[p] is where each
 * partition stood before the run (its first report must start there). */
static void check_reports(const char *text, size_t len, const long long *start,
                          struct run_sum *sum)
{
        size_t i = 0;
        int p;

        memset(sum, 0, sizeof(*sum));
        for (p = 0; p < NPARTITIONS; p++)
                sum->end[p] = start[p];
        sum->last_batch_id = -1;
        while (i < len) {
                size_t end = i;
                json_error_t jerr;
                json_t *o, *d, *src, *so, *eo, *cs, *ev, *v;
                const char *key;
                long long rows, span = 0, counts;

                while (end < len && text[end] != '\n')
                        end++;
                o = json_loadb(text + i, end - i, 0, &jerr);
                if (!json_is_object(o))
                        fail_msg("not a JSON object: %.*s", (int)(end - i),
                                 text + i);
                i = end + 1;
                sum->reports++;
                /* id and runId: UUIDs, the same all run long. */
                key = json_string_value(member(o, "id", JSON_STRING));
                assert_true(matches(UUID_RE, key));
                if (!sum->id[0])
                        snprintf(sum->id, sizeof(sum->id), "%s", key);
                assert_string_equal(sum->id, key);
                key = json_string_value(member(o, "runId", JSON_STRING));
                assert_true(matches(UUID_RE, key));
                if (!sum->run_id[0])
                        snprintf(sum->run_id, sizeof(sum->run_id), "%s", key);
                assert_string_equal(sum->run_id, key);
                assert_string_not_equal(sum->id, sum->run_id);
                assert_true(
                        matches(TS_RE, json_string_value(member(o, "timestamp",
                                                                JSON_STRING))));
                /* batchId counts batches: up by numBatches each report. */
                sum->batches += json_integer_value(
                        member(o, "numBatches", JSON_INTEGER));
                assert_int_equal(
                        json_integer_value(member(o, "batchId", JSON_INTEGER)),
                        sum->batches - 1);
                assert_true(sum->batches - 1 > sum->last_batch_id);
                sum->last_batch_id = sum->batches - 1;
                rows = json_integer_value(
                        member(o, "numInputRows", JSON_INTEGER));
                assert_true(rows >= 0);
                sum->rows += rows;
                if (rows > 0) {
                        assert_true(number(o, "inputRowsPerSecond") > 0);
                        assert_true(number(o, "processedRowsPerSecond") > 0);
                }
                d = member(o, "durationMs", JSON_OBJECT);
                assert_true(number(d, "poll") >= 0);
                assert_true(number(d, "parse") >= 0);
                assert_true(number(d, "write") >= 0);
                assert_true(number(d, "commit") >= 0);
                assert_true(number(d, "total") > 0);
                ev = member(o, "eventTime", JSON_OBJECT);
                json_object_foreach(ev, key, v)
                {
                        assert_true(json_is_string(v));
                        assert_true(matches(EVENT_RE, json_string_value(v)));
                }
                if (json_object_get(ev, "min"))
                        assert_true(strcmp(json_string_value(
                                                   json_object_get(ev, "min")),
                                           json_string_value(json_object_get(
                                                   ev, "max"))) <= 0);
                /* One source; its offsets carry on from the last report. */
                src = member(o, "sources", JSON_ARRAY);
                assert_int_equal(json_array_size(src), 1);
                src = json_array_get(src, 0);
                assert_int_equal(json_integer_value(member(src, "numInputRows",
                                                           JSON_INTEGER)),
                                 rows);
                so = member(member(src, "startOffset", JSON_OBJECT), TOPIC,
                            JSON_OBJECT);
                eo = member(member(src, "endOffset", JSON_OBJECT), TOPIC,
                            JSON_OBJECT);
                json_object_foreach(so, key, v)
                {
                        json_t *e = json_object_get(eo, key);

                        p = atoi(key);
                        assert_true(p >= 0 && p < NPARTITIONS);
                        assert_non_null(e);
                        if (json_integer_value(v) != sum->end[p])
                                fail_msg("report %lld: partition %d starts at "
                                         "%lld, the last ended at %lld",
                                         sum->reports, p,
                                         (long long)json_integer_value(v),
                                         sum->end[p]);
                        span += json_integer_value(e) - json_integer_value(v);
                        sum->end[p] = json_integer_value(e);
                }
                /* Every message of the report, and no other, in a range. */
                assert_int_equal(span, rows);
                cs = member(o, "callstream", JSON_OBJECT);
                counts = json_integer_value(member(cs, "calls", JSON_INTEGER)) +
                         json_integer_value(
                                 member(cs, "duplicates", JSON_INTEGER)) +
                         json_integer_value(
                                 member(cs, "rejected", JSON_INTEGER));
                assert_int_equal(counts, rows);
                sum->calls += json_integer_value(json_object_get(cs, "calls"));
                sum->duplicates +=
                        json_integer_value(json_object_get(cs, "duplicates"));
                sum->rejected +=
                        json_integer_value(json_object_get(cs, "rejected"));
                sum->late +=
                        json_integer_value(member(cs, "late", JSON_INTEGER));
                sum->updated +=
                        json_integer_value(member(cs, "updated", JSON_INTEGER));
                json_decref(o);
        }
}

static void ingest(const char *const *extra, struct th_run *r)
{
        struct th_args a = {0};

        th_args_addv(&a, g->bin, "ingest", "--brokers", g->broker.brokers,
                     "--topic", TOPIC, "--db", g->db, "--from-beginning",
                     "--exit-at-end", "--batch-max-records", "150", NULL);
        for (; extra && *extra; extra++)
                th_args_add(&a, *extra);
        th_run_ok(&a, r);
        th_args_free(&a);
}

static void test_json(void **state)
{
        char *file = th_asprintf("%s/progress.json", g->dir);
        const char *extra[] = {"--progress-file", file, NULL};
        long long zero[NPARTITIONS] = {0};
        struct th_buf b = {0};
        struct run_sum sum;
        struct th_run r;
        int p;

        (void)state;
        produce_generated("2000", "11");
        kcat_offsets();
        ingest(extra, &r);
        /* Into the file, not onto stderr. */
        assert_null(r.err.p ? strstr(r.err.p, "\"runId\"") : NULL);
        th_run_free(&r);
        assert_int_equal(th_read_file(file, &b), 0);
        check_reports(b.p, b.len, zero, &sum);
        fprintf(stderr, "# %lld reports of %lld batches\n", sum.reports,
                sum.batches);
        assert_int_equal(sum.rows, g->total);
        assert_true(sum.reports > 1);
        for (p = 0; p < NPARTITIONS; p++) {
                assert_true(g->count[p] > 0);
                assert_int_equal(sum.end[p], g->next[p]);
                g->ended[p] = sum.end[p];
        }
        assert_int_equal(sum.calls,
                         th_sqlite_int(g->db, "SELECT count(*) FROM calls"));
        assert_int_equal(
                sum.rejected,
                th_sqlite_int(g->db, "SELECT count(*) FROM rejected_records"));
        assert_true(sum.duplicates > 0 && sum.rejected > 0);
        snprintf(g->id, sizeof(g->id), "%s", sum.id);
        snprintf(g->run_id, sizeof(g->run_id), "%s", sum.run_id);
        th_buf_free(&b);

        /* No --progress, stderr not a terminal: no reports. */
        produce_generated("50", "12");
        ingest(NULL, &r);
        assert_null(r.err.p ? strstr(r.err.p, "\"runId\"") : NULL);
        assert_null(r.err.p ? strstr(r.err.p, "\033[K") : NULL);
        th_run_free(&r);
        kcat_offsets();
        memcpy(g->ended, g->next, sizeof(g->ended));
        free(file);
}

static void test_second_run(void **state)
{
        const char *extra[] = {"--progress", "json", "-q", NULL};
        long long before = g->total;
        struct run_sum sum;
        struct th_run r;
        int p;

        (void)state;
        produce_generated("500", "13");
        kcat_offsets();
        ingest(extra, &r);
        /* -q: errors only; every line on stderr is a report. */
        check_reports(r.err.p ? r.err.p : "", r.err.len, g->ended, &sum);
        th_run_free(&r);
        assert_int_equal(sum.rows, g->total - before);
        assert_string_equal(sum.id, g->id);
        assert_string_not_equal(sum.run_id, g->run_id);
        for (p = 0; p < NPARTITIONS; p++)
                assert_int_equal(sum.end[p], g->next[p]);
        memcpy(g->ended, g->next, sizeof(g->ended));
}

static void test_interval(void **state)
{
        const char *extra[] = {"--progress",          "json", "-q",
                               "--progress-interval", "1h",   NULL};
        long long before = g->total;
        struct run_sum sum;
        struct th_run r;

        (void)state;
        produce_generated("1000", "14");
        kcat_offsets();
        ingest(extra, &r);
        check_reports(r.err.p ? r.err.p : "", r.err.len, g->ended, &sum);
        th_run_free(&r);
        assert_int_equal(sum.rows, g->total - before);
        /* 1000 messages in batches of at most 150: the first batch at
         * once, the rest added up at the end. */
        assert_int_equal(sum.reports, 2);
        assert_true(sum.batches >= 7);
        memcpy(g->ended, g->next, sizeof(g->ended));
}

static void test_human(void **state)
{
        const char *extra[] = {"--progress", "human", "-q", NULL};
        struct th_run r;

        (void)state;
        produce_generated("300", "15");
        kcat_offsets();
        ingest(extra, &r);
        assert_non_null(r.err.p);
        assert_non_null(strstr(r.err.p, "\r\033[K" TOPIC ": "));
        assert_non_null(strstr(r.err.p, " messages, "));
        assert_non_null(strstr(r.err.p, "watermark"));
        assert_null(strstr(r.err.p, "\"runId\""));
        assert_int_equal(r.err.p[r.err.len - 1], '\n');
        th_run_free(&r);
}

static void test_usage(void **state)
{
        static const char *const bad[][3] = {
                {"--progress", "yes", NULL},
                {"--progress-interval", "5", NULL},
                {"--progress", "human", "--progress-file"},
        };
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct th_args a = {0};
                struct th_run r;

                th_args_addv(&a, g->bin, "ingest", "--brokers",
                             g->broker.brokers, "--topic", TOPIC, "--db", g->db,
                             bad[i][0], bad[i][1], NULL);
                if (bad[i][2])
                        th_args_addv(&a, bad[i][2], "p.json", NULL);
                th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                assert_int_equal(r.status, 2);
                assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
                assert_non_null(strstr(r.err.p, "--progress"));
                th_run_free(&r);
                th_args_free(&a);
        }
        /* A file that cannot be opened: a runtime error, before the
         * database is made. */
        {
                char *db = th_asprintf("%s/never.db", g->dir);
                struct th_args a = {0};
                struct th_run r;

                th_args_addv(&a, g->bin, "ingest", "--brokers",
                             g->broker.brokers, "--topic", TOPIC, "--db", db,
                             "--progress-file", "/nonexistent/dir/p.json",
                             NULL);
                th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                assert_int_equal(r.status, 1);
                assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
                assert_non_null(strstr(r.err.p, "--progress-file"));
                assert_int_equal(access(db, F_OK), -1);
                th_run_free(&r);
                th_args_free(&a);
                free(db);
        }
}

static int group_teardown(void **state)
{
        (void)state;
        if (!g)
                return 0;
        th_broker_stop(&g->broker);
        if (g->dir[0])
                th_tmpdir_remove(g->dir);
        th_fatal_dir(NULL);
        free(g->bin);
        free(g->data);
        free(g->db);
        free(g);
        g = NULL;
        return 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {"--topic", TOPIC,
                                                  "--partitions", "4", NULL};
        char *berr;

        (void)state;
        th_fatal_handlers("test_progress", WATCHDOG_S);
        if (!(g = calloc(1, sizeof(*g))) || th_find_bin_data(&g->bin, &g->data))
                goto fail;
        if (th_tmpdir_make("callstream-progress", g->dir, sizeof(g->dir)))
                goto fail;
        th_fatal_dir(g->dir);
        g->db = th_asprintf("%s/progress.db", g->dir);
        berr = th_asprintf("%s/broker.err", g->dir);
        if (th_broker_start(&g->broker, g->bin, broker_args, berr)) {
                free(berr);
                goto fail;
        }
        free(berr);
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_json, th_test_teardown),
                cmocka_unit_test_teardown(test_second_run, th_test_teardown),
                cmocka_unit_test_teardown(test_interval, th_test_teardown),
                cmocka_unit_test_teardown(test_human, th_test_teardown),
                cmocka_unit_test_teardown(test_usage, th_test_teardown),
        };

        return cmocka_run_group_tests_name("progress", tests, group_setup,
                                           group_teardown);
}
