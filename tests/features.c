/* features.c: the fixture and the independent model of the end-to-end
 * tests of issue 4's features (test_update, test_retention, test_rebuild,
 * test_file_replay): databases of either dialect read back as rows of
 * text, the input as the ingest sees it, the model of the contract, the
 * checks and the commands (features.h). Test code only: it links no
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

#include "features.h"
#include "model.h"

#define WATCHDOG_S 600

#define SAMPLE_FILE "police-department-calls-for-service.sample.json"
#define RADIO_FILE  "radio_code.json"

static const char *const field_names[FT_NFIELDS] = {
        "crime_id",       "original_crime_type_name",
        "report_date",    "call_date",
        "offense_date",   "call_time",
        "call_date_time", "disposition",
        "address",        "city",
        "state",          "agency_id",
        "address_type",   "common_location"};

char *ft_path_in(const struct ft *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/*
 * Rows as lines.
 */

/* Appends every line of src, prefixed with "tag|", to dst. */
void ft_lines_tagged(struct th_lines *dst, const char *tag,
                     const struct th_lines *src)
{
        size_t i;

        for (i = 0; i < src->n; i++)
                th_lines_addf(dst, "%s|%s", tag, src->v[i]);
}

/* The lines of a that b lacks (sorted multisets), copied into out. */
void ft_lines_minus(const struct th_lines *a, const struct th_lines *b,
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

/* Opens our connection once the database exists (the ingest makes a
 * SQLite file). */
static void ft_db_connect(struct ft_db *d)
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
void ft_db_exec(struct ft_db *d, const char *sql)
{
        ft_db_connect(d);
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
void ft_db_lines(struct ft_db *d, const char *sql, struct th_lines *out)
{
        ft_db_connect(d);
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
char *ft_db_value(struct ft_db *d, const char *sql)
{
        struct th_lines l = {0};
        char *v;

        ft_db_lines(d, sql, &l);
        if (l.n != 1)
                fail_msg("%s: %zu rows, expected one, in: %s", d->name, l.n,
                         sql);
        v = l.v[0];
        l.v[0] = NULL;
        l.n = 0;
        th_lines_free(&l);
        return v;
}

void ft_db_close(struct ft_db *d)
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

/* The query template q in d's dialect; the caller frees it. */
static char *ft_dialect_sql(const struct ft_db *d, const char *q)
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
void ft_db_q(struct ft_db *d, const char *q, struct th_lines *out)
{
        char *sql = ft_dialect_sql(d, q);

        ft_db_lines(d, sql, out);
        free(sql);
}

/*
 * The input as the ingest sees it: messages of one partition in offset
 * order, each valid or not by the contract's rules, checked here.
 */

void ft_input_free(struct ft_input *in)
{
        size_t i;
        int k;

        for (i = 0; i < in->n; i++)
                for (k = 0; k < FT_NFIELDS; k++)
                        free(in->v[i].f[k]);
        free(in->v);
        memset(in, 0, sizeof(*in));
}

/* Fills m from one parsed message (NULL: not JSON), by the validity rules
 * of the contract. Known fields other than strings and null are not in our
 * inputs, so they stop the test rather than guess. */
static void ft_msg_from_json(const json_t *o, struct ft_msg *m)
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
        for (k = 1; k < FT_NFIELDS; k++) {
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

static struct ft_msg *ft_input_add(struct ft_input *in, long long offset)
{
        struct ft_msg *m;

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
void ft_input_ndjson(const char *path, int kafka, struct ft_input *in)
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

                        ft_msg_from_json(o,
                                         ft_input_add(in, kafka ? msgs : line));
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
void ft_input_array(const char *path, int kafka, struct ft_input *in)
{
        json_error_t jerr;
        json_t *arr = json_load_file(path, 0, &jerr), *v;
        size_t i;

        memset(in, 0, sizeof(*in));
        if (!json_is_array(arr))
                fail_msg("%s: %s", path, jerr.text);
        json_array_foreach(arr, i, v)
        {
                ft_msg_from_json(v, ft_input_add(in, (long long)i + !kafka));
        }
        in->next_offset = (long long)json_array_size(arr) + !kafka;
        json_decref(arr);
}

/*
 * The model: what the tables and views must hold after one ingest of an
 * input, by the contract alone.
 */

void ft_want_free(struct ft_want *w)
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
        const struct ft_msg *m;
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

static int same_fields(const struct ft_msg *a, const struct ft_msg *b)
{
        int k;

        for (k = 0; k < FT_NFIELDS; k++) {
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
void ft_model(const struct ft *st, const struct ft_input *in,
              const struct ft_mconf *c, struct ft_want *w)
{
        json_t *index = json_object();
        struct stored *sv = th_malloc(in->n * sizeof(*sv));
        struct hit *hits = NULL;
        size_t ns = 0, nh = 0, caph = 0, i, k;
        int have = 0;
        int64_t max_ts = 0, lateness = c->lateness * FT_USEC;
        long long valid = 0, rejected = 0;
        char a[48], b[48] = "", e[48];

        memset(w, 0, sizeof(*w));
        for (i = 0; i < in->n; i++) {
                const struct ft_msg *m = &in->v[i];
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
                const struct ft_msg *m = sv[i].m;
                struct th_buf row = {0};

                tm_format_ts(m->t, a);
                if (sv[i].has_wm)
                        tm_format_ts(sv[i].wm, b);
                th_buf_add(&row, m->f[0], strlen(m->f[0]));
                for (k = 1; k < FT_NFIELDS; k++)
                        th_buf_addf(&row, "|%s", nul(m->f[k]));
                th_buf_addf(&row, "|%s|%s|0|%lld|%s|%s", a, c->topic, m->offset,
                            sv[i].has_wm ? b : "NULL",
                            c->drop ? "drop" : "count");
                th_lines_add(&w->calls, row.p);
                memset(&row, 0, sizeof(row));
                for (k = 0; k < c->nspecs; k++) {
                        int64_t size = c->specs[k].size * FT_USEC;
                        int64_t slide = c->specs[k].slide * FT_USEC;
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
                const struct ft_spec *sp = &c->specs[hits[i].spec];
                int64_t end = hits[i].start + sp->size * FT_USEC;
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
static size_t ft_check_rows(struct ft_db *d, const char *step, const char *what,
                            const char *q, const struct th_lines *want,
                            struct th_lines *transcript)
{
        struct th_lines got = {0};
        char *label = th_asprintf("%s: %s (%s)", step, what, d->name);
        size_t bad;

        ft_db_q(d, q, &got);
        bad = th_lines_compare(label, "expected", want, "got     ", &got,
                               FT_MAX_SHOWN);
        if (!bad)
                fprintf(stderr, "# %s: %zu rows as expected\n", label, got.n);
        if (transcript) {
                char *tag = th_asprintf("%s|%s", step, what);

                ft_lines_tagged(transcript, tag, &got);
                free(tag);
        }
        th_lines_free(&got);
        free(label);
        return bad;
}

/* Every table and view the model covers. Returns the number of tables
 * that differ. */
int ft_check_want(struct ft_db *d, const char *step, const struct ft_want *w,
                  struct th_lines *transcript)
{
        int bad = 0;

        bad += ft_check_rows(d, step, "window_counts", FT_Q_WC, &w->wc,
                             transcript) != 0;
        bad += ft_check_rows(d, step, "call_counts", FT_Q_CC, &w->cc,
                             transcript) != 0;
        bad += ft_check_rows(d, step, "disposition_counts", FT_Q_DC, &w->dc,
                             transcript) != 0;
        bad += ft_check_rows(d, step, "calls", FT_Q_CALLS, &w->calls,
                             transcript) != 0;
        bad += ft_check_rows(d, step, "late_records", FT_Q_LATE, &w->late,
                             transcript) != 0;
        bad += ft_check_rows(d, step, "pipeline_progress", FT_Q_PROGRESS,
                             &w->progress, transcript) != 0;
        bad += ft_check_rows(d, step, "rejected_records", FT_Q_REJECTED,
                             &w->rejected, transcript) != 0;
        return bad;
}

/* Compares a PostgreSQL transcript with SQLite's. */
void ft_assert_same_as_sqlite(const char *what, struct th_lines *lite,
                              struct th_lines *pg)
{
        th_lines_sort(lite);
        th_lines_sort(pg);
        if (lite->n == 0)
                fail_msg("%s: no SQLite transcript to compare with (its test "
                         "failed or did not run)",
                         what);
        if (th_lines_compare(what, "sqlite    ", lite, "postgresql", pg,
                             FT_MAX_SHOWN))
                fail_msg("%s: PostgreSQL differs from SQLite", what);
        fprintf(stderr, "# %s: %zu rows, identical in both dialects\n", what,
                pg->n);
}

/*
 * Commands.
 */

static void ft_add_db(struct th_args *a, const struct ft_db *d)
{
        th_args_addv(a, "--db", d->target, NULL);
        if (d->schema)
                th_args_addv(a, "--schema", d->schema, NULL);
}

void ft_add_opts(struct th_args *a, const char *const *opts)
{
        for (; opts && *opts; opts++)
                th_args_add(a, *opts);
}

/* Appends the arguments up to a NULL to o. */
void ft_opts_add(struct ft_opts *o, ...)
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
void ft_ingest_file(const struct ft *st, const struct ft_db *d,
                    const char *file, const char *const *opts)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "ingest", "--file", file, "-q", NULL);
        ft_add_db(&a, d);
        ft_add_opts(&a, opts);
        th_run_ok_free(&a);
}

/* ingest of a Kafka topic from its beginning to its end. */
void ft_ingest_kafka(struct ft *st, const struct ft_db *d, const char *topic,
                     const char *const *opts)
{
        struct th_args a = {0};

        th_broker_assert_alive(&st->broker);
        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", topic, "--from-beginning", "--exit-at-end",
                     "-q", NULL);
        ft_add_db(&a, d);
        ft_add_opts(&a, opts);
        th_run_ok_free(&a);
}

void ft_produce(struct ft *st, const char *topic, const char *file)
{
        struct th_args a = {0};

        th_broker_assert_alive(&st->broker);
        th_args_addv(&a, st->bin, "produce", "--brokers", st->broker.brokers,
                     "--topic", topic, file, NULL);
        th_run_ok_free(&a);
}

void ft_rebuild_ok(const struct ft *st, const struct ft_db *d,
                   const char *const *opts)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "rebuild", NULL);
        ft_add_db(&a, d);
        ft_add_opts(&a, opts);
        th_run_ok_free(&a);
}

/* A fresh database: a SQLite file in the folder, or a PostgreSQL database
 * (names are unique per run). The ingest migrates it. */
void ft_new_db(struct ft *st, struct ft_db *d, int pg, const char *name,
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

void ft_write_text(const char *path, const char *text, size_t n)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || write(fd, text, n) != (ssize_t)n)
                fail_msg("cannot write %s: %s", path, strerror(errno));
        close(fd);
}

size_t ft_compare_dumps(const char *what, const char *an,
                        const struct th_lines *a, const char *bn,
                        const struct th_lines *b)
{
        size_t bad = th_lines_compare(what, an, a, bn, b, FT_MAX_SHOWN);

        if (!bad)
                fprintf(stderr, "# %s: %zu rows, identical\n", what, a->n);
        return bad;
}

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

void ft_dump_all(struct ft_db *d, struct th_lines *out)
{
        const char *const *q;

        for (q = full_dump; *q; q++) {
                struct th_lines l = {0};
                char tag[16];

                snprintf(tag, sizeof(tag), "q%d", (int)(q - full_dump));
                ft_db_lines(d, *q, &l);
                ft_lines_tagged(out, tag, &l);
                th_lines_free(&l);
        }
        th_lines_sort(out);
}

/*
 * Fixture.
 */

int ft_group_teardown(void **state)
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

int ft_group_setup(void **state, const char *name, int flags)
{
        static const char *const broker_args[] = {
                "--partitions",  "1", "--topic", FT_UPD_TOPIC, "--topic",
                FT_SAMPLE_TOPIC, NULL};
        struct ft *st = calloc(1, sizeof(*st));
        char *data_dir = NULL, *p;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers(name, WATCHDOG_S);
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

        p = ft_path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, p);
        free(p);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);

        /* Without PostgreSQL the SQLite tests still run; the others fail. */
        if (flags & FT_PG)
                st->pg_state = th_pg_start(&st->pg, st->dir, 0) == 0 ? 1 : -1;
        return 0;
fail:
        ft_group_teardown(state);
        return -1;
}
