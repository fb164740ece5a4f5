/* test_pg_keys.c: PostgreSQL's compact window keys (migration
 * 011_window_keys.sql): window_counts is a view of window_totals, keyed by
 * dictionary ids and seconds since 1970, and shows what the table showed.
 *
 * - after an ingest, window_counts and call_counts equal an independent
 *   computation here (jansson and tests/model.c's window arithmetic), and
 *   the views of the real sample hash to what callstream produced before
 *   011 (the figures below; PG_KEYS_PRINT=1 prints them for the binary
 *   in CALLSTREAM_BIN, which is how they were taken from main);
 * - migration 011 carries the rows of an older database over, keeps our
 *   views' grants and users' views built on them, and stops, naming it,
 *   when a user's view depends on the old table;
 * - a user's view on window_counts survives the view being installed
 *   again;
 * - a role that only reads and writes rows assigns dictionary ids, also
 *   with two ingests at once, and deletes with --retention, which leaves
 *   every window after its horizon as it was.
 *
 * The group setup starts a PostgreSQL server of its own and writes a
 * generated input. Timeouts are hang guards only. E2E_KEEP=1 keeps the
 * folder. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cs_migrate.h"
#include "cs_sink.h"
#include "cs_window.h"
#include "harness.h"
#include "model.h"
#include "pgutil.h"

#define WATCHDOG_S  900
#define GUARD_MS    (120 * 1000)
#define SAMPLE_FILE "police-department-calls-for-service.sample.json"
#define MAX_SHOWN   10

struct keys {
        char dir[PATH_MAX];
        char *bin;
        char *data_dir;
        struct th_pg pg;
        char *sample; /* the real sample (a JSON array) */
        char *gen;    /* a generated NDJSON stream, every line a call */
        char *gen2;   /* another, for a second ingest at once */
};

static char *ci_as(const struct keys *st, const char *user, const char *db)
{
        return th_pg_conninfo_as(&st->pg, user, db);
}

static PGconn *open_as(const struct keys *st, const char *user, const char *db)
{
        char *ci = ci_as(st, user, db);
        PGconn *c = th_pg_open(ci);

        free(ci);
        assert_non_null(c);
        return c;
}

static void sql_as(const struct keys *st, const char *user, const char *db,
                   const char *sql)
{
        PGconn *c = open_as(st, user, db);

        th_pg_exec_ok(c, sql);
        PQfinish(c);
}

/* The first cell of sql (the caller frees it), or NULL with the server's
 * message in err. */
static char *value_of(PGconn *c, const char *sql, char *err, size_t err_size)
{
        PGresult *res = PQexec(c, sql);
        char *v = NULL;

        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
                v = th_strdup(PQgetvalue(res, 0, 0));
        else if (err)
                snprintf(err, err_size, "%.*s",
                         (int)strcspn(PQerrorMessage(c), "\n"),
                         PQerrorMessage(c));
        PQclear(res);
        return v;
}

static long long int_of(PGconn *c, const char *sql)
{
        char err[256] = "";
        char *v = value_of(c, sql, err, sizeof(err));
        long long n;

        if (!v)
                fail_msg("%s: %s", sql, err);
        n = atoll(v);
        free(v);
        return n;
}

static void ingest_args(const struct keys *st, struct th_args *a,
                        const char *file, const char *topic, const char *ci)
{
        th_args_addv(a, st->bin, "ingest", "--file", file, "--topic", topic,
                     "--db", ci, "--window", "1h", "--window", "1h/15m",
                     "--window", "1d", "-q", NULL);
}

static void ingest_ok(const struct keys *st, const char *file,
                      const char *topic, const char *user, const char *db,
                      const char *extra)
{
        struct th_args a = {0};
        char *ci = ci_as(st, user, db);

        ingest_args(st, &a, file, topic, ci);
        if (extra)
                th_args_addv(&a, "--allowed-lateness", extra, NULL);
        free(ci);
        th_run_ok_free(&a);
}

static void migrate_ok(const struct keys *st, const char *user, const char *db)
{
        struct th_args a = {0};
        char *ci = ci_as(st, user, db);

        th_args_addv(&a, st->bin, "migrate", "--db", ci, NULL);
        free(ci);
        th_run_ok_free(&a);
}

static void createdb(const struct keys *st, const char *db, const char *owner)
{
        assert_int_equal(th_pg_createdb(&st->pg, db, owner), 0);
}

/* Rows of sql, sorted; fails the test when the query does. */
static void lines_of(PGconn *c, const char *sql, struct th_lines *out)
{
        assert_int_equal(th_pg_lines(c, sql, out), 0);
        th_lines_sort(out);
}

/* The views as their rows read, in a fixed order. */
static const struct view_query {
        const char *name;
        const char *sql;
} view_queries[] = {
        {"window_counts",
         "SELECT window_spec, window_start, window_end, crime_type, "
         "disposition, calls, late_calls FROM window_counts"},
        {"call_counts",
         "SELECT window_spec, window_start, window_end, crime_type, calls, "
         "late_calls, is_final FROM call_counts"},
        {"disposition_counts", "SELECT * FROM disposition_counts"},
        {"top_crime_types", "SELECT * FROM top_crime_types"},
        {"recent_call_counts", "SELECT * FROM recent_call_counts"},
};

#define N_VIEWS (sizeof(view_queries) / sizeof(view_queries[0]))

/*
 * The independent computation: which calls count (the first copy of each
 * crime_id; every line of the generated input is a valid call) and which
 * windows hold them.
 */

struct spec {
        const char *name;
        int64_t size, slide;
};

static const struct spec specs[] = {
        {"1h", 3600, 3600},
        {"1h/15m", 3600, 900},
        {"1d", 86400, 86400},
};

/* One window count of the model. */
struct count {
        char *key; /* "spec|start|crime type|disposition" as rendered */
        long long calls;
};

static int count_cmp(const void *pa, const void *pb)
{
        return strcmp(((const struct count *)pa)->key,
                      ((const struct count *)pb)->key);
}

/* Appends the rendered cells of one key to b, as th_pg_lines() renders
 * a row (text quoted, integers bare, "|" between). */
static void render_key(struct th_buf *b, const struct spec *sp, int64_t start,
                       const char *type, const char *disp, int with_disp)
{
        char from[TM_TS_SIZE], to[TM_TS_SIZE];

        tm_format_sec(start, from);
        tm_format_sec(start + sp->size, to);
        th_put_quoted(b, (const unsigned char *)sp->name, strlen(sp->name));
        th_buf_add(b, "|", 1);
        th_put_quoted(b, (const unsigned char *)from, strlen(from));
        th_buf_add(b, "|", 1);
        th_put_quoted(b, (const unsigned char *)to, strlen(to));
        th_buf_add(b, "|", 1);
        th_put_quoted(b, (const unsigned char *)type, strlen(type));
        if (with_disp) {
                th_buf_add(b, "|", 1);
                th_put_quoted(b, (const unsigned char *)disp, strlen(disp));
        }
}

/* window_counts (by_disp) or call_counts rows the model expects from the
 * NDJSON at path, with no call late (allowed lateness past the input's
 * span), so late_calls is 0 and no window is final. */
static void model_lines(const char *path, int by_disp, struct th_lines *out)
{
        struct th_buf text = {0};
        struct count *counts = NULL;
        size_t ncounts = 0, cap = 0, i;
        json_t *seen = json_object();
        char *line, *save = NULL;

        assert_int_equal(th_read_file(path, &text), 0);
        for (line = strtok_r(text.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                json_error_t jerr;
                json_t *o = json_loads(line, 0, &jerr);
                const char *id, *type, *disp, *when;
                int64_t us, sec;
                size_t s;

                assert_non_null(o);
                id = json_string_value(json_object_get(o, "crime_id"));
                type = json_string_value(
                        json_object_get(o, "original_crime_type_name"));
                disp = json_string_value(json_object_get(o, "disposition"));
                when = json_string_value(json_object_get(o, "call_date_time"));
                assert_non_null(id);
                assert_non_null(type);
                assert_non_null(when);
                assert_int_equal(tm_parse_ts(when, strlen(when), &us), 0);
                if (json_object_get(seen, id)) {
                        json_decref(o);
                        continue;
                }
                json_object_set_new(seen, id, json_true());
                sec = tm_floor_div(us, TM_USEC);
                for (s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
                        const struct spec *sp = &specs[s];
                        int64_t start;

                        for (start = tm_window_first(sec, sp->size, sp->slide);
                             start <= tm_window_last(sec, sp->slide);
                             start += sp->slide) {
                                struct th_buf k = {0};

                                render_key(&k, sp, start, type,
                                           disp ? disp : "", by_disp);
                                if (ncounts == cap) {
                                        cap = cap * 2 + 1024;
                                        counts = th_realloc(
                                                counts, cap * sizeof(*counts));
                                }
                                counts[ncounts].key = k.p;
                                counts[ncounts++].calls = 1;
                        }
                }
                json_decref(o);
        }
        qsort(counts, ncounts, sizeof(*counts), count_cmp);
        for (i = 0; i < ncounts;) {
                size_t j = i;
                long long sum = 0;

                while (j < ncounts && !strcmp(counts[j].key, counts[i].key))
                        sum += counts[j++].calls;
                if (by_disp)
                        th_lines_addf(out, "%s|%lld|0", counts[i].key, sum);
                else
                        th_lines_addf(out, "%s|%lld|0|'f'", counts[i].key, sum);
                for (; i < j; i++)
                        free(counts[i].key);
        }
        free(counts);
        json_decref(seen);
        th_buf_free(&text);
        th_lines_sort(out);
}

/* Compares the view's rows (sql) on c with the model's. */
static size_t check_model(PGconn *c, const char *what, const char *sql,
                          const char *input, int by_disp)
{
        struct th_lines got = {0}, want = {0};
        size_t bad;

        lines_of(c, sql, &got);
        model_lines(input, by_disp, &want);
        fprintf(stderr, "# %s: %zu rows, the model %zu\n", what, got.n, want.n);
        bad = th_lines_compare(what, "model", &want, "PostgreSQL", &got,
                               MAX_SHOWN);
        th_lines_free(&got);
        th_lines_free(&want);
        return bad;
}

/* FNV-1a 64 of the sorted rows, one "\n" after each. */
static uint64_t lines_hash(const struct th_lines *l)
{
        uint64_t h = 0xcbf29ce484222325ULL;
        size_t i;

        for (i = 0; i < l->n; i++) {
                const unsigned char *p = (const unsigned char *)l->v[i];

                for (; *p; p++)
                        h = (h ^ *p) * 0x100000001b3ULL;
                h = (h ^ '\n') * 0x100000001b3ULL;
        }
        return h;
}

/*
 * Setup.
 */

static int group_teardown(void **state)
{
        struct keys *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_pg_stop(&st->pg);
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->data_dir);
        free(st->sample);
        free(st->gen);
        free(st->gen2);
        free(st);
        *state = NULL;
        return 0;
}

static int generate(const struct keys *st, const char *seed, const char *out)
{
        struct th_args a = {0};
        struct th_run r;
        int status;

        th_args_addv(&a, st->bin, "generate", "--count", "4000", "--seed", seed,
                     "--duplicates", "0.05", "--changed-duplicates", "0.03",
                     "--out-of-order", "0.1", "--output", out, NULL);
        th_run_args(&a, GUARD_MS, &r);
        th_args_free(&a);
        status = r.status;
        if (status)
                th_show_tail("stderr", r.err.p, r.err.len);
        th_run_free(&r);
        return status ? -1 : 0;
}

static int group_setup(void **state)
{
        struct keys *st = calloc(1, sizeof(*st));
        PGconn *c;
        PGresult *res;
        char *ci;
        int ok;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_pg_keys", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data_dir) ||
            th_tmpdir_make("callstream-pgkeys", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        if (th_pg_start(&st->pg, st->dir, 0) < 0)
                goto fail;
        ci = ci_as(st, "postgres", "postgres");
        c = th_pg_open(ci);
        free(ci);
        if (!c)
                goto fail;
        res = PQexec(c, "CREATE ROLE cs_owner LOGIN; "
                        "CREATE ROLE cs_rows LOGIN; "
                        "CREATE ROLE bi_reader LOGIN");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
                fprintf(stderr, "# CREATE ROLE: %s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
        if (!ok)
                goto fail;
        st->sample = th_asprintf("%s/%s", st->data_dir, SAMPLE_FILE);
        st->gen = th_asprintf("%s/gen.ndjson", st->dir);
        st->gen2 = th_asprintf("%s/gen2.ndjson", st->dir);
        if (generate(st, "23", st->gen) < 0 || generate(st, "24", st->gen2) < 0)
                goto fail;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

/* The README's grants: bi_reader reads, cs_rows reads and writes rows. */
static void grant_roles(const struct keys *st, const char *db)
{
        char *q = th_asprintf("GRANT CONNECT ON DATABASE %s TO bi_reader", db);

        sql_as(st, "postgres", db, q);
        free(q);
        sql_as(st, "cs_owner", db,
               "GRANT USAGE ON SCHEMA public TO bi_reader; "
               "GRANT SELECT ON ALL TABLES IN SCHEMA public TO bi_reader; "
               "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
               "GRANT SELECT ON TABLES TO bi_reader; "
               "GRANT USAGE ON SCHEMA public TO cs_rows; "
               "GRANT SELECT, INSERT, UPDATE, DELETE "
               "ON ALL TABLES IN SCHEMA public TO cs_rows; "
               "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
               "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cs_rows");
}

/*
 * Tests.
 */

/* After an ingest the views equal the model: every window of every call
 * counted once, under the right texts and times; and the storage is
 * compact: one window_totals row per view row, distinct small ids. */
static void test_views_match_model(void **state)
{
        struct keys *st = *state;
        PGconn *c;
        size_t bad;

        createdb(st, "keys_model", "cs_owner");
        /* Lateness past the input's span: nothing is late or final. */
        ingest_ok(st, st->gen, "gen", "cs_owner", "keys_model", "400d");
        c = open_as(st, "cs_owner", "keys_model");
        bad = check_model(c, "window_counts", view_queries[0].sql, st->gen, 1);
        bad += check_model(c, "call_counts", view_queries[1].sql, st->gen, 0);
        assert_int_equal(int_of(c, "SELECT count(*) FROM window_totals"),
                         int_of(c, "SELECT count(*) FROM window_counts"));
        assert_int_equal(int_of(c, "SELECT count(*) FROM window_spec_ids"), 3);
        /* Ids 1..n: MAX(id) + n, never skipped on a fresh database. */
        assert_int_equal(int_of(c, "SELECT max(id) - count(*) FROM "
                                   "crime_type_ids"),
                         0);
        assert_int_equal(int_of(c, "SELECT max(id) - count(*) FROM "
                                   "disposition_ids"),
                         0);
        assert_int_equal(int_of(c, "SELECT count(*) FROM pg_class WHERE "
                                   "relname = 'window_counts' AND relkind = "
                                   "'v'"),
                         1);
        PQfinish(c);
        if (bad)
                fail_msg("%zu row(s) differ from the model (above)", bad);
}

/* The real sample's views, row for row, as callstream wrote them before
 * migration 011 (taken with main's binary: the count and FNV-1a 64 of the
 * sorted rows of each view). */
static const struct {
        size_t rows;
        uint64_t hash;
} before_011[N_VIEWS] = {
        {2200, 0xb2d22247ef4a63bbULL}, /* window_counts */
        {1473, 0xc1f2eafac7bd34ddULL}, /* call_counts */
        {2200, 0x8f025723f729c7fcULL}, /* disposition_counts */
        {588, 0xa61e28ab7742a683ULL},  /* top_crime_types */
        {1415, 0xdefcefbf87cc7f66ULL}, /* recent_call_counts */
};

static void test_same_as_before(void **state)
{
        struct keys *st = *state;
        PGconn *c;
        size_t i;
        int bad = 0, print = getenv("PG_KEYS_PRINT") != NULL;

        createdb(st, "keys_sample", "cs_owner");
        ingest_ok(st, st->sample, "sample", "cs_owner", "keys_sample", NULL);
        c = open_as(st, "cs_owner", "keys_sample");
        for (i = 0; i < N_VIEWS; i++) {
                struct th_lines l = {0};
                uint64_t h;

                lines_of(c, view_queries[i].sql, &l);
                h = lines_hash(&l);
                if (print)
                        fprintf(stderr,
                                "        {%zu, 0x%016llxULL}, /* %s */\n", l.n,
                                (unsigned long long)h, view_queries[i].name);
                if (l.n != before_011[i].rows || h != before_011[i].hash) {
                        fprintf(stderr,
                                "# %s: %zu rows hashing to %016llx, before "
                                "011 %zu rows hashing to %016llx\n",
                                view_queries[i].name, l.n,
                                (unsigned long long)h, before_011[i].rows,
                                (unsigned long long)before_011[i].hash);
                        bad++;
                }
                th_lines_free(&l);
        }
        PQfinish(c);
        if (bad && !print)
                fail_msg("%d view(s) differ from before 011", bad);
}

/* Brings db to the schema before 011, as an older callstream left it:
 * migrations 001-009 recorded with their checksums, and the views of the
 * view scripts but window_counts, built on the table. */
static void make_before_011(const struct keys *st, const char *db)
{
        struct cs_migration m[CS_MIGRATIONS_MAX];
        const char *files[CS_VIEWS_MAX];
        int n = cs_migrations("postgresql", m, CS_MIGRATIONS_MAX), i, f, nf;
        size_t len;
        const char *create =
                cs_sql_statement("postgresql", "create_migrations_table", &len);
        PGconn *c = open_as(st, "cs_owner", db);
        char *sql;

        assert_non_null(create);
        sql = th_strndup(create, len);
        th_pg_exec_ok(c, "BEGIN");
        th_pg_exec_ok(c, sql);
        free(sql);
        for (i = 0; i < n && m[i].version < 11; i++) {
                char version[16];
                const char *params[3] = {version, strrchr(m[i].path, '/') + 1,
                                         m[i].checksum};
                PGresult *res;

                th_pg_exec_ok(c, m[i].sql);
                snprintf(version, sizeof(version), "%d", m[i].version);
                res = PQexecParams(c,
                                   "INSERT INTO schema_migrations VALUES "
                                   "($1, $2, $3, now())",
                                   3, NULL, params, NULL, NULL, 0);
                assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
                PQclear(res);
        }
        nf = cs_views("postgresql", files, CS_VIEWS_MAX);
        for (f = 0; f < nf; f++) {
                const char *p = files[f];

                for (;;) {
                        const char *end;
                        char *stmt;

                        /* Comment lines may hold ';': skip them first. */
                        for (;;) {
                                p += strspn(p, " \t\r\n");
                                if (strncmp(p, "--", 2))
                                        break;
                                p += strcspn(p, "\n");
                        }
                        if (!(end = strchr(p, ';')))
                                break;
                        stmt = th_strndup(p, (size_t)(end - p));
                        if (strstr(stmt, "CREATE VIEW ") &&
                            !strstr(stmt, "CREATE VIEW window_counts "))
                                th_pg_exec_ok(c, stmt);
                        free(stmt);
                        p = end + 1;
                }
        }
        th_pg_exec_ok(c, "COMMIT");
        assert_int_equal(int_of(c, "SELECT count(*) FROM pg_class WHERE "
                                   "relname = 'window_counts' AND relkind = "
                                   "'r'"),
                         1);
        PQfinish(c);
}

/* Copies every row of what an ingest keeps (calls, counts, offsets,
 * replay sources, specs) from one database to another, through text; the
 * counts go to the old table window_counts. */
static void copy_rows(PGconn *from, PGconn *to)
{
        static const char *const tables[] = {"calls", "window_counts",
                                             "kafka_offsets", "replay_sources",
                                             "window_specs"};
        size_t t;
        int row, i;

        for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
                char *q = th_asprintf("SELECT * FROM %s", tables[t]);
                PGresult *res = PQexec(from, q);
                struct th_buf ins = {0};
                int n = PQnfields(res);
                const char *v[32];

                free(q);
                assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
                assert_true(n <= 32);
                th_buf_addf(&ins, "INSERT INTO %s VALUES (", tables[t]);
                for (i = 0; i < n; i++)
                        th_buf_addf(&ins, "%s$%d", i ? ", " : "", i + 1);
                th_buf_add(&ins, ")", 1);
                for (row = 0; row < PQntuples(res); row++) {
                        PGresult *r;

                        for (i = 0; i < n; i++)
                                v[i] = PQgetisnull(res, row, i)
                                               ? NULL
                                               : PQgetvalue(res, row, i);
                        r = PQexecParams(to, ins.p, n, NULL, v, NULL, NULL, 0);
                        if (PQresultStatus(r) != PGRES_COMMAND_OK)
                                fail_msg("%s: %s", tables[t],
                                         PQerrorMessage(to));
                        PQclear(r);
                }
                th_buf_free(&ins);
                PQclear(res);
        }
}

#define USER_VIEW_ON_TABLE                                                     \
        "CREATE VIEW my_types AS SELECT DISTINCT crime_type "                  \
        "FROM window_counts"
#define USER_VIEW_ON_OURS                                                      \
        "CREATE VIEW my_totals AS SELECT window_spec, SUM(calls) AS calls "    \
        "FROM call_counts GROUP BY window_spec; "                              \
        "GRANT SELECT ON my_totals TO bi_reader"

/* An older database with counts: 011 refuses while a user's view is on the
 * table (naming it, changing nothing), then carries every row over, with
 * the grants on the table and on our views, and users' views on ours. */
static void test_migration_carries_rows(void **state)
{
        struct keys *st = *state;
        struct th_lines before[N_VIEWS], after = {0};
        struct th_args a = {0};
        struct th_run r;
        PGconn *src, *c;
        char *ci, *v;
        size_t i, bad = 0;

        /* Counts to carry: those of an ingest of the sample. */
        createdb(st, "keys_src", "cs_owner");
        ingest_ok(st, st->sample, "sample", "cs_owner", "keys_src", NULL);
        createdb(st, "keys_old", "cs_owner");
        make_before_011(st, "keys_old");
        src = open_as(st, "cs_owner", "keys_src");
        c = open_as(st, "cs_owner", "keys_old");
        copy_rows(src, c);
        grant_roles(st, "keys_old");
        th_pg_exec_ok(c, USER_VIEW_ON_OURS);
        for (i = 0; i < N_VIEWS; i++) {
                memset(&before[i], 0, sizeof(before[i]));
                lines_of(c, view_queries[i].sql, &before[i]);
        }
        assert_true(before[0].n > 1000);

        /* A user's view on the table: refused, by name, nothing changed. */
        th_pg_exec_ok(c, USER_VIEW_ON_TABLE);
        ci = ci_as(st, "cs_owner", "keys_old");
        th_args_addv(&a, st->bin, "migrate", "--db", ci, NULL);
        th_run_args(&a, GUARD_MS, &r);
        th_args_free(&a);
        th_show_tail("stderr", r.err.p, r.err.len);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err.p, "my_types"));
        assert_non_null(strstr(r.err.p, "011"));
        th_run_free(&r);
        assert_int_equal(int_of(c, "SELECT max(version) FROM "
                                   "schema_migrations"),
                         9);
        assert_int_equal(int_of(c, "SELECT count(*) FROM pg_class WHERE "
                                   "relname = 'window_counts' AND relkind = "
                                   "'r'"),
                         1);
        assert_int_equal(int_of(c, "SELECT count(*) FROM my_types"),
                         int_of(src, "SELECT count(DISTINCT crime_type) "
                                     "FROM window_counts"));

        th_pg_exec_ok(c, "DROP VIEW my_types");
        free(ci);
        migrate_ok(st, "cs_owner", "keys_old");
        assert_int_equal(int_of(c, "SELECT count(*) FROM pg_class WHERE "
                                   "relname = 'window_counts' AND relkind = "
                                   "'v'"),
                         1);
        assert_int_equal(int_of(c, "SELECT count(*) FROM window_totals"),
                         (long long)before[0].n);
        for (i = 0; i < N_VIEWS; i++) {
                after.n = 0;
                lines_of(c, view_queries[i].sql, &after);
                bad += th_lines_compare(view_queries[i].name, "before 011",
                                        &before[i], "after", &after, MAX_SHOWN);
                th_lines_free(&after);
                memset(&after, 0, sizeof(after));
        }
        /* And the same as the database the rows came from. */
        lines_of(src, view_queries[0].sql, &after);
        bad += th_lines_compare("window_counts", "source", &after, "migrated",
                                &before[0], MAX_SHOWN);
        th_lines_free(&after);
        for (i = 0; i < N_VIEWS; i++)
                th_lines_free(&before[i]);

        /* Grants kept: bi_reader's on the table (now the view) and on our
         * views, and on the user's view built on call_counts. */
        PQfinish(c);
        c = open_as(st, "bi_reader", "keys_old");
        v = value_of(c,
                     "SELECT SUM(calls) FROM my_totals WHERE window_spec "
                     "= '1h'",
                     NULL, 0);
        assert_non_null(v);
        assert_int_equal(atoll(v), int_of(src, "SELECT count(*) FROM calls"));
        free(v);
        assert_int_equal(int_of(c, "SELECT SUM(calls) FROM window_counts "
                                   "WHERE window_spec = '1d'"),
                         int_of(src, "SELECT count(*) FROM calls"));
        PQfinish(c);

        /* The ingest goes on over the carried rows as over the rows they
         * came from: another input into both, the same views. */
        ingest_ok(st, st->gen, "gen", "cs_owner", "keys_old", NULL);
        ingest_ok(st, st->gen, "gen", "cs_owner", "keys_src", NULL);
        c = open_as(st, "cs_owner", "keys_old");
        for (i = 0; i < N_VIEWS; i++) {
                struct th_lines want = {0};

                lines_of(src, view_queries[i].sql, &want);
                lines_of(c, view_queries[i].sql, &after);
                bad += th_lines_compare(view_queries[i].name, "source", &want,
                                        "migrated", &after, MAX_SHOWN);
                th_lines_free(&want);
                th_lines_free(&after);
                memset(&after, 0, sizeof(after));
        }
        PQfinish(c);
        PQfinish(src);
        if (bad)
                fail_msg("%zu row(s) differ (above)", bad);
}

/* A user's view on window_counts (and its grant) survives window_counts
 * being installed again (a changed definition is replaced in place) and
 * later ingests, and reads the new counts. */
static void test_user_view_survives(void **state)
{
        struct keys *st = *state;
        PGconn *c;
        char *v;

        createdb(st, "keys_user", "cs_owner");
        ingest_ok(st, st->sample, "sample", "cs_owner", "keys_user", NULL);
        grant_roles(st, "keys_user");
        sql_as(st, "cs_owner", "keys_user",
               "CREATE VIEW my_windows AS SELECT window_spec, SUM(calls) AS "
               "calls FROM window_counts GROUP BY window_spec; "
               "GRANT SELECT ON my_windows TO bi_reader; "
               "UPDATE schema_views SET checksum = 'old' "
               "WHERE name = 'window_counts'");
        ingest_ok(st, st->gen, "gen", "cs_owner", "keys_user", NULL);
        c = open_as(st, "cs_owner", "keys_user");
        v = value_of(c,
                     "SELECT checksum FROM schema_views WHERE name = "
                     "'window_counts'",
                     NULL, 0);
        assert_non_null(v);
        assert_string_not_equal(v, "old");
        free(v);
        PQfinish(c);
        c = open_as(st, "bi_reader", "keys_user");
        assert_int_equal(int_of(c, "SELECT calls FROM my_windows WHERE "
                                   "window_spec = '1d'"),
                         int_of(c, "SELECT count(*) FROM calls"));
        PQfinish(c);
}

/* A role that only reads and writes rows ingests into a database with
 * empty dictionaries, twice at once on two inputs: every id assigned once,
 * and the counts those of the stored calls, computed here in SQL. */
static void test_rows_only_role(void **state)
{
        struct keys *st = *state;
        struct th_args a = {0}, b = {0};
        struct th_lines want = {0}, got = {0};
        char *ci = ci_as(st, "cs_rows", "keys_rows");
        char *log1 = th_asprintf("%s/rows1.log", st->dir);
        char *log2 = th_asprintf("%s/rows2.log", st->dir);
        pid_t p1, p2;
        PGconn *c;
        size_t bad;

        createdb(st, "keys_rows", "cs_owner");
        migrate_ok(st, "cs_owner", "keys_rows");
        grant_roles(st, "keys_rows");
        ingest_args(st, &a, st->gen, "gen", ci);
        th_args_addv(&a, "--batch-max-records", "300", NULL);
        ingest_args(st, &b, st->gen2, "gen2", ci);
        th_args_addv(&b, "--batch-max-records", "300", NULL);
        free(ci);
        p1 = th_spawn_logged(&a, log1);
        p2 = th_spawn_logged(&b, log2);
        th_args_free(&a);
        th_args_free(&b);
        assert_true(p1 > 0 && p2 > 0);
        if (th_wait_until(p1, th_now_ms() + GUARD_MS) != 0)
                th_show_file_tail("first ingest", log1);
        if (th_wait_until(p2, th_now_ms() + GUARD_MS) != 0)
                th_show_file_tail("second ingest", log2);
        c = open_as(st, "cs_owner", "keys_rows");
        assert_int_equal(int_of(c, "SELECT count(*) FROM kafka_offsets"), 2);
        assert_true(int_of(c, "SELECT count(*) FROM crime_type_ids") > 10);
        assert_int_equal(int_of(c, "SELECT max(id) - count(*) FROM "
                                   "crime_type_ids"),
                         0);
        /* The 1h counts from the stored calls. */
        lines_of(c,
                 "SELECT '1h', date_trunc('hour', call_ts), "
                 "date_trunc('hour', call_ts) + interval '1 hour', "
                 "original_crime_type_name, COALESCE(disposition, ''), "
                 "count(*) FROM calls GROUP BY 2, 4, 5",
                 &want);
        lines_of(c,
                 "SELECT window_spec, window_start, window_end, crime_type, "
                 "disposition, calls FROM window_counts "
                 "WHERE window_spec = '1h'",
                 &got);
        bad = th_lines_compare("1h window_counts", "calls", &want,
                               "window_counts", &got, MAX_SHOWN);
        th_lines_free(&want);
        th_lines_free(&got);
        PQfinish(c);
        free(log1);
        free(log2);
        if (bad)
                fail_msg("%zu row(s) differ (above)", bad);
}

/* --retention over window_totals (by a range of its key per spec), as a
 * role that only reads and writes rows: nothing ended by the horizon is
 * left, and every window after it is the same as without retention. */
static void test_retention(void **state)
{
        struct keys *st = *state;
        struct th_args a = {0};
        struct th_lines full = {0}, kept = {0};
        char *ci, *q, *horizon;
        PGconn *c, *f;
        size_t bad;

        createdb(st, "keys_full", "cs_owner");
        ingest_ok(st, st->gen, "gen", "cs_owner", "keys_full", NULL);
        createdb(st, "keys_ret", "cs_owner");
        migrate_ok(st, "cs_owner", "keys_ret");
        grant_roles(st, "keys_ret");
        ci = ci_as(st, "cs_rows", "keys_ret");
        ingest_args(st, &a, st->gen, "gen", ci);
        /* One batch: retention steps come after it (a step that finds
         * nothing holds the next ones off for 5 s, longer than this run). */
        th_args_addv(&a, "--retention", "1d", NULL);
        free(ci);
        th_run_ok_free(&a);

        c = open_as(st, "cs_owner", "keys_ret");
        f = open_as(st, "cs_owner", "keys_full");
        horizon = value_of(c,
                           "SELECT MIN(watermark) - interval '1 day' FROM "
                           "kafka_offsets",
                           NULL, 0);
        assert_non_null(horizon);
        fprintf(stderr, "# horizon %s\n", horizon);
        q = th_asprintf("SELECT count(*) FROM window_counts WHERE window_end "
                        "<= '%s'",
                        horizon);
        assert_true(int_of(f, q) > 100);
        assert_int_equal(int_of(c, q), 0);
        free(q);
        q = th_asprintf("SELECT count(*) FROM calls WHERE call_ts < '%s'",
                        horizon);
        assert_true(int_of(f, q) > 100);
        assert_int_equal(int_of(c, q), 0);
        free(q);
        q = th_asprintf("%s WHERE window_end > '%s'", view_queries[0].sql,
                        horizon);
        lines_of(f, q, &full);
        lines_of(c, q, &kept);
        free(q);
        bad = th_lines_compare("window_counts after the horizon",
                               "no retention", &full, "--retention 1d", &kept,
                               MAX_SHOWN);
        th_lines_free(&full);
        th_lines_free(&kept);
        free(horizon);
        PQfinish(c);
        PQfinish(f);
        if (bad)
                fail_msg("%zu row(s) differ (above)", bad);
}

/* The two ways the sink finds a batch's stored window keys (sink_pg.c,
 * pg_write_window_counts): a range scan of the batch's stretches of window
 * starts while they hold few rows, the update's own lookups once they hold
 * many (a batch read from partitions side by side). Batches written
 * straight through the sink, shaped to take each way, leave the totals the
 * test adds up itself. */
#define DENSE_TYPES 20
#define DENSE_DISPS 25
#define DENSE_HOURS 12

static void write_batch(struct cs_sink *s, const struct cs_window_spec *spec,
                        const int (*keys)[3], size_t n, int calls,
                        long long (*model)[DENSE_TYPES][DENSE_DISPS])
{
        static char types[DENSE_TYPES][8], disps[DENSE_DISPS][8];
        struct cs_window_count *rows = calloc(n, sizeof(*rows));
        char err[512];
        size_t i;

        assert_non_null(rows);
        for (i = 0; i < n; i++) {
                int h = keys[i][0], t = keys[i][1], d = keys[i][2];

                snprintf(types[t], sizeof(types[t]), "T%d", t);
                snprintf(disps[d], sizeof(disps[d]), "D%d", d);
                rows[i].spec = 0;
                rows[i].start = 1546300800 + (int64_t)h * 3600;
                rows[i].crime_type =
                        (struct cs_str){types[t], strlen(types[t])};
                rows[i].disposition =
                        (struct cs_str){disps[d], strlen(disps[d])};
                rows[i].calls = calls;
                model[h][t][d] += calls;
        }
        if (cs_sink_begin(s, err, sizeof(err)) < 0 ||
            cs_sink_write_window_counts(s, rows, n, spec, err, sizeof(err)) <
                    0 ||
            cs_sink_commit(s, err, sizeof(err)) < 0)
                fail_msg("batch of %zu keys: %s", n, err);
        free(rows);
}

static void test_dense_batches(void **state)
{
        struct keys *st = *state;
        static long long model[DENSE_HOURS][DENSE_TYPES][DENSE_DISPS];
        static int keys[DENSE_TYPES * DENSE_DISPS + 100][3];
        struct cs_window_spec spec = {.size = 3600, .slide = 3600};
        struct th_lines want = {0}, got = {0};
        struct cs_sink *s = NULL;
        char err[512], *ci;
        size_t n, bad;
        PGconn *c;
        int h, t, d;

        strcpy(spec.name, "1h");
        createdb(st, "keys_dense", "cs_owner");
        ci = ci_as(st, "cs_owner", "keys_dense");
        if (cs_sink_open(ci, NULL, &s, err, sizeof(err)) < 0 ||
            cs_sink_migrate(s, err, sizeof(err)) < 0)
                fail_msg("%s", err);
        /* Hour 0, every key: the table is empty, the scan finds none. */
        for (n = 0, t = 0; t < DENSE_TYPES; t++)
                for (d = 0; d < DENSE_DISPS; d++, n++) {
                        keys[n][0] = 0;
                        keys[n][1] = t;
                        keys[n][2] = d;
                }
        write_batch(s, &spec, keys, n, 1, model);
        /* Hour 0 again and 100 keys of hour 1: the stretch holds 500 rows,
         * more than a quarter of 600 keys: the update looks them up. */
        for (t = 0; t < 4; t++)
                for (d = 0; d < DENSE_DISPS; d++, n++) {
                        keys[n][0] = 1;
                        keys[n][1] = t;
                        keys[n][2] = d;
                }
        write_batch(s, &spec, keys, n, 2, model);
        /* Hour 10, 50 new keys: nothing stored there, a scan. */
        for (n = 0; n < 50; n++) {
                keys[n][0] = 10;
                keys[n][1] = (int)n % DENSE_TYPES;
                keys[n][2] = (int)n / DENSE_TYPES;
        }
        write_batch(s, &spec, keys, n, 3, model);
        /* Hour 10 again, 10 keys of which 5 are stored: the stretch holds
         * 50 rows, fewer than the limit of a small batch: a scan that finds
         * 5, which the update then takes alone. */
        for (n = 0; n < 10; n++) {
                keys[n][0] = 10;
                keys[n][1] = (int)(n < 5 ? n : 15 + n) % DENSE_TYPES;
                keys[n][2] = n < 5 ? 0 : 4;
        }
        write_batch(s, &spec, keys, n, 4, model);
        cs_sink_close(s);

        for (h = 0; h < DENSE_HOURS; h++)
                for (t = 0; t < DENSE_TYPES; t++)
                        for (d = 0; d < DENSE_DISPS; d++)
                                if (model[h][t][d])
                                        th_lines_addf(&want,
                                                      "%d|'T%d'|'D%d'|%lld", h,
                                                      t, d, model[h][t][d]);
        th_lines_sort(&want);
        c = open_as(st, "cs_owner", "keys_dense");
        lines_of(c,
                 "SELECT (extract(epoch FROM window_start)::bigint - "
                 "1546300800) / 3600, crime_type, disposition, calls "
                 "FROM window_counts WHERE window_spec = '1h'",
                 &got);
        PQfinish(c);
        bad = th_lines_compare("window_counts", "added up here", &want,
                               "the sink", &got, MAX_SHOWN);
        th_lines_free(&want);
        th_lines_free(&got);
        free(ci);
        if (bad)
                fail_msg("%zu row(s) differ (above)", bad);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_views_match_model),
                cmocka_unit_test(test_same_as_before),
                cmocka_unit_test(test_migration_carries_rows),
                cmocka_unit_test(test_user_view_survives),
                cmocka_unit_test(test_rows_only_role),
                cmocka_unit_test(test_retention),
                cmocka_unit_test(test_dense_batches),
        };

        return cmocka_run_group_tests_name("pg_keys", tests, group_setup,
                                           group_teardown);
}
