/* test_e2e.c: end-to-end test of the callstream binary against a real broker
 * and SQLite database, with expected results computed independently here.
 *
 * The test drives build/callstream (CALLSTREAM_BIN) through fork/exec only:
 * broker, generate, produce and ingest. It links no project module: which
 * messages are valid calls, which copy of a call wins and which windows each
 * call counts in are worked out from the contract with jansson and our own
 * timestamp and window arithmetic, then compared row by row with the views
 * and tables ingest wrote. */
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
#include <sqlite3.h>

#include "harness.h"
#include "model.h"

/* Safety nets only: nothing here asserts on speed. */
#define CLI_TIMEOUT_MS (15 * 1000)

#define PAYLOAD_MAX 4096 /* rejected_records keeps this much payload */
#define MAX_SHOWN   10   /* differences printed per check */
#define ROW_MAXCOL  20

/* The generated streams: tests 1 and 3 share the first, test 4 has its own. */
#define GEN_COUNT  "20000"
#define GEN_SEED   "7"
#define GEN2_COUNT "30000"
#define GEN2_SEED  "30011"

/* A window spec as passed to --window and as ingest must name it. */
struct spec {
        const char *arg;  /* --window value; NULL: the default */
        const char *name; /* normalised window_spec */
        int64_t size;
        int64_t slide;
};

static const struct spec specs_gen[] = {
        {"1h", "1h", 3600, 3600},
        {"1h/15m", "1h/15m", 3600, 900},
        {"1d", "1d", 86400, 86400},
};

/* Specs ingest must rename to the largest unit that divides exactly, and
 * a size that is not a whole hour: windows stay aligned to the epoch. */
static const struct spec specs_norm[] = {
        {"60m", "1h", 3600, 3600},
        {"24h/360m", "1d/6h", 86400, 21600},
        {"90m", "90m", 5400, 5400},
};

static const struct spec specs_default[] = {
        {NULL, "1h", 3600, 3600},
};

/*
 * The expected result: validity, first valid copy wins.
 */

#define NF 14
static const char *const field_names[NF] = {
        "crime_id",       "original_crime_type_name",
        "report_date",    "call_date",
        "offense_date",   "call_time",
        "call_date_time", "disposition",
        "address",        "city",
        "state",          "agency_id",
        "address_type",   "common_location",
};
enum { F_CRIME_ID = 0, F_TYPE = 1, F_CALL_DATE_TIME = 6, F_DISPOSITION = 7 };

/* A call as the calls table should hold it; f[i] NULL means SQL NULL. */
struct xcall {
        char *f[NF];
        int64_t ts;
        int32_t usec;
};

/* A message that must end up in rejected_records. */
struct xmsg {
        char *p;
        size_t len;
        long long size; /* before any cut */
};

struct model {
        size_t n_messages;
        size_t n_copies; /* valid messages ignored as later copies */
        struct xcall *calls;
        size_t n_calls;
        size_t cap_calls;
        size_t *slots; /* crime_id index: calls[] position + 1, 0 empty */
        size_t n_slots;
        struct xmsg *invalid;
        size_t n_invalid;
        size_t cap_invalid;
};

static void xcall_free(struct xcall *c)
{
        int i;

        for (i = 0; i < NF; i++)
                free(c->f[i]);
        memset(c, 0, sizeof(*c));
}

static void model_free(struct model *m)
{
        size_t i;

        if (!m)
                return;
        for (i = 0; i < m->n_calls; i++)
                xcall_free(&m->calls[i]);
        for (i = 0; i < m->n_invalid; i++)
                free(m->invalid[i].p);
        free(m->calls);
        free(m->slots);
        free(m->invalid);
        free(m);
}

static uint64_t hash_str(const char *s)
{
        uint64_t h = 1469598103934665603ULL;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

/* Returns the slot of crime_id: either holding it or empty. */
static size_t *model_slot(struct model *m, const char *crime_id)
{
        size_t i = hash_str(crime_id) & (m->n_slots - 1);

        while (m->slots[i] &&
               strcmp(m->calls[m->slots[i] - 1].f[F_CRIME_ID], crime_id))
                i = (i + 1) & (m->n_slots - 1);
        return &m->slots[i];
}

static void model_grow_index(struct model *m)
{
        size_t i, *old = m->slots, n_old = m->n_slots;

        m->n_slots = n_old ? n_old * 2 : 1024;
        m->slots = calloc(m->n_slots, sizeof(*m->slots));
        assert_non_null(m->slots);
        for (i = 0; i < n_old; i++)
                if (old[i])
                        *model_slot(m, m->calls[old[i] - 1].f[F_CRIME_ID]) =
                                old[i];
        free(old);
}

/* Scanners over JSON text that jansson has already accepted. */
static const char *skip_ws(const char *p, const char *end)
{
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
        return p;
}

static const char *skip_string(const char *p, const char *end)
{
        for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                        p++;
        return p + 1;
}

static const char *skip_value(const char *p, const char *end)
{
        int depth = 0;

        if (*p == '"')
                return skip_string(p, end);
        if (*p != '{' && *p != '[') {
                while (p < end && !strchr(",}] \t\r\n", *p))
                        p++;
                return p;
        }
        do {
                if (*p == '"') {
                        p = skip_string(p, end);
                        continue;
                }
                if (*p == '{' || *p == '[')
                        depth++;
                else if (*p == '}' || *p == ']')
                        depth--;
                p++;
        } while (p < end && depth > 0);
        return p;
}

/* Finds the text of the last member named key in buf, a JSON object that
 * jansson accepted: the contract stores non-string values "as their JSON
 * text". Member names are decoded with jansson so escapes compare right.
 * Returns 0 with [*vs, *ve) or -1. */
static int raw_member(const char *buf, size_t len, const char *key,
                      const char **vs, const char **ve)
{
        const char *p = buf, *end = buf + len;
        int found = -1;

        p = skip_ws(p, end);
        if (p >= end || *p != '{')
                return -1;
        p = skip_ws(p + 1, end);
        while (p < end && *p == '"') {
                const char *ks = p, *ke = skip_string(p, end), *v;
                json_t *k = json_loadb(ks, (size_t)(ke - ks),
                                       JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                int match = k && json_is_string(k) &&
                            json_string_length(k) == strlen(key) &&
                            !memcmp(json_string_value(k), key, strlen(key));

                json_decref(k);
                p = skip_ws(ke, end);
                p = skip_ws(p + 1, end); /* the ':' */
                v = p;
                p = skip_value(p, end);
                if (match) {
                        *vs = v;
                        *ve = p;
                        found = 0;
                }
                p = skip_ws(p, end);
                if (p < end && *p == ',')
                        p = skip_ws(p + 1, end);
        }
        return found;
}

/* Applies the validity rules of the contract to obj; raw (may be NULL) is
 * the message text, for the JSON text of non-string values. Returns 0 and
 * fills *c (allocated strings), or -1 for a message to reject. */
static int validate_object(json_t *obj, const char *raw, size_t raw_len,
                           struct xcall *c)
{
        json_t *v;
        int64_t us;
        int i;

        memset(c, 0, sizeof(*c));
        if (!json_is_object(obj))
                return -1;
        for (i = 0; i < NF; i++) {
                const char *vs, *ve;

                v = json_object_get(obj, field_names[i]);
                if (!v || json_is_null(v))
                        continue;
                if (json_is_string(v)) {
                        if (memchr(json_string_value(v), '\0',
                                   json_string_length(v)))
                                goto fail;
                        c->f[i] = th_strndup(json_string_value(v),
                                             json_string_length(v));
                } else if (raw && !raw_member(raw, raw_len, field_names[i], &vs,
                                              &ve)) {
                        c->f[i] = th_strndup(vs, (size_t)(ve - vs));
                } else {
                        c->f[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                }
        }
        v = json_object_get(obj, "crime_id");
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
                free(c->f[F_CRIME_ID]);
                c->f[F_CRIME_ID] =
                        th_asprintf("%lld", (long long)json_integer_value(v));
        } else if (!json_is_string(v) || json_string_length(v) == 0) {
                goto fail;
        }
        v = json_object_get(obj, "original_crime_type_name");
        if (!json_is_string(v) || json_string_length(v) == 0)
                goto fail;
        v = json_object_get(obj, "call_date_time");
        if (!json_is_string(v) ||
            tm_parse_ts(json_string_value(v), json_string_length(v), &us))
                goto fail;
        c->ts = tm_floor_div(us, TM_USEC);
        c->usec = (int32_t)(us - c->ts * TM_USEC);
        return 0;
fail:
        xcall_free(c);
        return -1;
}

/* Adds one message, in partition (file) order, to the expectation; obj is
 * the decoded message or NULL when it is not JSON. */
static void model_add(struct model *m, const char *raw, size_t len, json_t *obj)
{
        struct xcall c;
        size_t *slot;

        m->n_messages++;
        if (!obj || validate_object(obj, raw, len, &c)) {
                if (m->n_invalid == m->cap_invalid) {
                        m->cap_invalid = m->cap_invalid * 2 + 64;
                        m->invalid = th_realloc(m->invalid,
                                                m->cap_invalid *
                                                        sizeof(*m->invalid));
                }
                m->invalid[m->n_invalid].p = th_strndup(raw, len);
                m->invalid[m->n_invalid++].len = len;
                return;
        }
        if ((m->n_calls + 1) * 2 > m->n_slots)
                model_grow_index(m);
        slot = model_slot(m, c.f[F_CRIME_ID]);
        if (*slot) {
                m->n_copies++;
                xcall_free(&c);
                return;
        }
        if (m->n_calls == m->cap_calls) {
                m->cap_calls = m->cap_calls * 2 + 256;
                m->calls =
                        th_realloc(m->calls, m->cap_calls * sizeof(*m->calls));
        }
        m->calls[m->n_calls++] = c;
        *slot = m->n_calls;
}

/* A line the producer skips: nothing but JSON white space. */
static int is_blank(const char *p, size_t len)
{
        size_t i;

        for (i = 0; i < len; i++)
                if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
                        return 0;
        return 1;
}

/* The expectation for an NDJSON file: one message per non-blank line, as
 * the producer sends them. jansson with flags 0 (plus NUL, which the contract
 * only rejects in known fields) enforces RFC 8259, UTF-8 and no trailing
 * data. */
static struct model *model_from_ndjson(const char *path)
{
        struct model *m = calloc(1, sizeof(*m));
        struct th_buf file = {0};
        const char *p, *end, *nl;

        assert_non_null(m);
        if (th_read_file(path, &file))
                fail_msg("cannot read %s: %s", path, strerror(errno));
        p = file.p;
        end = file.p + file.len;
        while (p < end) {
                json_t *obj;

                nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl)
                        nl = end;
                if (!is_blank(p, (size_t)(nl - p))) {
                        obj = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL,
                                         NULL);
                        model_add(m, p, (size_t)(nl - p), obj);
                        json_decref(obj);
                }
                p = nl + 1;
        }
        th_buf_free(&file);
        return m;
}

/* The expectation for a JSON array file: one message per element. */
static struct model *model_from_array(const char *path)
{
        struct model *m = calloc(1, sizeof(*m));
        json_error_t jerr;
        json_t *arr = json_load_file(path, JSON_ALLOW_NUL, &jerr), *v;
        size_t i;

        assert_non_null(m);
        if (!json_is_array(arr))
                fail_msg("%s: not a JSON array: %s", path, jerr.text);
        json_array_foreach(arr, i, v)
        {
                char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

                model_add(m, text, strlen(text), v);
                free(text);
        }
        json_decref(arr);
        return m;
}

/*
 * Rows: the expected and actual contents of a view or table, as text
 * columns (NULL for SQL NULL) and an optional integer count.
 */

struct row {
        char *col[ROW_MAXCOL];
        long long n;
};

struct rows {
        struct row *v;
        size_t n;
        size_t cap;
        int ncols; /* text columns */
        int has_n; /* a final integer column */
        int nkey;  /* leading columns that identify a row */
        const char *const *names;
};

static struct row *rows_add(struct rows *r)
{
        if (r->n == r->cap) {
                r->cap = r->cap * 2 + 256;
                r->v = th_realloc(r->v, r->cap * sizeof(*r->v));
        }
        memset(&r->v[r->n], 0, sizeof(r->v[0]));
        return &r->v[r->n++];
}

static void rows_free(struct rows *r)
{
        size_t i;
        int j;

        for (i = 0; i < r->n; i++)
                for (j = 0; j < r->ncols; j++)
                        free(r->v[i].col[j]);
        free(r->v);
        r->v = NULL;
        r->n = r->cap = 0;
}

/* Byte order as SQLite's BINARY collation, NULL first. */
static int col_cmp(const char *a, const char *b)
{
        if (!a || !b)
                return (a != NULL) - (b != NULL);
        return strcmp(a, b);
}

static int key_ncols; /* qsort has no context argument */

static int row_key_cmp(const void *pa, const void *pb)
{
        const struct row *a = pa, *b = pb;
        int i, c;

        for (i = 0; i < key_ncols; i++)
                if ((c = col_cmp(a->col[i], b->col[i])) != 0)
                        return c;
        return 0;
}

static void rows_sort(struct rows *r)
{
        key_ncols = r->nkey;
        qsort(r->v, r->n, sizeof(*r->v), row_key_cmp);
}

static void row_print(const char *tag, const struct rows *r,
                      const struct row *row)
{
        int i;

        fprintf(stderr, "#   %s (", tag);
        for (i = 0; i < r->ncols; i++)
                fprintf(stderr, "%s%s%s%s%s%s", i ? ", " : "",
                        r->names ? r->names[i] : "", r->names ? "=" : "",
                        row->col[i] ? "'" : "",
                        row->col[i] ? row->col[i] : "NULL",
                        row->col[i] ? "'" : "");
        if (r->has_n)
                fprintf(stderr, ", %lld", row->n);
        fprintf(stderr, ")\n");
}

/* Compares expected and actual rows, both sorted by key; prints the first
 * differences. Returns the number of differing rows. */
static size_t rows_compare(const char *what, const struct rows *exp,
                           const struct rows *act)
{
        size_t i = 0, j = 0, bad = 0;

        key_ncols = exp->nkey;
        while (i < exp->n || j < act->n) {
                int c = i == exp->n   ? 1
                        : j == act->n ? -1
                                      : row_key_cmp(&exp->v[i], &act->v[j]);
                int k, same = 1;

                if (c == 0) {
                        for (k = exp->nkey; k < exp->ncols; k++)
                                if (col_cmp(exp->v[i].col[k], act->v[j].col[k]))
                                        same = 0;
                        if (exp->has_n && exp->v[i].n != act->v[j].n)
                                same = 0;
                        if (!same && bad++ < MAX_SHOWN) {
                                fprintf(stderr, "# %s: row differs:\n", what);
                                row_print("expected", exp, &exp->v[i]);
                                row_print("actual  ", act, &act->v[j]);
                        }
                        i++;
                        j++;
                } else if (c < 0) {
                        if (bad++ < MAX_SHOWN) {
                                fprintf(stderr, "# %s: row missing:\n", what);
                                row_print("expected", exp, &exp->v[i]);
                        }
                        i++;
                } else {
                        if (bad++ < MAX_SHOWN) {
                                fprintf(stderr, "# %s: unexpected row:\n",
                                        what);
                                row_print("actual  ", act, &act->v[j]);
                        }
                        j++;
                }
        }
        if (bad)
                fprintf(stderr,
                        "# %s: %zu differing rows (expected %zu rows, "
                        "got %zu)\n",
                        what, bad, exp->n, act->n);
        return bad;
}

/* Runs sql and collects its rows: r->ncols text columns (a value of another
 * type becomes a marker that never matches), then the count when has_n. */
static int rows_fetch(sqlite3 *db, const char *sql, struct rows *r)
{
        sqlite3_stmt *st;
        int rc, i;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "# SQL error: %s\n#   in: %s\n",
                        sqlite3_errmsg(db), sql);
                return -1;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct row *row = rows_add(r);

                for (i = 0; i < r->ncols; i++) {
                        int t = sqlite3_column_type(st, i);

                        if (t == SQLITE_TEXT)
                                row->col[i] = th_strndup(
                                        (const char *)sqlite3_column_text(st,
                                                                          i),
                                        (size_t)sqlite3_column_bytes(st, i));
                        else if (t == SQLITE_INTEGER)
                                row->col[i] = th_asprintf(
                                        "<integer %lld>",
                                        (long long)sqlite3_column_int64(st, i));
                        else if (t != SQLITE_NULL)
                                row->col[i] = th_asprintf("<type %d>", t);
                }
                if (r->has_n) {
                        row->n = sqlite3_column_type(st, r->ncols) ==
                                                 SQLITE_INTEGER
                                         ? sqlite3_column_int64(st, r->ncols)
                                         : LLONG_MIN;
                }
        }
        if (rc != SQLITE_DONE)
                fprintf(stderr, "# SQL error: %s\n#   in: %s\n",
                        sqlite3_errmsg(db), sql);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Expected view rows.
 */

/* One (window, call) pair before aggregation. */
struct went {
        const char *spec;
        char start[48];
        char end[48];
        const char *type;
        const char *disp; /* NULL: no or empty disposition */
};

static int went_cmp(const void *pa, const void *pb)
{
        const struct went *a = pa, *b = pb;
        int c;

        if ((c = strcmp(a->spec, b->spec)) ||
            (c = strcmp(a->start, b->start)) || (c = strcmp(a->end, b->end)) ||
            (c = strcmp(a->type, b->type)))
                return c;
        return col_cmp(a->disp, b->disp);
}

/* Builds the expected call_counts (cc) and disposition_counts (dc) rows of
 * model m under specs; radio maps disposition codes to descriptions. */
static void expected_views(const struct model *m, const struct spec *specs,
                           size_t n_specs, json_t *radio, struct rows *cc,
                           struct rows *dc)
{
        struct went *w = NULL;
        size_t n = 0, cap = 0, i, s;

        for (i = 0; i < m->n_calls; i++) {
                const struct xcall *c = &m->calls[i];

                for (s = 0; s < n_specs; s++) {
                        const struct spec *sp = &specs[s];
                        int64_t start;

                        /* Every multiple of slide with start <= t <
                         * start + size, walking down from the last one. */
                        for (start = tm_window_last(c->ts, sp->slide);
                             start + sp->size > c->ts; start -= sp->slide) {
                                if (n == cap) {
                                        cap = cap * 2 + 1024;
                                        w = th_realloc(w, cap * sizeof(*w));
                                }
                                w[n].spec = sp->name;
                                tm_format_sec(start, w[n].start);
                                tm_format_sec(start + sp->size, w[n].end);
                                w[n].type = c->f[F_TYPE];
                                w[n].disp = c->f[F_DISPOSITION] &&
                                                            *c->f[F_DISPOSITION]
                                                    ? c->f[F_DISPOSITION]
                                                    : NULL;
                                n++;
                        }
                }
        }
        qsort(w, n, sizeof(*w), went_cmp);
        for (i = 0; i < n; i++) {
                struct row *r;

                if (i == 0 || strcmp(w[i].spec, w[i - 1].spec) ||
                    strcmp(w[i].start, w[i - 1].start) ||
                    strcmp(w[i].end, w[i - 1].end) ||
                    strcmp(w[i].type, w[i - 1].type)) {
                        r = rows_add(cc);
                        r->col[0] = th_strdup(w[i].spec);
                        r->col[1] = th_strdup(w[i].start);
                        r->col[2] = th_strdup(w[i].end);
                        r->col[3] = th_strdup(w[i].type);
                }
                cc->v[cc->n - 1].n++;
                if (i == 0 || went_cmp(&w[i], &w[i - 1])) {
                        const char *desc = NULL;

                        if (w[i].disp)
                                desc = json_string_value(
                                        json_object_get(radio, w[i].disp));
                        r = rows_add(dc);
                        r->col[0] = th_strdup(w[i].spec);
                        r->col[1] = th_strdup(w[i].start);
                        r->col[2] = th_strdup(w[i].end);
                        r->col[3] = th_strdup(w[i].type);
                        r->col[4] = w[i].disp ? th_strdup(w[i].disp) : NULL;
                        r->col[5] = th_strdup(desc ? desc : "Unknown");
                }
                dc->v[dc->n - 1].n++;
        }
        free(w);
}

/*
 * Database checks.
 */

static sqlite3 *db_open(const char *path)
{
        sqlite3 *db = NULL;

        /* Read-write so that a hot journal left by kill -9 is rolled back. */
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK) {
                fprintf(stderr, "# cannot open %s: %s\n", path,
                        db ? sqlite3_errmsg(db) : "out of memory");
                sqlite3_close(db);
                return NULL;
        }
        sqlite3_busy_timeout(db, 10000);
        return db;
}

/* Returns the integer result of sql with ?1 bound to arg (may be NULL), or
 * LLONG_MIN on error. */
static long long db_int(sqlite3 *db, const char *sql, const char *arg)
{
        sqlite3_stmt *st;
        long long v = LLONG_MIN;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "# SQL error: %s\n#   in: %s\n",
                        sqlite3_errmsg(db), sql);
                return v;
        }
        if (arg)
                sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        else
                fprintf(stderr, "# SQL error: %s\n#   in: %s\n",
                        sqlite3_errmsg(db), sql);
        sqlite3_finalize(st);
        return v;
}

static int check_int(sqlite3 *db, const char *what, const char *sql,
                     const char *arg, long long expected)
{
        long long v = db_int(db, sql, arg);

        if (v == expected)
                return 0;
        fprintf(stderr, "# %s: expected %lld, got %lld\n#   (%s)\n", what,
                expected, v, sql);
        return 1;
}

static int check_views(sqlite3 *db, const struct model *m,
                       const struct spec *specs, size_t n_specs, json_t *radio)
{
        struct rows ecc = {.ncols = 4, .has_n = 1, .nkey = 4};
        struct rows edc = {.ncols = 6, .has_n = 1, .nkey = 6};
        struct rows acc = ecc, adc = edc;
        int bad = 0;

        expected_views(m, specs, n_specs, radio, &ecc, &edc);
        if (rows_fetch(db,
                       "SELECT window_spec, window_start, window_end, "
                       "crime_type, calls FROM call_counts ORDER BY "
                       "window_spec COLLATE BINARY, window_start COLLATE "
                       "BINARY, window_end COLLATE BINARY, crime_type "
                       "COLLATE BINARY",
                       &acc) ||
            rows_fetch(db,
                       "SELECT window_spec, window_start, window_end, "
                       "crime_type, disposition, disposition_description, "
                       "calls FROM disposition_counts ORDER BY window_spec "
                       "COLLATE BINARY, window_start COLLATE BINARY, "
                       "window_end COLLATE BINARY, crime_type COLLATE "
                       "BINARY, disposition COLLATE BINARY, "
                       "disposition_description COLLATE BINARY",
                       &adc))
                bad++;
        /* Our sort must agree with SQLite's ORDER BY for a merge. */
        rows_sort(&acc);
        rows_sort(&adc);
        if (rows_compare("call_counts", &ecc, &acc))
                bad++;
        if (rows_compare("disposition_counts", &edc, &adc))
                bad++;
        fprintf(stderr,
                "# views: %zu call_counts rows, %zu disposition_counts rows "
                "expected\n",
                ecc.n, edc.n);
        rows_free(&ecc);
        rows_free(&edc);
        rows_free(&acc);
        rows_free(&adc);
        return bad;
}

/* Every calls row, field by field, against the winning copy. */
static int check_calls(sqlite3 *db, const struct model *m, const char *topic)
{
        static const char *const names[] = {
                "crime_id",       "original_crime_type_name",
                "report_date",    "call_date",
                "offense_date",   "call_time",
                "call_date_time", "disposition",
                "address",        "city",
                "state",          "agency_id",
                "address_type",   "common_location",
                "call_ts",        "kafka_topic"};
        struct rows exp = {.ncols = NF + 2, .nkey = 1, .names = names};
        struct rows act = exp;
        size_t i;
        int j, bad = 0;

        for (i = 0; i < m->n_calls; i++) {
                struct row *r = rows_add(&exp);
                char ts[48];

                for (j = 0; j < NF; j++)
                        r->col[j] = m->calls[i].f[j]
                                            ? th_strdup(m->calls[i].f[j])
                                            : NULL;
                tm_format_ts(m->calls[i].ts * TM_USEC + m->calls[i].usec, ts);
                r->col[NF] = th_strdup(ts);
                r->col[NF + 1] = th_strdup(topic);
        }
        rows_sort(&exp);
        if (rows_fetch(db,
                       "SELECT crime_id, original_crime_type_name, "
                       "report_date, call_date, offense_date, call_time, "
                       "call_date_time, disposition, address, city, state, "
                       "agency_id, address_type, common_location, call_ts, "
                       "kafka_topic FROM calls ORDER BY crime_id COLLATE "
                       "BINARY",
                       &act))
                bad++;
        rows_sort(&act);
        if (rows_compare("calls", &exp, &act))
                bad++;
        rows_free(&exp);
        rows_free(&act);
        return bad;
}

static int xmsg_cmp(const void *pa, const void *pb)
{
        const struct xmsg *a = pa, *b = pb;
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->p, b->p, n);

        if (c)
                return c;
        if (a->len != b->len)
                return (a->len > b->len) - (a->len < b->len);
        return (a->size > b->size) - (a->size < b->size);
}

/* rejected_records holds exactly the invalid messages: the same payloads
 * (cut at PAYLOAD_MAX) with their full sizes, each with a reason. */
static int check_rejected(sqlite3 *db, const struct model *m)
{
        struct xmsg *exp = th_malloc((m->n_invalid + 1) * sizeof(*exp));
        struct xmsg *act = NULL;
        size_t n_act = 0, cap = 0, i, j, bad = 0, no_reason = 0;
        sqlite3_stmt *st;

        for (i = 0; i < m->n_invalid; i++) {
                exp[i].p = m->invalid[i].p;
                exp[i].len = m->invalid[i].len < PAYLOAD_MAX ? m->invalid[i].len
                                                             : PAYLOAD_MAX;
                exp[i].size = (long long)m->invalid[i].len;
        }
        if (sqlite3_prepare_v2(db,
                               "SELECT payload, payload_size, reason FROM "
                               "rejected_records",
                               -1, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "# SQL error: %s\n", sqlite3_errmsg(db));
                free(exp);
                return 1;
        }
        while (sqlite3_step(st) == SQLITE_ROW) {
                const void *p = sqlite3_column_blob(st, 0);
                size_t len = (size_t)sqlite3_column_bytes(st, 0);
                const char *reason = (const char *)sqlite3_column_text(st, 2);

                if (n_act == cap) {
                        cap = cap * 2 + 64;
                        act = th_realloc(act, cap * sizeof(*act));
                }
                act[n_act].p = th_strndup(p ? p : "", len);
                act[n_act].len = len;
                act[n_act++].size = sqlite3_column_int64(st, 1);
                if (!reason || !*reason)
                        no_reason++;
        }
        sqlite3_finalize(st);
        if (m->n_invalid)
                qsort(exp, m->n_invalid, sizeof(*exp), xmsg_cmp);
        if (n_act)
                qsort(act, n_act, sizeof(*act), xmsg_cmp);
        for (i = j = 0; i < m->n_invalid || j < n_act;) {
                int c = i == m->n_invalid ? 1
                        : j == n_act      ? -1
                                          : xmsg_cmp(&exp[i], &act[j]);
                const struct xmsg *x = c <= 0 ? &exp[i] : &act[j];

                if (c == 0) {
                        i++;
                        j++;
                        continue;
                }
                if (bad++ < MAX_SHOWN) {
                        fprintf(stderr,
                                "# rejected_records: payload %s (%zu bytes, "
                                "payload_size %lld):\n",
                                c < 0 ? "missing" : "unexpected", x->len,
                                x->size);
                        th_show_tail("payload", x->p,
                                     x->len < 300 ? x->len : 300);
                }
                if (c < 0)
                        i++;
                else
                        j++;
        }
        if (bad)
                fprintf(stderr,
                        "# rejected_records: %zu payload differences "
                        "(expected %zu, got %zu)\n",
                        bad, m->n_invalid, n_act);
        if (no_reason)
                fprintf(stderr,
                        "# rejected_records: %zu rows without a reason\n",
                        no_reason);
        for (i = 0; i < n_act; i++)
                free(act[i].p);
        free(act);
        free(exp);
        return (bad != 0) + (no_reason != 0);
}

/* Compares the whole database at path with the expectation of model m
 * produced into topic and ingested under specs; fails the test on any
 * difference after printing the first ones. */
static void check_db(const char *path, const struct model *m, const char *topic,
                     const struct spec *specs, size_t n_specs, json_t *radio)
{
        sqlite3 *db = db_open(path);
        int bad = 0;

        assert_non_null(db);
        fprintf(stderr,
                "# expected: %zu messages, %zu calls, %zu rejected, %zu "
                "later copies\n",
                m->n_messages, m->n_calls, m->n_invalid, m->n_copies);
        bad += check_int(db, "COUNT(*) of calls", "SELECT COUNT(*) FROM calls",
                         NULL, (long long)m->n_calls);
        bad += check_int(db, "COUNT(*) of rejected_records",
                         "SELECT COUNT(*) FROM rejected_records", NULL,
                         (long long)m->n_invalid);
        bad += check_int(db, "sum of kafka_offsets.next_offset",
                         "SELECT COALESCE(SUM(next_offset), 0) FROM "
                         "kafka_offsets WHERE topic = ?1",
                         topic, (long long)m->n_messages);
        /* A message is a call or a reject, never both, never twice. */
        bad += check_int(db, "messages stored twice",
                         "SELECT COUNT(*) FROM (SELECT 1 FROM (SELECT "
                         "kafka_topic, kafka_partition, kafka_offset FROM "
                         "calls UNION ALL SELECT kafka_topic, "
                         "kafka_partition, kafka_offset FROM "
                         "rejected_records) GROUP BY kafka_topic, "
                         "kafka_partition, kafka_offset HAVING COUNT(*) > "
                         "1)",
                         NULL, 0);
        bad += check_int(db, "calls or rejects at or past next_offset",
                         "SELECT COUNT(*) FROM (SELECT kafka_topic, "
                         "kafka_partition, kafka_offset FROM calls UNION ALL "
                         "SELECT kafka_topic, kafka_partition, kafka_offset "
                         "FROM rejected_records) AS m WHERE NOT EXISTS "
                         "(SELECT 1 FROM kafka_offsets o WHERE o.topic = "
                         "m.kafka_topic AND o.kafka_partition = "
                         "m.kafka_partition AND m.kafka_offset >= 0 AND "
                         "m.kafka_offset < o.next_offset)",
                         NULL, 0);
        bad += check_views(db, m, specs, n_specs, radio);
        bad += check_calls(db, m, topic);
        bad += check_rejected(db, m);
        sqlite3_close(db);
        if (bad)
                fail_msg("%s: %d check(s) failed (details above)", path, bad);
}

/*
 * Dumps: canonical text of tables and views, one line per row, for
 * before/after comparisons.
 */

static void dump_value(sqlite3_stmt *st, int i, struct th_buf *out)
{
        const unsigned char *p;
        int n, k;

        switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL:
                th_buf_add(out, "NULL", 4);
                break;
        case SQLITE_INTEGER:
                th_buf_addf(out, "%lld",
                            (long long)sqlite3_column_int64(st, i));
                break;
        case SQLITE_FLOAT:
                th_buf_addf(out, "%.17g", sqlite3_column_double(st, i));
                break;
        default:
                /* Text and blobs both as quoted, escaped bytes, the type
                 * marked so that 'x' and x'78' differ. */
                th_buf_add(out,
                           sqlite3_column_type(st, i) == SQLITE_BLOB ? "x'"
                                                                     : "'",
                           sqlite3_column_type(st, i) == SQLITE_BLOB ? 2 : 1);
                p = sqlite3_column_blob(st, i);
                n = sqlite3_column_bytes(st, i);
                for (k = 0; k < n; k++) {
                        if (p[k] < 0x20 || p[k] >= 0x7f || p[k] == '\'' ||
                            p[k] == '\\')
                                th_buf_addf(out, "\\x%02x", p[k]);
                        else
                                th_buf_add(out, &p[k], 1);
                }
                th_buf_add(out, "'", 1);
        }
}

/* Appends the rows of table (or view) name, without the columns in skip
 * (NULL-terminated), ordered by every column. */
static void dump_table(sqlite3 *db, const char *name, const char *const *skip,
                       struct th_buf *out)
{
        struct th_buf sql = {0}, order = {0};
        sqlite3_stmt *st;
        char *q =
                sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q)", name);
        int n = 0, i;

        assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
        sqlite3_free(q);
        th_buf_add(&sql, "SELECT ", 7);
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *col = (const char *)sqlite3_column_text(st, 0);
                const char *const *s;
                int skipped = 0;

                for (s = skip; *s; s++)
                        if (!strcmp(*s, col))
                                skipped = 1;
                if (skipped)
                        continue;
                q = sqlite3_mprintf("%s\"%w\"", n ? ", " : "", col);
                th_buf_addf(&sql, "%s", q);
                sqlite3_free(q);
                th_buf_addf(&order, "%s%d", n ? ", " : "", n + 1);
                n++;
        }
        sqlite3_finalize(st);
        if (n == 0) {
                th_buf_addf(out, "%s: no such table or no columns\n", name);
                th_buf_free(&sql);
                th_buf_free(&order);
                return;
        }
        q = sqlite3_mprintf(" FROM \"%w\" ORDER BY %s", name, order.p);
        th_buf_addf(&sql, "%s", q);
        sqlite3_free(q);
        if (sqlite3_prepare_v2(db, sql.p, -1, &st, NULL) != SQLITE_OK) {
                th_buf_addf(out, "%s: %s\n", name, sqlite3_errmsg(db));
        } else {
                while (sqlite3_step(st) == SQLITE_ROW) {
                        th_buf_addf(out, "%s|", name);
                        for (i = 0; i < n; i++) {
                                if (i)
                                        th_buf_add(out, "|", 1);
                                dump_value(st, i, out);
                        }
                        th_buf_add(out, "\n", 1);
                }
                sqlite3_finalize(st);
        }
        th_buf_free(&sql);
        th_buf_free(&order);
}

static const char *const timestamp_cols[] = {"ingested_at", "rejected_at",
                                             "updated_at",  "high_watermark_at",
                                             "detected_at", NULL};

/* Dumps the schema and every table and view of the database at path, minus
 * the timestamp columns. */
static void dump_all(const char *path, struct th_buf *out)
{
        static const char *const schema_skip[] = {"rootpage", NULL};
        sqlite3 *db = db_open(path);
        sqlite3_stmt *st;

        assert_non_null(db);
        dump_table(db, "sqlite_schema", schema_skip, out);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT name FROM sqlite_schema "
                                            "WHERE type IN ('table', 'view') "
                                            "AND name NOT LIKE 'sqlite_%' "
                                            "ORDER BY name",
                                            -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
                dump_table(db, (const char *)sqlite3_column_text(st, 0),
                           timestamp_cols, out);
        sqlite3_finalize(st);
        sqlite3_close(db);
}

/* The dump test 4 compares: what must not depend on how often ingest was
 * interrupted. */
static void dump_state(const char *path, struct th_buf *out)
{
        static const char *const none[] = {NULL};
        static const char *const calls_skip[] = {"ingested_at", NULL};
        static const char *const rejected_skip[] = {"id", "rejected_at", NULL};
        static const char *const offsets_skip[] = {"updated_at",
                                                   "high_watermark_at", NULL};
        sqlite3 *db = db_open(path);

        assert_non_null(db);
        dump_table(db, "calls", calls_skip, out);
        dump_table(db, "call_counts", none, out);
        dump_table(db, "disposition_counts", none, out);
        dump_table(db, "rejected_records", rejected_skip, out);
        dump_table(db, "kafka_offsets", offsets_skip, out);
        sqlite3_close(db);
}

/* Returns 0 when the dumps are equal; otherwise prints the first differing
 * line of each and returns 1. */
static int dumps_differ(const char *what, const struct th_buf *a,
                        const struct th_buf *b)
{
        size_t i = 0, line = 1, ls = 0;
        const char *ea, *eb;

        if (a->len == b->len && !memcmp(a->p, b->p, a->len))
                return 0;
        while (i < a->len && i < b->len && a->p[i] == b->p[i]) {
                if (a->p[i] == '\n') {
                        line++;
                        ls = i + 1;
                }
                i++;
        }
        ea = memchr(a->p + ls, '\n', a->len - ls);
        eb = memchr(b->p + ls, '\n', b->len - ls);
        fprintf(stderr,
                "# %s: dumps differ (%zu vs %zu bytes), first at line %zu:\n"
                "#   - %.*s\n#   + %.*s\n",
                what, a->len, b->len, line,
                (int)((ea ? ea : a->p + a->len) - (a->p + ls)), a->p + ls,
                (int)((eb ? eb : b->p + b->len) - (b->p + ls)), b->p + ls);
        return 1;
}

/*
 * Fixture: a temporary directory and one broker for the whole group.
 */

struct e2e {
        char dir[PATH_MAX];
        char *bin;
        char *data;
        json_t *radio; /* disposition_code -> description */
        struct th_broker broker;
        unsigned rng;

        /* Test 1's stream, database and expectation, reused by test 3. */
        char *db1;
        struct model *m1;
        int db1_ingested;
};

static char *path_in(const struct e2e *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

static unsigned rand_next(struct e2e *st)
{
        st->rng ^= st->rng << 13;
        st->rng ^= st->rng >> 17;
        st->rng ^= st->rng << 5;
        return st->rng;
}

static int group_teardown(void **state)
{
        struct e2e *st = *state;
        int failed = 0;

        if (!st)
                return 0;
        if (th_broker_stop(&st->broker) < 0)
                failed = 1;
        th_children_kill_all();
        th_tmpdir_remove(st->dir);
        model_free(st->m1);
        json_decref(st->radio);
        free(st->db1);
        free(st->bin);
        free(st->data);
        free(st);
        *state = NULL;
        return failed ? -1 : 0;
}

static int group_setup(void **state)
{
        struct e2e *st = calloc(1, sizeof(*st));
        const char *seed = getenv("E2E_SEED");
        static const char *const broker_args[] = {
                "--partitions", "4",      "--topic", "calls",
                "--topic",      "sample", "--topic", "calls2",
                "--topic",      "norm",   NULL};
        char *radio_path, *err_path;
        int r;

        if (!st)
                return -1;
        *state = st;
        signal(SIGPIPE, SIG_IGN);
        if (th_find_bin_data(&st->bin, &st->data))
                goto fail;
        radio_path = th_asprintf("%s/radio_code.json", st->data);
        st->radio = tm_load_radio_codes(radio_path);
        free(radio_path);
        if (!st->radio)
                goto fail;
        st->rng = seed ? (unsigned)strtoul(seed, NULL, 10)
                       : (unsigned)time(NULL) ^ (unsigned)getpid();
        if (!st->rng)
                st->rng = 1;
        fprintf(stderr, "# E2E_SEED=%u\n", st->rng);

        if (th_tmpdir_make("callstream-e2e", st->dir, sizeof(st->dir)))
                goto fail;

        /* One broker for all tests; each test has its own topic. */
        err_path = path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, err_path);
        free(err_path);
        if (r < 0)
                goto fail;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

static void assert_broker_alive(struct e2e *st)
{
        th_broker_assert_alive(&st->broker);
}

/*
 * Commands.
 */

static void generate(struct e2e *st, const char *count, const char *seed,
                     const char *out_path)
{
        struct th_args a = {0};
        struct th_run r;

        th_args_addv(&a, st->bin, "generate", "--count", count, "--seed", seed,
                     "--duplicates", "0.05", "--changed-duplicates", "0.03",
                     "--out-of-order", "0.1", "--malformed", "0.03",
                     "--int-ids", "0.05", "--output", out_path, NULL);
        th_run_ok(&a, &r);
        th_run_free(&r);
        th_args_free(&a);
}

static void produce(struct e2e *st, const char *topic, const char *file)
{
        struct th_args a = {0};
        struct th_run r;

        th_args_addv(&a, st->bin, "produce", "--brokers", st->broker.brokers,
                     "--topic", topic, file, NULL);
        th_run_ok(&a, &r);
        th_run_free(&r);
        th_args_free(&a);
}

/* The ingest command line; exit_at_end 0 for the runs that get killed. */
static void ingest_args(struct e2e *st, struct th_args *a, const char *topic,
                        const char *db, const struct spec *specs,
                        size_t n_specs, const char *batch, int exit_at_end)
{
        size_t i;

        th_args_addv(a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", topic, "--db", db, "--from-beginning", NULL);
        if (exit_at_end)
                th_args_add(a, "--exit-at-end");
        for (i = 0; i < n_specs; i++)
                if (specs[i].arg)
                        th_args_addv(a, "--window", specs[i].arg, NULL);
        if (batch)
                th_args_addv(a, "--batch-max-records", batch, NULL);
}

static void ingest(struct e2e *st, const char *topic, const char *db,
                   const struct spec *specs, size_t n_specs, const char *batch)
{
        struct th_args a = {0};
        struct th_run r;

        ingest_args(st, &a, topic, db, specs, n_specs, batch, 1);
        th_run_ok(&a, &r);
        th_run_free(&r);
        th_args_free(&a);
}

/*
 * Tests.
 */

/* 1. A generated stream with duplicates, changed duplicates, out-of-order
 * times, malformed messages and integer ids, in full. */
static void test_generated_stream(void **state)
{
        struct e2e *st = *state;
        char *gen = path_in(st, "gen1.ndjson");

        assert_broker_alive(st);
        st->db1 = path_in(st, "gen1.db");
        generate(st, GEN_COUNT, GEN_SEED, gen);
        st->m1 = model_from_ndjson(gen);
        assert_true(st->m1->n_invalid > 0);
        assert_true(st->m1->n_copies > 0);
        produce(st, "calls", gen);
        ingest(st, "calls", st->db1, specs_gen, 3, "500");
        st->db1_ingested = 1;
        free(gen);
        check_db(st->db1, st->m1, "calls", specs_gen, 3, st->radio);
}

/* 2. The real sample (a JSON array of 700 records) under the default
 * window. */
static void test_sample_file(void **state)
{
        struct e2e *st = *state;
        char *file = th_asprintf(
                "%s/police-department-calls-for-service.sample.json", st->data);
        char *db_path = path_in(st, "sample.db");
        struct model *m = model_from_array(file);
        long long not_recorded = 0, got;
        size_t i;
        sqlite3 *db;

        assert_int_equal(m->n_messages, 700);
        assert_int_equal(m->n_invalid, 0);
        assert_int_equal(m->n_calls, 700);
        for (i = 0; i < m->n_calls; i++)
                if (m->calls[i].f[F_DISPOSITION] &&
                    !strcmp(m->calls[i].f[F_DISPOSITION], "Not recorded"))
                        not_recorded++;
        assert_true(not_recorded > 0);
        assert_null(json_object_get(st->radio, "Not recorded"));
        assert_broker_alive(st);

        produce(st, "sample", file);
        ingest(st, "sample", db_path, specs_default, 1, NULL);
        check_db(db_path, m, "sample", specs_default, 1, st->radio);

        /* Each call is in exactly one 1h window. */
        db = db_open(db_path);
        assert_non_null(db);
        got = db_int(db,
                     "SELECT COALESCE(SUM(calls), 0) FROM disposition_counts "
                     "WHERE window_spec = '1h' AND disposition = ?1 AND "
                     "disposition_description = 'Unknown'",
                     "Not recorded");
        sqlite3_close(db);
        fprintf(stderr, "# 'Not recorded' calls: expected %lld, got %lld\n",
                not_recorded, got);
        assert_int_equal(got, not_recorded);
        model_free(m);
        free(file);
        free(db_path);
}

/* 3. Ingesting test 1's topic again into its database changes nothing
 * (timestamps aside). */
static void test_rerun_idempotent(void **state)
{
        struct e2e *st = *state;
        struct th_buf before = {0}, after = {0};
        int differ;

        if (!st->db1_ingested)
                skip();
        assert_broker_alive(st);
        dump_all(st->db1, &before);
        ingest(st, "calls", st->db1, specs_gen, 3, "500");
        dump_all(st->db1, &after);
        differ = dumps_differ("rerun", &before, &after);
        fprintf(stderr, "# dump: %zu bytes\n", before.len);
        th_buf_free(&before);
        th_buf_free(&after);
        assert_false(differ);
}

/* Removes a database and its journal files. */
static void remove_db(const char *path)
{
        static const char *const suffix[] = {"", "-journal", "-wal", "-shm"};
        size_t i;

        for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
                char *p = th_asprintf("%s%s", path, suffix[i]);

                unlink(p);
                free(p);
        }
}

/* sum(next_offset) of topic in the database at path; 0 when there is no
 * database or table yet. */
static long long progress(const char *path, const char *topic)
{
        sqlite3 *db = NULL;
        long long v = 0;
        sqlite3_stmt *st;

        if (access(path, F_OK))
                return 0;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
                    SQLITE_OK &&
            sqlite3_busy_timeout(db, 10000) == SQLITE_OK &&
            sqlite3_prepare_v2(db,
                               "SELECT COALESCE(SUM(next_offset), 0) FROM "
                               "kafka_offsets WHERE topic = ?1",
                               -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
                if (sqlite3_step(st) == SQLITE_ROW)
                        v = sqlite3_column_int64(st, 0);
                sqlite3_finalize(st);
        }
        sqlite3_close(db);
        return v;
}

/* Starts an ingest that does not exit by itself, lets it run delay_ms and
 * kills it with SIGKILL. Returns 0, or -1 when it had already ended with an
 * error (shown). */
static int ingest_killed(struct e2e *st, const char *topic, const char *db,
                         int64_t delay_ms, int n)
{
        struct th_args a = {0};
        char *log = th_asprintf("%s/kill%d.err", st->dir, n);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        pid_t pid;
        int rc;

        assert_true(fd >= 0);
        ingest_args(st, &a, topic, db, specs_gen, 3, "200", 0);
        pid = th_spawn(&a, fd, fd);
        close(fd);
        assert_true(pid > 0);
        th_sleep_ms(delay_ms);
        kill(pid, SIGKILL);
        rc = th_wait_until(pid, th_now_ms() + 10000);
        th_args_free(&a);
        if (rc != 128 + SIGKILL) {
                struct th_buf e = {0};

                fprintf(stderr,
                        "# killed ingest #%d had already ended with %d\n", n,
                        rc);
                if (!th_read_file(log, &e))
                        th_show_tail("its stderr", e.p, e.len);
                th_buf_free(&e);
                free(log);
                return -1;
        }
        free(log);
        return 0;
}

/* 4. kill -9 at random points, then a final run: the same database as one
 * uninterrupted run. */
static void test_kill9(void **state)
{
        struct e2e *st = *state;
        char *gen = path_in(st, "gen2.ndjson");
        char *db_a = path_in(st, "kill_a.db");
        char *db_b = path_in(st, "kill_b.db");
        struct th_buf da = {0}, db = {0};
        struct model *m;
        long long total, got;
        int partial = 0, i, errors = 0, differ;
        int64_t lo = 0, hi = -1, delay;

        assert_broker_alive(st);
        generate(st, GEN2_COUNT, GEN2_SEED, gen);
        m = model_from_ndjson(gen);
        total = (long long)m->n_messages;
        produce(st, "calls2", gen);
        ingest(st, "calls2", db_a, specs_gen, 3, NULL);

        /* Five kills at random delays on the same database. */
        for (i = 0; i < 5; i++) {
                delay = 50 + rand_next(st) % 351;
                errors += ingest_killed(st, "calls2", db_b, delay, i) != 0;
                got = progress(db_b, "calls2");
                fprintf(stderr, "# kill #%d after %lld ms: %lld of %lld\n", i,
                        (long long)delay, got, total);
                if (got > 0 && got < total)
                        partial = 1;
        }
        /* No kill landed mid-way: the machine is faster or slower than
         * the delays assumed. Bisect the delay, on a fresh database each
         * time, until one does, then kill a few more times on top. */
        if (!partial && got == 0)
                lo = 400;
        else if (!partial)
                hi = 400;
        for (i = 5; !partial && i < 20 && (hi < 0 || hi - lo > 2) && lo < 10000;
             i++) {
                delay = hi < 0 ? lo * 2 : (lo + hi) / 2;
                remove_db(db_b);
                errors += ingest_killed(st, "calls2", db_b, delay, i) != 0;
                got = progress(db_b, "calls2");
                fprintf(stderr, "# kill #%d after %lld ms: %lld of %lld\n", i,
                        (long long)delay, got, total);
                if (got == 0)
                        lo = delay;
                else if (got >= total)
                        hi = delay;
                else
                        partial = 1;
        }
        for (i = 20; partial && i < 23; i++) {
                delay = 50 + rand_next(st) % 351;
                errors += ingest_killed(st, "calls2", db_b, delay, i) != 0;
                fprintf(stderr, "# kill #%d after %lld ms: %lld of %lld\n", i,
                        (long long)delay, progress(db_b, "calls2"), total);
        }
        assert_int_equal(errors, 0);
        if (!partial)
                fail_msg("no kill left a partial result in %s", db_b);
        ingest(st, "calls2", db_b, specs_gen, 3, "200");

        dump_state(db_a, &da);
        dump_state(db_b, &db);
        differ = dumps_differ("uninterrupted vs killed", &da, &db);
        fprintf(stderr, "# dump: %zu bytes\n", da.len);
        th_buf_free(&da);
        th_buf_free(&db);
        assert_false(differ);
        check_db(db_b, m, "calls2", specs_gen, 3, st->radio);
        model_free(m);
        free(gen);
        free(db_a);
        free(db_b);
}

/* 6. Window specs are stored under their normalised names, and windows of
 * any size are aligned to 1970-01-01 00:00:00. */
static void test_window_names(void **state)
{
        struct e2e *st = *state;
        char *file = th_asprintf(
                "%s/police-department-calls-for-service.sample.json", st->data);
        char *db_path = path_in(st, "norm.db");
        struct model *m = model_from_array(file);

        assert_broker_alive(st);
        produce(st, "norm", file);
        ingest(st, "norm", db_path, specs_norm, 3, NULL);
        check_db(db_path, m, "norm", specs_norm, 3, st->radio);
        model_free(m);
        free(file);
        free(db_path);
}

/* Runs a and expects exit status 2 with one stderr line containing
 * needle. Returns the number of problems (printed). */
static int expect_usage_error(const struct th_args *a, const char *needle)
{
        struct th_run r;
        char *cmd = th_args_str(a);
        int bad = 0;

        th_run_args(a, CLI_TIMEOUT_MS, &r);
        if (r.status != 2 || th_count_lines(r.err.p, r.err.len) != 1 ||
            !strstr(r.err.p, needle)) {
                fprintf(stderr,
                        "# '%s': expected exit 2 and one stderr line naming "
                        "'%s'; got exit %d and %d line(s):\n",
                        cmd, needle, r.status,
                        th_count_lines(r.err.p, r.err.len));
                th_show_tail("stderr", r.err.p, r.err.len);
                bad = 1;
        }
        th_run_free(&r);
        free(cmd);
        return bad;
}

/* 5. The command-line contract. */
static void test_cli_contract(void **state)
{
        static const char *const cmds[] = {"broker", "produce", "generate",
                                           "migrate", "ingest"};
        struct e2e *st = *state;
        struct th_args a = {0};
        struct th_run r;
        char *db_path = path_in(st, "cli.db");
        int bad = 0;
        size_t i;

        th_args_addv(&a, st->bin, "ingest", "--bogus", NULL);
        bad += expect_usage_error(&a, "--bogus");
        th_args_free(&a);

        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", "calls", "--db", db_path, "--window", "1x",
                     NULL);
        bad += expect_usage_error(&a, "--window");
        th_args_free(&a);

        for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                char *cmd;

                th_args_addv(&a, st->bin, cmds[i], "--help", NULL);
                cmd = th_args_str(&a);
                th_run_args(&a, CLI_TIMEOUT_MS, &r);
                if (r.status != 0 || r.out.len == 0) {
                        fprintf(stderr,
                                "# '%s': expected exit 0 and help on "
                                "stdout; got exit %d, %zu bytes\n",
                                cmd, r.status, r.out.len);
                        th_show_tail("stderr", r.err.p, r.err.len);
                        bad++;
                }
                th_run_free(&r);
                free(cmd);
                th_args_free(&a);

                /* Every subcommand rejects an unknown flag the same way. */
                th_args_addv(&a, st->bin, cmds[i], "--bogus", NULL);
                bad += expect_usage_error(&a, "--bogus");
                th_args_free(&a);
        }
        free(db_path);
        if (bad)
                fail_msg("%d CLI contract violation(s) (details above)", bad);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_generated_stream,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_sample_file, th_test_teardown),
                cmocka_unit_test_teardown(test_rerun_idempotent,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_kill9, th_test_teardown),
                cmocka_unit_test_teardown(test_cli_contract, th_test_teardown),
                cmocka_unit_test_teardown(test_window_names, th_test_teardown),
        };

        return cmocka_run_group_tests_name("e2e", tests, group_setup,
                                           group_teardown);
}
