/* test_features.c: end-to-end tests of four features of issue 4 with the
 * real binary (CALLSTREAM_BIN): --on-duplicate update, --retention,
 * `callstream rebuild` and `ingest --file`, in SQLite and (update and
 * rebuild) in a PostgreSQL 15 server the test starts itself.
 *
 * Like test_e2e it links no project module. Expected rows come from a
 * model of the contract (context.md, "Event time") written here: the input
 * read with jansson in partition order, validity checked by our own rules
 * and calendar, each crime_id's stored copy (the first valid one, or under
 * update the last copy whose fields differed from the stored one) judged
 * against the watermark just before it (the highest valid event time of
 * the earlier messages, duplicates included, less the allowed lateness),
 * windows from our own arithmetic. Where the contract says two runs must
 * agree (file and Kafka paths, rebuild and fresh ingest, with and without
 * retention) their tables and views are compared row for row as well.
 * PostgreSQL's rows must equal SQLite's, which must equal the model.
 *
 * Tests: test_update (1: --on-duplicate update and ignore, file and Kafka
 * paths, count and drop, batches of 2 and one batch), test_retention and
 * test_retention_steps (2), test_rebuild and test_rebuild_usage (3),
 * test_file_replay and test_file_usage (4), test_pg_update and
 * test_pg_rebuild (5: 1 and 3 in PostgreSQL, the latter with --schema).
 *
 * E2E_KEEP=1 keeps the folder; FEATURES_TEST_FILTER='test_pg*' runs some
 * tests (the PostgreSQL ones compare with the SQLite ones, so run those
 * first); PG_BINDIR names the PostgreSQL server binaries. */
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

#include "harness.h"
#include "model.h"
#include "pgutil.h"

#define WATCHDOG_S 600
#define MAX_SHOWN  12 /* differences printed per comparison */

#define SAMPLE_FILE  "police-department-calls-for-service.sample.json"
#define RADIO_FILE   "radio_code.json"
#define SAMPLE_TOPIC "sample"
#define UPD_TOPIC    "updates"

#define USEC   INT64_C(1000000)
#define HOUR_S 3600

#define NFIELDS 14 /* the known fields, in the column order of calls */

static const char *const field_names[NFIELDS] = {
        "crime_id",       "original_crime_type_name",
        "report_date",    "call_date",
        "offense_date",   "call_time",
        "call_date_time", "disposition",
        "address",        "city",
        "state",          "agency_id",
        "address_type",   "common_location"};

struct ft {
        char dir[PATH_MAX]; /* everything of this run */
        char *bin;          /* callstream */
        char *sample;       /* the real sample, a JSON array */
        char *updates;      /* dir/updates.ndjson: the update stream */
        json_t *codes;      /* radio code -> description */
        struct th_broker broker;
        int produced_updates;
        int produced_sample;

        struct th_pg pg;
        int pg_state; /* 1 running, -1 failed to start */

        /* What SQLite showed, for PostgreSQL to match (n == 0: not run). */
        struct th_lines lite_update;
        struct th_lines lite_rebuild;
};

static char *path_in(const struct ft *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/*
 * Rows as lines.
 */

/* Appends every line of src, prefixed with "tag|", to dst. */
static void lines_tagged(struct th_lines *dst, const char *tag,
                         const struct th_lines *src)
{
        size_t i;

        for (i = 0; i < src->n; i++)
                th_lines_addf(dst, "%s|%s", tag, src->v[i]);
}

/* The lines of a that b lacks (sorted multisets), copied into out. */
static void lines_minus(const struct th_lines *a, const struct th_lines *b,
                        struct th_lines *out)
{
        size_t i = 0, j = 0;

        while (i < a->n) {
                int c = j == b->n ? -1 : strcmp(a->v[i], b->v[j]);

                if (c == 0) {
                        i++;
                        j++;
                } else if (c < 0) {
                        th_lines_add(out, th_strdup(a->v[i++]));
                } else {
                        j++;
                }
        }
}

/*
 * One database, either dialect, queried as rows of text.
 */

struct db {
        const char *name; /* "sqlite" or "postgresql" */
        int pg;
        char *target; /* what --db gets */
        const char *schema;
        sqlite3 *lite;
        PGconn *conn;
};

/* Opens our connection once the database exists (the ingest makes a
 * SQLite file). */
static void db_connect(struct db *d)
{
        if (d->pg && !d->conn) {
                d->conn = th_pg_open(d->target);
                if (!d->conn)
                        fail_msg("cannot connect to %s", d->target);
                if (d->schema) {
                        char *sql =
                                th_asprintf("SET search_path TO %s", d->schema);
                        PGresult *res = PQexec(d->conn, sql);

                        free(sql);
                        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                                fail_msg("SET search_path: %s",
                                         PQerrorMessage(d->conn));
                        PQclear(res);
                }
        } else if (!d->pg && !d->lite) {
                if (sqlite3_open_v2(d->target, &d->lite, SQLITE_OPEN_READWRITE,
                                    NULL) != SQLITE_OK)
                        fail_msg("cannot open %s: %s", d->target,
                                 d->lite ? sqlite3_errmsg(d->lite)
                                         : "out of memory");
                sqlite3_busy_timeout(d->lite, 10000);
        }
}

/* Runs sql (statements, no rows wanted) or fails the test. */
static void db_exec(struct db *d, const char *sql)
{
        db_connect(d);
        if (d->pg) {
                PGresult *res = PQexec(d->conn, sql);

                if (PQresultStatus(res) != PGRES_COMMAND_OK)
                        fail_msg("%s: %s  in: %s", d->name,
                                 PQerrorMessage(d->conn), sql);
                PQclear(res);
        } else {
                char *msg = NULL;

                if (sqlite3_exec(d->lite, sql, NULL, NULL, &msg) != SQLITE_OK)
                        fail_msg("%s: %s  in: %s", d->name,
                                 msg ? msg : sqlite3_errmsg(d->lite), sql);
        }
}

/* Appends the rows of sql as sorted "a|b|c" lines (NULL as "NULL"). */
static void db_lines(struct db *d, const char *sql, struct th_lines *out)
{
        db_connect(d);
        if (d->pg) {
                PGresult *res = PQexec(d->conn, sql);
                int row, col;

                if (PQresultStatus(res) != PGRES_TUPLES_OK)
                        fail_msg("%s: %s  in: %s", d->name,
                                 PQerrorMessage(d->conn), sql);
                for (row = 0; row < PQntuples(res); row++) {
                        struct th_buf b = {0};

                        th_buf_add(&b, "", 0);
                        for (col = 0; col < PQnfields(res); col++)
                                th_buf_addf(
                                        &b, "%s%s", col ? "|" : "",
                                        PQgetisnull(res, row, col)
                                                ? "NULL"
                                                : PQgetvalue(res, row, col));
                        th_lines_add(out, b.p);
                }
                PQclear(res);
        } else {
                sqlite3_stmt *stmt = NULL;
                int rc, col;

                if (sqlite3_prepare_v2(d->lite, sql, -1, &stmt, NULL) !=
                    SQLITE_OK)
                        fail_msg("%s: %s  in: %s", d->name,
                                 sqlite3_errmsg(d->lite), sql);
                while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                        struct th_buf b = {0};

                        th_buf_add(&b, "", 0);
                        for (col = 0; col < sqlite3_column_count(stmt); col++) {
                                const unsigned char *v =
                                        sqlite3_column_text(stmt, col);

                                th_buf_addf(&b, "%s%s", col ? "|" : "",
                                            v ? (const char *)v : "NULL");
                        }
                        th_lines_add(out, b.p);
                }
                if (rc != SQLITE_DONE)
                        fail_msg("%s: %s  in: %s", d->name,
                                 sqlite3_errmsg(d->lite), sql);
                sqlite3_finalize(stmt);
        }
        th_lines_sort(out);
}

/* The single value of a query, copied; the caller frees it. */
static char *db_value(struct db *d, const char *sql)
{
        struct th_lines l = {0};
        char *v;

        db_lines(d, sql, &l);
        if (l.n != 1)
                fail_msg("%s: %zu rows, expected one, in: %s", d->name, l.n,
                         sql);
        v = l.v[0];
        l.v[0] = NULL;
        l.n = 0;
        th_lines_free(&l);
        return v;
}

static void db_close(struct db *d)
{
        if (d->lite)
                sqlite3_close(d->lite);
        if (d->conn)
                PQfinish(d->conn);
        free(d->target);
        memset(d, 0, sizeof(*d));
}

/*
 * Queries, written once for both dialects: {col} is a timestamp column,
 * rendered as SQLite's text 'YYYY-MM-DD HH:MM:SS', [col] a boolean, as
 * 0 or 1.
 */

#define CALL_FIELDS                                                            \
        "crime_id, original_crime_type_name, report_date, call_date, "         \
        "offense_date, call_time, call_date_time, disposition, address, "      \
        "city, state, agency_id, address_type, common_location, "

#define Q_WC                                                                   \
        "SELECT window_spec, {window_start}, {window_end}, crime_type, "       \
        "disposition, calls, late_calls FROM window_counts"
#define Q_CC                                                                   \
        "SELECT window_spec, {window_start}, {window_end}, crime_type, "       \
        "calls, late_calls, [is_final] FROM call_counts"
#define Q_DC                                                                   \
        "SELECT window_spec, {window_start}, {window_end}, crime_type, "       \
        "disposition, disposition_description, calls, late_calls, "            \
        "[is_final] FROM disposition_counts"
#define Q_CALLS                                                                \
        "SELECT " CALL_FIELDS "{call_ts}, kafka_topic, kafka_partition, "      \
        "kafka_offset, {watermark_at_count}, late_policy FROM calls"
#define Q_LATE                                                                 \
        "SELECT crime_id, window_spec, {call_ts}, {watermark}, "               \
        "windows_dropped, kafka_topic, kafka_partition, kafka_offset FROM "    \
        "late_records"
#define Q_PROGRESS                                                             \
        "SELECT topic, kafka_partition, stored_offset, {max_event_ts}, "       \
        "{watermark}, calls, duplicates, rejected FROM pipeline_progress"
#define Q_REJECTED                                                             \
        "SELECT kafka_topic, kafka_partition, kafka_offset FROM "              \
        "rejected_records"

/* The query template q in d's dialect; the caller frees it. */
static char *dialect_sql(const struct db *d, const char *q)
{
        struct th_buf b = {0};

        th_buf_add(&b, "", 0);
        for (; *q; q++) {
                if (*q == '{' || *q == '[') {
                        size_t n = strcspn(q + 1, "}]");

                        if (!d->pg)
                                th_buf_addf(&b, "%.*s", (int)n, q + 1);
                        else if (*q == '{')
                                th_buf_addf(&b,
                                            "to_char(%.*s, 'YYYY-MM-DD "
                                            "HH24:MI:SS')",
                                            (int)n, q + 1);
                        else
                                th_buf_addf(&b, "(%.*s)::int", (int)n, q + 1);
                        q += n + 1;
                } else {
                        th_buf_add(&b, q, 1);
                }
        }
        return b.p;
}

/* Runs the query template q in d: its rows as sorted lines. */
static void db_q(struct db *d, const char *q, struct th_lines *out)
{
        char *sql = dialect_sql(d, q);

        db_lines(d, sql, out);
        free(sql);
}

/*
 * The input as the ingest sees it: messages of one partition in offset
 * order, each valid or not by the contract's rules, checked here.
 */

struct msg {
        long long offset;
        int valid;
        char *f[NFIELDS]; /* as stored: NULL when absent or null */
        int64_t t;        /* event time (valid messages) */
};

struct input {
        struct msg *v;
        size_t n;
        size_t cap;
        long long next_offset; /* what kafka_offsets must say at the end */
};

static void input_free(struct input *in)
{
        size_t i;
        int k;

        for (i = 0; i < in->n; i++)
                for (k = 0; k < NFIELDS; k++)
                        free(in->v[i].f[k]);
        free(in->v);
        memset(in, 0, sizeof(*in));
}

/* Fills m from one parsed message (NULL: not JSON), by the validity rules
 * of the contract. Known fields other than strings and null are not in our
 * inputs, so they stop the test rather than guess. */
static void msg_from_json(const json_t *o, struct msg *m)
{
        const json_t *id, *v;
        const char *s;
        int k;

        m->valid = 0;
        if (!json_is_object(o))
                return;
        id = json_object_get(o, "crime_id");
        if (json_is_string(id) && json_string_length(id) > 0)
                m->f[0] = th_strdup(json_string_value(id));
        else if (json_is_integer(id) && json_integer_value(id) >= 0)
                m->f[0] =
                        th_asprintf("%lld", (long long)json_integer_value(id));
        for (k = 1; k < NFIELDS; k++) {
                v = json_object_get(o, field_names[k]);
                if (json_is_string(v))
                        m->f[k] = th_strdup(json_string_value(v));
                else if (v && !json_is_null(v))
                        fail_msg("the model does not cover a %s that is "
                                 "not a string",
                                 field_names[k]);
        }
        s = m->f[6];
        m->valid = m->f[0] && m->f[1] && m->f[1][0] && s &&
                   tm_parse_ts(s, strlen(s), &m->t) == 0;
}

static struct msg *input_add(struct input *in, long long offset)
{
        struct msg *m;

        if (in->n == in->cap) {
                in->cap = in->cap * 2 + 1024;
                in->v = th_realloc(in->v, in->cap * sizeof(*in->v));
        }
        m = &in->v[in->n++];
        memset(m, 0, sizeof(*m));
        m->offset = offset;
        return m;
}

/* NDJSON: one message per non-blank line. The file path numbers them by
 * line (from 1, blank lines counted), Kafka by message (from 0). */
static void input_ndjson(const char *path, int kafka, struct input *in)
{
        struct th_buf b = {0};
        size_t i = 0;
        long long line = 0, msgs = 0;

        memset(in, 0, sizeof(*in));
        if (th_read_file(path, &b) < 0)
                fail_msg("cannot read %s: %s", path, strerror(errno));
        while (i < b.len) {
                size_t end = i, k;
                int blank = 1;

                while (end < b.len && b.p[end] != '\n')
                        end++;
                line++;
                for (k = i; k < end; k++)
                        if (!strchr(" \t\r", b.p[k]))
                                blank = 0;
                if (!blank) {
                        json_error_t jerr;
                        json_t *o = json_loadb(b.p + i, end - i, 0, &jerr);

                        msg_from_json(o, input_add(in, kafka ? msgs : line));
                        json_decref(o);
                        msgs++;
                        in->next_offset = kafka ? msgs : line + 1;
                }
                i = end + 1;
        }
        th_buf_free(&b);
}

/* A JSON array: one message per element, numbered from 1 by the file path
 * and from 0 by Kafka. */
static void input_array(const char *path, int kafka, struct input *in)
{
        json_error_t jerr;
        json_t *arr = json_load_file(path, 0, &jerr), *v;
        size_t i;

        memset(in, 0, sizeof(*in));
        if (!json_is_array(arr))
                fail_msg("%s: %s", path, jerr.text);
        json_array_foreach(arr, i, v)
        {
                msg_from_json(v, input_add(in, (long long)i + !kafka));
        }
        in->next_offset = (long long)json_array_size(arr) + !kafka;
        json_decref(arr);
}

/*
 * The model: what the tables and views must hold after one ingest of an
 * input, by the contract alone.
 */

struct spec {
        const char *name; /* normalised */
        int64_t size;     /* seconds */
        int64_t slide;
};

struct mconf {
        const struct spec *specs;
        size_t nspecs;
        int64_t lateness; /* seconds */
        int drop;
        int update;
        const char *topic;
};

/* The expected rows, rendered like the Q_* queries. */
struct want {
        struct th_lines wc, cc, dc, calls, late, progress, rejected;
};

static void want_free(struct want *w)
{
        th_lines_free(&w->wc);
        th_lines_free(&w->cc);
        th_lines_free(&w->dc);
        th_lines_free(&w->calls);
        th_lines_free(&w->late);
        th_lines_free(&w->progress);
        th_lines_free(&w->rejected);
}

/* The copy of a call that stands, and the watermark it was counted
 * against. */
struct stored {
        const struct msg *m;
        int has_wm;
        int64_t wm; /* microseconds */
};

/* One call counted in one of its windows. */
struct hit {
        int spec;
        int64_t start;
        const char *crime;
        const char *disp; /* "" when none */
        int late;
};

static int hit_cmp(const void *pa, const void *pb)
{
        const struct hit *a = pa, *b = pb;
        int c;

        if (a->spec != b->spec)
                return a->spec - b->spec;
        if (a->start != b->start)
                return a->start < b->start ? -1 : 1;
        if ((c = strcmp(a->crime, b->crime)) != 0)
                return c;
        return strcmp(a->disp, b->disp);
}

static int same_fields(const struct msg *a, const struct msg *b)
{
        int k;

        for (k = 0; k < NFIELDS; k++) {
                if (!a->f[k] != !b->f[k] ||
                    (a->f[k] && strcmp(a->f[k], b->f[k])))
                        return 0;
        }
        return 1;
}

static const char *nul(const char *s)
{
        return s ? s : "NULL";
}

/* Works out w from the messages of in (one partition, in order) under c:
 * the watermark before each message, the copy of each call that stands and
 * the watermark it was counted against, then its windows, late or dropped.
 * Rows are rendered like the Q_* queries. */
static void model(const struct ft *st, const struct input *in,
                  const struct mconf *c, struct want *w)
{
        json_t *index = json_object();
        struct stored *sv = th_malloc(in->n * sizeof(*sv));
        struct hit *hits = NULL;
        size_t ns = 0, nh = 0, caph = 0, i, k;
        int have = 0;
        int64_t max_ts = 0, lateness = c->lateness * USEC;
        long long valid = 0, rejected = 0;
        char a[48], b[48] = "", e[48];

        memset(w, 0, sizeof(*w));
        for (i = 0; i < in->n; i++) {
                const struct msg *m = &in->v[i];
                json_t *ix;

                if (!m->valid) {
                        rejected++;
                        th_lines_addf(&w->rejected, "%s|0|%lld", c->topic,
                                      m->offset);
                        continue;
                }
                valid++;
                ix = json_object_get(index, m->f[0]);
                if (!ix) {
                        json_object_set_new(index, m->f[0],
                                            json_integer((json_int_t)ns));
                        k = ns++;
                } else if (c->update &&
                           !same_fields(sv[json_integer_value(ix)].m, m)) {
                        k = (size_t)json_integer_value(ix);
                } else {
                        k = SIZE_MAX;
                }
                if (k != SIZE_MAX) {
                        sv[k].m = m;
                        sv[k].has_wm = have;
                        sv[k].wm = max_ts - lateness;
                }
                if (!have || m->t > max_ts)
                        max_ts = m->t;
                have = 1;
        }

        for (i = 0; i < ns; i++) {
                const struct msg *m = sv[i].m;
                struct th_buf row = {0};

                tm_format_ts(m->t, a);
                if (sv[i].has_wm)
                        tm_format_ts(sv[i].wm, b);
                th_buf_add(&row, m->f[0], strlen(m->f[0]));
                for (k = 1; k < NFIELDS; k++)
                        th_buf_addf(&row, "|%s", nul(m->f[k]));
                th_buf_addf(&row, "|%s|%s|0|%lld|%s|%s", a, c->topic, m->offset,
                            sv[i].has_wm ? b : "NULL",
                            c->drop ? "drop" : "count");
                th_lines_add(&w->calls, row.p);
                memset(&row, 0, sizeof(row));
                for (k = 0; k < c->nspecs; k++) {
                        int64_t size = c->specs[k].size * USEC;
                        int64_t slide = c->specs[k].slide * USEC;
                        int64_t s = tm_window_last(m->t, slide);
                        int dropped = 0;

                        for (; s > m->t - size; s -= slide) {
                                int late = sv[i].has_wm && s + size <= sv[i].wm;

                                if (c->drop && late) {
                                        dropped++;
                                        continue;
                                }
                                if (nh == caph) {
                                        caph = caph * 2 + 1024;
                                        hits = th_realloc(hits,
                                                          caph * sizeof(*hits));
                                }
                                hits[nh].spec = (int)k;
                                hits[nh].start = s;
                                hits[nh].crime = m->f[1];
                                hits[nh].disp = m->f[7] ? m->f[7] : "";
                                hits[nh].late = late;
                                nh++;
                        }
                        if (dropped)
                                th_lines_addf(&w->late,
                                              "%s|%s|%s|%s|%d|%s|0|%lld",
                                              m->f[0], c->specs[k].name, a, b,
                                              dropped, c->topic, m->offset);
                }
        }

        /* window_counts rows, then the views that sum them. */
        if (nh)
                qsort(hits, nh, sizeof(*hits), hit_cmp);
        for (i = 0; i < nh;) {
                const struct spec *sp = &c->specs[hits[i].spec];
                int64_t end = hits[i].start + sp->size * USEC;
                long calls = 0, late = 0, dcalls, dlate;
                int final = have && end <= max_ts - lateness;
                size_t j = i;

                tm_format_ts(hits[i].start, a);
                tm_format_ts(end, e);
                /* One crime type of one window: its dispositions. */
                while (j < nh && hits[j].spec == hits[i].spec &&
                       hits[j].start == hits[i].start &&
                       !strcmp(hits[j].crime, hits[i].crime)) {
                        size_t d0 = j;
                        const char *disp = hits[j].disp;
                        const json_t *desc = json_object_get(st->codes, disp);

                        dcalls = dlate = 0;
                        while (j < nh && !hit_cmp(&hits[j], &hits[d0])) {
                                dcalls++;
                                dlate += hits[j].late;
                                j++;
                        }
                        th_lines_addf(&w->wc, "%s|%s|%s|%s|%s|%ld|%ld",
                                      sp->name, a, e, hits[d0].crime, disp,
                                      dcalls, dlate);
                        th_lines_addf(&w->dc, "%s|%s|%s|%s|%s|%s|%ld|%ld|%d",
                                      sp->name, a, e, hits[d0].crime,
                                      disp[0] ? disp : "NULL",
                                      desc ? json_string_value(desc)
                                           : "Unknown",
                                      dcalls, dlate, final);
                        calls += dcalls;
                        late += dlate;
                }
                th_lines_addf(&w->cc, "%s|%s|%s|%s|%ld|%ld|%d", sp->name, a, e,
                              hits[i].crime, calls, late, final);
                i = j;
        }
        if (have) {
                tm_format_ts(max_ts, a);
                tm_format_ts(max_ts - lateness, b);
        }
        th_lines_addf(&w->progress, "%s|0|%lld|%s|%s|%zu|%lld|%lld", c->topic,
                      in->next_offset, have ? a : "NULL", have ? b : "NULL", ns,
                      valid - (long long)ns, rejected);
        th_lines_sort(&w->wc);
        th_lines_sort(&w->cc);
        th_lines_sort(&w->dc);
        th_lines_sort(&w->calls);
        th_lines_sort(&w->late);
        th_lines_sort(&w->rejected);
        free(hits);
        free(sv);
        json_decref(index);
}

/*
 * Checks.
 */

/* Compares the rows of q in d with want; adds what the database showed to
 * transcript (tagged), for the other dialect to match. Returns the number
 * of differing rows. */
static size_t check_rows(struct db *d, const char *step, const char *what,
                         const char *q, const struct th_lines *want,
                         struct th_lines *transcript)
{
        struct th_lines got = {0};
        char *label = th_asprintf("%s: %s (%s)", step, what, d->name);
        size_t bad;

        db_q(d, q, &got);
        bad = th_lines_compare(label, "expected", want, "got     ", &got,
                               MAX_SHOWN);
        if (!bad)
                fprintf(stderr, "# %s: %zu rows as expected\n", label, got.n);
        if (transcript) {
                char *tag = th_asprintf("%s|%s", step, what);

                lines_tagged(transcript, tag, &got);
                free(tag);
        }
        th_lines_free(&got);
        free(label);
        return bad;
}

/* Every table and view the model covers. Returns the number of tables
 * that differ. */
static int check_want(struct db *d, const char *step, const struct want *w,
                      struct th_lines *transcript)
{
        int bad = 0;

        bad += check_rows(d, step, "window_counts", Q_WC, &w->wc, transcript) !=
               0;
        bad += check_rows(d, step, "call_counts", Q_CC, &w->cc, transcript) !=
               0;
        bad += check_rows(d, step, "disposition_counts", Q_DC, &w->dc,
                          transcript) != 0;
        bad += check_rows(d, step, "calls", Q_CALLS, &w->calls, transcript) !=
               0;
        bad += check_rows(d, step, "late_records", Q_LATE, &w->late,
                          transcript) != 0;
        bad += check_rows(d, step, "pipeline_progress", Q_PROGRESS,
                          &w->progress, transcript) != 0;
        bad += check_rows(d, step, "rejected_records", Q_REJECTED, &w->rejected,
                          transcript) != 0;
        return bad;
}

/* Compares a PostgreSQL transcript with SQLite's. */
static void assert_same_as_sqlite(const char *what, struct th_lines *lite,
                                  struct th_lines *pg)
{
        th_lines_sort(lite);
        th_lines_sort(pg);
        if (lite->n == 0)
                fail_msg("%s: no SQLite transcript to compare with (its test "
                         "failed or did not run)",
                         what);
        if (th_lines_compare(what, "sqlite    ", lite, "postgresql", pg,
                             MAX_SHOWN))
                fail_msg("%s: PostgreSQL differs from SQLite", what);
        fprintf(stderr, "# %s: %zu rows, identical in both dialects\n", what,
                pg->n);
}

/*
 * Commands.
 */

static void add_db(struct th_args *a, const struct db *d)
{
        th_args_addv(a, "--db", d->target, NULL);
        if (d->schema)
                th_args_addv(a, "--schema", d->schema, NULL);
}

static void add_opts(struct th_args *a, const char *const *opts)
{
        for (; opts && *opts; opts++)
                th_args_add(a, *opts);
}

/* Command options as a NULL-terminated vector; the strings are borrowed. */
struct opts {
        const char *v[32];
        int n;
};

/* Appends the arguments up to a NULL to o. */
static void opts_add(struct opts *o, ...)
{
        const char *s;
        va_list ap;

        va_start(ap, o);
        while ((s = va_arg(ap, const char *)) != NULL) {
                assert_true(o->n < 31);
                o->v[o->n++] = s;
        }
        va_end(ap);
        o->v[o->n] = NULL;
}

/* ingest --file FILE with opts (NULL-terminated), to its end. */
static void ingest_file(const struct ft *st, const struct db *d,
                        const char *file, const char *const *opts)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "ingest", "--file", file, "-q", NULL);
        add_db(&a, d);
        add_opts(&a, opts);
        th_run_ok_free(&a);
}

/* ingest of a Kafka topic from its beginning to its end. */
static void ingest_kafka(struct ft *st, const struct db *d, const char *topic,
                         const char *const *opts)
{
        struct th_args a = {0};

        th_broker_assert_alive(&st->broker);
        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", topic, "--from-beginning", "--exit-at-end",
                     "-q", NULL);
        add_db(&a, d);
        add_opts(&a, opts);
        th_run_ok_free(&a);
}

static void produce(struct ft *st, const char *topic, const char *file)
{
        struct th_args a = {0};

        th_broker_assert_alive(&st->broker);
        th_args_addv(&a, st->bin, "produce", "--brokers", st->broker.brokers,
                     "--topic", topic, file, NULL);
        th_run_ok_free(&a);
}

static void rebuild_ok(const struct ft *st, const struct db *d,
                       const char *const *opts)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "rebuild", NULL);
        add_db(&a, d);
        add_opts(&a, opts);
        th_run_ok_free(&a);
}

/* A fresh database: a SQLite file in the folder, or a PostgreSQL database
 * (names are unique per run). The ingest migrates it. */
static void new_db(struct ft *st, struct db *d, int pg, const char *name,
                   const char *schema)
{
        memset(d, 0, sizeof(*d));
        d->pg = pg;
        d->name = pg ? "postgresql" : "sqlite";
        d->schema = schema;
        if (pg) {
                if (st->pg_state <= 0)
                        fail_msg("PostgreSQL did not start (see the group "
                                 "setup)");
                if (th_pg_createdb(&st->pg, name, NULL) != 0)
                        fail_msg("cannot create database %s", name);
                d->target = th_pg_conninfo(&st->pg, name);
        } else {
                d->target = th_asprintf("%s/%s.db", st->dir, name);
        }
}

static void write_text(const char *path, const char *text, size_t n)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || write(fd, text, n) != (ssize_t)n)
                fail_msg("cannot write %s: %s", path, strerror(errno));
        close(fd);
}

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

static const struct spec update_specs[] = {
        {"1h", HOUR_S, HOUR_S},
        {"1h/30m", HOUR_S, 1800},
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
                        struct mconf *c)
{
        memset(c, 0, sizeof(*c));
        c->specs = update_specs;
        c->nspecs = sizeof(update_specs) / sizeof(update_specs[0]);
        c->lateness = 0;
        c->drop = r->drop;
        c->update = r->update;
        c->topic = r->kafka ? UPD_TOPIC : st->updates;
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
        bad = th_lines_compare(what, "by hand", &a, "model  ", &b, MAX_SHOWN) !=
              0;
        th_lines_free(&a);
        th_lines_free(&b);
        return bad;
}

static void check_model_by_hand(const struct ft *st, const struct input *in)
{
        struct update_run upd = {"", 0, 1, 1, NULL};
        struct update_run ign = {"", 0, 0, 1, NULL};
        struct mconf c;
        struct want w;
        int bad = 0;

        update_conf(st, &upd, &c);
        model(st, in, &c, &w);
        bad += hand_check("update, drop: late_records", hand_late_update,
                          st->updates, &w.late, "");
        bad += hand_check("update, drop: 1h window_counts", hand_1h_update,
                          st->updates, &w.wc, "1h|");
        want_free(&w);
        update_conf(st, &ign, &c);
        model(st, in, &c, &w);
        bad += hand_check("ignore, drop: late_records", hand_late_ignore,
                          st->updates, &w.late, "");
        bad += hand_check("ignore, drop: 1h window_counts", hand_1h_ignore,
                          st->updates, &w.wc, "1h|");
        want_free(&w);
        if (bad)
                fail_msg("the model differs from the hand-worked rows: a "
                         "bug in the test");
}

static void scenario_update(struct ft *st, int pg, struct th_lines *transcript)
{
        struct input in_file, in_kafka;
        size_t i;
        int bad = 0;

        input_ndjson(st->updates, 0, &in_file);
        input_ndjson(st->updates, 1, &in_kafka);
        check_model_by_hand(st, &in_file);
        if (!st->produced_updates) {
                produce(st, UPD_TOPIC, st->updates);
                st->produced_updates = 1;
        }
        for (i = 0; i < sizeof(update_runs) / sizeof(update_runs[0]); i++) {
                const struct update_run *r = &update_runs[i];
                struct opts o = {0};
                char name[32];
                struct mconf c;
                struct want w;
                struct db d;

                opts_add(&o, "--window", "1h", "--window", "1h/30m",
                         "--allowed-lateness", "0", "--late-policy",
                         r->drop ? "drop" : "count", "--on-duplicate",
                         r->update ? "update" : "ignore", NULL);
                if (r->batch)
                        opts_add(&o, "--batch-max-records", r->batch, NULL);
                snprintf(name, sizeof(name), "upd_%zu", i);
                new_db(st, &d, pg, name, NULL);
                if (r->kafka)
                        ingest_kafka(st, &d, UPD_TOPIC, o.v);
                else
                        ingest_file(st, &d, st->updates, o.v);
                update_conf(st, r, &c);
                model(st, r->kafka ? &in_kafka : &in_file, &c, &w);
                bad += check_want(&d, r->label, &w, transcript);
                want_free(&w);
                db_close(&d);
        }
        input_free(&in_file);
        input_free(&in_kafka);
        if (bad)
                fail_msg("%d table(s) differ from the model (details above)",
                         bad);
}

/*
 * 3. callstream rebuild.
 */

static const struct spec spec_1h[] = {{"1h", HOUR_S, HOUR_S}};
static const struct spec spec_both[] = {
        {"1h", HOUR_S, HOUR_S},
        {"1h/15m", HOUR_S, 900},
};

/* What a rebuild must keep exactly: window rows, late records but their
 * recorded_at, and the calls with the watermark and policy they were
 * counted with. */
static void dump_counts(struct db *d, struct th_lines *out)
{
        struct th_lines l = {0};

        db_q(d, Q_WC, &l);
        lines_tagged(out, "window_counts", &l);
        th_lines_free(&l);
        db_q(d, Q_LATE, &l);
        lines_tagged(out, "late_records", &l);
        th_lines_free(&l);
        db_q(d, Q_CALLS, &l);
        lines_tagged(out, "calls", &l);
        th_lines_free(&l);
        th_lines_sort(out);
}

static size_t compare_dumps(const char *what, const char *an,
                            const struct th_lines *a, const char *bn,
                            const struct th_lines *b)
{
        size_t bad = th_lines_compare(what, an, a, bn, b, MAX_SHOWN);

        if (!bad)
                fprintf(stderr, "# %s: %zu rows, identical\n", what, a->n);
        return bad;
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

static void partial_rebuild(struct ft *st, struct db *d, const char *step,
                            const struct th_lines *before, int *bad,
                            struct th_lines *transcript)
{
        struct opts range = {0};
        struct th_lines gone = {0}, l = {0}, want = {0}, got = {0};
        char *what;
        char n_in[32];

        /* The rows deleted outside the range, as the dump renders them. */
        db_q(d, Q_WC " WHERE " OUTSIDE_WC, &l);
        lines_tagged(&gone, "window_counts", &l);
        th_lines_free(&l);
        db_q(d, Q_LATE " WHERE " OUTSIDE_LATE, &l);
        lines_tagged(&gone, "late_records", &l);
        th_lines_free(&l);
        th_lines_sort(&gone);
        db_lines(d,
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

        db_exec(d,
                "DELETE FROM window_counts WHERE " INSIDE_WC " OR " OUTSIDE_WC);
        db_exec(d, "DELETE FROM late_records WHERE " INSIDE_LATE
                   " OR " OUTSIDE_LATE);
        opts_add(&range, "--from", "2018-12-31 20:00", "--to",
                 "2018-12-31 22:00", "--window", "1h", NULL);
        rebuild_ok(st, d, range.v);
        lines_minus(before, &gone, &want);
        dump_counts(d, &got);
        what = th_asprintf("%s: rebuild --from/--to --window 1h (%s)", step,
                           d->name);
        *bad += compare_dumps(what, "expected", &want, "got     ", &got) != 0;
        free(what);
        what = th_asprintf("%s: partial rebuild", step);
        lines_tagged(transcript, what, &got);
        free(what);
        th_lines_free(&want);
        th_lines_free(&got);
        th_lines_free(&gone);

        /* A full rebuild brings back the rest. */
        rebuild_ok(st, d, NULL);
        dump_counts(d, &got);
        what = th_asprintf("%s: full rebuild after the partial (%s)", step,
                           d->name);
        *bad += compare_dumps(what, "expected", before, "got     ", &got) != 0;
        free(what);
        th_lines_free(&got);
}

static void scenario_rebuild(struct ft *st, int pg, struct th_lines *transcript)
{
        static const char *const add_spec[] = {"--window", "1h/15m", NULL};
        struct input in;
        int policy, bad = 0;

        input_array(st->sample, 0, &in);
        for (policy = 0; policy < 2; policy++) {
                const char *pol = policy ? "drop" : "count";
                struct opts one = {0}, two = {0};
                struct mconf c = {spec_1h, 1, 0, policy, 0, st->sample};
                struct th_lines fresh = {0}, got = {0}, before = {0};
                struct db r, f;
                struct want w;
                char name[32], step[64];
                char *what;

                snprintf(name, sizeof(name), "rebuild_%s", pol);
                new_db(st, &r, pg, name, pg ? "cs" : NULL);
                snprintf(name, sizeof(name), "fresh_%s", pol);
                new_db(st, &f, pg, name, pg ? "cs" : NULL);
                opts_add(&one, "--window", "1h", "--allowed-lateness", "0",
                         "--late-policy", pol, "--batch-max-records", "7",
                         NULL);
                opts_add(&two, "--window", "1h", "--window", "1h/15m",
                         "--allowed-lateness", "0", "--late-policy", pol,
                         "--batch-max-records", "7", NULL);
                ingest_file(st, &r, st->sample, one.v);
                ingest_file(st, &f, st->sample, two.v);

                /* Both ingests as the contract says. */
                snprintf(step, sizeof(step), "%s 1h", pol);
                model(st, &in, &c, &w);
                bad += check_want(&r, step, &w, transcript);
                want_free(&w);
                c.specs = spec_both;
                c.nspecs = 2;
                snprintf(step, sizeof(step), "%s 1h+1h/15m", pol);
                model(st, &in, &c, &w);
                bad += check_want(&f, step, &w, transcript);
                if (policy)
                        assert_true(w.late.n > 0);

                /* Adding a spec equals the fresh ingest. */
                rebuild_ok(st, &r, add_spec);
                snprintf(step, sizeof(step), "%s rebuild 1h/15m", pol);
                bad += check_want(&r, step, &w, transcript);
                want_free(&w);
                dump_counts(&f, &fresh);
                dump_counts(&r, &before);
                what = th_asprintf("%s: rebuild vs fresh ingest (%s)", step,
                                   r.name);
                bad += compare_dumps(what, "fresh  ", &fresh, "rebuilt",
                                     &before) != 0;
                free(what);

                /* Idempotent. */
                rebuild_ok(st, &r, NULL);
                dump_counts(&r, &got);
                what = th_asprintf("%s %s: rebuild again (%s)", pol,
                                   "no --window", r.name);
                bad += compare_dumps(what, "before", &before, "after ", &got) !=
                       0;
                free(what);
                th_lines_free(&got);

                snprintf(step, sizeof(step), "%s", pol);
                partial_rebuild(st, &r, step, &before, &bad, transcript);

                th_lines_free(&fresh);
                th_lines_free(&before);
                db_close(&r);
                db_close(&f);
        }
        input_free(&in);
        if (bad)
                fail_msg("%d comparison(s) failed (details above)", bad);
}

/*
 * 2. --retention.
 */

/* Rows of table, all of them or those where "where" (e.g. "call_ts <")
 * holds against the horizon h. */
static long long db_count(struct db *d, const char *table, const char *where,
                          const char *h)
{
        char *sql = where ? th_asprintf("SELECT count(*) FROM %s WHERE %s '%s'",
                                        table, where, h)
                          : th_asprintf("SELECT count(*) FROM %s", table);
        char *v = db_value(d, sql);
        long long n = strtoll(v, NULL, 10);

        free(v);
        free(sql);
        return n;
}

/* One table of the retention run against the rows of the run without
 * retention that the horizon keeps ("kept_if" the horizon, e.g.
 * "call_ts >="). When must_expire, the run without retention must have had
 * rows past the horizon, or nothing was proven. */
static int compare_retained(struct db *full, struct db *kept, const char *what,
                            const char *q_all, const char *kept_if,
                            const char *horizon, int must_expire)
{
        struct th_lines a = {0}, b = {0}, all = {0};
        char *cond = th_asprintf("%s '%s'", kept_if, horizon);
        char *sql = th_asprintf("%s WHERE %s", q_all, cond);
        char *label = th_asprintf("retention: %s", what);
        int bad;

        db_q(full, sql, &a);
        db_q(full, q_all, &all);
        db_q(kept, q_all, &b);
        bad = compare_dumps(label, "no retention, restricted", &a,
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
static int64_t input_max(const struct input *in)
{
        int64_t max = INT64_MIN;
        size_t i;

        for (i = 0; i < in->n; i++)
                if (in->v[i].valid && in->v[i].t > max)
                        max = in->v[i].t;
        assert_true(max != INT64_MIN);
        return max;
}

static void input_split(const struct input *in, int64_t t, long long *kept,
                        long long *old)
{
        json_t *seen = json_object();
        size_t i;

        *kept = *old = 0;
        for (i = 0; i < in->n; i++) {
                const struct msg *m = &in->v[i];

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
        struct input in;
        long long n_kept, n_old;
        char h[48];
        int bad = 0, drop;

        input_array(st->sample, 0, &in);
        tm_format_ts(input_max(&in) - HOUR_S * USEC, h);
        input_split(&in, input_max(&in) - HOUR_S * USEC, &n_kept, &n_old);
        input_free(&in);
        fprintf(stderr,
                "# horizon %s: %lld calls at or after it, %lld before\n", h,
                n_kept, n_old);
        assert_string_equal(h, "2018-12-31 22:57:00");

        for (drop = 0; drop < 2; drop++) {
                struct opts o = {0};
                struct th_lines a = {0}, b = {0};
                struct db full, kept;
                char name[32];
                long long n;
                char *v;

                snprintf(name, sizeof(name), "ret_full_%d", drop);
                new_db(st, &full, 0, name, NULL);
                snprintf(name, sizeof(name), "ret_kept_%d", drop);
                new_db(st, &kept, 0, name, NULL);
                opts_add(&o, "--window", "1h", "--window", "1h/15m",
                         "--allowed-lateness", "0", "--late-policy",
                         drop ? "drop" : "count", NULL);
                ingest_file(st, &full, st->sample, o.v);
                opts_add(&o, "--retention", "1h", NULL);
                ingest_file(st, &kept, st->sample, o.v);

                n = db_count(&kept, "calls", NULL, NULL);
                fprintf(stderr, "# %s: %lld calls kept, expected %lld\n",
                        drop ? "drop" : "count", n, n_kept);
                bad += n != n_kept;
                bad += compare_retained(&full, &kept, "calls", Q_CALLS,
                                        "call_ts >=", h, 1);
                bad += compare_retained(&full, &kept, "window_counts", Q_WC,
                                        "window_end >", h, !drop);
                bad += compare_retained(&full, &kept, "late_records", Q_LATE,
                                        "call_ts >=", h, drop);
                bad += compare_retained(&full, &kept, "call_counts", Q_CC,
                                        "window_end >", h, !drop);
                bad += compare_retained(&full, &kept, "disposition_counts",
                                        Q_DC, "window_end >", h, !drop);
                /* Progress and watermarks are not data to expire. */
                db_q(&full, Q_PROGRESS, &a);
                db_q(&kept, Q_PROGRESS, &b);
                bad += compare_dumps("retention: pipeline_progress", "full", &a,
                                     "kept", &b) != 0;
                th_lines_free(&a);
                th_lines_free(&b);
                v = db_value(&kept, "SELECT MIN(watermark) FROM watermarks");
                if (strcmp(v, "2018-12-31 23:57:00")) {
                        fprintf(stderr,
                                "# watermark %s, expected 2018-12-31 "
                                "23:57:00\n",
                                v);
                        bad++;
                }
                free(v);
                db_close(&full);
                db_close(&kept);
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
        char *gen = path_in(st, "gen31.ndjson");
        struct th_args a = {0};
        struct input in;
        struct db d;
        long long n_kept, n_old, n;
        int64_t max;
        char h[48], wm[48], *v;
        int bad = 0;

        th_args_addv(&a, st->bin, "generate", "--count", "30000", "--seed",
                     "31", "--per-hour", "2000", "--output", gen, NULL);
        th_run_ok_free(&a);
        input_ndjson(gen, 0, &in);
        max = input_max(&in);
        tm_format_ts(max - HOUR_S * USEC, wm);
        tm_format_ts(max - 2 * HOUR_S * USEC, h);
        input_split(&in, max - 2 * HOUR_S * USEC, &n_kept, &n_old);
        input_free(&in);
        fprintf(stderr,
                "# watermark %s, horizon %s: %lld calls at or after "
                "it, %lld before\n",
                wm, h, n_kept, n_old);
        assert_true(n_old > 2 * 5000 && n_kept > 0);

        new_db(st, &d, 0, "ret_steps", NULL);
        ingest_file(st, &d, gen, ret);
        v = db_value(&d, "SELECT MIN(watermark) FROM watermarks");
        if (strcmp(v, wm)) {
                fprintf(stderr, "# watermark %s, expected %s\n", v, wm);
                bad++;
        }
        free(v);
        n = db_count(&d, "calls", "call_ts <", h);
        if (n) {
                v = db_value(&d, "SELECT MIN(call_ts) FROM calls");
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
        db_close(&d);
        free(gen);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/*
 * 3b. rebuild's usage errors.
 */

/* Everything a replay could change (SQLite), but the time of the last
 * commit of an offset. */
static const char *const full_dump[] = {
        "SELECT * FROM calls",
        "SELECT * FROM window_counts",
        "SELECT * FROM late_records",
        "SELECT * FROM rejected_records",
        "SELECT topic, kafka_partition, next_offset, max_event_ts, "
        "allowed_lateness, watermark, high_watermark, calls_total, "
        "duplicates_total, rejected_total, late_total FROM kafka_offsets",
        "SELECT * FROM call_counts",
        "SELECT * FROM disposition_counts",
        "SELECT topic, max_event_ts, watermark, allowed_lateness FROM "
        "watermarks",
        NULL};

static void dump_all(struct db *d, struct th_lines *out)
{
        const char *const *q;

        for (q = full_dump; *q; q++) {
                struct th_lines l = {0};
                char tag[16];

                snprintf(tag, sizeof(tag), "q%d", (int)(q - full_dump));
                db_lines(d, *q, &l);
                lines_tagged(out, tag, &l);
                th_lines_free(&l);
        }
        th_lines_sort(out);
}

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
        struct opts one = {0};
        struct db d;
        size_t i;
        int bad = 0;

        opts_add(&one, "--window", "1h", "--late-policy", "drop",
                 "--allowed-lateness", "0", NULL);
        new_db(st, &d, 0, "rebuild_usage", NULL);
        ingest_file(st, &d, st->sample, one.v);
        dump_all(&d, &before);
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct th_args a = {0};
                struct th_lines after = {0};
                struct th_run r;
                char *cmd;

                th_args_addv(&a, st->bin, "rebuild", "--db", d.target, NULL);
                add_opts(&a, cases[i].args);
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
                dump_all(&d, &after);
                if (compare_dumps("database after a usage error", "before",
                                  &before, "after ", &after))
                        bad++;
                th_lines_free(&after);
                th_run_free(&r);
                th_args_free(&a);
                free(cmd);
        }
        th_lines_free(&before);
        db_close(&d);
        if (bad)
                fail_msg("%d case(s) failed (details above)", bad);
}

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
        {"calls", "SELECT " CALL_FIELDS "call_ts, kafka_partition, "
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

static int compare_paths(struct db *kafka, struct db *file, const char *name)
{
        size_t i;
        int bad = 0;

        for (i = 0; i < sizeof(same_views) / sizeof(same_views[0]); i++) {
                struct th_lines a = {0}, b = {0};
                char *what = th_asprintf("%s vs kafka: %s", name,
                                         same_views[i].what);

                db_lines(kafka, same_views[i].sql, &a);
                db_lines(file, same_views[i].sql, &b);
                bad += compare_dumps(what, "kafka", &a, "file ", &b) != 0;
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

static int check_offsets(struct db *d, const char *topic, long long next)
{
        struct th_lines want = {0}, got = {0};
        int bad;

        th_lines_addf(&want, "%s|0|%lld", topic, next);
        db_lines(d,
                 "SELECT topic, kafka_partition, next_offset FROM "
                 "kafka_offsets",
                 &got);
        bad = compare_dumps("kafka_offsets", "expected", &want, "got     ",
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
        write_text(out, b.p, b.len);
        th_buf_free(&b);
        json_decref(arr);
}

static void test_file_replay(void **state)
{
        static const struct spec specs[] = {
                {"1h", HOUR_S, HOUR_S},
                {"30m/10m", 1800, 600},
        };
        struct ft *st = *state;
        char *nd = path_in(st, "sample.ndjson");
        struct input in_k, in_a, in_n;
        struct mconf c = {specs, 2, 1200, 1, 0, SAMPLE_TOPIC};
        struct db k, a, n;
        struct opts o = {0};
        struct want w;
        int bad = 0, round;

        opts_add(&o, "--window", "1h", "--window", "30m/10m",
                 "--allowed-lateness", "20m", "--late-policy", "drop",
                 "--batch-max-records", "50", NULL);
        write_ndjson_blank(st->sample, nd);
        input_array(st->sample, 1, &in_k);
        input_array(st->sample, 0, &in_a);
        input_ndjson(nd, 0, &in_n);
        assert_int_equal(in_a.next_offset, 701);
        assert_int_equal(in_n.next_offset, 1400);

        if (!st->produced_sample) {
                produce(st, SAMPLE_TOPIC, st->sample);
                st->produced_sample = 1;
        }
        new_db(st, &k, 0, "replay_kafka", NULL);
        new_db(st, &a, 0, "replay_array", NULL);
        new_db(st, &n, 0, "replay_ndjson", NULL);
        ingest_kafka(st, &k, SAMPLE_TOPIC, o.v);
        ingest_file(st, &a, st->sample, o.v);
        ingest_file(st, &n, nd, o.v);

        /* Each as the model says, offsets included. */
        model(st, &in_k, &c, &w);
        bad += check_want(&k, "kafka", &w, NULL);
        want_free(&w);
        c.topic = st->sample;
        model(st, &in_a, &c, &w);
        bad += check_want(&a, "array", &w, NULL);
        assert_true(w.late.n > 0);
        want_free(&w);
        c.topic = nd;
        model(st, &in_n, &c, &w);
        bad += check_want(&n, "ndjson", &w, NULL);
        want_free(&w);

        /* kafka_offsets: the number of the next element or line. */
        bad += check_offsets(&k, SAMPLE_TOPIC, 700);
        bad += check_offsets(&a, st->sample, 701);
        bad += check_offsets(&n, nd, 1400);

        /* The same as the Kafka path. */
        bad += compare_paths(&k, &a, "array");
        bad += compare_paths(&k, &n, "ndjson");

        /* A second replay changes nothing. */
        for (round = 0; round < 2; round++) {
                struct db *d = round ? &n : &a;
                struct th_lines before = {0}, after = {0};
                char *what = th_asprintf("%s replayed twice",
                                         round ? "ndjson" : "array");

                dump_all(d, &before);
                ingest_file(st, d, round ? nd : st->sample, o.v);
                dump_all(d, &after);
                bad += compare_dumps(what, "once ", &before, "twice", &after) !=
                       0;
                th_lines_free(&before);
                th_lines_free(&after);
                free(what);
        }
        input_free(&in_k);
        input_free(&in_a);
        input_free(&in_n);
        db_close(&k);
        db_close(&a);
        db_close(&n);
        free(nd);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 4b. --file replaces Kafka: with --brokers or --group it is a usage
 * error, and no database is made. */
static void test_file_usage(void **state)
{
        struct ft *st = *state;
        char *db = path_in(st, "usage.db");
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

/*
 * Fixture.
 */

static int group_teardown(void **state)
{
        struct ft *st = *state;
        int failed = 0;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_pg_stop(&st->pg);
        if (th_broker_stop(&st->broker) < 0)
                failed = 1;
        th_fatal_broker(0, 0);
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        th_lines_free(&st->lite_update);
        th_lines_free(&st->lite_rebuild);
        json_decref(st->codes);
        free(st->bin);
        free(st->sample);
        free(st->updates);
        free(st);
        *state = NULL;
        return failed ? -1 : 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {
                "--partitions", "1",          "--topic", UPD_TOPIC,
                "--topic",      SAMPLE_TOPIC, NULL};
        struct ft *st = calloc(1, sizeof(*st));
        char *data_dir = NULL, *p;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_features", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data_dir)) {
                free(data_dir);
                goto fail;
        }
        st->sample = th_asprintf("%s/" SAMPLE_FILE, data_dir);
        p = th_asprintf("%s/" RADIO_FILE, data_dir);
        st->codes = tm_load_radio_codes(p);
        free(p);
        free(data_dir);
        if (!st->codes || access(st->sample, R_OK)) {
                fprintf(stderr, "# cannot read %s or the radio codes\n",
                        st->sample);
                goto fail;
        }
        if (th_tmpdir_make("callstream-features", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        st->updates = path_in(st, "updates.ndjson");
        write_text(st->updates, update_stream, sizeof(update_stream) - 1);

        p = path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, p);
        free(p);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);

        /* Without PostgreSQL the SQLite tests still run; the others fail. */
        st->pg_state = th_pg_start(&st->pg, st->dir, 0) == 0 ? 1 : -1;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

/*
 * Tests.
 */

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
        assert_same_as_sqlite("update", &st->lite_update, &l);
        th_lines_free(&l);
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
        assert_same_as_sqlite("rebuild", &st->lite_rebuild, &l);
        th_lines_free(&l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_update, th_test_teardown),
                cmocka_unit_test_teardown(test_retention, th_test_teardown),
                cmocka_unit_test_teardown(test_retention_steps,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_rebuild, th_test_teardown),
                cmocka_unit_test_teardown(test_rebuild_usage, th_test_teardown),
                cmocka_unit_test_teardown(test_file_replay, th_test_teardown),
                cmocka_unit_test_teardown(test_file_usage, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_update, th_test_teardown),
                cmocka_unit_test_teardown(test_pg_rebuild, th_test_teardown),
        };
        const char *only = getenv("FEATURES_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("features", tests, group_setup,
                                           group_teardown);
}
