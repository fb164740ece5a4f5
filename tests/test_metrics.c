/* test_metrics.c: `callstream ingest --http`'s /metrics and /healthz
 * (issue 11), end to end with the real binary and the local broker:
 *
 *   test_metrics_stream  a known stream (the sample, malformed lines and
 *       copies of sample calls) is consumed while /metrics is scraped
 *       over loopback; every scrape parses under a strict reading of the
 *       Prometheus text format (HELP and TYPE lines, metric and label
 *       names, label escapes, float values, histograms' buckets ascending
 *       and cumulative with +Inf equal to _count) and counters never go
 *       down; at the end the counters equal the stream's truth worked out
 *       by the model in features.c (messages, calls, duplicates, rejected
 *       and their reasons, late), the partition's next offset the number
 *       of messages, its lag 0, and /healthz says 200;
 *   test_health_pg       with PostgreSQL: /healthz is 200, turns 503 with
 *       one line naming the database while the server is stopped and
 *       messages wait, and 200 again once it is back; nothing is lost
 *       (the counters and the calls table agree with the stream) and a
 *       reconnect is counted;
 *   test_health_broker   /healthz turns 503 naming the Kafka brokers once
 *       the broker is gone;
 *   test_usage           a bad --health-timeout is a usage error;
 *   test_strict_reader   the test's reader of the format refuses broken
 *       pages (so that the tests above can fail);
 *   test_render          cs_metrics_render() of stats fed directly: a topic
 *       with quote, backslash and newline escaped in labels, reject
 *       reasons as labels, buckets as added; /healthz's verdicts.
 *
 * The end-to-end tests' expected values come from the model in features.c;
 * test_render links the stats and metrics modules. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cs_batch.h"
#include "cs_metrics.h"
#include "cs_stats.h"
#include "features.h"
#include "model.h"

#define SCRAPE_TIMEOUT_MS (90 * 1000) /* hang guards only */

/*
 * HTTP over loopback.
 */

/* Waits for "serving the report at http://HOST:PORT/" in the log at path
 * while pid runs; returns the port or -1. */
static int wait_url(const char *path, pid_t pid)
{
        int64_t deadline = th_now_ms() + 60 * 1000;

        while (th_now_ms() < deadline) {
                struct th_buf b = {0};
                const char *p;
                int port = -1;

                if (th_read_file(path, &b) == 0 && b.len) {
                        th_buf_add(&b, "", 1);
                        p = strstr(b.p, "serving the report at http://");
                        if (p && sscanf(p,
                                        "serving the report at "
                                        "http://%*[^:/]:%d",
                                        &port) == 1) {
                                th_buf_free(&b);
                                return port;
                        }
                }
                th_buf_free(&b);
                if (th_exited(pid) >= 0)
                        return -1;
                th_sleep_ms(50);
        }
        return -1;
}

/*
 * A strict reader of the Prometheus text exposition format (0.0.4).
 */

struct sample {
        char *name;
        char *labels; /* canonical "a=\"x\",b=\"y\"" without le, or "" */
        char *le;     /* histogram buckets: the le label, else NULL */
        double value;
};

struct family {
        char *name;
        char *type;
        int help, samples_seen, closed;
};

struct expo {
        struct sample *s;
        size_t n, cap;
        struct family *f;
        size_t nf, capf;
};

static void expo_free(struct expo *e)
{
        size_t i;

        for (i = 0; i < e->n; i++) {
                free(e->s[i].name);
                free(e->s[i].labels);
                free(e->s[i].le);
        }
        for (i = 0; i < e->nf; i++) {
                free(e->f[i].name);
                free(e->f[i].type);
        }
        free(e->s);
        free(e->f);
        memset(e, 0, sizeof(*e));
}

static int name_ok(const char *s, size_t n, int colon)
{
        size_t i;

        if (!n || isdigit((unsigned char)s[0]))
                return 0;
        for (i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
                    !(colon && s[i] == ':'))
                        return 0;
        return 1;
}

static int value_ok(const char *s, double *v)
{
        char *end;

        if (!strcmp(s, "+Inf")) {
                *v = INFINITY;
                return 1;
        }
        if (!strcmp(s, "-Inf")) {
                *v = -INFINITY;
                return 1;
        }
        if (!strcmp(s, "NaN")) {
                *v = NAN;
                return 1;
        }
        if (!*s || isspace((unsigned char)*s))
                return 0;
        errno = 0;
        *v = strtod(s, &end);
        return !*end && !errno && isfinite(*v);
}

static struct family *family_of(struct expo *e, const char *name, size_t n)
{
        size_t i;

        for (i = 0; i < e->nf; i++)
                if (strlen(e->f[i].name) == n &&
                    !strncmp(e->f[i].name, name, n))
                        return &e->f[i];
        return NULL;
}

static struct family *family_add(struct expo *e, const char *name, size_t n)
{
        struct family *f;

        if (e->nf == e->capf) {
                e->capf = e->capf ? 2 * e->capf : 16;
                e->f = th_realloc(e->f, e->capf * sizeof(*e->f));
        }
        f = &e->f[e->nf++];
        memset(f, 0, sizeof(*f));
        f->name = th_strndup(name, n);
        return f;
}

/* The family a sample name belongs to: itself, or a histogram's. */
static struct family *family_of_sample(struct expo *e, const char *name)
{
        static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
        size_t n = strlen(name), i, k;
        struct family *f = family_of(e, name, n);

        if (f)
                return f;
        for (i = 0; i < 3; i++) {
                k = strlen(suffixes[i]);
                if (n > k && !strcmp(name + n - k, suffixes[i]) &&
                    (f = family_of(e, name, n - k)) &&
                    !strcmp(f->type, "histogram"))
                        return f;
        }
        return NULL;
}

/* Reads {labels} at *p into canonical text, and le apart. Returns 0, or
 * -1 with why. */
static int read_labels(const char **pp, struct th_buf *canon, char **le,
                       const char **why)
{
        const char *p = *pp + 1;
        struct th_buf names = {0};

        th_buf_add(canon, "", 0);
        th_buf_add(&names, ",", 1);
        while (*p != '}') {
                const char *n0 = p;
                struct th_buf val = {0};
                char *key;

                while (isalnum((unsigned char)*p) || *p == '_')
                        p++;
                if (!name_ok(n0, (size_t)(p - n0), 0) ||
                    !strncmp(n0, "__", 2)) {
                        *why = "bad label name";
                        goto fail;
                }
                key = th_asprintf(",%.*s,", (int)(p - n0), n0);
                if (strstr(names.p, key)) {
                        free(key);
                        *why = "label given twice";
                        goto fail;
                }
                th_buf_add(&names, key + 1, strlen(key + 1));
                free(key);
                if (p[0] != '=' || p[1] != '"') {
                        *why = "expected =\" after a label name";
                        goto fail;
                }
                p += 2;
                th_buf_add(&val, "", 0);
                for (; *p && *p != '"'; p++) {
                        const char *c = p;

                        if (*p == '\\') {
                                p++;
                                if (*p != '\\' && *p != '"' && *p != 'n') {
                                        th_buf_free(&val);
                                        *why = "bad escape in a label value";
                                        goto fail;
                                }
                                c = *p == 'n' ? "\n" : p;
                        }
                        th_buf_add(&val, c, 1);
                }
                if (*p != '"') {
                        th_buf_free(&val);
                        *why = "unterminated label value";
                        goto fail;
                }
                p++;
                if ((size_t)(p - n0) > 3 && !strncmp(n0, "le=", 3)) {
                        *le = th_strdup(val.p);
                } else {
                        th_buf_addf(canon, "%s%.*s=\"%s\"",
                                    canon->len ? "," : "",
                                    (int)(strchr(n0, '=') - n0), n0, val.p);
                }
                th_buf_free(&val);
                if (*p == ',')
                        p++;
                else if (*p != '}') {
                        *why = "expected , or } after a label";
                        goto fail;
                }
                if (*p == '}' && p[-1] == ',') {
                        *why = "trailing comma in labels";
                        goto fail;
                }
        }
        *pp = p + 1;
        th_buf_free(&names);
        return 0;
fail:
        th_buf_free(&names);
        return -1;
}

/* Parses text strictly into e. Returns 0, or -1 with the line and what
 * is wrong with it in err (e then holds what came before). */
static int expo_parse(const char *text, size_t len, struct expo *e, char *err,
                      size_t err_size)
{
        struct family *cur = NULL;
        size_t i = 0, lineno = 0;

        memset(e, 0, sizeof(*e));
        if (!len || text[len - 1] != '\n') {
                snprintf(err, err_size, "empty, or no newline at the end");
                return -1;
        }
        while (i < len) {
                size_t end = i;
                char *line;
                const char *why = NULL, *p;

                while (text[end] != '\n')
                        end++;
                line = th_strndup(text + i, end - i);
                lineno++;
                i = end + 1;
                if (!strncmp(line, "# HELP ", 7) ||
                    !strncmp(line, "# TYPE ", 7)) {
                        const char *n0 = line + 7, *n1 = n0;
                        struct family *f;

                        while (*n1 && *n1 != ' ')
                                n1++;
                        if (!name_ok(n0, (size_t)(n1 - n0), 1) || *n1 != ' ') {
                                why = "bad metric name in HELP/TYPE";
                                goto bad;
                        }
                        f = family_of(e, n0, (size_t)(n1 - n0));
                        if (!f)
                                f = family_add(e, n0, (size_t)(n1 - n0));
                        if (f->samples_seen) {
                                why = "HELP/TYPE after the family's samples";
                                goto bad;
                        }
                        if (line[2] == 'H') {
                                if (f->help++) {
                                        why = "HELP twice";
                                        goto bad;
                                }
                        } else {
                                static const char *const types[] = {
                                        "counter", "gauge", "histogram",
                                        "summary", "untyped"};
                                size_t k;

                                if (f->type) {
                                        why = "TYPE twice";
                                        goto bad;
                                }
                                for (k = 0; k < 5; k++)
                                        if (!strcmp(n1 + 1, types[k]))
                                                break;
                                if (k == 5) {
                                        why = "unknown TYPE";
                                        goto bad;
                                }
                                f->type = th_strdup(n1 + 1);
                        }
                        free(line);
                        continue;
                }
                if (line[0] == '#' || !line[0]) {
                        why = "a comment other than HELP or TYPE, or a blank";
                        goto bad;
                }
                /* A sample: name[{labels}] value */
                {
                        struct th_buf canon = {0};
                        struct sample s = {0};
                        struct family *f;

                        p = line;
                        while (isalnum((unsigned char)*p) || *p == '_' ||
                               *p == ':')
                                p++;
                        if (!name_ok(line, (size_t)(p - line), 1)) {
                                why = "bad metric name";
                                goto bad;
                        }
                        s.name = th_strndup(line, (size_t)(p - line));
                        if (*p == '{' &&
                            read_labels(&p, &canon, &s.le, &why) < 0) {
                                free(s.name);
                                th_buf_free(&canon);
                                goto bad;
                        }
                        s.labels = th_strdup(canon.p ? canon.p : "");
                        th_buf_free(&canon);
                        if (*p != ' ' || !value_ok(p + 1, &s.value)) {
                                why = "expected one space and a float value";
                                free(s.name);
                                free(s.labels);
                                free(s.le);
                                goto bad;
                        }
                        f = family_of_sample(e, s.name);
                        if (!f || !f->type || !f->help) {
                                why = "sample without HELP and TYPE before";
                                free(s.name);
                                free(s.labels);
                                free(s.le);
                                goto bad;
                        }
                        if (f->closed || (cur && cur != f && cur->closed)) {
                                /* checked below */
                        }
                        if (cur && cur != f)
                                cur->closed = 1;
                        if (f->closed) {
                                why = "a family's samples not together";
                                free(s.name);
                                free(s.labels);
                                free(s.le);
                                goto bad;
                        }
                        cur = f;
                        f->samples_seen++;
                        if (!strcmp(f->type, "counter") &&
                            (strlen(s.name) < 7 ||
                             strcmp(s.name + strlen(s.name) - 6, "_total") ||
                             s.value < 0)) {
                                why = "a counter not named _total, or "
                                      "negative";
                                free(s.name);
                                free(s.labels);
                                free(s.le);
                                goto bad;
                        }
                        if (!!s.le !=
                            (!strcmp(f->type, "histogram") &&
                             strlen(s.name) > 7 &&
                             !strcmp(s.name + strlen(s.name) - 7, "_bucket"))) {
                                why = "le on a sample other than a bucket, "
                                      "or a bucket without le";
                                free(s.name);
                                free(s.labels);
                                free(s.le);
                                goto bad;
                        }
                        if (e->n == e->cap) {
                                e->cap = e->cap ? 2 * e->cap : 64;
                                e->s = th_realloc(e->s, e->cap * sizeof(*e->s));
                        }
                        e->s[e->n++] = s;
                }
                free(line);
                continue;
        bad:
                snprintf(err, err_size, "line %zu: %s: %s", lineno, why, line);
                free(line);
                return -1;
        }
        return 0;
}

/* The value of name{labels} (canonical, "" for none), or NAN. */
static double expo_get(const struct expo *e, const char *name,
                       const char *labels)
{
        size_t i;

        for (i = 0; i < e->n; i++)
                if (!strcmp(e->s[i].name, name) && !e->s[i].le &&
                    !strcmp(e->s[i].labels, labels))
                        return e->s[i].value;
        return NAN;
}

/* Sum of every sample named name. */
static double expo_sum(const struct expo *e, const char *name)
{
        double v = 0;
        size_t i;

        for (i = 0; i < e->n; i++)
                if (!strcmp(e->s[i].name, name))
                        v += e->s[i].value;
        return v;
}

/* Every histogram: per label set, le ascending, counts cumulative, +Inf
 * last and equal to _count, _sum present, no bucket without a _count.
 * Returns 0, or -1 with what is wrong in err. */
static int expo_check_histograms(const struct expo *e, char *err,
                                 size_t err_size)
{
        size_t fi, i, k;
        int r = 0;

        for (fi = 0; fi < e->nf && !r; fi++) {
                const struct family *f = &e->f[fi];
                char *bucket, *sum, *count;
                int nhist = 0;

                if (!f->type || strcmp(f->type, "histogram"))
                        continue;
                bucket = th_asprintf("%s_bucket", f->name);
                sum = th_asprintf("%s_sum", f->name);
                count = th_asprintf("%s_count", f->name);
                for (i = 0; i < e->n && !r; i++) {
                        const struct sample *s = &e->s[i];
                        double last_le = -INFINITY, last_v = 0, le;
                        int inf = 0;

                        if (!strcmp(s->name, bucket) &&
                            isnan(expo_get(e, count, s->labels))) {
                                snprintf(err, err_size,
                                         "%s: buckets {%s} without a _count",
                                         f->name, s->labels);
                                r = -1;
                        }
                        if (r || strcmp(s->name, count))
                                continue;
                        nhist++;
                        for (k = 0; k < e->n && !r; k++) {
                                const struct sample *b = &e->s[k];

                                if (strcmp(b->name, bucket) ||
                                    strcmp(b->labels, s->labels))
                                        continue;
                                if (inf)
                                        snprintf(err, err_size,
                                                 "%s: a bucket after +Inf",
                                                 f->name);
                                else if (!value_ok(b->le, &le) || isnan(le))
                                        snprintf(err, err_size,
                                                 "%s: le=\"%s\" not a number",
                                                 f->name, b->le);
                                else if (!(le > last_le))
                                        snprintf(err, err_size,
                                                 "%s: le %s not ascending",
                                                 f->name, b->le);
                                else if (b->value < last_v ||
                                         b->value != floor(b->value))
                                        snprintf(err, err_size,
                                                 "%s: bucket le=%s not "
                                                 "cumulative counts",
                                                 f->name, b->le);
                                else {
                                        last_le = le;
                                        last_v = b->value;
                                        inf = isinf(le) && le > 0;
                                        continue;
                                }
                                r = -1;
                        }
                        if (r)
                                break;
                        if (!inf)
                                snprintf(err, err_size, "%s: no +Inf bucket",
                                         f->name);
                        else if (last_v != s->value)
                                snprintf(err, err_size,
                                         "%s: +Inf bucket %g != _count %g",
                                         f->name, last_v, s->value);
                        else if (isnan(expo_get(e, sum, s->labels)))
                                snprintf(err, err_size, "%s: no _sum", f->name);
                        else
                                continue;
                        r = -1;
                }
                if (!r && !nhist) {
                        snprintf(err, err_size, "%s: no samples", f->name);
                        r = -1;
                }
                free(bucket);
                free(sum);
                free(count);
        }
        return r;
}

/* Parses and checks text, failing the test on anything amiss. */
static void expo_ok(const char *text, size_t len, struct expo *e)
{
        char err[512];

        if (expo_parse(text, len, e, err, sizeof(err)) < 0 ||
            expo_check_histograms(e, err, sizeof(err)) < 0)
                fail_msg("/metrics: %s", err);
}

/* Scrapes /metrics and parses it; fails the test on anything amiss. */
static void scrape(int port, struct expo *e)
{
        struct th_http_resp r;

        th_http_get(port, "/metrics", &r);
        assert_int_equal(r.status, 200);
        assert_non_null(r.type);
        assert_non_null(strstr(r.type, "text/plain; version=0.0.4"));
        expo_ok(r.body, r.len, e);
        th_http_resp_free(&r);
}

static const char *const counters[] = {
        "callstream_messages_consumed_total",
        "callstream_calls_stored_total",
        "callstream_duplicates_total",
        "callstream_rejected_total",
        "callstream_late_total",
        "callstream_updated_total",
        "callstream_batches_total",
        "callstream_database_reconnects_total",
        "callstream_freshness_seconds_count",
        "callstream_batch_duration_seconds_count",
};
#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))

/* Scrapes until messages_consumed reaches want (or the guard), checking
 * every scrape and that no counter goes down; leaves the last in *e. */
static void scrape_until(int port, double want, struct expo *e)
{
        double before[NCOUNTERS] = {0};
        int64_t deadline = th_now_ms() + SCRAPE_TIMEOUT_MS;
        int scrapes = 0;
        size_t k;

        for (;;) {
                scrape(port, e);
                scrapes++;
                for (k = 0; k < NCOUNTERS; k++) {
                        double v = expo_sum(e, counters[k]);

                        if (v < before[k])
                                fail_msg("%s went down: %g -> %g", counters[k],
                                         before[k], v);
                        before[k] = v;
                }
                if (expo_sum(e, "callstream_messages_consumed_total") >= want)
                        break;
                if (th_now_ms() > deadline)
                        fail_msg("only %g of %g messages after %d scrapes",
                                 expo_sum(e,
                                          "callstream_messages_consumed_total"),
                                 want, scrapes);
                expo_free(e);
                th_sleep_ms(100);
        }
        fprintf(stderr, "# %d scrapes\n", scrapes);
}

/*
 * The stream and its truth.
 */

/* Writes the stream: the sample as NDJSON, malformed lines, then copies
 * of the first ncopies sample calls. */
static void write_stream(const struct ft *st, const char *path, int ncopies)
{
        static const char *const bad[] = {
                "not json at all",
                "{\"crime_id\": \"1\"}",
                "[1, 2, 3]",
                "{\"crime_id\": \"77\", \"original_crime_type_name\": \"x\", "
                "\"call_date_time\": \"2018-13-45T99:00:00\"}",
                "{\"crime_id\": \"78\", \"original_crime_type_name\": \"x\"}",
        };
        json_error_t jerr;
        json_t *arr = json_load_file(st->sample, 0, &jerr), *v;
        struct th_buf b = {0};
        size_t i;

        if (!json_is_array(arr))
                fail_msg("%s: %s", st->sample, jerr.text);
        th_buf_add(&b, "", 0);
        json_array_foreach(arr, i, v)
        {
                char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

                th_buf_addf(&b, "%s\n", s);
                free(s);
        }
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                th_buf_addf(&b, "%s\n", bad[i]);
        for (i = 0; i < (size_t)ncopies; i++) {
                char *s = json_dumps(json_array_get(arr, i),
                                     JSON_COMPACT | JSON_PRESERVE_ORDER);

                th_buf_addf(&b, "%s\n", s);
                free(s);
        }
        ft_write_text(path, b.p, b.len);
        th_buf_free(&b);
        json_decref(arr);
}

struct truth {
        long long messages, calls, duplicates, rejected, late;
};

/* The last '|' fields of a line, as numbers: out[0] the last. */
static void last_fields(const char *line, long long *out, int n)
{
        const char *p = line + strlen(line);
        int k;

        for (k = 0; k < n; k++) {
                const char *bar;

                for (bar = p - 1; bar > line && *bar != '|'; bar--)
                        ;
                assert_true(*bar == '|');
                out[k] = strtoll(bar + 1, NULL, 10);
                p = bar;
        }
}

/* The model's verdict on the stream in path (one partition, window 1h,
 * lateness 1h, late calls counted). */
static void stream_truth(const struct ft *st, const char *path,
                         const char *topic, struct truth *t)
{
        static const struct ft_spec specs[] = {{"1h", FT_HOUR_S, FT_HOUR_S}};
        struct ft_mconf c = {specs, 1, FT_HOUR_S, 0, 0, topic};
        struct ft_input in;
        struct ft_want w;
        long long f[3];
        size_t i;

        ft_input_ndjson(path, 1, &in);
        ft_model(st, &in, &c, &w);
        memset(t, 0, sizeof(*t));
        t->messages = (long long)in.n;
        t->calls = (long long)w.calls.n;
        /* progress: ...|calls|duplicates|rejected, one partition. */
        assert_int_equal(w.progress.n, 1);
        last_fields(w.progress.v[0], f, 3);
        assert_int_equal(f[2], t->calls);
        t->duplicates = f[1];
        t->rejected = f[0];
        /* window_counts: ...|calls|late_calls; one window per call. */
        for (i = 0; i < w.wc.n; i++) {
                last_fields(w.wc.v[i], f, 1);
                t->late += f[0];
        }
        fprintf(stderr,
                "# truth: %lld messages, %lld calls, %lld duplicates, %lld "
                "rejected, %lld late\n",
                t->messages, t->calls, t->duplicates, t->rejected, t->late);
        ft_want_free(&w);
        ft_input_free(&in);
}

static void check_counters(const struct expo *e, const struct truth *t)
{
        assert_int_equal((long long)expo_get(
                                 e, "callstream_messages_consumed_total", ""),
                         t->messages);
        assert_int_equal(
                (long long)expo_get(e, "callstream_calls_stored_total", ""),
                t->calls);
        assert_int_equal(
                (long long)expo_get(e, "callstream_duplicates_total", ""),
                t->duplicates);
        assert_int_equal((long long)expo_sum(e, "callstream_rejected_total"),
                         t->rejected);
        assert_int_equal((long long)expo_get(e, "callstream_late_total", ""),
                         t->late);
        assert_int_equal((long long)expo_get(e, "callstream_updated_total", ""),
                         0);
        /* Every message came with Kafka's timestamp. */
        assert_int_equal((long long)expo_get(
                                 e, "callstream_freshness_seconds_count", ""),
                         t->messages);
        assert_int_equal(
                (long long)expo_get(
                        e, "callstream_batch_duration_seconds_count", ""),
                (long long)expo_get(e, "callstream_batches_total", ""));
}

static pid_t start_ingest(struct ft *st, const char *topic, const char *db,
                          const char *log, const char *const *extra, int *port)
{
        struct th_args a = {0};
        pid_t pid;

        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", topic, "--db", db, "--from-beginning",
                     "--window", "1h", "--batch-max-records", "100", "--http",
                     ":0", NULL);
        for (; extra && *extra; extra++)
                th_args_add(&a, *extra);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        *port = wait_url(log, pid);
        if (*port < 0)
                th_show_file_tail("ingest", log);
        assert_true(*port > 0);
        return pid;
}

static void stop_ingest(pid_t pid, const char *log)
{
        int status;

        kill(pid, SIGTERM);
        status = th_wait_until(pid, th_now_ms() + 60 * 1000);
        if (status != 0)
                th_show_file_tail("ingest", log);
        assert_int_equal(status, 0);
}

static void assert_health(int port, int status, const char *has)
{
        struct th_http_resp r;

        th_http_get(port, "/healthz", &r);
        assert_int_equal(r.status, status);
        assert_int_equal(th_count_lines(r.body, r.len), 1);
        if (!strstr(r.body, has))
                fail_msg("expected '%s' in /healthz: %s", has, r.body);
        th_http_resp_free(&r);
}

static void test_metrics_stream(void **state)
{
        struct ft *st = *state;
        char *stream = ft_path_in(st, "stream.ndjson");
        char *db = ft_path_in(st, "metrics.db");
        char *log = ft_path_in(st, "metrics.log");
        struct truth t;
        struct expo e;
        char labels[128];
        int port;
        pid_t pid;

        write_stream(st, stream, 40);
        stream_truth(st, stream, FT_SAMPLE_TOPIC, &t);
        assert_true(t.rejected >= 5 && t.duplicates >= 40 && t.late > 0);
        ft_produce(st, FT_SAMPLE_TOPIC, stream);
        pid = start_ingest(st, FT_SAMPLE_TOPIC, db, log, NULL, &port);
        scrape_until(port, (double)t.messages, &e);
        check_counters(&e, &t);
        /* Reasons are label values of their own. */
        assert_true(expo_get(&e, "callstream_rejected_total",
                             "reason=\"invalid_json\"") >= 1);
        assert_true(expo_get(&e, "callstream_rejected_total",
                             "reason=\"missing_call_date_time\"") >= 1);
        snprintf(labels, sizeof(labels),
                 "topic=\"" FT_SAMPLE_TOPIC "\",partition=\"0\"");
        assert_int_equal(
                (long long)expo_get(&e, "callstream_next_offset", labels),
                t.messages);
        assert_false(
                isnan(expo_get(&e, "callstream_watermark_seconds", labels)));
        assert_int_equal((long long)expo_get(&e, "callstream_database_up", ""),
                         1);
        assert_int_equal((long long)expo_get(&e, "callstream_broker_up", ""),
                         1);
        expo_free(&e);
        /* The lag comes down to 0 once the partition's end is known. */
        {
                int64_t deadline = th_now_ms() + SCRAPE_TIMEOUT_MS;
                double lag;

                for (;;) {
                        scrape(port, &e);
                        lag = expo_get(&e, "callstream_lag_messages", labels);
                        expo_free(&e);
                        if (lag == 0)
                                break;
                        if (th_now_ms() > deadline)
                                fail_msg("lag still %g", lag);
                        th_sleep_ms(200);
                }
        }
        assert_health(port, 200, "ok");
        stop_ingest(pid, log);
        free(stream);
        free(db);
        free(log);
}

/* Polls /healthz until it answers status (hang guard only). */
static void wait_health(int port, int status, const char *has)
{
        int64_t deadline = th_now_ms() + SCRAPE_TIMEOUT_MS;
        struct th_http_resp r;

        for (;;) {
                th_http_get(port, "/healthz", &r);
                if (r.status == status)
                        break;
                if (th_now_ms() > deadline)
                        fail_msg("/healthz still %d: %.*s", r.status,
                                 (int)r.len, r.body);
                th_http_resp_free(&r);
                th_sleep_ms(200);
        }
        assert_int_equal(th_count_lines(r.body, r.len), 1);
        if (!strstr(r.body, has))
                fail_msg("expected '%s' in /healthz: %s", has, r.body);
        fprintf(stderr, "# /healthz %d: %.*s", r.status, (int)r.len, r.body);
        th_http_resp_free(&r);
}

/* The progress reports' id of a PostgreSQL database is the same whatever
 * the password (trusted on the socket, so any goes), which is never
 * written: two runs of copies of the stream in path, each with its own
 * password. */
static void check_id_without_password(struct ft *st, const struct ft_db *d,
                                      const char *path)
{
        char *ids[2];
        int k;

        for (k = 0; k < 2; k++) {
                char *conn = th_asprintf("%s password=Secret%d", d->target, k);
                struct th_args a = {0};
                json_error_t jerr;
                struct th_run r;
                json_t *o;

                ft_produce(st, FT_UPD_TOPIC, path);
                th_args_addv(&a, st->bin, "ingest", "--brokers",
                             st->broker.brokers, "--topic", FT_UPD_TOPIC,
                             "--db", conn, "--exit-at-end", "--progress",
                             "json", "--window", "1h", "-q", NULL);
                th_run_ok(&a, &r);
                assert_non_null(r.err.p);
                assert_null(strstr(r.err.p, "Secret"));
                o = json_loadb(r.err.p, strcspn(r.err.p, "\n"), 0, &jerr);
                if (!json_is_string(json_object_get(o, "id")))
                        fail_msg("no progress report first: %s", r.err.p);
                ids[k] = th_strdup(json_string_value(json_object_get(o, "id")));
                json_decref(o);
                th_run_free(&r);
                th_args_free(&a);
                free(conn);
        }
        assert_string_equal(ids[0], ids[1]);
        free(ids[0]);
        free(ids[1]);
}

static void test_health_pg(void **state)
{
        static const char *const extra[] = {"--health-timeout", "1s", NULL};
        struct ft *st = *state;
        char *first = ft_path_in(st, "first.ndjson");
        char *second = ft_path_in(st, "second.ndjson");
        char *log = ft_path_in(st, "health.log");
        struct th_buf b = {0};
        struct ft_db d;
        struct truth t1, t;
        struct expo e;
        char *calls;
        int port;
        pid_t pid;

        if (st->pg_state != 1)
                skip();
        /* Two halves of one stream: the second is produced while the
         * database is down. */
        write_stream(st, second, 0);
        assert_int_equal(th_read_file(second, &b), 0);
        {
                size_t half = 0;
                int lines = 0;

                while (half < b.len && lines < 300)
                        lines += b.p[half++] == '\n';
                ft_write_text(first, b.p, half);
                ft_write_text(second, b.p + half, b.len - half);
        }
        th_buf_free(&b);
        ft_new_db(st, &d, 1, "health", NULL);
        stream_truth(st, first, FT_UPD_TOPIC, &t1);
        ft_produce(st, FT_UPD_TOPIC, first);
        pid = start_ingest(st, FT_UPD_TOPIC, d.target, log, extra, &port);
        scrape_until(port, (double)t1.messages, &e);
        expo_free(&e);
        assert_health(port, 200, "ok");

        assert_int_equal(th_pg_ctl(&st->pg, "fast", "stop"), 0);
        ft_produce(st, FT_UPD_TOPIC, second);
        wait_health(port, 503, "database");
        scrape(port, &e);
        assert_int_equal((long long)expo_get(&e, "callstream_database_up", ""),
                         0);
        expo_free(&e);
        assert_int_equal(th_pg_ctl(&st->pg, NULL, "start"), 0);
        wait_health(port, 200, "ok");

        /* All of it, once: the truth of the whole stream. */
        {
                char *whole = ft_path_in(st, "whole.ndjson");
                struct th_buf w = {0};

                assert_int_equal(th_read_file(first, &w), 0);
                assert_int_equal(th_read_file(second, &w), 0);
                ft_write_text(whole, w.p, w.len);
                th_buf_free(&w);
                stream_truth(st, whole, FT_UPD_TOPIC, &t);
                free(whole);
        }
        scrape_until(port, (double)t.messages, &e);
        check_counters(&e, &t);
        assert_true(expo_get(&e, "callstream_database_reconnects_total", "") >=
                    1);
        expo_free(&e);
        stop_ingest(pid, log);
        calls = ft_db_value(&d, "SELECT count(*) FROM calls");
        assert_int_equal(atoll(calls), t.calls);
        free(calls);
        check_id_without_password(st, &d, first);
        ft_db_close(&d);
        free(first);
        free(second);
        free(log);
}

static void test_usage(void **state)
{
        struct ft *st = *state;
        struct th_args a = {0};
        struct th_run r;

        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", "metrics", "--db", "x.db", "--http", ":0",
                     "--health-timeout", "10", NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        assert_int_equal(r.status, 2);
        assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
        assert_non_null(strstr(r.err.p, "--health-timeout"));
        th_run_free(&r);
        th_args_free(&a);
}

static void test_strict_reader(void **state)
{
        static const char *const good =
                "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n"
                "# HELP h H.\n# TYPE h histogram\n"
                "h_bucket{x=\"1\",le=\"0.5\"} 1\n"
                "h_bucket{x=\"1\",le=\"+Inf\"} 2\nh_sum{x=\"1\"} 0.75\n"
                "h_count{x=\"1\"} 2\n"
                "# HELP g G.\n# TYPE g gauge\ng{t=\"a\\\"b\\\\c\\nd\"} "
                "-1.5e3\n";
        static const char *const bad[] = {
                "a_total 3\n", /* no HELP, TYPE */
                "# HELP a_total A.\n# TYPE a_total counter\na_total 3",
                "# HELP a_total A.\n# TYPE a_total counter\na_total three\n",
                "# HELP a_total A.\n# TYPE a_total counter\na_total -1\n",
                "# HELP a A.\n# TYPE a counter\na 1\n", /* not _total */
                "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",
                "# HELP g G.\n# TYPE g gauge\ng{t=\"x\",} 1\n",
                "# HELP g G.\n# TYPE g gauge\ng{t=x} 1\n",
                "# HELP g G.\n# TYPE g gauge\ng{t=\"a\\qb\"} 1\n",
                "# HELP g G.\n# TYPE g gauge\ng{t=\"1\",t=\"2\"} 1\n",
                "# HELP g G.\n# TYPE g gauge\ng  1\n",
                "# HELP g G.\n# TYPE g gauge\ng 1\n# TYPE g gauge\n",
                "# HELP g G.\n# TYPE g gauges\ng 1\n",
                "# HELP g G.\n# TYPE g gauge\n# other comment\ng 1\n",
                "# HELP g G.\n# TYPE g gauge\n# HELP f F.\n# TYPE f gauge\n"
                "g 1\nf 1\ng 2\n", /* g's samples apart */
                /* histograms */
                "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                "h_bucket{le=\"0.5\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
                "h_count 2\n",
                "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 2\n"
                "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
                "h_count 2\n",
                "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 2\n"
                "h_sum 1\nh_count 2\n",
                "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\n"
                "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
                "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\n"
                "h_count 2\n",
                "# HELP h H.\n# TYPE h histogram\nh_sum{le=\"1\"} 2\n",
        };
        struct expo e;
        char err[512];
        size_t i;

        (void)state;
        if (expo_parse(good, strlen(good), &e, err, sizeof(err)) < 0 ||
            expo_check_histograms(&e, err, sizeof(err)) < 0)
                fail_msg("good page refused: %s", err);
        assert_true(expo_get(&e, "g", "t=\"a\"b\\c\nd\"") == -1500);
        expo_free(&e);
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int r = expo_parse(bad[i], strlen(bad[i]), &e, err,
                                   sizeof(err));

                if (r == 0)
                        r = expo_check_histograms(&e, err, sizeof(err));
                expo_free(&e);
                if (r == 0)
                        fail_msg("bad page %zu accepted: %s", i, bad[i]);
        }
}

static void test_render(void **state)
{
        static const char topic[] = "we\"ird\\topic\nx";
        struct cs_stats *s = cs_stats_new(topic);
        struct cs_batch *b = cs_batch_new("t", 100);
        struct cs_stats_snapshot snap;
        struct cs_watermark w = {0};
        struct cs_stats_batch sb = {0};
        int64_t stamps[3];
        char *buf = NULL, label[CS_STATS_REASON_MAX], reason[256];
        size_t len = 0;
        struct expo e;
        char err[512];
        FILE *f;
        int i;

        (void)state;
        assert_non_null(s);
        assert_non_null(b);
        cs_stats_reason_label("invalid JSON at byte 12: bad", 28, label,
                              sizeof(label));
        assert_string_equal(label, "invalid_json");
        cs_stats_reason_label("event time too far in the future", 32, label,
                              sizeof(label));
        assert_string_equal(label, "event_time_too_far_in_the_future");
        cs_stats_reason_label("?!", 2, label, sizeof(label));
        assert_string_equal(label, "other");
        assert_int_equal(cs_batch_add_reject(
                                 b, 0, 5, "invalid JSON at byte 3: x", "p", 1),
                         0);
        assert_int_equal(cs_batch_add_reject(b, 2, 9,
                                             "invalid crime_id: empty string",
                                             NULL, 0),
                         0);
        assert_int_equal(cs_batch_add_reject(b, 2, 10,
                                             "invalid crime_id: not a string",
                                             NULL, 0),
                         0);
        w.valid = 1;
        w.mark.sec = 1546300800; /* 2019-01-01 */
        w.mark.usec = 500000;
        assert_int_equal(cs_batch_advance(b, 0, 6, &w), 0);
        assert_int_equal(cs_batch_advance(b, 2, 11, &w), 0);
        b->offsets[1].high_watermark = 20;
        b->offsets[0].high_watermark = -1;
        /* Kafka timestamps 0.3 s, 2 s and an hour and a half old. */
        {
                struct timespec ts;
                int64_t now;

                clock_gettime(CLOCK_REALTIME, &ts);
                now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
                stamps[0] = now - 300;
                stamps[1] = now - 2000;
                stamps[2] = now - 5400 * 1000;
        }
        sb.batch = b;
        sb.write_s = 0.02;
        sb.commit_s = 0.01;
        sb.timestamps = stamps;
        sb.ntimestamps = 3;
        cs_stats_add_batch(s, &sb);
        cs_stats_in_flight(s, 1);
        cs_stats_db_down(s, 1000);
        assert_int_equal(cs_stats_snapshot(s, &snap), 0);
        assert_non_null(f = open_memstream(&buf, &len));
        cs_metrics_render(&snap, 2000, f);
        assert_int_equal(fclose(f), 0);
        if (expo_parse(buf, len, &e, err, sizeof(err)) < 0 ||
            expo_check_histograms(&e, err, sizeof(err)) < 0)
                fail_msg("render: %s\n%s", err, buf);
        assert_true(expo_get(&e, "callstream_messages_consumed_total", "") ==
                    3);
        assert_true(expo_sum(&e, "callstream_rejected_total") == 3);
        assert_true(expo_get(&e, "callstream_rejected_total",
                             "reason=\"invalid_json\"") == 1);
        assert_true(expo_get(&e, "callstream_rejected_total",
                             "reason=\"invalid_crime_id\"") == 2);
        /* Labels come back as the topic was. */
        assert_true(expo_get(&e, "callstream_lag_messages",
                             "topic=\"we\"ird\\topic\nx\",partition=\"2\"") ==
                    9);
        assert_true(isnan(expo_get(&e, "callstream_lag_messages",
                                   "topic=\"we\"ird\\topic\nx\","
                                   "partition=\"0\"")));
        assert_true(expo_get(&e, "callstream_next_offset",
                             "topic=\"we\"ird\\topic\nx\",partition=\"0\"") ==
                    6);
        assert_true(expo_get(&e, "callstream_watermark_seconds",
                             "topic=\"we\"ird\\topic\nx\",partition=\"0\"") ==
                    1546300800.5);
        assert_true(expo_get(&e, "callstream_batches_in_flight", "") == 1);
        assert_true(expo_get(&e, "callstream_database_up", "") == 0);
        assert_true(expo_get(&e, "callstream_broker_up", "") == 1);
        /* The freshness buckets: 0.3 s in le=0.5, 2 s in le=2.5, 1.5 h
         * only in +Inf. */
        assert_true(expo_get(&e, "callstream_freshness_seconds_count", "") ==
                    3);
        for (i = 0; i < (int)e.n; i++) {
                const struct sample *x = &e.s[i];
                double le;

                if (strcmp(x->name, "callstream_freshness_seconds_bucket"))
                        continue;
                assert_true(value_ok(x->le, &le));
                assert_true(x->value ==
                            (le >= 0.5) + (le >= 2.5) + (double)isinf(le));
        }
        assert_true(expo_get(&e, "callstream_batch_duration_seconds_sum", "") >
                    0.029);
        expo_free(&e);
        /* Healthy within the timeout, not past it. */
        assert_int_equal(
                cs_metrics_health(&snap, 1500, 1000, reason, sizeof(reason)),
                0);
        assert_int_equal(
                cs_metrics_health(&snap, 2500, 1000, reason, sizeof(reason)),
                1);
        assert_non_null(strstr(reason, "database"));
        cs_stats_snapshot_free(&snap);
        cs_stats_db_up(s, 1);
        cs_stats_broker(s, 100);
        assert_int_equal(cs_stats_snapshot(s, &snap), 0);
        assert_int_equal(snap.reconnects, 1);
        assert_int_equal(
                cs_metrics_health(&snap, 5000, 1000, reason, sizeof(reason)),
                1);
        assert_non_null(strstr(reason, "Kafka"));
        cs_stats_snapshot_free(&snap);
        free(buf);
        cs_batch_destroy(b);
        cs_stats_destroy(s);
}

static void test_health_broker(void **state)
{
        static const char *const extra[] = {"--health-timeout", "1s", NULL};
        struct ft *st = *state;
        char *db = ft_path_in(st, "broker.db");
        char *log = ft_path_in(st, "broker.log");
        int port;
        pid_t pid;

        pid = start_ingest(st, FT_SAMPLE_TOPIC, db, log, extra, &port);
        wait_health(port, 200, "ok");
        assert_int_equal(th_broker_stop(&st->broker), 0);
        wait_health(port, 503, "Kafka brokers");
        kill(pid, SIGTERM);
        if (th_wait_until(pid, th_now_ms() + 60 * 1000) < 0) {
                th_show_file_tail("ingest", log);
                fail_msg("the ingest did not end on SIGTERM");
        }
        free(db);
        free(log);
}

static int setup(void **state)
{
        return ft_group_setup(state, "test_metrics", FT_PG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_strict_reader),
                cmocka_unit_test(test_render),
                cmocka_unit_test_teardown(test_usage, th_test_teardown),
                cmocka_unit_test_teardown(test_metrics_stream,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_health_pg, th_test_teardown),
                /* Last: it stops the broker. */
                cmocka_unit_test_teardown(test_health_broker, th_test_teardown),
        };

        return cmocka_run_group_tests_name("metrics", tests, setup,
                                           ft_group_teardown);
}
