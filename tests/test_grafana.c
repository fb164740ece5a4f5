/* test_grafana.c: the Grafana dashboard in contrib/grafana/callstream.json
 * (issue 10) runs against a real PostgreSQL 15 filled by the ingest.
 *
 * The group setup starts a throw-away server (th_pg_start()), replays the
 * real sample into schema sfpd of database police with `callstream ingest
 * --file` (windows 1d, 1h and 1h/15m) and makes two roles that can only
 * read: bi_reader, granted as the README's BI recipe says (SELECT on every
 * table of the schema), and bi_views, granted SELECT on the public views
 * alone, so a panel that reads a table directly fails there.
 *
 * Each panel's SQL is taken from the JSON with jansson, its template
 * variables and Grafana's PostgreSQL macros expanded as Grafana does for a
 * fixed time range (the expansions are Grafana's own, from
 * pkg/tsdb/grafana-postgresql-datasource/macros.go), and run once per value
 * of the window_spec variable (itself its query's result) as each role.
 * Each must return rows with the columns its panel type needs; totals are
 * compared with the sample file read here with jansson, not with callstream.
 * E2E_KEEP=1 keeps the folder. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "pgutil.h"

#define WATCHDOG_S 600

#define DASHBOARD   "contrib/grafana/callstream.json"
#define SAMPLE_FILE "police-department-calls-for-service.sample.json"
#define DS_TYPE     "grafana-postgresql-datasource"
#define DS_UID      "${datasource}"

/* The dashboard's time range in the test: the sample's day, in ms since
 * 1970, and the $__interval Grafana would pick for it on a wide screen. */
#define RANGE_FROM_MS 1546214400000LL /* 2018-12-31T00:00:00Z */
#define RANGE_TO_MS   1546300800000LL /* 2019-01-01T00:00:00Z */
#define INTERVAL      "1h"

/* PostgreSQL type oids (pg_type.h is server-side only). */
#define OID_INT8        20
#define OID_INT2        21
#define OID_INT4        23
#define OID_TEXT        25
#define OID_FLOAT4      700
#define OID_FLOAT8      701
#define OID_BPCHAR      1042
#define OID_VARCHAR     1043
#define OID_TIMESTAMP   1114
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC     1700

#define MAX_SPECS 8

struct gt {
        char dir[256];
        char *bin;
        char *data_dir;
        struct th_pg pg;
        int pg_ok;
        json_t *dash;
        /* The sample, read here: its calls and dispositions. */
        long calls;
        long dispositions; /* distinct, '' counted as one */
        json_t *events;    /* [event time in s, crime type] per call */
        long long max_ts;  /* the newest event time, in s */
};

/*
 * Grafana's expansions (PostgreSQL data source).
 */

/* A time as Go's time.RFC3339Nano in UTC: no fraction when it is zero,
 * else its digits without trailing zeros; "Z" for UTC. */
static void rfc3339nano(long long ms, char *out, size_t size)
{
        time_t s = (time_t)(ms / 1000);
        int frac = (int)(ms % 1000);
        struct tm tm;
        char day[32];

        gmtime_r(&s, &tm);
        strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
        if (frac == 0) {
                snprintf(out, size, "%sZ", day);
                return;
        }
        char f[8];
        snprintf(f, sizeof(f), "%03d", frac);
        for (size_t n = strlen(f); n > 0 && f[n - 1] == '0'; n--)
                f[n - 1] = '\0';
        snprintf(out, size, "%s.%sZ", day, f);
}

/* Seconds in an interval such as 90s, 15m, 1h, 1d (gtime.ParseInterval's
 * units that this dashboard can meet), or -1. */
static long long interval_s(const char *s)
{
        char *end;
        long long n = strtoll(s, &end, 10);

        if (end == s || n <= 0)
                return -1;
        if (!strcmp(end, "s"))
                return n;
        if (!strcmp(end, "m"))
                return n * 60;
        if (!strcmp(end, "h"))
                return n * 3600;
        if (!strcmp(end, "d"))
                return n * 86400;
        return -1;
}

/* One macro with its comma-split, space-trimmed arguments, as
 * evaluateMacro() does. Returns the text (caller frees) or NULL for an
 * unknown macro or bad arguments. */
static char *macro_eval(const char *name, char **args, int nargs)
{
        char from[40], to[40];

        rfc3339nano(RANGE_FROM_MS, from, sizeof(from));
        rfc3339nano(RANGE_TO_MS, to, sizeof(to));
        if (!strcmp(name, "__timeFilter") && nargs >= 1 && *args[0])
                return th_asprintf("%s BETWEEN '%s' AND '%s'", args[0], from,
                                   to);
        if (!strcmp(name, "__timeFrom"))
                return th_asprintf("'%s'", from);
        if (!strcmp(name, "__timeTo"))
                return th_asprintf("'%s'", to);
        if ((!strcmp(name, "__timeGroup") ||
             !strcmp(name, "__timeGroupAlias")) &&
            nargs == 2) {
                char *iv = args[1];
                size_t n = strlen(iv);
                long long s;

                /* Grafana trims single quotes around the interval. */
                while (*iv == '\'')
                        iv++, n--;
                while (n > 0 && iv[n - 1] == '\'')
                        n--;
                iv = th_strndup(iv, n);
                s = interval_s(iv);
                free(iv);
                if (s < 0)
                        return NULL;
                return th_asprintf("floor(extract(epoch from %s)/%lld)*%lld%s",
                                   args[0], s, s,
                                   name[11] ? " AS \"time\"" : "");
        }
        return NULL;
}

/* Grafana's macro pass: every \$([_a-zA-Z0-9]+)\(([^\)]*)\) replaced.
 * Returns the SQL (caller frees), or NULL after saying which macro failed. */
static char *macros_expand(const char *sql)
{
        struct th_buf b = {0};
        const char *p = sql;

        while (*p) {
                const char *name = p + 1, *e = name, *close;
                char *args[8], *inner, *tok, *save, *val, *nm;
                int n = 0;

                if (*p != '$') {
                        th_buf_add(&b, p++, 1);
                        continue;
                }
                while (isalnum((unsigned char)*e) || *e == '_')
                        e++;
                if (e == name || *e != '(' || !(close = strchr(e, ')'))) {
                        th_buf_add(&b, p++, 1);
                        continue;
                }
                nm = th_strndup(name, (size_t)(e - name));
                inner = th_strndup(e + 1, (size_t)(close - e - 1));
                /* strings.Split keeps empty fields: "" is one argument. */
                for (tok = strtok_r(inner, ",", &save); tok && n < 8;
                     tok = strtok_r(NULL, ",", &save)) {
                        while (*tok == ' ')
                                tok++;
                        for (size_t l = strlen(tok); l > 0 && tok[l - 1] == ' ';
                             l--)
                                tok[l - 1] = '\0';
                        args[n++] = tok;
                }
                if (n == 0)
                        args[n++] = inner;
                val = macro_eval(nm, args, n);
                if (!val) {
                        fprintf(stderr, "# macro $%s(%.*s): unknown or bad\n",
                                nm, (int)(close - e - 1), e + 1);
                        free(nm);
                        free(inner);
                        th_buf_free(&b);
                        return NULL;
                }
                th_buf_add(&b, val, strlen(val));
                free(val);
                free(nm);
                free(inner);
                p = close + 1;
        }
        th_buf_add(&b, "", 0);
        return b.p;
}

/* The front end's pass first: $name and ${name} of the variables given
 * (names[i] = values[i]); a single-valued variable goes in as it is, without
 * quotes of its own (the dashboard quotes it; window specs hold no quote to
 * escape). Anything else is left for the macro pass. Caller frees. */
static char *vars_expand(const char *sql, const char *const *names,
                         const char *const *values, int n)
{
        struct th_buf b = {0};
        const char *p = sql;

        while (*p) {
                int braces = p[0] == '$' && p[1] == '{';
                const char *name = p + 1 + braces, *e = name;
                int i;

                if (*p != '$') {
                        th_buf_add(&b, p++, 1);
                        continue;
                }
                while (isalnum((unsigned char)*e) || *e == '_')
                        e++;
                for (i = 0; i < n; i++)
                        if (strlen(names[i]) == (size_t)(e - name) &&
                            !strncmp(names[i], name, (size_t)(e - name)))
                                break;
                if (i == n || (braces && *e != '}')) {
                        th_buf_add(&b, p++, 1);
                        continue;
                }
                th_buf_add(&b, values[i], strlen(values[i]));
                p = e + braces;
        }
        th_buf_add(&b, "", 0);
        return b.p;
}

/* Both passes, for window spec spec. Caller frees; NULL on a bad macro. */
static char *grafana_sql(const char *raw, const char *spec)
{
        const char *const names[] = {"window_spec", "__interval"};
        const char *const values[] = {spec, INTERVAL};
        char *v = vars_expand(raw, names, values, 2);
        char *sql = macros_expand(v);

        free(v);
        return sql;
}

/*
 * The dashboard.
 */

/* Calls f on every panel, rows' nested panels included. */
static void each_panel(json_t *panels, void (*f)(json_t *panel, void *arg),
                       void *arg)
{
        size_t i;
        json_t *p;

        json_array_foreach(panels, i, p)
        {
                json_t *inner = json_object_get(p, "panels");

                if (json_is_array(inner))
                        each_panel(inner, f, arg);
                if (!json_is_string(json_object_get(p, "type")) ||
                    strcmp(json_string_value(json_object_get(p, "type")),
                           "row"))
                        f(p, arg);
        }
}

static const char *title_of(json_t *panel)
{
        const char *t = json_string_value(json_object_get(panel, "title"));

        return t ? t : "(untitled)";
}

/* A "datasource" value that names the template variable: {"type": DS_TYPE,
 * "uid": "${datasource}"} (or the bare string of older dashboards). */
static int ds_is_variable(json_t *ds)
{
        const char *type, *uid;

        if (json_is_string(ds))
                return !strcmp(json_string_value(ds), DS_UID) ||
                       !strcmp(json_string_value(ds), "$datasource");
        type = json_string_value(json_object_get(ds, "type"));
        uid = json_string_value(json_object_get(ds, "uid"));
        return type && uid && !strcmp(type, DS_TYPE) &&
               (!strcmp(uid, DS_UID) || !strcmp(uid, "$datasource"));
}

/* Counts every "datasource" anywhere in v that is not the variable. */
static int bad_datasources(json_t *v, const char *where)
{
        int bad = 0;

        if (json_is_object(v)) {
                const char *k;
                json_t *x;

                json_object_foreach(v, k, x)
                {
                        if (!strcmp(k, "datasource") && !ds_is_variable(x)) {
                                char *s = json_dumps(x, JSON_COMPACT);

                                fprintf(stderr,
                                        "# %s: datasource %s is not the "
                                        "template variable\n",
                                        where, s ? s : "?");
                                free(s);
                                bad++;
                        }
                        bad += bad_datasources(x, where);
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *x;

                json_array_foreach(v, i, x) bad += bad_datasources(x, where);
        }
        return bad;
}

struct ds_check {
        int panels;
        int bad;
        json_t *ids; /* panel ids seen, as keys */
};

static void check_panel_ds(json_t *panel, void *arg)
{
        struct ds_check *c = arg;
        char id[32];
        json_t *targets = json_object_get(panel, "targets");
        size_t i;
        json_t *t;

        c->panels++;
        snprintf(id, sizeof(id), "%lld",
                 (long long)json_integer_value(json_object_get(panel, "id")));
        if (!json_is_integer(json_object_get(panel, "id")) ||
            json_object_get(c->ids, id)) {
                fprintf(stderr, "# panel '%s': id missing or not unique\n",
                        title_of(panel));
                c->bad++;
        }
        json_object_set_new(c->ids, id, json_true());
        if (!json_is_object(json_object_get(panel, "gridPos"))) {
                fprintf(stderr, "# panel '%s': no gridPos\n", title_of(panel));
                c->bad++;
        }
        if (!ds_is_variable(json_object_get(panel, "datasource"))) {
                fprintf(stderr, "# panel '%s': no datasource ${datasource}\n",
                        title_of(panel));
                c->bad++;
        }
        if (!json_is_array(targets) || json_array_size(targets) == 0) {
                fprintf(stderr, "# panel '%s': no targets\n", title_of(panel));
                c->bad++;
        }
        json_array_foreach(targets, i, t)
        {
                if (!ds_is_variable(json_object_get(t, "datasource"))) {
                        fprintf(stderr,
                                "# panel '%s': target %zu has no datasource "
                                "${datasource}\n",
                                title_of(panel), i);
                        c->bad++;
                }
                if (!json_is_string(json_object_get(t, "rawSql"))) {
                        fprintf(stderr, "# panel '%s': target %zu: no rawSql\n",
                                title_of(panel), i);
                        c->bad++;
                }
        }
}

/* The template variable named name, or NULL. */
static json_t *variable(json_t *dash, const char *name)
{
        json_t *list =
                json_object_get(json_object_get(dash, "templating"), "list");
        size_t i;
        json_t *v;

        json_array_foreach(list, i, v)
        {
                const char *n = json_string_value(json_object_get(v, "name"));

                if (n && !strcmp(n, name))
                        return v;
        }
        return NULL;
}

/*
 * Running the panels.
 */

static int oid_numeric(Oid t)
{
        return t == OID_INT2 || t == OID_INT4 || t == OID_INT8 ||
               t == OID_FLOAT4 || t == OID_FLOAT8 || t == OID_NUMERIC;
}

static int oid_text(Oid t)
{
        return t == OID_TEXT || t == OID_VARCHAR || t == OID_BPCHAR;
}

/* Columns a file replay leaves NULL (it has no Kafka high watermark). */
static int may_be_null(const char *col)
{
        return !strcmp(col, "lag") || !strcmp(col, "high_watermark");
}

/* What Grafana's panel type needs of a result, said on stderr. Returns the
 * number of problems. */
static int check_result(const char *title, const char *type, const char *fmt,
                        PGresult *r)
{
        int ncol = PQnfields(r), nrow = PQntuples(r), bad = 0;
        int time_col = -1, num = 0, text = 0;

        if (nrow == 0) {
                fprintf(stderr, "# panel '%s': no rows\n", title);
                return 1;
        }
        for (int c = 0; c < ncol; c++) {
                Oid t = PQftype(r, c);
                const char *name = PQfname(r, c);

                if (!strcmp(name, "time"))
                        time_col = c;
                else if (oid_numeric(t))
                        num++;
                else if (oid_text(t))
                        text++;
                if (!oid_numeric(t) || may_be_null(name))
                        continue;
                /* A number Grafana would show as "no value" in every row. */
                int set = 0;
                for (int i = 0; i < nrow; i++)
                        set += !PQgetisnull(r, i, c);
                if (!set) {
                        fprintf(stderr,
                                "# panel '%s': %s is NULL in every row\n",
                                title, name);
                        bad++;
                }
        }
        if (!strcmp(type, "timeseries")) {
                Oid t = time_col >= 0 ? PQftype(r, time_col) : 0;

                if (strcmp(fmt, "time_series")) {
                        fprintf(stderr,
                                "# panel '%s': format %s, not "
                                "time_series\n",
                                title, fmt);
                        bad++;
                }
                if (time_col < 0 || !(t == OID_TIMESTAMP ||
                                      t == OID_TIMESTAMPTZ || oid_numeric(t))) {
                        fprintf(stderr,
                                "# panel '%s': no time column of a "
                                "time or epoch type\n",
                                title);
                        bad++;
                } else {
                        for (int i = 0; i < nrow; i++)
                                if (PQgetisnull(r, i, time_col)) {
                                        fprintf(stderr,
                                                "# panel '%s': NULL time in "
                                                "row %d\n",
                                                title, i);
                                        bad++;
                                        break;
                                }
                }
                if (num == 0) {
                        fprintf(stderr, "# panel '%s': no value column\n",
                                title);
                        bad++;
                }
        } else if (!strcmp(type, "barchart") || !strcmp(type, "bargauge") ||
                   !strcmp(type, "piechart")) {
                if (text == 0 || num == 0) {
                        fprintf(stderr,
                                "# panel '%s': %s needs a text column for "
                                "names and a number column\n",
                                title, type);
                        bad++;
                }
        } else if (!strcmp(type, "stat")) {
                if (num == 0) {
                        fprintf(stderr, "# panel '%s': no number column\n",
                                title);
                        bad++;
                }
        } else if (strcmp(type, "table")) {
                fprintf(stderr, "# panel '%s': type %s not checked here\n",
                        title, type);
                bad++;
        }
        return bad;
}

/* The sum of column col over the rows, or -1 when it is missing. */
static long sum_col(PGresult *r, const char *col)
{
        int c = PQfnumber(r, col);
        long s = 0;

        if (c < 0)
                return -1;
        for (int i = 0; i < PQntuples(r); i++)
                s += atol(PQgetvalue(r, i, c));
        return s;
}

/* The calls of the most frequent crime type in the windows of size
 * seconds that recent_call_counts keeps with its default recent_hours, 24:
 * those that end after the watermark less 24 h and start before it. The
 * watermark is the newest event time less the default allowed lateness,
 * 1 h. */
static long recent_top(struct gt *st, long long size)
{
        long long wm = st->max_ts - 3600;
        json_t *count = json_object(), *e;
        long top = 0;
        size_t i;

        json_array_foreach(st->events, i, e)
        {
                long long ts = json_integer_value(json_array_get(e, 0));
                const char *ty = json_string_value(json_array_get(e, 1));
                long long start = ts - ts % size;
                json_int_t n;

                if (!(start + size > wm - 24 * 3600 && start < wm))
                        continue;
                n = json_integer_value(json_object_get(count, ty)) + 1;
                json_object_set_new(count, ty, json_integer(n));
                if (n > top)
                        top = (long)n;
        }
        json_decref(count);
        return top;
}

/* Totals that do not depend on the panel type, against the sample read
 * here, for a tumbling spec (each call in one window). */
static int check_totals(struct gt *st, int id, const char *spec, PGresult *r)
{
        long got, want;
        const char *what;

        if (strchr(spec, '/'))
                return 0;
        switch (id) {
        case 2: /* every call, in buckets */
                got = sum_col(r, "calls"), want = st->calls;
                what = "calls summed";
                break;
        case 3: /* one row per disposition, every call */
                if (PQntuples(r) != st->dispositions) {
                        fprintf(stderr,
                                "# window %s: %d dispositions, the sample has "
                                "%ld\n",
                                spec, PQntuples(r), st->dispositions);
                        return 1;
                }
                got = sum_col(r, "calls"), want = st->calls;
                what = "calls over dispositions";
                break;
        case 4: /* the recent hours before the watermark */
                got = PQntuples(r) ? atol(PQgetvalue(r, 0, 1)) : -1;
                want = recent_top(st, interval_s(spec));
                what = "recent calls of the top crime type";
                break;
        default:
                return 0;
        }
        fprintf(stderr, "# window %s: panel %d: %s %ld, sample %ld\n", spec, id,
                what, got, want);
        return got != want;
}

struct run {
        struct gt *st;
        PGconn *conn;
        const char *role;
        const char *spec;
        int panels;
        int bad;
};

static void run_panel(json_t *panel, void *arg)
{
        struct run *ru = arg;
        const char *title = title_of(panel);
        const char *type = json_string_value(json_object_get(panel, "type"));
        int id = (int)json_integer_value(json_object_get(panel, "id"));
        size_t i;
        json_t *t;

        ru->panels++;
        json_array_foreach(json_object_get(panel, "targets"), i, t)
        {
                const char *raw =
                        json_string_value(json_object_get(t, "rawSql"));
                const char *fmt =
                        json_string_value(json_object_get(t, "format"));
                char *sql = raw ? grafana_sql(raw, ru->spec) : NULL;
                PGresult *r;

                if (!sql || strchr(sql, '$')) {
                        fprintf(stderr, "# panel '%s': SQL not expanded: %s\n",
                                title,
                                sql   ? sql
                                : raw ? raw
                                      : "(none)");
                        ru->bad++;
                        free(sql);
                        continue;
                }
                r = PQexec(ru->conn, sql);
                if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                        fprintf(stderr, "# panel '%s' as %s: %s# in: %s\n",
                                title, ru->role, PQresultErrorMessage(r), sql);
                        ru->bad++;
                } else {
                        int b = check_result(title, type ? type : "?",
                                             fmt ? fmt : "table", r);

                        b += check_totals(ru->st, id, ru->spec, r);
                        if (b)
                                fprintf(stderr, "# (window %s, as %s) in: %s\n",
                                        ru->spec, ru->role, sql);
                        ru->bad += b;
                }
                PQclear(r);
                free(sql);
        }
}

/* Runs every panel as role, once per value of the window_spec variable
 * (its query run as role too). Fails the test on any problem. */
static void run_dashboard(struct gt *st, const char *role)
{
        json_t *var = variable(st->dash, "window_spec");
        const char *q = json_string_value(json_object_get(var, "query"));
        char *conninfo, *specs[MAX_SPECS];
        int nspec = 0, bad = 0, panels = 0;
        PGconn *c;
        PGresult *r;

        if (!st->pg_ok)
                fail_msg("PostgreSQL or the ingest failed (see the setup)");
        assert_non_null(q);
        conninfo = th_pg_conninfo_as(&st->pg, role, "police");
        c = th_pg_open(conninfo);
        free(conninfo);
        if (!c)
                fail_msg("cannot connect as %s", role);

        r = PQexec(c, q);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                fprintf(stderr, "# %s", PQresultErrorMessage(r));
                PQclear(r);
                PQfinish(c);
                fail_msg("the window_spec variable's query fails as %s", role);
        }
        for (int i = 0; i < PQntuples(r) && nspec < MAX_SPECS; i++)
                specs[nspec++] = th_strdup(PQgetvalue(r, i, 0));
        PQclear(r);
        /* The first value is what the dashboard opens with: tumbling. */
        if (nspec != 3 || strcmp(specs[0], "1d") || strcmp(specs[1], "1h") ||
            strcmp(specs[2], "1h/15m")) {
                fprintf(stderr,
                        "# window_spec: %d values, expected 1d, 1h, "
                        "1h/15m in that order\n",
                        nspec);
                bad++;
        }

        for (int i = 0; i < nspec; i++) {
                struct run ru = {st, c, role, specs[i], 0, 0};

                each_panel(json_object_get(st->dash, "panels"), run_panel, &ru);
                fprintf(stderr, "# as %s, window %s: %d panels, %d problems\n",
                        role, specs[i], ru.panels, ru.bad);
                bad += ru.bad;
                panels = ru.panels;
                free(specs[i]);
        }
        PQfinish(c);
        if (panels < 4)
                fail_msg("only %d panels", panels);
        if (bad)
                fail_msg("%d problem(s) as %s (details above)", bad, role);
}

/*
 * The sample, read without callstream.
 */

static int read_sample(struct gt *st)
{
        char *path = th_asprintf("%s/" SAMPLE_FILE, st->data_dir);
        json_error_t err;
        json_t *a = json_load_file(path, 0, &err), *x;
        json_t *ids = json_object(), *disp = json_object();
        size_t i;

        free(path);
        st->events = json_array();
        if (!json_is_array(a)) {
                fprintf(stderr, "# %s: %s\n", SAMPLE_FILE, err.text);
                json_decref(a);
                return -1;
        }
        json_array_foreach(a, i, x)
        {
                const char *id =
                        json_string_value(json_object_get(x, "crime_id"));
                const char *d =
                        json_string_value(json_object_get(x, "disposition"));
                const char *ty = json_string_value(
                        json_object_get(x, "original_crime_type_name"));
                const char *when =
                        json_string_value(json_object_get(x, "call_date_time"));
                struct tm tm = {0};
                long long ts;

                /* The sample has no duplicate, nothing invalid. */
                if (!id || !ty || !when || json_object_get(ids, id) ||
                    !strptime(when, "%Y-%m-%dT%H:%M:%S", &tm)) {
                        fprintf(stderr, "# %s: element %zu unexpected\n",
                                SAMPLE_FILE, i);
                        json_decref(ids);
                        json_decref(disp);
                        json_decref(a);
                        return -1;
                }
                ts = (long long)timegm(&tm);
                json_object_set_new(ids, id, json_true());
                json_object_set_new(disp, d ? d : "", json_true());
                json_array_append_new(st->events,
                                      json_pack("[Is]", (json_int_t)ts, ty));
                if (ts > st->max_ts)
                        st->max_ts = ts;
        }
        st->calls = (long)json_object_size(ids);
        st->dispositions = (long)json_object_size(disp);
        fprintf(stderr, "# sample: %ld calls, %ld dispositions\n", st->calls,
                st->dispositions);
        json_decref(ids);
        json_decref(disp);
        json_decref(a);
        return 0;
}

/*
 * Fixture.
 */

static int group_teardown(void **state)
{
        struct gt *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_pg_stop(&st->pg);
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        json_decref(st->dash);
        json_decref(st->events);
        free(st->bin);
        free(st->data_dir);
        free(st);
        *state = NULL;
        return 0;
}

/* The README's recipe (PostgreSQL, "BI tools"), for database police and
 * schema sfpd; and a role that may read the public views alone. */
static const char *const roles_sql[] = {
        "CREATE ROLE bi_reader LOGIN PASSWORD 'change-me'",
        "GRANT CONNECT ON DATABASE police TO bi_reader",
        "GRANT USAGE ON SCHEMA sfpd TO bi_reader",
        "GRANT SELECT ON ALL TABLES IN SCHEMA sfpd TO bi_reader",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA sfpd GRANT SELECT ON TABLES TO "
        "bi_reader",
        "ALTER ROLE bi_reader SET search_path = sfpd",
        "CREATE ROLE bi_views LOGIN",
        "GRANT USAGE ON SCHEMA sfpd TO bi_views",
        "GRANT SELECT ON sfpd.call_counts, sfpd.disposition_counts, "
        "sfpd.recent_call_counts, sfpd.top_crime_types, "
        "sfpd.pipeline_progress, sfpd.watermarks, sfpd.final_watermark "
        "TO bi_views",
        "ALTER ROLE bi_views SET search_path = sfpd",
};

static int group_setup(void **state)
{
        struct gt *st = calloc(1, sizeof(*st));
        json_error_t err;
        struct th_args a = {0};
        struct th_run r = {0};
        char *conninfo = NULL, *file = NULL, *dash_path;
        PGconn *c;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_grafana", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data_dir))
                goto fail;
        /* The data folder is tests/data: the dashboard is two levels up. */
        dash_path = th_asprintf("%s/../../" DASHBOARD, st->data_dir);
        st->dash = json_load_file(dash_path, 0, &err);
        if (!st->dash)
                fprintf(stderr, "# %s: line %d: %s\n", dash_path, err.line,
                        err.text);
        free(dash_path);
        if (!st->dash || read_sample(st) < 0)
                goto fail;
        if (th_tmpdir_make("callstream-grafana", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        if (th_pg_start(&st->pg, st->dir, 0) < 0 ||
            th_pg_createdb(&st->pg, "police", NULL) < 0)
                goto fail;

        conninfo = th_pg_conninfo(&st->pg, "police");
        file = th_asprintf("%s/" SAMPLE_FILE, st->data_dir);
        th_args_addv(&a, st->bin, "ingest", "--file", file, "--db", conninfo,
                     "--schema", "sfpd", "--window", "1d", "--window", "1h",
                     "--window", "1h/15m", NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        free(file);
        if (r.status != 0) {
                th_show_tail("ingest stderr", r.err.p, r.err.len);
                th_run_free(&r);
                goto fail;
        }
        th_run_free(&r);

        c = th_pg_open(conninfo);
        if (!c)
                goto fail;
        for (size_t i = 0; i < sizeof(roles_sql) / sizeof(roles_sql[0]); i++) {
                PGresult *res = PQexec(c, roles_sql[i]);

                if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                        fprintf(stderr, "# %s: %s", roles_sql[i],
                                PQresultErrorMessage(res));
                        PQclear(res);
                        PQfinish(c);
                        goto fail;
                }
                PQclear(res);
        }
        PQfinish(c);
        free(conninfo);
        st->pg_ok = 1;
        return 0;
fail:
        free(conninfo);
        group_teardown(state);
        return -1;
}

/*
 * Tests.
 */

/* Grafana's own expansions, written out by hand from macros.go. */
static void test_macros(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                {"WHERE $__timeFilter(t) AND x = '${window_spec}'",
                 "WHERE t BETWEEN '2018-12-31T00:00:00Z' AND "
                 "'2019-01-01T00:00:00Z' AND x = '1h'"},
                {"$__timeFrom() < a AND a < $__timeTo()",
                 "'2018-12-31T00:00:00Z' < a AND a < '2019-01-01T00:00:00Z'"},
                {"SELECT $__timeGroupAlias(ws, $__interval), 1",
                 "SELECT floor(extract(epoch from ws)/3600)*3600 AS \"time\", "
                 "1"},
                {"GROUP BY $__timeGroup( ws , '15m')",
                 "GROUP BY floor(extract(epoch from ws)/900)*900"},
                {"$window_spec$__interval", "1h1h"},
                {"'$__name' $x", "'$__name' $x"},
        };
        char buf[40];
        int bad = 0;

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *got = grafana_sql(cases[i].in, "1h");

                if (!got || strcmp(got, cases[i].out)) {
                        fprintf(stderr, "# %s\n#   gave %s\n#   want %s\n",
                                cases[i].in, got ? got : "(error)",
                                cases[i].out);
                        bad++;
                }
                free(got);
        }
        rfc3339nano(1546214400120LL, buf, sizeof(buf));
        if (strcmp(buf, "2018-12-31T00:00:00.12Z")) {
                fprintf(stderr, "# RFC3339Nano: %s\n", buf);
                bad++;
        }
        if (grafana_sql("$__unknownMacro(x)", "1h") != NULL) {
                fprintf(stderr, "# an unknown macro was accepted\n");
                bad++;
        }
        if (bad)
                fail_msg("%d expansion(s) wrong", bad);
}

/* Every panel and target, and the variable's query, use the data source
 * variable; no uid of a real data source anywhere. */
static void test_datasource_variable(void **state)
{
        struct gt *st = *state;
        struct ds_check c = {0, 0, json_object()};
        json_t *ds = variable(st->dash, "datasource");
        const char *type = json_string_value(json_object_get(ds, "type"));
        const char *query = json_string_value(json_object_get(ds, "query"));

        if (!type || strcmp(type, "datasource") || !query ||
            strcmp(query, DS_TYPE))
                fail_msg("no template variable 'datasource' of type "
                         "datasource for " DS_TYPE);
        if (json_object_get(st->dash, "__inputs"))
                fail_msg("__inputs: the dashboard asks for a data source at "
                         "import instead of using the variable");
        each_panel(json_object_get(st->dash, "panels"), check_panel_ds, &c);
        c.bad += bad_datasources(st->dash, "dashboard");

        /* The walk itself finds a data source pinned by uid, deep down. */
        json_t *pinned = json_pack("{s:[{s:[{s:{s:s,s:s}}]}]}", "panels",
                                   "targets", "datasource", "type", DS_TYPE,
                                   "uid", "P44368ADAD746BC27");

        assert_non_null(pinned);
        if (bad_datasources(pinned, "self-check (expected)") != 1)
                c.bad++;
        json_decref(pinned);
        fprintf(stderr, "# %d panels\n", c.panels);
        json_decref(c.ids);
        if (c.bad)
                fail_msg("%d data source problem(s)", c.bad);
}

/* The panels cover what issue 10 asks for: crime types over time,
 * dispositions with descriptions, top crime types, pipeline progress. */
static void test_panels_cover(void **state)
{
        struct gt *st = *state;
        char *all = json_dumps(json_object_get(st->dash, "panels"), 0);
        const char *need[] = {
                "FROM call_counts",        "disposition_description",
                "FROM recent_call_counts", "FROM top_crime_types",
                "FROM pipeline_progress",  "\"timeseries\""};
        int bad = 0;

        assert_non_null(all);
        for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
                if (!strstr(all, need[i])) {
                        fprintf(stderr, "# no panel has %s\n", need[i]);
                        bad++;
                }
        free(all);
        if (bad)
                fail_msg("%d missing", bad);
}

/* The roles can read and nothing else. */
static void test_roles_read_only(void **state)
{
        struct gt *st = *state;
        const char *roles[] = {"bi_reader", "bi_views"};

        if (!st->pg_ok)
                fail_msg("PostgreSQL or the ingest failed (see the setup)");
        for (int i = 0; i < 2; i++) {
                char *ci = th_pg_conninfo_as(&st->pg, roles[i], "police");
                PGconn *c = th_pg_open(ci);
                PGresult *r;
                const char *state_code;

                free(ci);
                assert_non_null(c);
                r = PQexec(c, "DELETE FROM settings");
                state_code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                fprintf(stderr, "# %s: DELETE FROM settings: %s", roles[i],
                        PQresultErrorMessage(r));
                if (PQresultStatus(r) != PGRES_FATAL_ERROR || !state_code ||
                    strcmp(state_code, "42501")) {
                        PQclear(r);
                        PQfinish(c);
                        fail_msg("%s could write (or failed otherwise)",
                                 roles[i]);
                }
                PQclear(r);
                PQfinish(c);
        }
}

static void test_panels_readme_role(void **state)
{
        run_dashboard(*state, "bi_reader");
}

static void test_panels_views_only(void **state)
{
        run_dashboard(*state, "bi_views");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_macros),
                cmocka_unit_test(test_datasource_variable),
                cmocka_unit_test(test_panels_cover),
                cmocka_unit_test_teardown(test_roles_read_only,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_panels_readme_role,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_panels_views_only,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("grafana", tests, group_setup,
                                           group_teardown);
}
