/* test_tail.c: `callstream tail` (issue 11) against the local broker. The
 * real sample produced by `callstream produce` into four partitions, read
 * back whole, by --last, --offset, --partition and --count, as lines and as
 * JSON, equals what kcat reads from the same topic, in each partition's
 * order, and the sample itself (test_tail_*); with --check, each hostile
 * message of tests/data/hostile.tsv (produced here with librdkafka, its
 * offset from the delivery report) comes out with the reason the corpus
 * gives it, and the valid ones do not come out (test_tail_check); SIGINT
 * ends a tail that follows the topic, with status 0 (test_tail_sigint);
 * wrong options, a missing partition or topic fail as they should
 * (test_tail_usage).
 *
 * E2E_KEEP=1 keeps the folder; TAIL_TEST_FILTER='test_tail_c*' runs some
 * tests. */
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
#include <librdkafka/rdkafka.h>

#include "harness.h"

#define WATCHDOG_S 600
#define TOPIC      "tail"
#define HOSTILE    "hostile"
#define NPARTS     4
#define SAMPLE     "police-department-calls-for-service.sample.json"

/* One message as kcat reads it. */
struct msg {
        int partition;
        long long offset;
        char *key;   /* "" when none */
        char *value; /* the sample's messages have no tab or newline */
};

static struct {
        char dir[512];
        char *bin;
        char *data;
        struct th_broker broker;
        struct msg *msgs; /* kcat's, sorted by partition and offset */
        size_t nmsgs;
        long long per_part[NPARTS];
        json_t *sample; /* the sample's array */
} g;

/* Splits a line into at most max tab-separated fields, in place. */
static int split_tabs(char *line, char **f, int max)
{
        int n = 0;

        while (n < max) {
                char *tab = strchr(line, '\t');

                f[n++] = line;
                if (!tab)
                        break;
                *tab = '\0';
                line = tab + 1;
        }
        return n;
}

static int msg_cmp(const void *a, const void *b)
{
        const struct msg *x = a, *y = b;

        if (x->partition != y->partition)
                return x->partition < y->partition ? -1 : 1;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Runs tail with the arguments up to NULL; fails the test unless it
 * exits 0. The caller frees r. */
static void tail_ok(struct th_run *r, ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        th_args_addv(&a, g.bin, "tail", "-b", g.broker.brokers, NULL);
        va_start(ap, r);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        th_run_ok(&a, r);
        th_args_free(&a);
}

/* Parses tail's line output (partition, offset, timestamp, key, value)
 * into out, in its order; checks each timestamp looks like one. */
static size_t parse_lines(const struct th_run *r, struct msg **out)
{
        char *text = th_strdup(r->out.p ? r->out.p : "");
        char *line, *save = NULL;
        struct msg *v = NULL;
        size_t n = 0;

        for (line = strtok_r(text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *f[5];

                assert_int_equal(split_tabs(line, f, 5), 5);
                /* 2026-12-01T18:20:00.123Z */
                assert_int_equal(strlen(f[2]), 24);
                assert_int_equal(f[2][10], 'T');
                assert_int_equal(f[2][23], 'Z');
                v = th_realloc(v, (n + 1) * sizeof(*v));
                v[n].partition = atoi(f[0]);
                v[n].offset = atoll(f[1]);
                v[n].key = th_strdup(f[3]);
                v[n].value = th_strdup(f[4]);
                n++;
        }
        free(text);
        *out = v;
        return n;
}

static void msgs_free(struct msg *v, size_t n)
{
        size_t i;

        for (i = 0; i < n; i++) {
                free(v[i].key);
                free(v[i].value);
        }
        free(v);
}

/* Each partition's messages come in offset order, one after the other. */
static void assert_partition_order(const struct msg *v, size_t n)
{
        long long last[NPARTS] = {-1, -1, -1, -1};
        size_t i;

        for (i = 0; i < n; i++) {
                int p = v[i].partition;

                assert_true(p >= 0 && p < NPARTS);
                if (last[p] >= 0)
                        assert_int_equal(v[i].offset, last[p] + 1);
                last[p] = v[i].offset;
        }
}

/* The kcat message at partition p, offset o. */
static const struct msg *kcat_msg(int p, long long o)
{
        struct msg key = {.partition = p, .offset = o};

        return bsearch(&key, g.msgs, g.nmsgs, sizeof(key), msg_cmp);
}

/* Every message of v is kcat's message at its place, byte for byte. */
static void assert_as_kcat(const struct msg *v, size_t n)
{
        size_t i;

        for (i = 0; i < n; i++) {
                const struct msg *k = kcat_msg(v[i].partition, v[i].offset);

                assert_non_null(k);
                assert_string_equal(v[i].key, k->key);
                assert_string_equal(v[i].value, k->value);
        }
}

/* The whole topic: kcat's messages, in each partition's order, and as a
 * multiset the sample's records (compared as JSON), keyed by crime_id. */
static void test_tail_all(void **state)
{
        struct th_run r = {0};
        struct msg *v;
        size_t n, i;
        json_t *seen = json_array();

        (void)state;
        tail_ok(&r, "-t", TOPIC, "--from-beginning", "-e", NULL);
        n = parse_lines(&r, &v);
        assert_int_equal(n, json_array_size(g.sample));
        assert_int_equal(n, g.nmsgs);
        assert_partition_order(v, n);
        assert_as_kcat(v, n);
        assert_non_null(strstr(r.err.p, "700 messages read from tail"));
        for (i = 0; i < n; i++) {
                json_t *j = json_loads(v[i].value, 0, NULL);

                assert_non_null(j);
                assert_string_equal(v[i].key, json_string_value(json_object_get(
                                                      j, "crime_id")));
                json_array_append_new(seen, j);
        }
        /* Each sample record is one message (they are all distinct). */
        for (i = 0; i < json_array_size(g.sample); i++) {
                json_t *want = json_array_get(g.sample, i);
                size_t k;
                int found = 0;

                for (k = 0; k < json_array_size(seen) && !found; k++)
                        found = json_equal(want, json_array_get(seen, k));
                assert_true(found);
        }
        json_decref(seen);
        msgs_free(v, n);
        th_run_free(&r);
}

/* --last 3 and --offset 150: where each partition starts. */
static void test_tail_last_offset(void **state)
{
        struct th_run r = {0};
        long long want = 0, first[NPARTS];
        struct msg *v;
        size_t n, i;
        int p;

        (void)state;
        tail_ok(&r, "-t", TOPIC, "--last", "3", "-e", NULL);
        n = parse_lines(&r, &v);
        assert_int_equal(n, 3 * NPARTS);
        assert_partition_order(v, n);
        assert_as_kcat(v, n);
        for (i = 0; i < n; i++)
                assert_true(v[i].offset >= g.per_part[v[i].partition] - 3);
        msgs_free(v, n);
        th_run_free(&r);

        tail_ok(&r, "-t", TOPIC, "--offset", "150", "--exit-at-end", NULL);
        n = parse_lines(&r, &v);
        for (p = 0; p < NPARTS; p++) {
                want += g.per_part[p] > 150 ? g.per_part[p] - 150 : 0;
                first[p] = -1;
        }
        assert_int_equal(n, want);
        assert_partition_order(v, n);
        assert_as_kcat(v, n);
        for (i = 0; i < n; i++)
                if (first[v[i].partition] < 0)
                        first[v[i].partition] = v[i].offset;
        for (p = 0; p < NPARTS; p++)
                if (g.per_part[p] > 150)
                        assert_int_equal(first[p], 150);
        msgs_free(v, n);
        th_run_free(&r);

        /* Past the end: nothing, and still an end. */
        tail_ok(&r, "-t", TOPIC, "--offset", "100000", "-e", NULL);
        assert_int_equal(r.out.len, 0);
        th_run_free(&r);
}

/* --partition 2 from the beginning: that partition alone, whole;
 * --count 5 without -e: five messages and an exit. */
static void test_tail_partition_count(void **state)
{
        struct th_run r = {0};
        struct msg *v;
        size_t n, i;

        (void)state;
        tail_ok(&r, "-t", TOPIC, "-p", "2", "--from-beginning", "-e", NULL);
        n = parse_lines(&r, &v);
        assert_int_equal(n, g.per_part[2]);
        for (i = 0; i < n; i++) {
                assert_int_equal(v[i].partition, 2);
                assert_int_equal(v[i].offset, (long long)i);
        }
        assert_as_kcat(v, n);
        msgs_free(v, n);
        th_run_free(&r);

        tail_ok(&r, "-t", TOPIC, "--from-beginning", "--count", "5", NULL);
        n = parse_lines(&r, &v);
        assert_int_equal(n, 5);
        assert_as_kcat(v, n);
        msgs_free(v, n);
        th_run_free(&r);

        /* Two partitions, the last message of each. */
        tail_ok(&r, "-t", TOPIC, "-p", "0", "-p", "3", "--last", "1", "-e",
                NULL);
        n = parse_lines(&r, &v);
        assert_int_equal(n, 2);
        for (i = 0; i < n; i++) {
                assert_true(v[i].partition == 0 || v[i].partition == 3);
                assert_int_equal(v[i].offset, g.per_part[v[i].partition] - 1);
        }
        msgs_free(v, n);
        th_run_free(&r);
}

/* --format json: one object per line, parsed with jansson. */
static void test_tail_json(void **state)
{
        struct th_run r = {0};
        char *text, *line, *save = NULL;
        long long last[NPARTS] = {-1, -1, -1, -1};
        size_t n = 0;

        (void)state;
        tail_ok(&r, "-t", TOPIC, "--from-beginning", "-e", "--format", "json",
                NULL);
        text = th_strdup(r.out.p);
        for (line = strtok_r(text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                json_error_t err;
                json_t *j = json_loads(line, 0, &err);
                const struct msg *k;
                int p;

                assert_non_null(j);
                assert_true(json_is_object(j));
                assert_int_equal(json_object_size(j), 5);
                p = (int)json_integer_value(json_object_get(j, "partition"));
                k = kcat_msg(p,
                             json_integer_value(json_object_get(j, "offset")));
                assert_non_null(k);
                assert_true(json_integer_value(json_object_get(j, "offset")) >
                            last[p]);
                last[p] = k->offset;
                /* The broker's CreateTime: 2026 or later, in ms. */
                assert_true(json_integer_value(json_object_get(
                                    j, "timestamp")) > 1700000000000LL);
                assert_string_equal(
                        json_string_value(json_object_get(j, "key")), k->key);
                assert_string_equal(
                        json_string_value(json_object_get(j, "value")),
                        k->value);
                json_decref(j);
                n++;
        }
        assert_int_equal(n, g.nmsgs);
        free(text);
        th_run_free(&r);
}

/*
 * --check on the hostile corpus.
 */

/* Decodes hostile.tsv's escapes \\, \t, \n and \xHH. */
static void unescape(const char *s, struct th_buf *out)
{
        while (*s) {
                char ch = *s++;

                if (ch == '\\' && *s) {
                        char e = *s++;

                        if (e == 't')
                                ch = '\t';
                        else if (e == 'n')
                                ch = '\n';
                        else if (e == 'x' && s[0] && s[1]) {
                                char hex[3] = {s[0], s[1], 0};

                                ch = (char)strtol(hex, NULL, 16);
                                s += 2;
                        } else {
                                ch = e;
                        }
                }
                th_buf_add(out, &ch, 1);
        }
}

struct hostile {
        char *name;
        char *expect; /* call:ID, dup:ID or reject:PREFIX */
        struct th_buf payload;
        long long offset; /* from the delivery report */
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        struct hostile *h = m->_private;

        (void)rk;
        (void)opaque;
        if (!m->err)
                h->offset = m->offset;
}

/* Produces the corpus's literal messages (not the generated @ ones) to
 * one partition, in order; each gets its offset. */
static size_t produce_hostile(struct hostile **out)
{
        char *path = th_asprintf("%s/hostile.tsv", g.data);
        char errstr[512], *line, *save = NULL;
        struct th_buf text = {0};
        struct hostile *h = NULL;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        size_t n = 0, i;

        assert_int_equal(th_read_file(path, &text), 0);
        free(path);
        for (line = strtok_r(text.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *t1 = strchr(line, '\t');
                char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
                struct th_buf e = {0};

                if (line[0] == '#' || !t2 || t2[1] == '@')
                        continue;
                *t1 = *t2 = '\0';
                h = th_realloc(h, (n + 1) * sizeof(*h));
                memset(&h[n], 0, sizeof(*h));
                h[n].name = th_strdup(line);
                unescape(t1 + 1, &e);
                h[n].expect = e.p;
                unescape(t2 + 1, &h[n].payload);
                h[n].offset = -1;
                n++;
        }
        th_buf_free(&text);

        assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                           g.broker.brokers, errstr,
                                           sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "enable.idempotence", "true",
                                           errstr, sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        assert_non_null(rk);
        for (i = 0; i < n; i++)
                assert_int_equal(
                        rd_kafka_producev(
                                rk, RD_KAFKA_V_TOPIC(HOSTILE),
                                RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE(h[i].payload.p,
                                                 h[i].payload.len),
                                RD_KAFKA_V_OPAQUE(&h[i]), RD_KAFKA_V_END),
                        RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_destroy(rk);
        for (i = 0; i < n; i++)
                assert_true(h[i].offset >= 0);
        *out = h;
        return n;
}

static void test_tail_check(void **state)
{
        struct hostile *h = NULL;
        struct th_run r = {0};
        char *text, *line, *save = NULL;
        size_t n, i, rejects = 0, seen = 0;
        char **reason;

        (void)state;
        n = produce_hostile(&h);
        assert_true(n > 30);
        reason = calloc(n, sizeof(*reason));

        tail_ok(&r, "-t", HOSTILE, "--from-beginning", "-e", "--check",
                "--format", "json", NULL);
        text = th_strdup(r.out.p ? r.out.p : "");
        for (line = strtok_r(text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                /* A raw NUL byte of a payload comes back as \u0000. */
                json_error_t err;
                json_t *j = json_loads(line, JSON_ALLOW_NUL, &err);
                long long o;

                if (!j)
                        fail_msg("not JSON (%s): %s", err.text, line);
                o = json_integer_value(json_object_get(j, "offset"));
                for (i = 0; i < n && h[i].offset != o; i++)
                        ;
                assert_true(i < n);
                assert_null(reason[i]);
                reason[i] = th_strdup(
                        json_string_value(json_object_get(j, "reason")));
                /* The value comes back as produced (or as hex). */
                if (json_object_get(j, "value_hex") == NULL) {
                        assert_int_equal(
                                json_string_length(json_object_get(j, "value")),
                                h[i].payload.len);
                }
                json_decref(j);
                seen++;
        }
        for (i = 0; i < n; i++) {
                const char *e = h[i].expect;

                if (!strncmp(e, "reject:", 7)) {
                        rejects++;
                        if (!reason[i] ||
                            strncmp(reason[i], e + 7, strlen(e + 7)))
                                fail_msg("%s: expected a reason starting with "
                                         "'%s', got '%s'",
                                         h[i].name, e + 7,
                                         reason[i] ? reason[i] : "(none)");
                } else if (reason[i]) {
                        fail_msg("%s (%s): reported '%s'", h[i].name, e,
                                 reason[i]);
                }
        }
        fprintf(stderr, "# %zu hostile messages, %zu rejected\n", n, rejects);
        assert_int_equal(seen, rejects);
        {
                char *want = th_asprintf("%zu messages read from %s, %zu "
                                         "would be rejected",
                                         n, HOSTILE, rejects);

                assert_non_null(strstr(r.err.p, want));
                free(want);
        }
        th_run_free(&r);
        free(text);

        /* Lines: six fields, the reason before the value, the value's
         * tabs and newlines escaped so each message is one line. */
        tail_ok(&r, "-t", HOSTILE, "--from-beginning", "-e", "--check", NULL);
        assert_int_equal(th_count_lines(r.out.p, r.out.len), rejects);
        text = th_strdup(r.out.p);
        for (line = strtok_r(text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *f[7];

                assert_int_equal(split_tabs(line, f, 7), 6);
                for (i = 0; i < n && h[i].offset != atoll(f[1]); i++)
                        ;
                assert_true(i < n);
                /* Escaped like the value: \\ for a backslash. */
                {
                        struct th_buf u = {0};

                        unescape(f[4], &u);
                        assert_string_equal(u.p, reason[i]);
                        th_buf_free(&u);
                }
        }
        free(text);
        th_run_free(&r);

        for (i = 0; i < n; i++) {
                free(reason[i]);
                free(h[i].name);
                free(h[i].expect);
                th_buf_free(&h[i].payload);
        }
        free(reason);
        free(h);
}

/* SIGINT ends a tail that follows the topic: status 0, the summary. */
static void test_tail_sigint(void **state)
{
        char *out = th_asprintf("%s/sigint.out", g.dir);
        struct th_args a = {0};
        struct th_buf b = {0};
        int64_t until = th_now_ms() + 60000;
        int rc;
        pid_t pid;

        (void)state;
        th_args_addv(&a, g.bin, "tail", "-b", g.broker.brokers, "-t", TOPIC,
                     "--from-beginning", NULL);
        pid = th_spawn_logged(&a, out);
        th_args_free(&a);
        assert_true(pid > 0);
        /* It prints everything, then waits for more. */
        while (th_now_ms() < until) {
                b.len = 0;
                th_read_file(out, &b);
                if (b.p && strstr(b.p, "\n") &&
                    th_count_lines(b.p, b.len) >= (int)g.nmsgs)
                        break;
                th_sleep_ms(50);
        }
        assert_int_equal(th_exited(pid), -1);
        kill(pid, SIGINT);
        rc = th_wait_until(pid, th_now_ms() + 15000);
        assert_int_equal(rc, 0);
        b.len = 0;
        th_read_file(out, &b);
        assert_non_null(strstr(b.p, "700 messages read from tail"));
        th_buf_free(&b);
        free(out);
}

static void test_tail_usage(void **state)
{
        static const char *const bad[][6] = {
                {"-t", TOPIC, "--offset", "3", "--last", "2"},
                {"-t", TOPIC, "--from-beginning", "--offset", "3", NULL},
                {"-t", TOPIC, "--format", "xml", NULL},
                {"-t", TOPIC, "--window", "1h", NULL},
                {"-t", TOPIC, "--count", "0", NULL},
                {"-t", TOPIC, "--last", "x", NULL},
                {"--from-beginning", NULL},
                {"-t", TOPIC, "-p", "9", "-e", NULL},
        };
        size_t i;
        int k;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct th_args a = {0};
                struct th_run r = {0};

                th_args_addv(&a, g.bin, "tail", "-b", g.broker.brokers, NULL);
                for (k = 0; k < 6 && bad[i][k]; k++)
                        th_args_add(&a, bad[i][k]);
                th_run_args(&a, 60000, &r);
                assert_int_equal(r.status, 2);
                assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
                assert_non_null(strstr(r.err.p, "callstream tail: "));
                assert_int_equal(r.out.len, 0);
                th_run_free(&r);
                th_args_free(&a);
        }
        {
                struct th_args a = {0};
                struct th_run r = {0};

                th_args_addv(&a, g.bin, "tail", "--help", NULL);
                th_run_ok(&a, &r);
                assert_memory_equal(r.out.p, "Usage: callstream tail", 22);
                assert_non_null(strstr(r.out.p, "--check"));
                assert_non_null(strstr(r.out.p, "--max-future"));
                th_run_free(&r);
                th_args_free(&a);

                th_args_addv(&a, g.bin, "tail", "-b", g.broker.brokers, "-t",
                             "no-such-topic", "-e", NULL);
                th_run_args(&a, 60000, &r);
                assert_int_equal(r.status, 1);
                assert_non_null(strstr(r.err.p, "does not exist"));
                th_run_free(&r);
                th_args_free(&a);
        }
}

/*
 * Fixture.
 */

static int group_setup(void **state)
{
        static const char *const extra[] = {
                "--partitions", "4",     "--topic", TOPIC,
                "--topic",      HOSTILE, NULL};
        struct th_args a = {0};
        struct th_run r = {0};
        json_error_t err;
        char *p, *line, *save = NULL;
        int rc;

        (void)state;
        th_fatal_handlers("test_tail", WATCHDOG_S);
        if (th_find_bin_data(&g.bin, &g.data) ||
            th_tmpdir_make("cs_test_tail", g.dir, sizeof(g.dir)))
                return -1;
        th_fatal_dir(g.dir);
        p = th_asprintf("%s/broker.err", g.dir);
        rc = th_broker_start(&g.broker, g.bin, extra, p);
        free(p);
        if (rc < 0)
                return -1;
        th_fatal_broker(0, g.broker.pid);

        p = th_asprintf("%s/" SAMPLE, g.data);
        g.sample = json_load_file(p, 0, &err);
        th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t", TOPIC,
                     "-q", p, NULL);
        free(p);
        if (!g.sample || !json_is_array(g.sample))
                return -1;
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        rc = r.status;
        th_run_free(&r);
        if (rc != 0)
                return -1;

        /* What kcat reads, the reference. */
        th_args_addv(&a, "kcat", "-C", "-b", g.broker.brokers, "-t", TOPIC,
                     "-o", "beginning", "-e", "-q", "-f", "%p\t%o\t%k\t%s\n",
                     NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        if (r.status != 0)
                return -1;
        for (line = strtok_r(r.out.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *f[4];
                struct msg *m;

                if (split_tabs(line, f, 4) != 4)
                        return -1;
                g.msgs = th_realloc(g.msgs, (g.nmsgs + 1) * sizeof(*g.msgs));
                m = &g.msgs[g.nmsgs++];
                m->partition = atoi(f[0]);
                m->offset = atoll(f[1]);
                m->key = th_strdup(f[2]);
                m->value = th_strdup(f[3]);
                if (m->partition < 0 || m->partition >= NPARTS)
                        return -1;
                g.per_part[m->partition]++;
        }
        th_run_free(&r);
        qsort(g.msgs, g.nmsgs, sizeof(*g.msgs), msg_cmp);
        fprintf(stderr, "# kcat: %zu messages (%lld %lld %lld %lld)\n", g.nmsgs,
                g.per_part[0], g.per_part[1], g.per_part[2], g.per_part[3]);
        return g.nmsgs == json_array_size(g.sample) ? 0 : -1;
}

static int group_teardown(void **state)
{
        (void)state;
        th_broker_stop(&g.broker);
        th_fatal_broker(0, 0);
        if (*g.dir)
                th_tmpdir_remove(g.dir);
        msgs_free(g.msgs, g.nmsgs);
        json_decref(g.sample);
        free(g.bin);
        free(g.data);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_tail_all, th_test_teardown),
                cmocka_unit_test_teardown(test_tail_last_offset,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_tail_partition_count,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_tail_json, th_test_teardown),
                cmocka_unit_test_teardown(test_tail_check, th_test_teardown),
                cmocka_unit_test_teardown(test_tail_sigint, th_test_teardown),
                cmocka_unit_test_teardown(test_tail_usage, th_test_teardown),
        };
        const char *only = getenv("TAIL_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("tail", tests, group_setup,
                                           group_teardown);
}
