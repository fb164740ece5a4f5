/* eventtime.c: the fixture and the independent model of the end-to-end
 * tests of event time (test_late_policy, test_watermark, test_partitions;
 * eventtime.h): brokers, topics and baselines made once, the model of the
 * contract, tables of either dialect rendered as typed text rows. Test
 * code only: it drives build/callstream through fork/exec and links no
 * project module. */
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
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "eventtime.h"
#include "model.h"

/* A safety net only: nothing here asserts on speed. */
#define WATCHDOG_S 600

#define USEC TM_USEC

#define SAMPLE_FILE "police-department-calls-for-service.sample.json"

/* The window specs every ingest here is given, as ingest names them. */
struct spec {
        const char *name;
        int64_t size;
        int64_t slide;
};

static const struct spec specs[] = {
        {"1h", 3600, 3600},
        {"1h/15m", 3600, 900},
};
#define NSPECS ((int)(sizeof(specs) / sizeof(specs[0])))

/*
 * Messages: what a topic holds, by partition and offset.
 */

void et_msgs_add(struct et_msgs *m, int32_t part, int64_t off, const char *p,
                 size_t len)
{
        if (m->n == m->cap) {
                m->cap = m->cap * 2 + 1024;
                m->v = th_realloc(m->v, m->cap * sizeof(*m->v));
        }
        m->v[m->n].part = part;
        m->v[m->n].off = off;
        m->v[m->n].p = th_strndup(p, len);
        m->v[m->n].len = len;
        m->n++;
}

void et_msgs_free(struct et_msgs *m)
{
        size_t i;

        for (i = 0; i < m->n; i++)
                free(m->v[i].p);
        free(m->v);
        memset(m, 0, sizeof(*m));
}

static int msg_cmp(const void *pa, const void *pb)
{
        const struct et_msg *a = pa, *b = pb;

        if (a->part != b->part)
                return a->part < b->part ? -1 : 1;
        return a->off < b->off ? -1 : a->off > b->off;
}

/* The elements of the JSON array file at path, as the producer sends them
 * into a one-partition topic: partition 0, offsets in file order. */
static void msgs_from_array(const char *path, struct et_msgs *out)
{
        json_error_t jerr;
        json_t *arr = json_load_file(path, 0, &jerr), *v;
        size_t i;

        if (!json_is_array(arr))
                fail_msg("%s: not a JSON array: %s", path, jerr.text);
        json_array_foreach(arr, i, v)
        {
                char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

                assert_non_null(text);
                et_msgs_add(out, 0, (int64_t)i, text, strlen(text));
                free(text);
        }
        json_decref(arr);
}

/* Reads a number and the space after it; NULL when there is none. */
static const char *read_num(const char *p, const char *end, long long *v)
{
        char *e;

        if (p >= end || (*p != '-' && (*p < '0' || *p > '9')))
                return NULL;
        errno = 0;
        *v = strtoll(p, &e, 10);
        if (errno || e >= end || *e != ' ')
                return NULL;
        return e + 1;
}

/* Parses kcat -f '%p %o %S %s\n' output into out. Returns 0, or -1 at the
 * first line that does not fit (said). */
static int msgs_from_kcat(const char *text, size_t len, struct et_msgs *out)
{
        const char *p = text, *end = text + len;
        long long part, off, size;

        while (p < end) {
                if (!(p = read_num(p, end, &part)) ||
                    !(p = read_num(p, end, &off)) ||
                    !(p = read_num(p, end, &size)) || part < 0 ||
                    part >= ET_MAX_PARTS || size < 0 || size > end - p - 1 ||
                    p[size] != '\n') {
                        fprintf(stderr,
                                "# kcat output: cannot read the message "
                                "after %zu\n",
                                out->n);
                        return -1;
                }
                et_msgs_add(out, (int32_t)part, off, p, (size_t)size);
                p += size + 1;
        }
        return 0;
}

/*
 * The model of the contract.
 */

static const char *const known_fields[] = {
        "crime_id",       "original_crime_type_name",
        "report_date",    "call_date",
        "offense_date",   "call_time",
        "call_date_time", "disposition",
        "address",        "city",
        "state",          "agency_id",
        "address_type",   "common_location",
};

static void xcall_free(struct et_xcall *c)
{
        free(c->id);
        free(c->type);
        free(c->disp);
        memset(c, 0, sizeof(*c));
}

void et_model_free(struct et_model *m)
{
        size_t i;

        if (!m)
                return;
        for (i = 0; i < m->ncalls; i++)
                xcall_free(&m->calls[i]);
        free(m->calls);
        free(m->rejects);
        free(m->slots);
        free(m);
}

static uint64_t hash_str(const char *s)
{
        uint64_t h = 1469598103934665603ULL;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

/* The slot of crime_id: holding it, or empty. */
static size_t *model_slot(struct et_model *m, const char *id)
{
        size_t i = hash_str(id) & (m->nslots - 1);

        while (m->slots[i] && strcmp(m->calls[m->slots[i] - 1].id, id))
                i = (i + 1) & (m->nslots - 1);
        return &m->slots[i];
}

static void model_grow_index(struct et_model *m)
{
        size_t i, *old = m->slots, n_old = m->nslots;

        m->nslots = n_old ? n_old * 2 : 1024;
        m->slots = calloc(m->nslots, sizeof(*m->slots));
        assert_non_null(m->slots);
        for (i = 0; i < n_old; i++)
                if (old[i])
                        *model_slot(m, m->calls[old[i] - 1].id) = old[i];
        free(old);
}

/* Whether every window of a call at t has bounds in years 0001-9999, which
 * both databases can hold: README, "Windows": a call whose windows would
 * reach outside is rejected (call_date_time out of range). */
static int windows_fit(int64_t t)
{
        const int64_t min = tm_days_from_civil(1, 1, 1) * 86400;
        const int64_t end = tm_days_from_civil(10000, 1, 1) * 86400;
        int64_t sec = tm_floor_div(t, USEC);
        int s;

        for (s = 0; s < NSPECS; s++)
                if (tm_window_first(sec, specs[s].size, specs[s].slide) < min ||
                    tm_window_last(sec, specs[s].slide) + specs[s].size >= end)
                        return 0;
        return 1;
}

/* Applies the contract's validity rules to one message (jansson enforces
 * RFC 8259, UTF-8, paired surrogates and nothing after the value; duplicate
 * keys: the last wins), and windows_fit(). Returns 0 and fills *c for a
 * valid call, -1 for a message ingest must reject. */
static int parse_call(const char *p, size_t len, struct et_xcall *c)
{
        json_t *o = json_loadb(p, len, JSON_ALLOW_NUL, NULL), *v;
        size_t i;
        int r = -1;

        memset(c, 0, sizeof(*c));
        if (!json_is_object(o))
                goto done;
        for (i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++) {
                v = json_object_get(o, known_fields[i]);
                if (json_is_string(v) &&
                    memchr(json_string_value(v), '\0', json_string_length(v)))
                        goto done;
        }
        v = json_object_get(o, "crime_id");
        if (json_is_integer(v) && json_integer_value(v) >= 0)
                c->id = th_asprintf("%lld", (long long)json_integer_value(v));
        else if (json_is_string(v) && json_string_length(v) > 0)
                c->id = th_strdup(json_string_value(v));
        else
                goto done;
        v = json_object_get(o, "original_crime_type_name");
        if (!json_is_string(v) || json_string_length(v) == 0)
                goto done;
        c->type = th_strdup(json_string_value(v));
        v = json_object_get(o, "call_date_time");
        if (!json_is_string(v) ||
            tm_parse_ts(json_string_value(v), json_string_length(v), &c->t) ||
            !windows_fit(c->t))
                goto done;
        v = json_object_get(o, "disposition");
        if (json_is_string(v) && json_string_length(v) > 0)
                c->disp = th_strdup(json_string_value(v));
        else if (v && !json_is_null(v) && !json_is_string(v))
                /* Kept as its JSON text; the streams here only have
                 * strings, so jansson's rendering is close enough. */
                c->disp = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        r = 0;
done:
        json_decref(o);
        if (r)
                xcall_free(c);
        return r;
}

/* Whether the window [start, start + size) of a call was final for it: its
 * end at or before the watermark just before the call. */
static int window_final(const struct et_xcall *c, int64_t start, int64_t size)
{
        return c->has_mark && (start + size) * USEC <= c->mark;
}

/* Whether a call was late: final for at least one of its windows. */
static int call_late(const struct et_xcall *c)
{
        int s;
        int64_t start, sec = tm_floor_div(c->t, USEC);

        for (s = 0; s < NSPECS; s++)
                for (start = tm_window_first(sec, specs[s].size,
                                             specs[s].slide);
                     start <= sec; start += specs[s].slide)
                        if (window_final(c, start, specs[s].size))
                                return 1;
        return 0;
}

/* The model of a topic holding in (sorted by partition and offset) under
 * allowed lateness lateness_s. */
struct et_model *et_model_build(const struct et_msgs *in, int64_t lateness_s)
{
        struct et_model *m = calloc(1, sizeof(*m));
        size_t i;

        assert_non_null(m);
        m->lateness = lateness_s * USEC;
        for (i = 0; i < in->n; i++) {
                const struct et_msg *g = &in->v[i];
                struct et_xpart *xp;
                struct et_xcall c;
                size_t *slot;

                if (g->part < 0 || g->part >= ET_MAX_PARTS)
                        fail_msg("partition %d: the model takes %d at most",
                                 (int)g->part, ET_MAX_PARTS);
                if (i && msg_cmp(&in->v[i - 1], g) >= 0)
                        fail_msg("messages out of partition/offset order at "
                                 "%zu",
                                 i);
                xp = &m->parts[g->part];
                if (g->part >= m->nparts)
                        m->nparts = g->part + 1;
                xp->next = g->off + 1;
                if (parse_call(g->p, g->len, &c)) {
                        if (m->nrejects == m->cap_rejects) {
                                m->cap_rejects = m->cap_rejects * 2 + 256;
                                m->rejects = th_realloc(
                                        m->rejects,
                                        m->cap_rejects * sizeof(*m->rejects));
                        }
                        m->rejects[m->nrejects].part = g->part;
                        m->rejects[m->nrejects++].off = g->off;
                        xp->rejected++;
                        continue;
                }
                c.part = g->part;
                c.off = g->off;
                /* The watermark as it stood just before this message; then
                 * every valid message moves it, duplicates too. */
                c.has_mark = xp->has_max;
                c.mark = xp->max - m->lateness;
                if (!xp->has_max || c.t > xp->max) {
                        xp->max = c.t;
                        xp->has_max = 1;
                }
                if ((m->ncalls + 1) * 2 > m->nslots)
                        model_grow_index(m);
                slot = model_slot(m, c.id);
                if (*slot) {
                        xp->dups++;
                        xcall_free(&c);
                        continue;
                }
                c.late = call_late(&c);
                xp->calls++;
                xp->late += c.late;
                if (m->ncalls == m->cap) {
                        m->cap = m->cap * 2 + 1024;
                        m->calls = th_realloc(m->calls,
                                              m->cap * sizeof(*m->calls));
                }
                m->calls[m->ncalls++] = c;
                *slot = m->ncalls;
        }
        return m;
}

/* The smallest partition watermark, what is_final compares with: returns 1
 * with it in *mark, or 0 while no partition has one. */
static int model_min_mark(const struct et_model *m, int64_t *mark)
{
        int p, have = 0;

        for (p = 0; p < m->nparts; p++) {
                const struct et_xpart *xp = &m->parts[p];

                if (xp->has_max && (!have || xp->max - m->lateness < *mark)) {
                        *mark = xp->max - m->lateness;
                        have = 1;
                }
        }
        return have;
}

long long et_model_late(const struct et_model *m)
{
        long long n = 0;
        int p;

        for (p = 0; p < m->nparts; p++)
                n += m->parts[p].late;
        return n;
}

/*
 * Rows as typed text lines, compared as sorted sets: integers bare, text
 * 'quoted' (control bytes, quote and backslash escaped), NULL bare, as
 * th_lite_lines() and th_pg_lines() render the databases' rows.
 */

static void put_sep(struct th_buf *b)
{
        if (b->len)
                th_buf_add(b, "|", 1);
        else
                th_buf_add(b, "", 0);
}

static void col_text(struct th_buf *b, const char *s)
{
        put_sep(b);
        if (s)
                th_put_quoted(b, (const unsigned char *)s, strlen(s));
        else
                th_buf_add(b, "NULL", 4);
}

static void col_int(struct th_buf *b, long long v)
{
        put_sep(b);
        th_buf_addf(b, "%lld", v);
}

/* A time column: its text form, or NULL when have is 0. */
static void col_time(struct th_buf *b, int have, int64_t us)
{
        char ts[48];

        tm_format_ts(us, ts);
        col_text(b, have ? ts : NULL);
}

#define PG_TS(col) "to_char(" col ", 'YYYY-MM-DD HH24:MI:SS')"
/* A timestamp that may have a fraction: '.ffffff' only when it has one. */
#define PG_TSF(col)                                                            \
        "(" PG_TS(col) " || CASE WHEN extract(microseconds FROM " col          \
                       ")::bigint % 1000000 <> 0 THEN to_char(" col            \
                       ", '.US') ELSE '' END)"

/* The PostgreSQL columns rendered as SQLite's text. */
#define PG_WINDOW    PG_TS("window_start") ", " PG_TS("window_end")
#define PG_CALL_TS   PG_TSF("call_ts")
#define PG_MARK_AT   PG_TSF("watermark_at_count")
#define PG_MARK      PG_TSF("watermark")
#define PG_MAX_EVENT PG_TSF("max_event_ts")

static const struct query {
        const char *what;
        const char *sqlite_sql;
        const char *pg_sql;
} queries[ET_NT] = {
        {"call_counts",
         "SELECT window_spec, window_start, window_end, crime_type, calls, "
         "late_calls, is_final FROM call_counts",
         "SELECT window_spec, " PG_WINDOW ", crime_type, calls, late_calls, "
         "is_final::int FROM call_counts"},
        {"disposition_counts",
         "SELECT window_spec, window_start, window_end, crime_type, "
         "disposition, disposition_description, calls, late_calls, is_final "
         "FROM disposition_counts",
         "SELECT window_spec, " PG_WINDOW ", crime_type, disposition, "
         "disposition_description, calls, late_calls, is_final::int FROM "
         "disposition_counts"},
        {"calls",
         "SELECT crime_id, call_ts, kafka_topic, kafka_partition, "
         "kafka_offset, watermark_at_count, late_policy FROM calls",
         "SELECT crime_id, " PG_CALL_TS ", kafka_topic, kafka_partition, "
         "kafka_offset, " PG_MARK_AT ", late_policy FROM calls"},
        {"late_records",
         "SELECT crime_id, window_spec, call_ts, watermark, windows_dropped, "
         "kafka_topic, kafka_partition, kafka_offset FROM late_records",
         "SELECT crime_id, window_spec, " PG_CALL_TS ", " PG_MARK
         ", windows_dropped, kafka_topic, kafka_partition, kafka_offset "
         "FROM late_records"},
        {"rejected_records",
         "SELECT kafka_topic, kafka_partition, kafka_offset FROM "
         "rejected_records",
         "SELECT kafka_topic, kafka_partition, kafka_offset FROM "
         "rejected_records"},
        {"pipeline_progress",
         "SELECT topic, kafka_partition, stored_offset, high_watermark, lag, "
         "max_event_ts, watermark, calls, duplicates, rejected, late FROM "
         "pipeline_progress",
         "SELECT topic, kafka_partition, stored_offset, high_watermark, lag, "
         "" PG_MAX_EVENT ", " PG_MARK ", calls, duplicates, rejected, late "
         "FROM pipeline_progress"},
        {"watermarks", "SELECT topic, max_event_ts, watermark FROM watermarks",
         "SELECT topic, " PG_MAX_EVENT ", " PG_MARK " FROM watermarks"},
};

void et_tables_free(struct et_tables *x)
{
        int i;

        for (i = 0; i < ET_NT; i++)
                th_lines_free(&x->t[i]);
}

/* One (window, call) pair of the expectation, before aggregation. */
struct went {
        int spec;
        int64_t start;
        const char *type;
        const char *disp;
        int late;
};

/* NULL (no disposition) first. */
static int disp_cmp(const char *a, const char *b)
{
        if (a && b)
                return strcmp(a, b);
        return a ? 1 : b ? -1 : 0;
}

/* Orders by spec, start, crime type, then disposition: a run of equal
 * (spec, start, type) is one call_counts row, a run of all four one
 * disposition_counts row. */
static int went_cmp(const void *pa, const void *pb)
{
        const struct went *a = pa, *b = pb;
        int c;

        if (a->spec != b->spec)
                return a->spec - b->spec;
        if (a->start != b->start)
                return a->start < b->start ? -1 : 1;
        if ((c = strcmp(a->type, b->type)))
                return c;
        return disp_cmp(a->disp, b->disp);
}

/* Appends a window's key columns: spec, start, end, crime type. */
static void put_window(struct th_buf *b, const struct went *w)
{
        char ts[48];

        col_text(b, specs[w->spec].name);
        tm_format_ts(w->start * USEC, ts);
        col_text(b, ts);
        tm_format_ts((w->start + specs[w->spec].size) * USEC, ts);
        col_text(b, ts);
        col_text(b, w->type);
}

/* Appends calls, late_calls and is_final. */
static void put_counts(struct th_buf *b, const struct went *w, long long n,
                       long long late, int have_mark, int64_t mark)
{
        col_int(b, n);
        col_int(b, late);
        col_int(b,
                have_mark && (w->start + specs[w->spec].size) * USEC <= mark);
}

/* Aggregates the (window, call) pairs w[0..n) (sorted here) into
 * call_counts and disposition_counts rows; is_final against min_mark. */
static void expect_windows(struct went *w, size_t n, json_t *radio,
                           int have_mark, int64_t min_mark, struct et_tables *x)
{
        size_t i, j, k;

        if (n)
                qsort(w, n, sizeof(*w), went_cmp);
        for (i = 0; i < n; i = j) {
                long long calls = 0, late = 0;
                struct th_buf b = {0};

                /* [i, j): one call_counts row; [k, ...) one of its
                 * disposition_counts rows. */
                for (j = i;
                     j < n && w[j].spec == w[i].spec &&
                     w[j].start == w[i].start && !strcmp(w[j].type, w[i].type);
                     j++) {
                        calls++;
                        late += w[j].late;
                }
                put_window(&b, &w[i]);
                put_counts(&b, &w[i], calls, late, have_mark, min_mark);
                th_lines_add(&x->t[ET_T_CALL_COUNTS], b.p);
                for (k = i; k < j;) {
                        size_t e = k;
                        const char *desc = NULL;

                        calls = late = 0;
                        while (e < j && !disp_cmp(w[e].disp, w[k].disp)) {
                                calls++;
                                late += w[e].late;
                                e++;
                        }
                        if (w[k].disp)
                                desc = json_string_value(
                                        json_object_get(radio, w[k].disp));
                        memset(&b, 0, sizeof(b));
                        put_window(&b, &w[k]);
                        col_text(&b, w[k].disp);
                        col_text(&b, desc ? desc : "Unknown");
                        put_counts(&b, &w[k], calls, late, have_mark, min_mark);
                        th_lines_add(&x->t[ET_T_DISPOSITION_COUNTS], b.p);
                        k = e;
                }
        }
}

/* The rows model m should give in every table, under the late policy
 * (drop or count), for topic; radio maps disposition codes to their
 * descriptions. */
void et_model_expect(const struct et_model *m, int drop, const char *topic,
                     json_t *radio, struct et_tables *x)
{
        struct went *w = NULL;
        size_t n = 0, cap = 0, i;
        int s, have_mark;
        int64_t min_mark = 0, start;

        have_mark = model_min_mark(m, &min_mark);
        for (i = 0; i < m->ncalls; i++) {
                const struct et_xcall *c = &m->calls[i];
                int64_t sec = tm_floor_div(c->t, USEC);
                struct th_buf b = {0};

                col_text(&b, c->id);
                col_time(&b, 1, c->t);
                col_text(&b, topic);
                col_int(&b, c->part);
                col_int(&b, c->off);
                col_time(&b, c->has_mark, c->mark);
                col_text(&b, drop ? "drop" : "count");
                th_lines_add(&x->t[ET_T_CALLS], b.p);

                for (s = 0; s < NSPECS; s++) {
                        const struct spec *sp = &specs[s];
                        int dropped = 0;

                        for (start = tm_window_first(sec, sp->size, sp->slide);
                             start <= sec; start += sp->slide) {
                                int fin = window_final(c, start, sp->size);

                                if (fin && drop) {
                                        dropped++;
                                        continue;
                                }
                                if (n == cap) {
                                        cap = cap * 2 + 4096;
                                        w = th_realloc(w, cap * sizeof(*w));
                                }
                                w[n].spec = s;
                                w[n].start = start;
                                w[n].type = c->type;
                                w[n].disp = c->disp;
                                w[n].late = fin;
                                n++;
                        }
                        if (!dropped)
                                continue;
                        memset(&b, 0, sizeof(b));
                        col_text(&b, c->id);
                        col_text(&b, sp->name);
                        col_time(&b, 1, c->t);
                        col_time(&b, 1, c->mark);
                        col_int(&b, dropped);
                        col_text(&b, topic);
                        col_int(&b, c->part);
                        col_int(&b, c->off);
                        th_lines_add(&x->t[ET_T_LATE_RECORDS], b.p);
                }
        }

        expect_windows(w, n, radio, have_mark, min_mark, x);
        free(w);

        for (i = 0; i < m->nrejects; i++) {
                struct th_buf b = {0};

                col_text(&b, topic);
                col_int(&b, m->rejects[i].part);
                col_int(&b, m->rejects[i].off);
                th_lines_add(&x->t[ET_T_REJECTED], b.p);
        }
        for (s = 0; s < m->nparts; s++) {
                const struct et_xpart *xp = &m->parts[s];
                struct th_buf b = {0};

                if (!xp->next)
                        continue;
                col_text(&b, topic);
                col_int(&b, s);
                col_int(&b, xp->next);
                col_int(&b, xp->next); /* the partition's end */
                col_int(&b, 0);        /* lag */
                col_time(&b, xp->has_max, xp->max);
                col_time(&b, xp->has_max, xp->max - m->lateness);
                col_int(&b, xp->calls);
                col_int(&b, xp->dups);
                col_int(&b, xp->rejected);
                col_int(&b, xp->late);
                th_lines_add(&x->t[ET_T_PROGRESS], b.p);
        }
        if (have_mark) {
                struct th_buf b = {0};
                int64_t max = min_mark;

                /* The topic's highest event time: its partitions'. */
                for (s = 0; s < m->nparts; s++)
                        if (m->parts[s].has_max && m->parts[s].max > max)
                                max = m->parts[s].max;
                col_text(&b, topic);
                col_time(&b, 1, max);
                col_time(&b, 1, min_mark);
                th_lines_add(&x->t[ET_T_WATERMARKS], b.p);
        }
        for (s = 0; s < ET_NT; s++)
                th_lines_sort(&x->t[s]);
}

/*
 * Reading the databases.
 */

static int is_topic_col(const char *name)
{
        return !strcmp(name, "topic") || !strcmp(name, "kafka_topic");
}

/* The database at path, read-write so that what a kill -9 left behind is
 * recovered; fails the test when it cannot be opened. */
static sqlite3 *db_open(const char *path)
{
        sqlite3 *db = NULL;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK) {
                fprintf(stderr, "# %s: %s\n", path,
                        db ? sqlite3_errmsg(db) : "out of memory");
                sqlite3_close(db);
                fail_msg("cannot open %s", path);
        }
        sqlite3_busy_timeout(db, 10000);
        return db;
}

/* Every table of queries[] from the SQLite database at path. */
void et_sqlite_tables(const char *path, int skip_topic, struct et_tables *x)
{
        sqlite3 *db = db_open(path);
        int i, bad = 0;

        for (i = 0; i < ET_NT; i++) {
                bad += th_lite_lines(db, queries[i].sqlite_sql, NULL,
                                     skip_topic ? is_topic_col : NULL,
                                     &x->t[i]) != 0;
                th_lines_sort(&x->t[i]);
        }
        sqlite3_close(db);
        if (bad)
                fail_msg("%s: %d queries failed", path, bad);
}

/* The integer sql gives on the database at path, or LLONG_MIN. */
static long long sqlite_int(const char *path, const char *sql)
{
        sqlite3 *db = db_open(path);
        sqlite3_stmt *st = NULL;
        long long v = LLONG_MIN;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_type(st, 0) != SQLITE_NULL)
                v = sqlite3_column_int64(st, 0);
        else
                fprintf(stderr, "# %s: %s\n#   in: %s\n", path,
                        sqlite3_errmsg(db), sql);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

/* Columns that say when or how often something happened, and the row ids
 * of rejected_records and call_rows (which depend on how partitions
 * interleaved). */
static int dump_skip(const char *table, const char *col, int skip_topic)
{
        static const char *const when[] = {
                "ingested_at",       "rejected_at",   "updated_at",
                "recorded_at",       "last_batch_at", "applied_at",
                "high_watermark_at", "detected_at",
        };
        size_t i;

        for (i = 0; i < sizeof(when) / sizeof(when[0]); i++)
                if (!strcmp(col, when[i]))
                        return 1;
        if ((!strcmp(table, "rejected_records") && !strcmp(col, "id")) ||
            (!strcmp(table, "call_rows") && !strcmp(col, "rid")))
                return 1;
        return skip_topic && is_topic_col(col);
}

/* Every row of every table and view of the database at path, each line
 * prefixed with its table's name, without dump_skip()'s columns. Not the
 * storage of window_counts (window_totals and its dictionaries): its ids
 * go by which text came first, which depends on how partitions
 * interleaved; the view window_counts has the same rows by their text. */
void et_sqlite_dump(const char *path, int skip_topic, struct th_lines *out)
{
        sqlite3 *db = db_open(path);
        struct th_lines names = {0};
        sqlite3_stmt *st;
        size_t i;
        int bad = 0;

        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT name FROM sqlite_schema "
                                            "WHERE type IN ('table', 'view') "
                                            "AND name NOT LIKE 'sqlite_%' "
                                            "AND name NOT IN ("
                                            "'window_totals', "
                                            "'window_spec_ids', "
                                            "'crime_type_ids', "
                                            "'disposition_ids')",
                                            -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
                th_lines_add(
                        &names,
                        th_strdup((const char *)sqlite3_column_text(st, 0)));
        sqlite3_finalize(st);
        for (i = 0; i < names.n; i++) {
                struct th_buf sql = {0};
                char *q = sqlite3_mprintf(
                        "SELECT name FROM pragma_table_info(%Q)", names.v[i]);
                int ncol = 0;

                assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL),
                                 SQLITE_OK);
                sqlite3_free(q);
                th_buf_add(&sql, "SELECT ", 7);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        const char *col =
                                (const char *)sqlite3_column_text(st, 0);

                        if (dump_skip(names.v[i], col, skip_topic))
                                continue;
                        q = sqlite3_mprintf("%s\"%w\"", ncol ? ", " : "", col);
                        th_buf_addf(&sql, "%s", q);
                        sqlite3_free(q);
                        ncol++;
                }
                sqlite3_finalize(st);
                q = sqlite3_mprintf(" FROM \"%w\"", names.v[i]);
                th_buf_addf(&sql, "%s", q);
                sqlite3_free(q);
                if (ncol)
                        bad += th_lite_lines(db, sql.p, names.v[i], NULL,
                                             out) != 0;
                th_buf_free(&sql);
        }
        sqlite3_close(db);
        th_lines_free(&names);
        th_lines_sort(out);
        if (bad)
                fail_msg("%s: %d tables could not be read", path, bad);
}

/* SUM(next_offset) of the database at path; 0 while there is none. */
long long et_progress(const char *path)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        long long v = 0;

        if (access(path, F_OK))
                return 0;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
                    SQLITE_OK &&
            sqlite3_busy_timeout(db, 10000) == SQLITE_OK &&
            sqlite3_prepare_v2(db,
                               "SELECT COALESCE(SUM(next_offset), 0) FROM "
                               "kafka_offsets",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

/* Compares every table of a and b; returns how many differ. */
int et_tables_compare(const char *what, const char *an,
                      const struct et_tables *a, const char *bn,
                      const struct et_tables *b)
{
        int i, bad = 0;

        for (i = 0; i < ET_NT; i++) {
                char *name = th_asprintf("%s: %s", what, queries[i].what);

                bad += th_lines_compare(name, an, &a->t[i], bn, &b->t[i],
                                        ET_MAX_SHOWN) != 0;
                free(name);
        }
        return bad;
}

/*
 * Fixture: a folder, two brokers (one-partition topics for the sample, a
 * four-partition topic for the generated stream) and, started on first
 * use, a PostgreSQL server on a Unix socket in the folder.
 */

/* The SQLite baselines, made once: the tests check them against the
 * model, the PostgreSQL tests compare with them. */
static const struct base_def {
        const char *name;
        int gen;
        int drop;
} base_defs[ET_NBASE] = {
        {"sample_count", 0, 0},
        {"sample_drop", 0, 1},
        {"gen_count", 1, 0},
        {"gen_drop", 1, 1},
};

char *et_path_in(const struct et *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* The server, started on first use; fails the test when it cannot be. */
void et_ensure_pg(struct et *st)
{
        if (st->pg_state == 1)
                return;
        if (st->pg_state < 0)
                fail_msg("PostgreSQL failed to start earlier");
        st->pg_state = -1;
        if (th_pg_start(&st->pg, st->dir, 0) < 0)
                fail_msg("cannot start PostgreSQL (details above)");
        st->pg_state = 1;
}

static PGconn *pg_connect(const struct et *st, const char *db)
{
        char *ci = th_pg_conninfo(&st->pg, db);
        PGconn *c = th_pg_open(ci);

        free(ci);
        if (!c)
                fail_msg("cannot connect to PostgreSQL database %s", db);
        return c;
}

/* A fresh database named db; returns its conninfo (the caller frees it). */
char *et_pg_create_db(const struct et *st, const char *db)
{
        if (th_pg_createdb(&st->pg, db, NULL) != 0)
                fail_msg("cannot create database %s", db);
        return th_pg_conninfo(&st->pg, db);
}

/* The contract's PostgreSQL type of is_final: boolean (SQLite: 0/1, which
 * the row comparisons see as integers). Returns the number of views where
 * it is something else. */
int et_pg_check_types(const struct et *st, const char *db)
{
        static const char *const views[] = {"call_counts",
                                            "disposition_counts"};
        PGconn *c = pg_connect(st, db);
        size_t i;
        int bad = 0;

        for (i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
                const char *params[1] = {views[i]};
                PGresult *res = PQexecParams(
                        c,
                        "SELECT data_type FROM information_schema.columns "
                        "WHERE table_name = $1 AND column_name = 'is_final'",
                        1, NULL, params, NULL, NULL, 0);
                const char *type = PQresultStatus(res) == PGRES_TUPLES_OK &&
                                                   PQntuples(res) == 1
                                           ? PQgetvalue(res, 0, 0)
                                           : "(no such column)";

                if (strcmp(type, "boolean")) {
                        fprintf(stderr, "# %s.is_final is %s, not boolean\n",
                                views[i], type);
                        bad++;
                }
                PQclear(res);
        }
        PQfinish(c);
        return bad;
}

void et_pg_tables(const struct et *st, const char *db, struct et_tables *x)
{
        PGconn *c = pg_connect(st, db);
        int i, bad = 0;

        for (i = 0; i < ET_NT; i++) {
                bad += th_pg_lines(c, queries[i].pg_sql, &x->t[i]) != 0;
                th_lines_sort(&x->t[i]);
        }
        PQfinish(c);
        if (bad)
                fail_msg("PostgreSQL %s: %d queries failed", db, bad);
}

int et_group_teardown(void **state)
{
        struct et *st = *state;
        int failed = 0, i;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_pg_stop(&st->pg);
        if (th_broker_stop(&st->b1) < 0 || th_broker_stop(&st->b4) < 0)
                failed = 1;
        th_fatal_broker(0, 0);
        th_fatal_broker(1, 0);
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        for (i = 0; i < ET_NBASE; i++)
                free(st->base[i]);
        et_msgs_free(&st->sample);
        et_msgs_free(&st->gen);
        json_decref(st->radio);
        free(st->sample_path);
        free(st->gen_path);
        free(st->bin);
        free(st->data);
        free(st);
        *state = NULL;
        return failed ? -1 : 0;
}

int et_group_setup(void **state, const char *name)
{
        static const char *const b1_args[] = {
                "--partitions", "1",       "--topic", "sample", "--topic",
                "halves",       "--topic", "edge",    NULL};
        static const char *const b4_args[] = {"--partitions", "4", "--topic",
                                              "gen", NULL};
        struct et *st = calloc(1, sizeof(*st));
        char *p;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers(name, WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data))
                goto fail;
        p = th_asprintf("%s/radio_code.json", st->data);
        st->radio = tm_load_radio_codes(p);
        free(p);
        if (!st->radio)
                goto fail;
        st->sample_path = th_asprintf("%s/" SAMPLE_FILE, st->data);
        if (th_tmpdir_make("callstream-et", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);

        p = et_path_in(st, "broker1.err");
        r = th_broker_start(&st->b1, st->bin, b1_args, p);
        free(p);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->b1.pid);
        p = et_path_in(st, "broker4.err");
        r = th_broker_start(&st->b4, st->bin, b4_args, p);
        free(p);
        if (r < 0)
                goto fail;
        th_fatal_broker(1, st->b4.pid);
        return 0;
fail:
        et_group_teardown(state);
        return -1;
}

/*
 * Commands.
 */

void et_produce(const struct et *st, const struct th_broker *b,
                const char *topic, const char *file)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "produce", "--brokers", b->brokers, "--topic",
                     topic, file, NULL);
        th_run_ok_free(&a);
}

/* The ingest command line of every test: windows 1h and 1h/15m from the
 * beginning, to the end of the topic. */
void et_ingest_args(const struct et *st, struct th_args *a,
                    const struct th_broker *b, const char *topic,
                    const char *db, int drop, const char *lateness,
                    const char *batch)
{
        th_args_addv(a, st->bin, "ingest", "--brokers", b->brokers, "--topic",
                     topic, "--db", db, "--window", specs[0].name, "--window",
                     specs[1].name, "--from-beginning", "--exit-at-end",
                     "--allowed-lateness", lateness, "--late-policy",
                     drop ? "drop" : "count", "--batch-max-records", batch,
                     NULL);
}

void et_ingest(const struct et *st, const struct th_broker *b,
               const char *topic, const char *db, int drop,
               const char *lateness, const char *batch)
{
        struct th_args a = {0};

        et_ingest_args(st, &a, b, topic, db, drop, lateness, batch);
        th_run_ok_free(&a);
}

/* The sample file in topic sample (one partition), produced once. */
void et_ensure_sample(struct et *st)
{
        if (st->sample_state > 0)
                return;
        if (st->sample_state < 0)
                fail_msg("producing the sample failed earlier");
        st->sample_state = -1;
        th_broker_assert_alive(&st->b1);
        msgs_from_array(st->sample_path, &st->sample);
        assert_int_equal(st->sample.n, 700);
        et_produce(st, &st->b1, "sample", st->sample_path);
        st->sample_state = 1;
}

/* Whether the messages hold exactly the lines of the NDJSON text file (as
 * multisets): the topic got the whole stream, each line once. */
static int same_lines(const struct et_msgs *m, const struct th_buf *file)
{
        struct th_lines a = {0}, b = {0};
        const char *p = file->p, *end = file->p + file->len, *nl;
        size_t i, differ;

        for (; p < end; p = nl + 1) {
                nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl)
                        nl = end;
                if (nl > p)
                        th_lines_add(&a, th_strndup(p, (size_t)(nl - p)));
        }
        for (i = 0; i < m->n; i++)
                th_lines_add(&b, th_strndup(m->v[i].p, m->v[i].len));
        th_lines_sort(&a);
        th_lines_sort(&b);
        differ = th_lines_compare("generated lines vs messages in the topic",
                                  "file ", &a, "topic", &b, ET_MAX_SHOWN);
        th_lines_free(&a);
        th_lines_free(&b);
        return differ == 0;
}

/* The generated stream in topic gen (four partitions), and the messages as
 * the broker holds them, read back with kcat. */
static void ensure_gen(struct et *st)
{
        struct th_args a = {0};
        struct th_run r;
        struct th_buf file = {0};
        int ok, p, used = 0;

        if (st->gen_state > 0)
                return;
        if (st->gen_state < 0)
                fail_msg("the generated stream failed earlier");
        st->gen_state = -1;
        th_broker_assert_alive(&st->b4);
        st->gen_path = et_path_in(st, "gen.ndjson");
        th_args_addv(&a, st->bin, "generate", "--count", ET_GEN_COUNT, "--seed",
                     ET_GEN_SEED, "--out-of-order", "0.2", "--max-delay", "3h",
                     "--duplicates", "0.03", "--malformed", "0.01", "--output",
                     st->gen_path, NULL);
        th_run_ok_free(&a);
        et_produce(st, &st->b4, "gen", st->gen_path);

        th_args_addv(&a, "kcat", "-C", "-b", st->b4.brokers, "-t", "gen", "-o",
                     "beginning", "-e", "-q", "-f", "%p %o %S %s\\n", NULL);
        th_run_ok(&a, &r);
        th_args_free(&a);
        ok = msgs_from_kcat(r.out.p, r.out.len, &st->gen) == 0;
        th_run_free(&r);
        if (!ok)
                fail_msg("cannot read kcat's output");
        qsort(st->gen.v, st->gen.n, sizeof(*st->gen.v), msg_cmp);
        if (th_read_file(st->gen_path, &file))
                fail_msg("cannot read %s: %s", st->gen_path, strerror(errno));
        ok = same_lines(&st->gen, &file);
        th_buf_free(&file);
        if (!ok)
                fail_msg("topic gen does not hold the generated lines");
        for (p = 0; p < ET_MAX_PARTS; p++) {
                size_t i;

                for (i = 0; i < st->gen.n && st->gen.v[i].part != p; i++)
                        ;
                used += i < st->gen.n;
        }
        fprintf(stderr, "# topic gen: %zu messages in %d partitions\n",
                st->gen.n, used);
        assert_int_equal(used, ET_GEN_PARTS);
        st->gen_state = 1;
}

/* SQLite baseline which, made once by one uninterrupted ingest. */
const char *et_baseline(struct et *st, int which)
{
        const struct base_def *d = &base_defs[which];
        char *name;

        if (st->base_state[which] > 0)
                return st->base[which];
        if (st->base_state[which] < 0)
                fail_msg("baseline %s failed earlier", d->name);
        st->base_state[which] = -1;
        if (d->gen)
                ensure_gen(st);
        else
                et_ensure_sample(st);
        name = th_asprintf("%s.db", d->name);
        st->base[which] = et_path_in(st, name);
        free(name);
        if (d->gen)
                et_ingest(st, &st->b4, "gen", st->base[which], d->drop,
                          ET_GEN_LATENESS, ET_GEN_BATCH);
        else
                et_ingest(st, &st->b1, "sample", st->base[which], d->drop,
                          ET_SAMPLE_LATENESS, ET_SAMPLE_BATCH);
        st->base_state[which] = 1;
        return st->base[which];
}

/* Compares the SQLite database at path with model m under the policy;
 * returns the number of tables that differ. */
int et_check_sqlite(const struct et *st, const char *path,
                    const struct et_model *m, int drop, const char *topic)
{
        struct et_tables want = {0}, got = {0};
        int bad;

        et_model_expect(m, drop, topic, st->radio, &want);
        et_sqlite_tables(path, 0, &got);
        bad = et_tables_compare(strrchr(path, '/') + 1, "expected", &want,
                                "sqlite  ", &got);
        et_tables_free(&want);
        et_tables_free(&got);
        return bad;
}

/* The integer a query gives on the database at path, compared with want. */
int et_check_int(const char *path, const char *what, const char *sql,
                 long long want)
{
        long long got = sqlite_int(path, sql);

        if (got == want) {
                fprintf(stderr, "# %s: %lld\n", what, got);
                return 0;
        }
        fprintf(stderr, "# %s: expected %lld, got %lld\n", what, want, got);
        return 1;
}

/* What the model says about the stream, so that a reader sees that the
 * checks had something to check. */
void et_model_summary(const char *what, const struct et_model *m, int drop,
                      const struct et_tables *x)
{
        long long late_windows = 0;
        size_t i;

        for (i = 0; i < m->ncalls; i++)
                late_windows += m->calls[i].late;
        fprintf(stderr,
                "# model %s (lateness %lld s, %s): %zu calls, %zu rejected, "
                "%lld late for some window; %zu late_records rows\n",
                what, (long long)(m->lateness / USEC), drop ? "drop" : "count",
                m->ncalls, m->nrejects, late_windows,
                x->t[ET_T_LATE_RECORDS].n);
}

/* 4. PostgreSQL: the same topic ingested into a fresh PostgreSQL database
 * gives SQLite's rows (and the model's) in every compared table. */
void et_pg_equivalence(struct et *st, int which)
{
        const struct base_def *d = &base_defs[which];
        const char *base = et_baseline(st, which);
        char *pgdb = th_asprintf("cs_%s", d->name);
        struct et_tables lite = {0}, pg = {0}, want = {0};
        struct et_model *m;
        char *ci;
        int bad;

        et_ensure_pg(st);
        ci = et_pg_create_db(st, pgdb);
        if (d->gen)
                et_ingest(st, &st->b4, "gen", ci, d->drop, ET_GEN_LATENESS,
                          ET_GEN_BATCH);
        else
                et_ingest(st, &st->b1, "sample", ci, d->drop,
                          ET_SAMPLE_LATENESS, ET_SAMPLE_BATCH);
        et_sqlite_tables(base, 0, &lite);
        et_pg_tables(st, pgdb, &pg);
        bad = et_tables_compare(d->name, "sqlite    ", &lite, "postgresql",
                                &pg);
        bad += et_pg_check_types(st, pgdb);
        m = d->gen ? et_model_build(&st->gen, ET_GEN_LATENESS_S)
                   : et_model_build(&st->sample, 0);
        et_model_expect(m, d->drop, d->gen ? "gen" : "sample", st->radio,
                        &want);
        bad += et_tables_compare(d->name, "expected  ", &want, "postgresql",
                                 &pg);
        et_model_free(m);
        et_tables_free(&lite);
        et_tables_free(&pg);
        et_tables_free(&want);
        free(ci);
        free(pgdb);
        if (bad)
                fail_msg("%s: %d table(s) differ (details above)", d->name,
                         bad);
}
