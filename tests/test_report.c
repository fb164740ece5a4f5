/* test_report.c: `callstream report` end to end (issue 10), with the real
 * binary (CALLSTREAM_BIN) on SQLite and on a PostgreSQL server of the
 * test's own:
 *
 *   test_formats_sqlite, test_formats_pg   every view in every format,
 *       parsed back (CSV by Python's csv module, JSON and NDJSON by
 *       jansson, Markdown and HTML tables by the test's own reader of
 *       their escapes) and compared row for row with SELECT * of the view
 *       on the same database; the filters (--window, --from, --to,
 *       --final-only, --last, --top) against the test's own WHERE; the
 *       standard report's three tables against the test's own queries.
 *       The calls have crime types with commas, quotes, newlines,
 *       non-ASCII and HTML metacharacters.
 *   test_html_chromium    the standard page in headless Chromium: no
 *       console message (a page with console.error shows the check can
 *       fail), no script element, the <script> crime type shown as text,
 *       as many bars as crime types, a screenshot (skipped without
 *       chromium);
 *   test_every            --every 1s while an ingest writes: each read of
 *       the file parses whole, several files are written, a database gone
 *       for a while is logged and retried, SIGTERM ends it, no temporary
 *       file left;
 *   test_every_pg         the same with PostgreSQL stopped and started
 *       again under it;
 *   test_bad_options      one-line errors and exit 2. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "model.h"
#include "pgutil.h"

#define WATCHDOG_S         900
#define CS_ARRAY_SIZE_T(a) (sizeof(a) / sizeof((a)[0]))
#define NCALLS             600

struct rt {
        char dir[PATH_MAX];
        char *bin;
        char *calls;   /* the crafted NDJSON */
        char *lite_db; /* SQLite path */
        struct th_pg pg;
        int pg_ok;
        char *pg_db; /* conninfo */
};

static const char *const crime_types[] = {
        "Passing Call",
        "Comma, and \"quotes\"",
        "Line\nbreak",
        "\xc3\x9cn\xc3\xaf\x63\xc3\xb8\x64\xc3\xa9 \xe2\x80\x93 "
        "\xe6\x9d\xb1\xe4\xba\xac",
        "<script>console.error(\"xss\")</script>",
        "A & B <b>bold</b> 'q'",
        "pipe | star * under_score \\ [x]",
        "Traffic Stop",
};

static const char *const dispositions[] = {
        "ADV", "CIT", "HAN", "GOA", "<i>x</i>", "Comma, \"d\"",
};

/* NCALLS calls 97 s apart from 2018-12-31 08:00, crime types unevenly
 * spread, one duplicate and one malformed record. */
static void write_calls(const char *path)
{
        struct th_buf b = {0};
        char ts[TM_TS_SIZE];
        int64_t start;
        int j;

        if (tm_parse_ts("2018-12-31 08:00:00", 19, &start))
                fail_msg("bad start");
        start /= TM_USEC;
        for (j = 0; j < NCALLS; j++) {
                json_t *o = json_object();
                char id[32], *line;
                int t = j % 13 < 7 ? j % 13 : 7;

                if (j % 5 == 0)
                        t = 0;
                snprintf(id, sizeof(id), "R%d", j);
                tm_format_sec(start + (int64_t)j * 97, ts);
                ts[10] = 'T';
                json_object_set_new(o, "crime_id", json_string(id));
                json_object_set_new(o, "original_crime_type_name",
                                    json_string(crime_types[t]));
                json_object_set_new(o, "call_date_time", json_string(ts));
                json_object_set_new(
                        o, "disposition",
                        json_string(
                                dispositions[(j / 3) %
                                             CS_ARRAY_SIZE_T(dispositions)]));
                line = json_dumps(o, JSON_COMPACT);
                th_buf_addf(&b, "%s\n", line);
                if (j == 10)
                        th_buf_addf(&b, "%s\n", line); /* a duplicate */
                free(line);
                json_decref(o);
        }
        th_buf_addf(&b, "{\"crime_id\": \"broken\n");
        if (th_write_file(path, b.p, 0))
                fail_msg("cannot write %s", path);
        th_buf_free(&b);
}

/*
 * Rows as lines. TYPED (JSON): integers bare, text quoted, booleans 0/1,
 * NULL bare. TEXT (CSV, Markdown, HTML): every cell quoted, NULL as '',
 * booleans as true/false.
 */
enum { TYPED, TEXT };

struct rows {
        int ncol;
        char *cols[64];
        struct th_lines lines;
};

static void rows_free(struct rows *r)
{
        int j;

        for (j = 0; j < r->ncol; j++)
                free(r->cols[j]);
        th_lines_free(&r->lines);
        memset(r, 0, sizeof(*r));
}

static int bool_col(const char *name)
{
        return !strcmp(name, "is_final");
}

/* One cell: type 'i' integer, 'r' real, 't' text, 'b' boolean, 'n' NULL. */
static void put_cell(struct th_buf *b, int mode, int type, const char *v)
{
        if (b->len)
                th_buf_add(b, "|", 1);
        if (mode == TEXT) {
                const char *s = type == 'n'   ? ""
                                : type == 'b' ? (v[0] == '1' ? "true" : "false")
                                              : v;
                th_put_quoted(b, (const unsigned char *)s, strlen(s));
                return;
        }
        if (type == 'n')
                th_buf_addf(b, "NULL");
        else if (type == 't')
                th_put_quoted(b, (const unsigned char *)v, strlen(v));
        else
                th_buf_addf(b, "%s", v);
}

static void add_line(struct th_lines *l, struct th_buf *b)
{
        th_lines_add(l, b->p ? b->p : th_strdup(""));
        memset(b, 0, sizeof(*b));
}

/* The rows of sql on the database (SQLite or PostgreSQL) as lines. */
static void sql_rows(const struct rt *st, int pg, const char *sql, int mode,
                     struct rows *out)
{
        struct th_buf b = {0};
        int j;

        memset(out, 0, sizeof(*out));
        if (!pg) {
                sqlite3 *db;
                sqlite3_stmt *s;

                if (sqlite3_open_v2(st->lite_db, &db, SQLITE_OPEN_READONLY,
                                    NULL) != SQLITE_OK ||
                    sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
                        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
                out->ncol = sqlite3_column_count(s);
                for (j = 0; j < out->ncol; j++)
                        out->cols[j] = th_strdup(sqlite3_column_name(s, j));
                while (sqlite3_step(s) == SQLITE_ROW) {
                        for (j = 0; j < out->ncol; j++) {
                                int t = sqlite3_column_type(s, j);
                                const char *v =
                                        (const char *)sqlite3_column_text(s, j);
                                char ty = t == SQLITE_NULL         ? 'n'
                                          : bool_col(out->cols[j]) ? 'b'
                                          : t == SQLITE_INTEGER    ? 'i'
                                          : t == SQLITE_FLOAT      ? 'r'
                                                                   : 't';
                                put_cell(&b, mode, ty, v ? v : "");
                        }
                        add_line(&out->lines, &b);
                }
                sqlite3_finalize(s);
                sqlite3_close(db);
        } else {
                PGconn *c = th_pg_open(st->pg_db);
                PGresult *res;
                int i;

                assert_non_null(c);
                th_pg_exec_ok(c, "SET search_path TO rpt; "
                                 "SET DateStyle TO ISO");
                res = PQexec(c, sql);
                if (PQresultStatus(res) != PGRES_TUPLES_OK)
                        fail_msg("%s: %s", sql, PQerrorMessage(c));
                out->ncol = PQnfields(res);
                for (j = 0; j < out->ncol; j++)
                        out->cols[j] = th_strdup(PQfname(res, j));
                for (i = 0; i < PQntuples(res); i++) {
                        for (j = 0; j < out->ncol; j++) {
                                Oid t = PQftype(res, j);
                                const char *v = PQgetvalue(res, i, j);
                                char ty = PQgetisnull(res, i, j) ? 'n'
                                          : t == 16              ? 'b'
                                          : t == 20 || t == 21 || t == 23 ||
                                                          t == 1700
                                                  ? 'i'
                                                  : 't';

                                put_cell(&b, mode, ty,
                                         ty == 'b' ? (v[0] == 't' ? "1" : "0")
                                                   : v);
                        }
                        add_line(&out->lines, &b);
                }
                PQclear(res);
                PQfinish(c);
        }
        th_lines_sort(&out->lines);
}

/* A JSON object as a line of exp's columns; fails on a missing or extra
 * key (besides "table" when with_table). */
static void json_line(json_t *o, const struct rows *exp, int with_table,
                      struct th_lines *out)
{
        struct th_buf b = {0};
        int j;

        if (!json_is_object(o))
                fail_msg("a row is not a JSON object");
        if ((int)json_object_size(o) != exp->ncol + (with_table ? 1 : 0))
                fail_msg("object with %d keys, expected %d",
                         (int)json_object_size(o), exp->ncol);
        for (j = 0; j < exp->ncol; j++) {
                json_t *v = json_object_get(o, exp->cols[j]);
                char num[64];

                if (!v)
                        fail_msg("no key %s", exp->cols[j]);
                if (bool_col(exp->cols[j]) && !json_is_boolean(v))
                        fail_msg("%s is not a JSON boolean", exp->cols[j]);
                if (json_is_integer(v)) {
                        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(v));
                        put_cell(&b, TYPED, 'i', num);
                } else if (json_is_real(v)) {
                        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
                        put_cell(&b, TYPED, 'r', num);
                } else if (json_is_boolean(v)) {
                        put_cell(&b, TYPED, 'b', json_is_true(v) ? "1" : "0");
                } else if (json_is_null(v)) {
                        put_cell(&b, TYPED, 'n', "");
                } else {
                        put_cell(&b, TYPED, 't', json_string_value(v));
                }
        }
        add_line(out, &b);
}

/* Text cells in the order of names (n of them) as a line of exp's
 * columns; every column of exp must be among names. */
static void text_line(char **cells, char **names, int n, const struct rows *exp,
                      struct th_lines *out)
{
        struct th_buf b = {0};
        int j, k;

        for (j = 0; j < exp->ncol; j++) {
                for (k = 0; k < n; k++)
                        if (!strcmp(names[k], exp->cols[j]))
                                break;
                if (k == n)
                        fail_msg("no column %s", exp->cols[j]);
                put_cell(&b, TEXT, 't', cells[k]);
        }
        add_line(out, &b);
}

/* CSV through Python's csv module, as JSON rows of strings. */
static json_t *parse_csv(const struct rt *st, const char *csv)
{
        char *path = th_asprintf("%s/parse.csv", st->dir);
        struct th_args a = {0};
        struct th_run r;
        json_error_t err;
        json_t *rows;

        if (th_write_file(path, csv, 0))
                fail_msg("cannot write %s", path);
        th_args_addv(&a, "python3", "-c",
                     "import csv, json, sys\n"
                     "with open(sys.argv[1], newline='', encoding='utf-8') "
                     "as f:\n"
                     "    json.dump(list(csv.reader(f, strict=True)), "
                     "sys.stdout)\n",
                     path, NULL);
        th_run_ok(&a, &r);
        rows = json_loads(r.out.p, 0, &err);
        if (!rows)
                fail_msg("python's JSON: %s", err.text);
        th_run_free(&r);
        th_args_free(&a);
        free(path);
        return rows;
}

/* Undoes the Markdown cell escapes: \X, <br>, &#13; and &amp; &lt; &gt;. */
static char *md_unescape(const char *s, size_t n)
{
        struct th_buf b = {0};
        size_t i;

        th_buf_add(&b, "", 0);
        for (i = 0; i < n; i++) {
                if (s[i] == '\\' && i + 1 < n) {
                        th_buf_add(&b, &s[++i], 1);
                } else if (!strncmp(s + i, "<br>", 4)) {
                        th_buf_add(&b, "\n", 1);
                        i += 3;
                } else if (!strncmp(s + i, "&#13;", 5)) {
                        th_buf_add(&b, "\r", 1);
                        i += 4;
                } else if (!strncmp(s + i, "&amp;", 5)) {
                        th_buf_add(&b, "&", 1);
                        i += 4;
                } else if (!strncmp(s + i, "&lt;", 4)) {
                        th_buf_add(&b, "<", 1);
                        i += 3;
                } else if (!strncmp(s + i, "&gt;", 4)) {
                        th_buf_add(&b, ">", 1);
                        i += 3;
                } else {
                        th_buf_add(&b, &s[i], 1);
                }
        }
        return b.p;
}

/* The cells of one Markdown table line "| a | b |". */
static int md_cells(const char *line, size_t len, char **cells, int max)
{
        size_t i = 1, start;
        int n = 0;

        while (i < len && n < max) {
                while (i < len && line[i] == ' ')
                        i++;
                start = i;
                while (i < len && line[i] != '|') {
                        if (line[i] == '\\')
                                i++;
                        i++;
                }
                if (i >= len)
                        break;
                {
                        size_t end = i;

                        while (end > start && line[end - 1] == ' ' &&
                               (end < 2 || line[end - 2] != '\\'))
                                end--;
                        cells[n++] = md_unescape(line + start, end - start);
                }
                i++;
        }
        return n;
}

static char *html_unescape(const char *s, size_t n)
{
        static const char *const ent[][2] = {
                {"&amp;", "&"},   {"&lt;", "<"},  {"&gt;", ">"},
                {"&quot;", "\""}, {"&#39;", "'"},
        };
        struct th_buf b = {0};
        size_t i, k;

        th_buf_add(&b, "", 0);
        for (i = 0; i < n; i++) {
                for (k = 0; k < 5; k++)
                        if (!strncmp(s + i, ent[k][0], strlen(ent[k][0])))
                                break;
                if (k < 5) {
                        th_buf_add(&b, ent[k][1], 1);
                        i += strlen(ent[k][0]) - 1;
                } else {
                        th_buf_add(&b, &s[i], 1);
                }
        }
        return b.p;
}

/* The cells between <tag...> and </tag> in [p, end), up to max. */
static int html_cells(const char *p, const char *end, const char *tag,
                      char **cells, int max)
{
        char open[8], close[8];
        int n = 0;

        snprintf(open, sizeof(open), "<%s", tag);
        snprintf(close, sizeof(close), "</%s>", tag);
        while (n < max && (p = strstr(p, open)) && p < end) {
                const char *s, *e;

                if (p[strlen(open)] != '>' && p[strlen(open)] != ' ') {
                        p++; /* <thead> is not <th> */
                        continue;
                }
                s = strchr(p, '>') + 1;
                e = strstr(s, close);

                cells[n++] = html_unescape(s, (size_t)(e - s));
                p = e;
        }
        return n;
}

static void free_cells(char **cells, int n)
{
        while (n-- > 0)
                free(cells[n]);
}

/* The report's rows of table tname (NULL: a view) in format fmt, as lines
 * of exp's columns. */
static void output_lines(const struct rt *st, const char *fmt, const char *out,
                         const char *tname, const struct rows *exp,
                         struct th_lines *got)
{
        char *names[64], *cells[64];
        int nn = 0, nc, j;

        if (!strcmp(fmt, "json")) {
                json_error_t err;
                json_t *doc = json_loads(out, 0, &err), *arr, *v;
                size_t i;

                if (!doc)
                        fail_msg("JSON line %d: %s", err.line, err.text);
                arr = tname ? json_object_get(doc, tname) : doc;
                if (!json_is_array(arr))
                        fail_msg("no JSON array %s", tname ? tname : "");
                json_array_foreach(arr, i, v) json_line(v, exp, 0, got);
                json_decref(doc);
        } else if (!strcmp(fmt, "ndjson")) {
                const char *p = out;

                while (*p) {
                        const char *e = strchr(p, '\n');
                        json_error_t err;
                        json_t *o;

                        if (!e)
                                fail_msg("NDJSON without a final newline");
                        o = json_loadb(p, (size_t)(e - p), 0, &err);
                        if (!o)
                                fail_msg("NDJSON: %s", err.text);
                        if (!tname || !strcmp(json_string_value(json_object_get(
                                                      o, "table")),
                                              tname))
                                json_line(o, exp, tname != NULL, got);
                        json_decref(o);
                        p = e + 1;
                }
        } else if (!strcmp(fmt, "csv")) {
                json_t *rows = parse_csv(st, out), *hdr, *row;
                size_t i;
                int t = -1;

                hdr = json_array_get(rows, 0);
                nn = (int)json_array_size(hdr);
                for (j = 0; j < nn; j++) {
                        names[j] = th_strdup(
                                json_string_value(json_array_get(hdr, j)));
                        if (!strcmp(names[j], "table"))
                                t = j;
                }
                json_array_foreach(rows, i, row)
                {
                        if (i == 0)
                                continue;
                        if ((int)json_array_size(row) != nn)
                                fail_msg("CSV row %zu has %zu fields", i,
                                         json_array_size(row));
                        if (tname &&
                            strcmp(json_string_value(json_array_get(row, t)),
                                   tname))
                                continue;
                        for (j = 0; j < nn; j++)
                                cells[j] = (char *)json_string_value(
                                        json_array_get(row, j));
                        text_line(cells, names, nn, exp, got);
                }
                json_decref(rows);
                free_cells(names, nn);
        } else if (!strcmp(fmt, "markdown")) {
                const char *p = out;
                int state = 0; /* 0 before, 1 header seen, 2 rows */

                if (tname) {
                        /* the table after its "## " heading */
                        const char *title = !strcmp(tname, "crime_types")
                                                    ? "## Calls per crime type"
                                            : !strcmp(tname, "dispositions")
                                                    ? "## Calls per disposition"
                                                    : "## Where the ingest";
                        p = strstr(out, title);
                        assert_non_null(p);
                }
                while (*p) {
                        const char *e = strchr(p, '\n');
                        size_t len = e ? (size_t)(e - p) : strlen(p);

                        if (len && p[0] == '|') {
                                if (state == 0) {
                                        nn = md_cells(p, len, names, 64);
                                        state = 1;
                                } else if (state == 1) {
                                        state = 2; /* |---| */
                                } else {
                                        nc = md_cells(p, len, cells, 64);
                                        if (nc != nn)
                                                fail_msg("Markdown row with "
                                                         "%d cells, not %d: "
                                                         "%.*s",
                                                         nc, nn, (int)len, p);
                                        text_line(cells, names, nn, exp, got);
                                        free_cells(cells, nc);
                                }
                        } else if (state) {
                                break;
                        }
                        p = e ? e + 1 : p + len;
                }
                free_cells(names, nn);
        } else { /* html */
                char id[64];
                const char *p, *end, *tr;

                snprintf(id, sizeof(id), "<table id=\"t-%s\">",
                         tname ? tname : "");
                p = tname ? strstr(out, id) : strstr(out, "<table");
                assert_non_null(p);
                end = strstr(p, "</table>");
                nn = html_cells(p, strstr(p, "</thead>"), "th", names, 64);
                tr = strstr(p, "<tbody>");
                while ((tr = strstr(tr, "<tr>")) && tr < end) {
                        const char *te = strstr(tr, "</tr>");

                        nc = html_cells(tr, te, "td", cells, 64);
                        if (nc != nn)
                                fail_msg("HTML row with %d cells, not %d", nc,
                                         nn);
                        text_line(cells, names, nn, exp, got);
                        free_cells(cells, nc);
                        tr = te;
                }
                free_cells(names, nn);
        }
        th_lines_sort(got);
}

static const char *const formats[] = {"csv", "json", "ndjson", "markdown",
                                      "html"};

/* report ARGS (up to NULL) in every format equals sql; at least min_rows
 * rows. tname: a table of the standard report. */
static void check_all_formats(const struct rt *st, int pg, const char *sql,
                              const char *tname, size_t min_rows, ...)
{
        const char *args[24];
        int nargs = 0;
        size_t f;
        va_list ap;

        va_start(ap, min_rows);
        while (nargs < 20 && (args[nargs] = va_arg(ap, const char *)))
                nargs++;
        va_end(ap);
        for (f = 0; f < CS_ARRAY_SIZE_T(formats); f++) {
                int mode = !strcmp(formats[f], "json") ||
                                           !strcmp(formats[f], "ndjson")
                                   ? TYPED
                                   : TEXT;
                struct th_args a = {0};
                struct th_lines got = {0};
                struct rows exp;
                struct th_run r;
                int i;

                sql_rows(st, pg, sql, mode, &exp);
                th_args_addv(&a, st->bin, "report", "--db",
                             pg ? st->pg_db : st->lite_db, "--format",
                             formats[f], NULL);
                if (pg)
                        th_args_addv(&a, "--schema", "rpt", NULL);
                for (i = 0; i < nargs; i++)
                        th_args_add(&a, args[i]);
                th_run_ok(&a, &r);
                output_lines(st, formats[f], r.out.p ? r.out.p : "", tname,
                             &exp, &got);
                if (th_lines_compare(formats[f], "report", &got, "SQL",
                                     &exp.lines, 5) ||
                    exp.lines.n < min_rows)
                        fail_msg("%s %s (%s): %zu rows, SQL %zu (at least "
                                 "%zu)",
                                 pg ? "PostgreSQL" : "SQLite", formats[f], sql,
                                 got.n, exp.lines.n, min_rows);
                th_lines_free(&got);
                rows_free(&exp);
                th_run_free(&r);
                th_args_free(&a);
        }
}

/* The newest watermark less two hours, as the test computes it. */
static char *last_2h(const struct rt *st, int pg)
{
        struct rows r;
        char ts[TM_TS_SIZE];
        int64_t us;
        char *q, *end;

        sql_rows(st, pg, "SELECT MAX(watermark) FROM watermarks", TYPED, &r);
        assert_int_equal(r.lines.n, 1);
        /* 'YYYY-MM-DD HH:MM:SS[.f]' quoted */
        q = r.lines.v[0] + 1;
        end = strchr(q, '\'');
        if (!end || tm_parse_ts(q, (size_t)(end - q), &us))
                fail_msg("watermark %s", r.lines.v[0]);
        tm_format_sec(us / TM_USEC - 7200, ts);
        rows_free(&r);
        return th_strdup(ts);
}

static void check_formats(struct rt *st, int pg)
{
        static const char *const views[] = {
                "call_counts",     "disposition_counts", "recent_call_counts",
                "top_crime_types", "pipeline_progress",  "watermarks",
                "final_watermark"};
        size_t v;
        char *since, *sql;

        for (v = 0; v < CS_ARRAY_SIZE_T(views); v++) {
                sql = th_asprintf("SELECT * FROM %s", views[v]);
                check_all_formats(st, pg, sql, NULL, 1, "--view", views[v],
                                  NULL);
                free(sql);
        }
        /* the filters, against the test's own WHERE */
        check_all_formats(st, pg,
                          "SELECT * FROM call_counts WHERE window_spec = '1h' "
                          "AND window_start >= '2018-12-31 10:00:00' AND "
                          "window_start < '2018-12-31 14:00:00' AND is_final",
                          NULL, 20, "--view", "call_counts", "--window", "1h",
                          "--from", "2018-12-31 10:00", "--to",
                          "2018-12-31 14:00", "--final-only", NULL);
        check_all_formats(st, pg,
                          "SELECT * FROM disposition_counts WHERE "
                          "window_spec = '1h/15m' AND window_start >= "
                          "'2019-01-01 00:00:00'",
                          NULL, 5, "--view", "disposition_counts", "-w",
                          "60m/15m", "--from", "2019-01-01", NULL);
        since = last_2h(st, pg);
        sql = th_asprintf("SELECT * FROM call_counts WHERE window_end > '%s'",
                          since);
        check_all_formats(st, pg, sql, NULL, 10, "--view", "call_counts",
                          "--last", "2h", NULL);
        free(sql);
        check_all_formats(st, pg,
                          "SELECT window_spec, window_start, window_end, "
                          "crime_type, calls, late_calls, is_final FROM "
                          "(SELECT c.*, (SELECT COUNT(*) FROM call_counts AS "
                          "d WHERE d.window_spec = c.window_spec AND "
                          "d.window_start = c.window_start AND d.calls > "
                          "c.calls) AS above FROM call_counts AS c) AS x "
                          "WHERE above < 2",
                          NULL, 20, "--view", "call_counts", "--top", "2",
                          NULL);
        check_all_formats(
                st, pg, "SELECT * FROM top_crime_types WHERE crime_rank <= 1",
                NULL, 10, "--view", "top_crime_types", "--top", "1", NULL);
        /* the standard report's tables */
        sql = th_asprintf("SELECT window_spec, window_start, window_end, "
                          "crime_type, calls, late_calls, is_final FROM "
                          "call_counts WHERE window_spec = '1h' AND "
                          "window_end > '%s'",
                          since);
        check_all_formats(st, pg, sql, "crime_types", 5, "--window", "1h",
                          "--last", "2h", NULL);
        free(sql);
        check_all_formats(
                st, pg,
                "SELECT window_spec, window_start, window_end, disposition, "
                "disposition_description, CAST(SUM(calls) AS BIGINT) AS "
                "calls, CAST(SUM(late_calls) AS BIGINT) AS late_calls, "
                "is_final FROM disposition_counts GROUP BY 1, 2, 3, 4, 5, 8",
                "dispositions", 50, NULL);
        check_all_formats(st, pg,
                          "SELECT topic, MIN(watermark) AS watermark, "
                          "MAX(max_event_ts) AS max_event_ts, "
                          "CAST(SUM(lag) AS BIGINT) AS lag, CAST(SUM(calls) "
                          "AS BIGINT) AS calls, CAST(SUM(duplicates) AS "
                          "BIGINT) AS duplicates, CAST(SUM(rejected) AS "
                          "BIGINT) AS rejected, CAST(SUM(late) AS BIGINT) AS "
                          "late, MAX(last_batch_at) AS last_batch_at FROM "
                          "pipeline_progress GROUP BY topic",
                          "progress", 1, NULL);
        free(since);
}

static void test_formats_sqlite(void **state)
{
        check_formats(*state, 0);
}

static void test_formats_pg(void **state)
{
        struct rt *st = *state;

        if (!st->pg_ok)
                skip();
        check_formats(st, 1);
}

/* Runs chromium headless on the page; returns its DOM (stdout) with its
 * console in *log, or NULL when chromium cannot run. */
static char *chromium(const char *page, const char *screenshot,
                      struct th_buf *log)
{
        struct th_args a = {0};
        struct th_run r;
        char *url = th_asprintf("file://%s", page), *dom = NULL;

        th_args_addv(&a, "chromium", "--headless", "--no-sandbox",
                     "--disable-gpu", "--hide-scrollbars",
                     "--enable-logging=stderr", "--v=0",
                     "--window-size=1000,1400", NULL);
        if (screenshot) {
                char *s = th_asprintf("--screenshot=%s", screenshot);

                th_args_add(&a, s);
                free(s);
        } else {
                th_args_add(&a, "--dump-dom");
        }
        th_args_add(&a, url);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        if (r.status == 0) {
                dom = th_strdup(r.out.p ? r.out.p : "");
                th_buf_add(log, r.err.p ? r.err.p : "", r.err.len);
        } else {
                th_show_tail("chromium stderr", r.err.p ? r.err.p : "",
                             r.err.len);
        }
        th_run_free(&r);
        th_args_free(&a);
        free(url);
        return dom;
}

static int have_chromium(void)
{
        return system("command -v chromium >/dev/null 2>&1") == 0;
}

static void test_html_chromium(void **state)
{
        struct rt *st = *state;
        char *page = th_asprintf("%s/report.html", st->dir);
        char *probe = th_asprintf("%s/probe.html", st->dir);
        char *png = th_asprintf("%s/report.png", st->dir);
        struct th_buf log = {0}, plog = {0};
        struct rows types;
        const char *svg, *svg_end, *p;
        char *dom, *pdom;
        size_t bars = 0;
        struct stat sb;

        if (!have_chromium()) {
                fprintf(stderr, "# chromium is not installed "
                                "(scripts/install-deps.sh test installs it)\n");
                skip();
        }
        {
                struct th_args a = {0};

                th_args_addv(&a, st->bin, "report", "--db", st->lite_db,
                             "--window", "1h", "--format", "html", "--out",
                             page, NULL);
                th_run_ok_free(&a);
        }
        /* The check can fail: a page that logs an error is caught. */
        if (th_write_file(probe,
                          "<!DOCTYPE html><html><body><script>"
                          "console.error('probe-error')</script></body>"
                          "</html>",
                          0))
                fail();
        pdom = chromium(probe, NULL, &plog);
        if (!pdom)
                skip();
        if (!plog.p || !strstr(plog.p, "probe-error"))
                fail_msg("chromium's console log did not show the probe's "
                         "console.error; the check below would see nothing");
        dom = chromium(page, NULL, &log);
        assert_non_null(dom);
        if (log.p && strstr(log.p, "CONSOLE"))
                fail_msg("console output: %s", strstr(log.p, "CONSOLE"));
        if (strstr(dom, "<script"))
                fail_msg("a script element in the page's DOM");
        if (!strstr(dom, "&lt;script&gt;console.error(\"xss\")&lt;/script&gt;"))
                fail_msg("the <script> crime type is not shown as text");
        /* as many bars as crime types in the 1h windows */
        sql_rows(st, 0,
                 "SELECT DISTINCT crime_type FROM call_counts WHERE "
                 "window_spec = '1h'",
                 TEXT, &types);
        svg = strstr(dom, "id=\"chart-crime-types\"");
        assert_non_null(svg);
        svg_end = strstr(svg, "</svg>");
        for (p = svg; (p = strstr(p, "class=\"bar\"")) && p < svg_end; p++)
                bars++;
        assert_int_equal(bars, types.lines.n);
        assert_int_equal(types.lines.n, CS_ARRAY_SIZE_T(crime_types));
        assert_non_null(strstr(dom, "id=\"chart-dispositions\""));
        assert_non_null(strstr(dom, "class=\"seg\""));
        assert_non_null(strstr(dom, "id=\"chart-over-time\""));
        assert_non_null(strstr(dom, "<polyline"));
        free(chromium(page, png, &log));
        if (stat(png, &sb) || sb.st_size < 1000)
                fail_msg("no screenshot %s", png);
        rows_free(&types);
        free(dom);
        free(pdom);
        th_buf_free(&log);
        th_buf_free(&plog);
        free(page);
        free(probe);
        free(png);
}

/* Whole JSON, or fails. */
static void assert_whole_json(const char *path, ino_t *ino)
{
        struct th_buf b = {0};
        struct stat sb;
        json_error_t err;
        json_t *doc;
        int fd = open(path, O_RDONLY);

        if (fd < 0)
                return; /* not written yet */
        if (fstat(fd, &sb) == 0)
                *ino = sb.st_ino;
        close(fd);
        /* re-opened by path: the same file or a newer whole one */
        if (th_read_file(path, &b))
                return;
        doc = json_loads(b.p ? b.p : "", 0, &err);
        if (!doc || !json_is_array(json_object_get(doc, "crime_types")))
                fail_msg("a reader saw a partial %s (%zu bytes): %s", path,
                         b.len, err.text);
        json_decref(doc);
        th_buf_free(&b);
}

static int count_in_file(const char *path, const char *word)
{
        struct th_buf b = {0};
        const char *p;
        int n = 0;

        if (th_read_file(path, &b))
                return 0;
        for (p = b.p; p && (p = strstr(p, word)); p++)
                n++;
        th_buf_free(&b);
        return n;
}

static void test_every(void **state)
{
        struct rt *st = *state;
        char *db = th_asprintf("%s/every.db", st->dir);
        char *away = th_asprintf("%s/every.db.away", st->dir);
        char *out = th_asprintf("%s/out/report.json", st->dir);
        char *outdir = th_asprintf("%s/out", st->dir);
        char *rlog = th_asprintf("%s/every.log", st->dir);
        char *ilog = th_asprintf("%s/ingest.log", st->dir);
        char *feed;
        struct th_args ia = {0}, ra = {0};
        pid_t ingest, rep;
        ino_t ino = 0, last = 0;
        int writes = 0, status, wrote;
        int64_t deadline;

        mkdir(outdir, 0755);
        /* An ingest fed slowly: 20 pieces of the calls, 0.3 s apart. */
        feed = th_asprintf(
                "split -n l/20 '%s' '%s/piece.' && for f in '%s'/piece.*; "
                "do cat \"$f\"; sleep 0.3; done | '%s' ingest --file - --topic "
                "every "
                "--db '%s' --window 1h --allowed-lateness 30m "
                "--batch-max-ms 50 --quiet",
                st->calls, st->dir, st->dir, st->bin, db);
        /* the database exists before the report starts */
        th_args_addv(&ia, st->bin, "migrate", "--db", db, NULL);
        th_run_ok_free(&ia);
        th_args_addv(&ia, "sh", "-c", feed, NULL);
        ingest = th_spawn_logged(&ia, ilog);
        assert_true(ingest > 0);
        th_args_addv(&ra, st->bin, "report", "--db", db, "--format", "json",
                     "--out", out, "--every", "1s", NULL);
        rep = th_spawn_logged(&ra, rlog);
        assert_true(rep > 0);
        /* read while both run */
        deadline = th_now_ms() + 90000;
        while ((status = th_exited(ingest)) < 0 && th_now_ms() < deadline) {
                assert_whole_json(out, &ino);
                if (ino && ino != last) {
                        writes++;
                        last = ino;
                }
        }
        if (status != 0) {
                th_show_file_tail("ingest log", ilog);
                fail_msg("ingest status %d", status);
        }
        if (writes < 3)
                fail_msg("%d files seen while the ingest ran, expected "
                         "several",
                         writes);
        /* the database gone for a while: logged, retried */
        wrote = count_in_file(rlog, "wrote");
        if (rename(db, away))
                fail_msg("rename");
        deadline = th_now_ms() + 30000;
        while (count_in_file(rlog, "error") == 0 && th_now_ms() < deadline)
                th_sleep_ms(100);
        if (count_in_file(rlog, "error") == 0)
                fail_msg("no error logged while the database was away");
        wrote = count_in_file(rlog, "wrote");
        if (rename(away, db))
                fail_msg("rename back");
        while (count_in_file(rlog, "wrote") <= wrote && th_now_ms() < deadline)
                th_sleep_ms(100);
        if (count_in_file(rlog, "wrote") <= wrote) {
                th_show_file_tail("report log", rlog);
                fail_msg("no file written after the database came back");
        }
        assert_whole_json(out, &ino);
        kill(rep, SIGTERM);
        status = th_wait_until(rep, th_now_ms() + 20000);
        assert_int_equal(status, 0);
        /* nothing left but the report */
        {
                struct th_args a = {0};
                struct th_run r;

                th_args_addv(&a, "ls", "-A", outdir, NULL);
                th_run_ok(&a, &r);
                assert_string_equal(r.out.p, "report.json\n");
                th_run_free(&r);
                th_args_free(&a);
        }
        th_args_free(&ia);
        th_args_free(&ra);
        free(feed);
        free(db);
        free(away);
        free(out);
        free(outdir);
        free(rlog);
        free(ilog);
}

/* PostgreSQL stopped under --every: logged, retried, written again once
 * it is back; each file a whole standard report. */
static void test_every_pg(void **state)
{
        struct rt *st = *state;
        char *out = th_asprintf("%s/pg-report.json", st->dir);
        char *rlog = th_asprintf("%s/every-pg.log", st->dir);
        struct th_args ra = {0};
        int64_t deadline;
        ino_t ino = 0;
        pid_t rep;
        int wrote;

        if (!st->pg_ok)
                skip();
        th_args_addv(&ra, st->bin, "report", "--db", st->pg_db, "--schema",
                     "rpt", "--format", "json", "--out", out, "--every", "1s",
                     NULL);
        rep = th_spawn_logged(&ra, rlog);
        assert_true(rep > 0);
        deadline = th_now_ms() + 60000;
        while (count_in_file(rlog, "wrote") < 2 && th_now_ms() < deadline)
                th_sleep_ms(100);
        assert_true(count_in_file(rlog, "wrote") >= 2);
        assert_int_equal(th_pg_ctl(&st->pg, "fast", "stop"), 0);
        while (count_in_file(rlog, "error") == 0 && th_now_ms() < deadline)
                th_sleep_ms(100);
        if (count_in_file(rlog, "error") == 0) {
                th_show_file_tail("report log", rlog);
                fail_msg("no error logged while PostgreSQL was down");
        }
        wrote = count_in_file(rlog, "wrote");
        assert_int_equal(th_pg_ctl(&st->pg, NULL, "start"), 0);
        while (count_in_file(rlog, "wrote") <= wrote && th_now_ms() < deadline)
                th_sleep_ms(100);
        if (count_in_file(rlog, "wrote") <= wrote) {
                th_show_file_tail("report log", rlog);
                fail_msg("no file written after PostgreSQL came back");
        }
        assert_whole_json(out, &ino);
        assert_int_equal(th_exited(rep), -1); /* still running */
        kill(rep, SIGTERM);
        assert_int_equal(th_wait_until(rep, th_now_ms() + 20000), 0);
        th_args_free(&ra);
        free(out);
        free(rlog);
}

static void test_bad_options(void **state)
{
        struct rt *st = *state;
        static const char *const cases[][8] = {
                {"--format", "csv", NULL},
                {"--db", "x.db", "--view", "nope", NULL},
                {"--db", "x.db", "--format", "xml", NULL},
                {"--db", "x.db", "--window", "7x", NULL},
                {"--db", "x.db", "--from", "2018-13-01", NULL},
                {"--db", "x.db", "--from", "2019-01-01", "--to", "2018-01-01",
                 NULL},
                {"--db", "x.db", "--last", "90", NULL},
                {"--db", "x.db", "--top", "0", NULL},
                {"--db", "x.db", "--view", "pipeline_progress", "--window",
                 "1h", NULL},
                {"--db", "x.db", "--view", "watermarks", "--final-only", NULL},
                {"--db", "x.db", "--view", "disposition_counts", "--top", "3",
                 NULL},
                {"--db", "x.db", "--every", "1m", NULL},
                {"--db", "x.db", "--every", "0", "--out", "r.csv", NULL},
                {"--db", "x.db", "--schema", "s", NULL},
                {"--db", "x.db", "extra", NULL},
                {"--db", "x.db", "--bogus", NULL},
        };
        static const char *const words[] = {
                "--db",     "call_counts, disposition_counts",
                "--format", "--window",
                "--from",   "--from",
                "--last",   "--top",
                "--window", "--final-only",
                "--top",    "--every",
                "--every",  "--schema",
                "extra",    "--bogus",
        };
        size_t i;
        int j;

        for (i = 0; i < CS_ARRAY_SIZE_T(cases); i++) {
                struct th_args a = {0};
                struct th_run r;

                th_args_addv(&a, st->bin, "report", NULL);
                for (j = 0; cases[i][j]; j++)
                        th_args_add(&a, cases[i][j]);
                th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                if (r.status != 2 || !r.err.p ||
                    th_count_lines(r.err.p, r.err.len) != 1 ||
                    !strstr(r.err.p, words[i]) || r.out.len)
                        fail_msg("case %zu: status %d, stderr: %s", i, r.status,
                                 r.err.p ? r.err.p : "");
                th_run_free(&r);
                th_args_free(&a);
        }
        /* the options every command shares */
        {
                static const char *const ok[][2] = {{"--help", NULL},
                                                    {"-h", NULL},
                                                    {"-q", "--help"},
                                                    {"--version", NULL}};

                for (i = 0; i < CS_ARRAY_SIZE_T(ok); i++) {
                        struct th_args a = {0};
                        struct th_run r;

                        th_args_addv(&a, st->bin, "report", ok[i][0], ok[i][1],
                                     NULL);
                        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                        assert_int_equal(r.status, 0);
                        assert_non_null(r.out.p);
                        if (i < 3 &&
                            (strncmp(r.out.p, "Usage: callstream report", 24) ||
                             !strstr(r.out.p, "--quiet") ||
                             !strstr(r.out.p, "--version")))
                                fail_msg("report %s: %s", ok[i][0], r.out.p);
                        if (i == 3 && strncmp(r.out.p, "callstream ", 11))
                                fail_msg("report --version: %s", r.out.p);
                        th_run_free(&r);
                        th_args_free(&a);
                }
        }
        /* a database that is not there: a runtime failure, nothing made */
        {
                struct th_args a = {0};
                struct th_run r;
                char *db = th_asprintf("%s/missing.db", st->dir);
                struct stat sb;

                th_args_addv(&a, st->bin, "report", "--db", db, NULL);
                th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                assert_int_equal(r.status, 1);
                assert_int_not_equal(stat(db, &sb), 0);
                th_run_free(&r);
                th_args_free(&a);
                free(db);
        }
}

static int group_teardown(void **state)
{
        struct rt *st = *state;

        if (!st)
                return 0;
        th_pg_stop(&st->pg);
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->calls);
        free(st->lite_db);
        free(st->pg_db);
        free(st);
        *state = NULL;
        return 0;
}

static int ingest_into(struct rt *st, const char *db, const char *schema)
{
        struct th_args a = {0};
        struct th_run r;
        int status;

        th_args_addv(&a, st->bin, "ingest", "--file", st->calls, "--db", db,
                     "--window", "1h", "--window", "1h/15m",
                     "--allowed-lateness", "30m", "--quiet", NULL);
        if (schema)
                th_args_addv(&a, "--schema", schema, NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        status = r.status;
        if (status)
                th_show_tail("ingest stderr", r.err.p ? r.err.p : "",
                             r.err.len);
        th_run_free(&r);
        th_args_free(&a);
        return status ? -1 : 0;
}

static int group_setup(void **state)
{
        struct rt *st = calloc(1, sizeof(*st));
        char *data = NULL;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_report", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data)) {
                free(data);
                goto fail;
        }
        free(data);
        if (th_tmpdir_make("callstream-report", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        st->calls = th_asprintf("%s/calls.ndjson", st->dir);
        st->lite_db = th_asprintf("%s/report.db", st->dir);
        write_calls(st->calls);
        if (ingest_into(st, st->lite_db, NULL))
                goto fail;
        st->pg_ok = th_pg_start(&st->pg, st->dir, 0) == 0 &&
                    th_pg_createdb(&st->pg, "report", NULL) == 0;
        if (st->pg_ok) {
                st->pg_db = th_pg_conninfo(&st->pg, "report");
                if (ingest_into(st, st->pg_db, "rpt"))
                        goto fail;
        }
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_formats_sqlite,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_formats_pg, th_test_teardown),
                cmocka_unit_test_teardown(test_html_chromium, th_test_teardown),
                cmocka_unit_test_teardown(test_every, th_test_teardown),
                cmocka_unit_test_teardown(test_every_pg, th_test_teardown),
                cmocka_unit_test_teardown(test_bad_options, th_test_teardown),
        };

        return cmocka_run_group_tests_name("report", tests, group_setup,
                                           group_teardown);
}
