/* test_pg_copy.c: the calls as the PostgreSQL sink copies them in (binary
 * COPY, sink_pg.c put_call_row) come back column for column as the input
 * gave them.
 *
 * - `ingest --file` of records whose fields hold tabs, newlines, carriage
 *   returns, backslashes, quotes, COPY's own markers (\N, \.), non-ASCII
 *   UTF-8 (raw and as \u escapes), empty strings, JSON nulls, missing
 *   fields, numbers and a field longer than 64 KiB, timed before 1970 and
 *   2000, on leap days, at the first and last representable instants and
 *   with microseconds: every column of calls equals what this file works
 *   out from its own input (JSON text written here, times normalised as
 *   PostgreSQL prints them, watermarks as the running maximum). Then the
 *   same with --on-duplicate update, whose changed copies and new calls go
 *   through the staging table;
 * - records with invalid UTF-8 or U+0000 are rejected_records, not calls,
 *   and the records around them are stored;
 * - through the sink itself: the largest partition and offsets, and text
 *   that is not UTF-8 or holds a NUL, which the parser never lets through:
 *   the server refuses it (22021), the batch is rolled back and the
 *   connection serves the next one;
 * - a second copy of the largest crime_id stored, and of one below it, is
 *   found stored (the lookup skips only the crime_ids past the largest).
 *
 * The group setup starts a PostgreSQL server of its own. Timeouts are hang
 * guards only. E2E_KEEP=1 keeps the folder. */
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

#include "cs_batch.h"
#include "cs_parse.h"
#include "cs_sink.h"
#include "harness.h"
#include "pgutil.h"

#define WATCHDOG_S 600
#define MAX_SHOWN  10
#define NFIELDS    14

/* The record's keys, in the order of calls' first columns. */
static const char *const names[NFIELDS] = {
        "crime_id",       "original_crime_type_name",
        "report_date",    "call_date",
        "offense_date",   "call_time",
        "call_date_time", "disposition",
        "address",        "city",
        "state",          "agency_id",
        "address_type",   "common_location"};

enum { F_ID = 0, F_TYPE = 1, F_DT = 6, F_DISP = 7, F_ADDR = 8 };

struct st {
        char dir[PATH_MAX];
        char *bin;
        char *data_dir;
        struct th_pg pg;
};

/* How a field appears in a record. */
enum kind { ABSENT = 0, JNULL, STR, RAW };

/* One field: a string (its bytes: what calls must hold), written escaped
 * as JSON here; or RAW JSON text (a number, true), which calls holds as
 * written. */
struct field {
        enum kind kind;
        const char *s;
        size_t len; /* 0: strlen(s) */
};

/* A line of input: a record, a line written as is (bad), or blank. */
struct line {
        struct field f[NFIELDS];
        const char *bad; /* when set: the whole line, a record to reject */
        int blank;
};

/* What calls must hold for one crime_id. */
struct want {
        char *id;
        struct th_buf row; /* the rendered columns up to call_ts */
        char ts[40];       /* call_ts, fixed width for comparison */
        char *topic;
        long long offset;
        char mark[40]; /* "" for NULL */
        struct field f[NFIELDS];
};

struct model {
        struct want w[64];
        size_t n;
};

static size_t flen(const struct field *f)
{
        return f->len ? f->len : strlen(f->s);
}

/* Appends s as a JSON string: quote, backslash and control bytes escaped
 * (some as \u00XX), the rest, UTF-8 included, as is. */
static void put_json_string(struct th_buf *b, const char *s, size_t n)
{
        size_t i;

        th_buf_add(b, "\"", 1);
        for (i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c == '"' || c == '\\')
                        th_buf_addf(b, "\\%c", c);
                else if (c == '\n')
                        th_buf_add(b, "\\n", 2);
                else if (c == '\t')
                        th_buf_add(b, "\\t", 2);
                else if (c < 0x20)
                        th_buf_addf(b, "\\u%04x", c);
                else
                        th_buf_add(b, &s[i], 1);
        }
        th_buf_add(b, "\"", 1);
}

static void write_input(const char *path, const struct line *lines, size_t n)
{
        struct th_buf b = {0};
        size_t i;
        int f, first;

        for (i = 0; i < n; i++) {
                if (lines[i].blank) {
                        th_buf_add(&b, "\n", 1);
                        continue;
                }
                if (lines[i].bad) {
                        th_buf_addf(&b, "%s\n", lines[i].bad);
                        continue;
                }
                th_buf_add(&b, "{", 1);
                for (f = 0, first = 1; f < NFIELDS; f++) {
                        const struct field *fd = &lines[i].f[f];

                        if (fd->kind == ABSENT)
                                continue;
                        th_buf_addf(&b, "%s\"%s\": ", first ? "" : ", ",
                                    names[f]);
                        first = 0;
                        if (fd->kind == JNULL)
                                th_buf_add(&b, "null", 4);
                        else if (fd->kind == RAW)
                                th_buf_add(&b, fd->s, strlen(fd->s));
                        else
                                put_json_string(&b, fd->s, flen(fd));
                }
                th_buf_add(&b, "}\n", 2);
        }
        assert_int_equal(th_write_file(path, b.p, 0), 0);
        th_buf_free(&b);
}

/* "YYYY-MM-DD[T ]HH:MM[:SS[.f]]" as "YYYY-MM-DD HH:MM:SS.ffffff". */
static void fixed_time(const char *in, char *out)
{
        const char *frac;
        char digits[7] = "000000";
        size_t k;

        snprintf(out, 40, "%.10s %.5s:%.2s", in, in + 11,
                 strlen(in) >= 19 ? in + 17 : "00");
        frac = strlen(in) > 19 ? in + 20 : "";
        for (k = 0; k < 6 && frac[k]; k++)
                digits[k] = frac[k];
        strcat(out, ".");
        strcat(out, digits);
}

/* A fixed time as PostgreSQL prints a timestamp: trailing zeros of the
 * fraction dropped, and the dot with them when none is left. */
static void pg_text(const char *fixed, struct th_buf *b)
{
        size_t n = strlen(fixed);

        while (fixed[n - 1] == '0')
                n--;
        if (fixed[n - 1] == '.')
                n--;
        th_put_quoted(b, (const unsigned char *)fixed, n);
}

static void put_col(struct th_buf *b, const struct field *f)
{
        th_buf_add(b, b->len ? "|" : "", b->len ? 1 : 0);
        if (f->kind == ABSENT || f->kind == JNULL)
                th_buf_add(b, "NULL", 4);
        else if (f->kind == RAW)
                th_put_quoted(b, (const unsigned char *)f->s, strlen(f->s));
        else
                th_put_quoted(b, (const unsigned char *)f->s, flen(f));
}

/* Whether two records have the same fields (NULL and absent alike, as
 * both are stored as NULL). */
static int same_fields(const struct field *a, const struct field *b)
{
        int f;

        for (f = 0; f < NFIELDS; f++) {
                int na = a[f].kind == ABSENT || a[f].kind == JNULL;
                int nb = b[f].kind == ABSENT || b[f].kind == JNULL;

                if (na != nb)
                        return 0;
                if (!na && (flen(&a[f]) != flen(&b[f]) ||
                            memcmp(a[f].s, b[f].s, flen(&a[f]))))
                        return 0;
        }
        return 1;
}

/* Plays one replay of lines under topic into the model: the offset is the
 * line number, the watermark (lateness 0) the highest call_ts before the
 * record in this topic, duplicates move it too; the first copy stays,
 * unless update and it differs. */
static void model_play(struct model *m, const struct line *lines, size_t n,
                       const char *topic, int update)
{
        char max[40] = "";
        size_t i, j;
        int f;

        for (i = 0; i < n; i++) {
                const struct line *l = &lines[i];
                struct want *w = NULL;
                char ts[40];

                if (l->blank || l->bad)
                        continue;
                fixed_time(l->f[F_DT].s, ts);
                for (j = 0; j < m->n; j++)
                        if (!strcmp(m->w[j].id, l->f[F_ID].s))
                                w = &m->w[j];
                if (w && (!update || same_fields(w->f, l->f))) {
                        if (strcmp(ts, max) > 0)
                                strcpy(max, ts);
                        continue;
                }
                if (!w) {
                        assert_true(m->n < 64);
                        w = &m->w[m->n++];
                        w->id = th_strdup(l->f[F_ID].s);
                } else {
                        th_buf_free(&w->row);
                        free(w->topic);
                }
                memset(&w->row, 0, sizeof(w->row));
                memcpy(w->f, l->f, sizeof(w->f));
                for (f = 0; f < NFIELDS; f++)
                        put_col(&w->row, &l->f[f]);
                strcpy(w->ts, ts);
                w->topic = th_strdup(topic);
                w->offset = (long long)i + 1;
                strcpy(w->mark, max);
                if (strcmp(ts, max) > 0)
                        strcpy(max, ts);
        }
}

static void model_lines(const struct model *m, const char *policy,
                        struct th_lines *out)
{
        size_t i;

        for (i = 0; i < m->n; i++) {
                const struct want *w = &m->w[i];
                struct th_buf b = {0};

                th_buf_add(&b, w->row.p, w->row.len);
                th_buf_add(&b, "|", 1);
                pg_text(w->ts, &b);
                th_buf_add(&b, "|", 1);
                th_put_quoted(&b, (const unsigned char *)w->topic,
                              strlen(w->topic));
                th_buf_addf(&b, "|0|%lld|", w->offset);
                if (*w->mark)
                        pg_text(w->mark, &b);
                else
                        th_buf_add(&b, "NULL", 4);
                th_buf_addf(&b, "|'%s'|'true'", policy);
                th_lines_add(out, b.p);
        }
        th_lines_sort(out);
}

static void model_free(struct model *m)
{
        size_t i;

        for (i = 0; i < m->n; i++) {
                free(m->w[i].id);
                free(m->w[i].topic);
                th_buf_free(&m->w[i].row);
        }
        m->n = 0;
}

/* Every column of calls but ingested_at, which must be the time of the
 * ingest (its default: the transaction's time, UTC). */
static const char calls_sql[] =
        "SELECT crime_id, original_crime_type_name, report_date, call_date, "
        "offense_date, call_time, call_date_time, disposition, address, city, "
        "state, agency_id, address_type, common_location, call_ts::text, "
        "kafka_topic, kafka_partition, kafka_offset, "
        "watermark_at_count::text, late_policy, "
        "(ingested_at BETWEEN (now() AT TIME ZONE 'UTC') - interval '1 hour' "
        "AND (now() AT TIME ZONE 'UTC'))::text FROM calls";

static size_t compare_calls(PGconn *c, const struct model *m,
                            const char *policy)
{
        struct th_lines want = {0}, got = {0};
        size_t bad;

        model_lines(m, policy, &want);
        assert_int_equal(th_pg_lines(c, calls_sql, &got), 0);
        th_lines_sort(&got);
        bad = th_lines_compare("calls", "the input", &want, "PostgreSQL", &got,
                               MAX_SHOWN);
        th_lines_free(&want);
        th_lines_free(&got);
        return bad;
}

static int group_teardown(void **state)
{
        struct st *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_pg_stop(&st->pg);
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->data_dir);
        free(st);
        *state = NULL;
        return 0;
}

static int group_setup(void **state)
{
        struct st *st = calloc(1, sizeof(*st));

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_pg_copy", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data_dir) ||
            th_tmpdir_make("callstream-pgcopy", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        if (th_pg_start(&st->pg, st->dir, 0) < 0)
                goto fail;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

static void ingest(const struct st *st, const char *file, const char *topic,
                   const char *db, const char *extra)
{
        struct th_args a = {0};
        char *ci = th_pg_conninfo(&st->pg, db);

        th_args_addv(&a, st->bin, "ingest", "--file", file, "--topic", topic,
                     "--db", ci, "--window", "1h", "--window", "1h/15m",
                     "--allowed-lateness", "0", "--batch-max-records", "4",
                     "-q", NULL);
        if (extra)
                th_args_addv(&a, "--on-duplicate", extra, NULL);
        free(ci);
        th_run_ok_free(&a);
}

#define S(x)                                                                   \
        {                                                                      \
                STR, x, 0                                                      \
        }
#define R(x)                                                                   \
        {                                                                      \
                RAW, x, 0                                                      \
        }
#define NUL_F                                                                  \
        {                                                                      \
                JNULL, NULL, 0                                                 \
        }
/* A record: id, crime type, call_date_time; the other fields absent. */
#define REC(id, type, dt)                                                      \
        .f[F_ID] = S(id), .f[F_TYPE] = S(type), .f[F_DT] = S(dt)

static char big[70000 + 1];

static void test_fields_come_back(void **state)
{
        struct st *st = *state;
        /* The first batch's rows: more copies of these change them. */
        const struct line first[] = {
                {REC("A1", "Traffic Stop", "2019-03-04T05:06:07"),
                 .f[F_DISP] = S("ADV"), .f[F_ADDR] = S("100 Block Of Main St"),
                 .f[9] = S("San Francisco"), .f[10] = S("CA"), .f[11] = S("1"),
                 .f[12] = S("Premise Address"), .f[13] = S("Union Square"),
                 .f[2] = S("2019-03-04T00:00:00"),
                 .f[3] = S("2019-03-04T00:00:00"),
                 .f[4] = S("2019-03-04T00:00:00"), .f[5] = S("05:06")},
                {REC("A2", "Tab\there, new\nline, CR\r, back\\slash",
                     "2019-03-04T05:06:07.123456"),
                 .f[F_ADDR] = S("\\N"), .f[9] = S("\\."),
                 .f[10] = S("\"quoted\" 'single'"), .f[11] = S("\\\\N\t\\t"),
                 .f[12] = S("\x01\x1f\x7f end")},
                {.blank = 1},
                {REC("Ünïcødé-ß-ID", "Vol de véhicule 🚓 — ☃",
                     "1999-12-31T23:59:59.999999"),
                 .f[9] = S("日本語テキスト"), .f[F_ADDR] = S("Ελληνικά")},
                {.bad = "{\"crime_id\": \"BAD1\", \"original_crime_type_name\""
                        ": \"X\", \"call_date_time\": \"2019-03-04T05:06:07\", "
                        "\"address\": \"ab\xff\xfe"
                        "cd\"}"},
                {REC("A4", "Empties", "2000-02-29 12:00"), .f[F_DISP] = S(""),
                 .f[F_ADDR] = S(""), .f[2] = S(""), .f[9] = NUL_F,
                 .f[11] = R("1.50e3"), .f[12] = R("true")},
                {.f[F_ID] = R("190000001"),
                 .f[F_TYPE] = S("Numeric id"),
                 .f[F_DT] = S("1970-01-01T00:00:00.000001")},
                {.bad = "{\"crime_id\": \"BAD2\", \"original_crime_type_name\""
                        ": \"X\", \"call_date_time\": \"2019-03-04T05:06:07\", "
                        "\"address\": \"a\\u0000b\"}"},
                {REC("A6", "Before 1970", "1969-12-31T23:59:59.5")},
                {REC("A7", "Near the first", "0001-01-01T01:00:00.000001")},
                {REC("A8", "Leap day", "2024-02-29T23:59:59.999999")},
                {.blank = 1},
                {.blank = 1},
                {REC("A9", "Epoch 2000", "2000-01-01T00:00:00"),
                 .f[F_ADDR] = {STR, big, 0}},
                {REC("A10", "Nothing else", "2020-01-01 00:00:00.010"),
                 .f[2] = NUL_F, .f[3] = NUL_F, .f[4] = NUL_F, .f[5] = NUL_F,
                 .f[F_DISP] = NUL_F, .f[F_ADDR] = NUL_F, .f[9] = NUL_F,
                 .f[10] = NUL_F, .f[11] = NUL_F, .f[12] = NUL_F,
                 .f[13] = NUL_F},
                {.bad = "{\"crime_id\": \"BAD3\", \"original_crime_type_name\""
                        ": \"X\", \"call_date_time\": \"2019-03-04T05:06:07\", "
                        "\"city\": \"over\xc0\xaflong\"}"},
                {REC("A2", "Second copy, other fields", "2019-06-01T00:00"),
                 .f[F_ADDR] = S("elsewhere")},
                {REC("A11", "Escaped", "2019-03-04T05:06:07.5"),
                 .f[F_ADDR] = S("é🚓\xc2\xa0")},
                {REC("A12", "Near the last", "9999-12-31T22:59:59.999999")},
                {REC("A13", "After the last", "2019-03-04T05:06")},
        };
        /* With --on-duplicate update: A1 changes, A2 stays the same (a
         * copy equal to the stored one), A4 changes empty to NULL, B1 and
         * B2 are new. */
        const struct line second[] = {
                {REC("A1", "Traffic Stop", "2019-03-04T05:06:07.000001"),
                 .f[F_DISP] = S("CIT"), .f[F_ADDR] = S("tab\there\\"),
                 .f[9] = S("San Francisco"), .f[10] = S("CA"), .f[11] = S("1"),
                 .f[12] = S("Premise Address"), .f[13] = S("Union Square"),
                 .f[2] = S("2019-03-04T00:00:00"),
                 .f[3] = S("2019-03-04T00:00:00"),
                 .f[4] = S("2019-03-04T00:00:00"), .f[5] = S("05:06")},
                {REC("B1", "New in update, \"\\N\"", "1900-02-28T23:59:59.25"),
                 .f[F_ADDR] = S("\\.\n\\N")},
                {REC("A2", "Tab\there, new\nline, CR\r, back\\slash",
                     "2019-03-04T05:06:07.123456"),
                 .f[F_ADDR] = S("\\N"), .f[9] = S("\\."),
                 .f[10] = S("\"quoted\" 'single'"), .f[11] = S("\\\\N\t\\t"),
                 .f[12] = S("\x01\x1f\x7f end")},
                {.blank = 1},
                {REC("A4", "Empties", "2000-02-29 12:00"), .f[F_DISP] = NUL_F,
                 .f[F_ADDR] = S(""), .f[2] = S(""), .f[9] = NUL_F,
                 .f[11] = R("1.50e3"), .f[12] = R("true")},
                {REC("B2", "Ünïcødé again ☃", "2400-02-29T00:00:00.000999"),
                 .f[9] = S("")},
        };
        struct model m = {0};
        char *in1 = th_asprintf("%s/first.ndjson", st->dir);
        char *in2 = th_asprintf("%s/second.ndjson", st->dir);
        char *ci;
        struct th_lines want = {0}, got = {0};
        PGconn *c;
        size_t bad;
        int i;

        for (i = 0; i < 70000; i++)
                big[i] = "abc\t\\\n"[i % 6];
        assert_int_equal(th_pg_createdb(&st->pg, "copy_fields", NULL), 0);
        write_input(in1, first, CS_ARRAY_SIZE(first));
        write_input(in2, second, CS_ARRAY_SIZE(second));
        ingest(st, in1, "t1", "copy_fields", NULL);
        model_play(&m, first, CS_ARRAY_SIZE(first), "t1", 0);
        /* Fourteen calls, one of them a second copy of A2. */
        assert_int_equal(m.n, 13);

        ci = th_pg_conninfo(&st->pg, "copy_fields");
        c = th_pg_open(ci);
        free(ci);
        assert_non_null(c);
        bad = compare_calls(c, &m, "count");
        /* The three records that are not UTF-8 or hold U+0000, by line. */
        th_lines_addf(&want, "'t1'|0|5|'invalid UTF-8'");
        th_lines_addf(&want, "'t1'|0|8|'invalid address: contains \\x5cu0000'");
        th_lines_addf(&want, "'t1'|0|16|'invalid UTF-8'");
        th_lines_sort(&want);
        assert_int_equal(
                th_pg_lines(c,
                            "SELECT kafka_topic, kafka_partition, "
                            "kafka_offset, CASE WHEN reason LIKE 'invalid "
                            "UTF-8%' THEN 'invalid UTF-8' ELSE reason END "
                            "FROM rejected_records",
                            &got),
                0);
        th_lines_sort(&got);
        bad += th_lines_compare("rejected_records", "the input", &want,
                                "PostgreSQL", &got, MAX_SHOWN);
        th_lines_free(&want);
        th_lines_free(&got);

        ingest(st, in2, "t2", "copy_fields", "update");
        model_play(&m, second, CS_ARRAY_SIZE(second), "t2", 1);
        assert_int_equal(m.n, 15);
        bad += compare_calls(c, &m, "count");
        PQfinish(c);
        model_free(&m);
        free(in1);
        free(in2);
        if (bad)
                fail_msg("%zu row(s) differ (above)", bad);
}

/* One call of its own for write_batch(). */
struct call {
        const char *id;
        const char *addr;
        size_t addr_len;
        int64_t ts;
        int32_t usec;
        int32_t partition;
        int64_t offset;
};

/* Writes calls[0..n) as one batch straight through the sink (watermark
 * from nothing, lateness 0, under policy): 0, or what the sink returned,
 * with its reason in err, after rolling back. */
/* The lookup of stored calls skips the crime_ids past the largest stored:
 * a second copy of that largest one, and of one below it, must still be
 * found (else its COPY would break the primary key and the ingest fail),
 * and the first copy stays. */
static void test_stored_probe(void **state)
{
        struct st *st = *state;
        const struct line first[] = {
                {REC("B100", "T", "2019-03-04T01:00:00")},
                {REC("B200", "T", "2019-03-04T02:00:00")},
                {REC("B300", "T", "2019-03-04T03:00:00")},
        };
        const struct line second[] = {
                {REC("B300", "U", "2019-03-04T03:00:00")},
                {REC("B150", "U", "2019-03-04T04:00:00")},
                {REC("B200", "U", "2019-03-04T02:00:00")},
                {REC("B400", "U", "2019-03-04T05:00:00")},
        };
        char *in1 = th_asprintf("%s/probe1.ndjson", st->dir);
        char *in2 = th_asprintf("%s/probe2.ndjson", st->dir);
        struct th_lines got = {0}, want = {0};
        char *ci;
        PGconn *c;

        assert_int_equal(th_pg_createdb(&st->pg, "copy_probe", NULL), 0);
        write_input(in1, first, CS_ARRAY_SIZE(first));
        write_input(in2, second, CS_ARRAY_SIZE(second));
        ingest(st, in1, "p1", "copy_probe", NULL);
        ingest(st, in2, "p2", "copy_probe", NULL);
        ci = th_pg_conninfo(&st->pg, "copy_probe");
        c = th_pg_open(ci);
        free(ci);
        assert_non_null(c);
        assert_int_equal(th_pg_lines(c,
                                     "SELECT crime_id, kafka_topic, "
                                     "original_crime_type_name FROM calls "
                                     "ORDER BY crime_id",
                                     &got),
                         0);
        PQfinish(c);
        th_lines_addf(&want, "'B100'|'p1'|'T'");
        th_lines_addf(&want, "'B150'|'p2'|'U'");
        th_lines_addf(&want, "'B200'|'p1'|'T'");
        th_lines_addf(&want, "'B300'|'p1'|'T'");
        th_lines_addf(&want, "'B400'|'p2'|'U'");
        th_lines_sort(&got);
        th_lines_sort(&want);
        assert_int_equal(th_lines_compare("calls", "got", &got, "want", &want,
                                          MAX_SHOWN),
                         0);
        th_lines_free(&got);
        th_lines_free(&want);
        free(in1);
        free(in2);
}

static int write_batch(struct cs_sink *s, const struct call *calls, size_t n,
                       int update, char *err, size_t err_size)
{
        struct cs_batch *b = cs_batch_new("direct", 16);
        struct cs_watermark w = {0};
        unsigned char outcome[16];
        struct cs_old_call old[16];
        size_t i;
        int r;

        assert_non_null(b);
        assert_true(n <= 16);
        b->update = update;
        for (i = 0; i < n; i++) {
                struct cs_call c = {0};
                struct cs_time t = {calls[i].ts, calls[i].usec};

                c.field[F_ID] =
                        (struct cs_str){calls[i].id, strlen(calls[i].id)};
                c.field[F_TYPE] = (struct cs_str){"T", 1};
                c.field[F_DT] = (struct cs_str){"x", 1};
                c.field[F_ADDR] =
                        (struct cs_str){calls[i].addr, calls[i].addr_len};
                c.ts = calls[i].ts;
                c.ts_usec = calls[i].usec;
                assert_int_equal(cs_batch_add_call(b, &c, calls[i].partition,
                                                   calls[i].offset, &w),
                                 0);
                cs_watermark_advance(&w, t);
        }
        if ((r = cs_sink_begin(s, err, err_size)) == 0 &&
            (r = cs_sink_write_calls(s, b, outcome, old, err, err_size)) == 0)
                r = cs_sink_commit(s, err, err_size);
        if (r)
                cs_sink_rollback(s);
        cs_batch_destroy(b);
        return r;
}

static void test_sink_direct(void **state)
{
        struct st *st = *state;
        /* 2^53 + 1 is not a double; INT64_MAX and INT32_MAX are the
         * largest a column holds. */
        const struct call big_ones[] = {
                {"D1", "a", 1, 0, 0, INT32_MAX, INT64_MAX},
                {"D2", "b", 1, -1, 999999, 7, 9007199254740993LL},
                {"D3", "c", 1, 253402300799LL, 999999, 0, 4294967296LL},
        };
        const struct call not_utf8[] = {
                {"E0", "ok", 2, 0, 0, 0, 1},
                {"E1", "bad \xff byte", 10, 0, 0, 0, 2},
        };
        const struct call nul[] = {
                {"N0", "ok", 2, 0, 0, 0, 1},
                {"N1", "a\0b", 3, 0, 0, 0, 2},
        };
        const struct call fine[] = {{"F1", "after", 5, 86400, 1, 3, 5}};
        struct th_lines want = {0}, got = {0};
        char err[512], *ci;
        struct cs_sink *s = NULL;
        size_t bad;
        PGconn *c;
        int update, r;

        assert_int_equal(th_pg_createdb(&st->pg, "copy_direct", NULL), 0);
        ci = th_pg_conninfo(&st->pg, "copy_direct");
        if (cs_sink_open(ci, NULL, &s, err, sizeof(err)) < 0 ||
            cs_sink_migrate(s, err, sizeof(err)) < 0)
                fail_msg("%s", err);
        if (write_batch(s, big_ones, CS_ARRAY_SIZE(big_ones), 0, err,
                        sizeof(err)))
                fail_msg("%s", err);
        /* Not UTF-8, or a NUL: refused by the server, straight and staged,
         * as a text COPY is (invalid_character_value... 22021), for good
         * (no retry), and the batch leaves nothing. */
        for (update = 0; update <= 1; update++) {
                r = write_batch(s, not_utf8, 2, update, err, sizeof(err));
                fprintf(stderr, "# not UTF-8%s: %d %s\n",
                        update ? " (update)" : "", r, err);
                assert_int_equal(r, -1);
                assert_non_null(strstr(err, "invalid byte sequence for "
                                            "encoding \"UTF8\": 0xff"));
                r = write_batch(s, nul, 2, update, err, sizeof(err));
                fprintf(stderr, "# NUL%s: %d %s\n", update ? " (update)" : "",
                        r, err);
                assert_int_equal(r, -1);
                assert_non_null(strstr(err, "invalid byte sequence for "
                                            "encoding \"UTF8\": 0x00"));
        }
        /* The connection serves the next batch. */
        if (write_batch(s, fine, 1, 0, err, sizeof(err)))
                fail_msg("%s", err);
        cs_sink_close(s);

        th_lines_addf(&want, "'D1'|'a'|'1970-01-01 00:00:00'|2147483647|"
                             "9223372036854775807|NULL");
        th_lines_addf(&want, "'D2'|'b'|'1969-12-31 23:59:59.999999'|7|"
                             "9007199254740993|'1970-01-01 00:00:00'");
        th_lines_addf(&want, "'D3'|'c'|'9999-12-31 23:59:59.999999'|0|"
                             "4294967296|'1970-01-01 00:00:00'");
        th_lines_addf(&want, "'F1'|'after'|'1970-01-02 00:00:00.000001'|3|5|"
                             "NULL");
        th_lines_sort(&want);
        c = th_pg_open(ci);
        free(ci);
        assert_non_null(c);
        assert_int_equal(th_pg_lines(c,
                                     "SELECT crime_id, address, "
                                     "call_ts::text, kafka_partition, "
                                     "kafka_offset, watermark_at_count::text "
                                     "FROM calls",
                                     &got),
                         0);
        PQfinish(c);
        th_lines_sort(&got);
        bad = th_lines_compare("calls", "written", &want, "PostgreSQL", &got,
                               MAX_SHOWN);
        th_lines_free(&want);
        th_lines_free(&got);
        if (bad)
                fail_msg("%zu row(s) differ (above)", bad);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_fields_come_back,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_sink_direct, th_test_teardown),
                cmocka_unit_test_teardown(test_stored_probe, th_test_teardown),
        };

        return cmocka_run_group_tests_name("pg_copy", tests, group_setup,
                                           group_teardown);
}
