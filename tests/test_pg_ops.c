/* test_pg_ops.c: PostgreSQL as an operator runs it (issues 7 and 8): views
 * that keep their grants and the user's views across restarts, roles with
 * only the privileges the README lists, schemas made by an administrator or
 * by several ingests at once, long schema names, lock and statement
 * timeouts, a hung server and SIGTERM, and a server that is down at start.
 *
 * The group setup starts a PostgreSQL server of its own (a temporary
 * folder, the Unix socket trusted, through runuser as postgres when the
 * test is root), creates the roles, and writes two inputs: the real sample
 * (700 calls, a JSON array) and a generated NDJSON stream with duplicates,
 * late and malformed lines. Each is replayed (`ingest --file`) once into
 * SQLite by one uninterrupted process: the rows every PostgreSQL run must
 * end with (test_e2e checks the SQLite sink against an independent model).
 * Timeouts are hang guards only. E2E_KEEP=1 keeps the folder;
 * PG_OPS_TEST_FILTER='test_hung*' runs one test. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_sink.h"
#include "harness.h"
#include "pgutil.h"

#define WATCHDOG_S    900
#define GUARD_MS      (120 * 1000) /* a command that should end */
#define SAMPLE_FILE   "police-department-calls-for-service.sample.json"
#define GEN_COUNT     "20000"
#define GEN_SEED      "71"
#define MAX_SHOWN     10
#define STOP_BOUND_MS (30 * 1000) /* hang guard; the README says 10 s */
#define N_OF(a)       (sizeof(a) / sizeof((a)[0]))

struct ops {
        char dir[PATH_MAX];
        char *bin;
        char *data_dir;
        struct th_pg pg;
        char *sample;      /* the real sample */
        char *gen;         /* the generated stream */
        char *lite_sample; /* their SQLite baselines */
        char *lite_gen;
        struct th_broker broker; /* test_hung_server_kafka's */
};

static char *path_in(const struct ops *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/*
 * PostgreSQL helpers.
 */

static char *ci_as(const struct ops *st, const char *user, const char *db)
{
        return th_pg_conninfo_as(&st->pg, user, db);
}

/* Runs sql as user on db, or fails the test. */
static void sql_as(const struct ops *st, const char *user, const char *db,
                   const char *sql)
{
        char *ci = ci_as(st, user, db);
        PGconn *c = th_pg_open(ci);

        free(ci);
        assert_non_null(c);
        th_pg_exec_ok(c, sql);
        PQfinish(c);
}

/* The first cell of sql run as user on db (the caller frees it), or NULL
 * with the server's message in err (when given). */
static char *value_as(const struct ops *st, const char *user, const char *db,
                      const char *sql, char *err, size_t err_size)
{
        char *ci = ci_as(st, user, db);
        PGconn *c = th_pg_open(ci);
        PGresult *res;
        char *v = NULL;

        free(ci);
        assert_non_null(c);
        res = PQexec(c, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
                v = th_strdup(PQgetvalue(res, 0, 0));
        else if (err)
                snprintf(err, err_size, "%.*s",
                         (int)strcspn(PQerrorMessage(c), "\n"),
                         PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
        return v;
}

static void createdb(const struct ops *st, const char *db, const char *owner)
{
        assert_int_equal(th_pg_createdb(&st->pg, db, owner), 0);
}

/* The tables of a run, rendered alike in both dialects: what an exact
 * ingest leaves. */
static const struct cmp {
        const char *what;
        const char *lite;
        const char *pg;
} cmps[] = {
        {"calls",
         "SELECT crime_id, original_crime_type_name, disposition, "
         "kafka_offset FROM calls",
         "SELECT crime_id, original_crime_type_name, disposition, "
         "kafka_offset FROM calls"},
        {"window_counts",
         "SELECT window_spec, window_start, crime_type, disposition, calls, "
         "late_calls FROM window_counts",
         "SELECT window_spec, to_char(window_start, 'YYYY-MM-DD HH24:MI:SS'), "
         "crime_type, disposition, calls, late_calls FROM window_counts"},
        {"rejected_records",
         "SELECT kafka_offset, reason, payload_size FROM rejected_records",
         "SELECT kafka_offset, reason, payload_size FROM rejected_records"},
        {"kafka_offsets",
         "SELECT kafka_partition, next_offset FROM "
         "kafka_offsets",
         "SELECT kafka_partition, next_offset FROM kafka_offsets"},
};

/* Compares the tables in db (schema: NULL or its name) with the SQLite
 * baseline; returns the number of rows that differ. */
static size_t compare(const struct ops *st, const char *user, const char *db,
                      const char *schema, const char *lite)
{
        char *ci = ci_as(st, user, db);
        PGconn *c = th_pg_open(ci);
        sqlite3 *l = NULL;
        size_t i, bad = 0;

        free(ci);
        assert_non_null(c);
        assert_int_equal(sqlite3_open_v2(lite, &l, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        if (schema) {
                char *id = PQescapeIdentifier(c, schema, strlen(schema));
                char *q = th_asprintf("SET search_path TO %s", id);

                th_pg_exec_ok(c, q);
                free(q);
                PQfreemem(id);
        }
        for (i = 0; i < N_OF(cmps); i++) {
                struct th_lines a = {0}, b = {0};

                assert_int_equal(th_lite_lines(l, cmps[i].lite, NULL, NULL, &a),
                                 0);
                assert_int_equal(th_pg_lines(c, cmps[i].pg, &b), 0);
                th_lines_sort(&a);
                th_lines_sort(&b);
                if (!a.n && i < 2) { /* the sample has no rejects */
                        fprintf(stderr, "# baseline %s is empty\n",
                                cmps[i].what);
                        bad++;
                }
                bad += th_lines_compare(cmps[i].what, "SQLite", &a,
                                        "PostgreSQL", &b, MAX_SHOWN);
                th_lines_free(&a);
                th_lines_free(&b);
        }
        sqlite3_close(l);
        PQfinish(c);
        return bad;
}

/*
 * Commands.
 */

/* "callstream ingest --file FILE --topic t --db DB [--schema S]". */
static void ingest_args(const struct ops *st, struct th_args *a,
                        const char *file, const char *db, const char *schema)
{
        th_args_addv(a, st->bin, "ingest", "--file", file, "--topic", "t",
                     "--db", db, "--window", "1h", "--window", "1d", NULL);
        if (schema)
                th_args_addv(a, "--schema", schema, NULL);
}

/* Replays file into db as user and fails the test unless it exits 0. */
static void ingest_ok(const struct ops *st, const char *file, const char *user,
                      const char *db, const char *schema)
{
        struct th_args a = {0};
        char *ci = ci_as(st, user, db);

        ingest_args(st, &a, file, ci, schema);
        free(ci);
        th_run_ok_free(&a);
}

static void migrate_ok(const struct ops *st, const char *user, const char *db)
{
        struct th_args a = {0};
        char *ci = ci_as(st, user, db);

        th_args_addv(&a, st->bin, "migrate", "--db", ci, NULL);
        free(ci);
        th_run_ok_free(&a);
}

/* The lines of text that are callstream's errors: "callstream: error: ",
 * after the line's timestamp. */
static int error_lines(const char *text)
{
        const char *p, *e;
        int n = 0;

        for (p = text; p && *p; p = e ? e + 1 : NULL) {
                const char *hit = strstr(p, "callstream: error: ");

                e = strchr(p, '\n');
                n += hit && (!e || hit < e);
        }
        return n;
}

/* Waits until the file at path holds needle; fails after GUARD_MS or when
 * pid (if > 0) ends first. */
static void wait_for_log(const char *path, const char *needle, pid_t pid)
{
        int64_t deadline = th_now_ms() + GUARD_MS;

        for (;;) {
                struct th_buf b = {0};
                int found;

                th_read_file(path, &b);
                found = b.p && strstr(b.p, needle);
                th_buf_free(&b);
                if (found)
                        return;
                if (pid > 0 && th_exited(pid) >= 0) {
                        th_show_file_tail("ingest log", path);
                        fail_msg("the ingest ended before logging '%s'",
                                 needle);
                }
                if (th_now_ms() > deadline) {
                        th_show_file_tail("ingest log", path);
                        fail_msg("no '%s' in %s", needle, path);
                }
                th_sleep_ms(50);
        }
}

/* Waits for pid to end, within the hang guard; returns its status code. */
static int wait_exit(pid_t pid, const char *log)
{
        int rc = th_wait_until(pid, th_now_ms() + GUARD_MS);

        th_child_forget(pid);
        if (rc != 0)
                th_show_file_tail("ingest log", log);
        return rc;
}

/*
 * Group set-up.
 */

static int group_teardown(void **state)
{
        struct ops *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_broker_stop(&st->broker);
        th_fatal_broker(0, 0);
        th_pg_stop(&st->pg);
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->data_dir);
        free(st->sample);
        free(st->gen);
        free(st->lite_sample);
        free(st->lite_gen);
        free(st);
        *state = NULL;
        return 0;
}

/* cs_owner owns databases and migrates them; cs_rows only reads and
 * writes rows; bi_reader reads; cs_sf gets a schema from the
 * administrator; cs_timeouts gets lock and statement timeouts. */
static int make_roles(const struct ops *st)
{
        char *ci = ci_as(st, "postgres", "postgres");
        PGconn *c = th_pg_open(ci);
        PGresult *res;
        int ok;

        free(ci);
        if (!c)
                return -1;
        res = PQexec(c, "CREATE ROLE cs_owner LOGIN; "
                        "CREATE ROLE cs_rows LOGIN; "
                        "CREATE ROLE bi_reader LOGIN; "
                        "CREATE ROLE cs_sf LOGIN; "
                        "CREATE ROLE cs_timeouts LOGIN");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
                fprintf(stderr, "# CREATE ROLE: %s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
        return ok ? 0 : -1;
}

static int group_setup(void **state)
{
        struct ops *st = calloc(1, sizeof(*st));
        struct th_args a = {0};
        struct th_run r;
        int i;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_pg_ops", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data_dir) ||
            th_tmpdir_make("callstream-pgops", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        if (th_pg_start(&st->pg, st->dir, 0) < 0 || make_roles(st) < 0)
                goto fail;
        st->sample = th_asprintf("%s/%s", st->data_dir, SAMPLE_FILE);
        st->gen = path_in(st, "gen.ndjson");
        st->lite_sample = path_in(st, "sample.db");
        st->lite_gen = path_in(st, "gen.db");
        th_args_addv(&a, st->bin, "generate", "--count", GEN_COUNT, "--seed",
                     GEN_SEED, "--duplicates", "0.05", "--out-of-order", "0.1",
                     "--malformed", "0.03", "--output", st->gen, NULL);
        th_run_args(&a, GUARD_MS, &r);
        th_args_free(&a);
        i = r.status;
        th_run_free(&r);
        if (i != 0)
                goto fail;
        for (i = 0; i < 2; i++) {
                ingest_args(st, &a, i ? st->gen : st->sample,
                            i ? st->lite_gen : st->lite_sample, NULL);
                th_run_args(&a, GUARD_MS, &r);
                th_args_free(&a);
                if (r.status != 0) {
                        th_show_tail("stderr", r.err.p, r.err.len);
                        th_run_free(&r);
                        goto fail;
                }
                th_run_free(&r);
        }
        return 0;
fail:
        group_teardown(state);
        return -1;
}

/*
 * 7.9: views keep their grants and dependants; a DML-only ingest role.
 */

/* The README's read-only recipe for schema public of db, run by owner,
 * and the grants of an ingest role that only reads and writes rows. */
static void grant_roles(const struct ops *st, const char *db, const char *owner)
{
        char *q = th_asprintf("GRANT CONNECT ON DATABASE %s TO bi_reader", db);

        sql_as(st, "postgres", db, q);
        free(q);
        sql_as(st, owner, db,
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

/* README, PostgreSQL, Rejected records. */
#define README_REJECTS_ALL                                                     \
        "SELECT kafka_partition, kafka_offset, reason, "                       \
        "encode(payload, 'escape') AS payload FROM rejected_records"
#define README_REJECTS README_REJECTS_ALL " ORDER BY rejected_at DESC LIMIT 10"

#define MY_VIEW                                                                \
        "CREATE VIEW my_counts AS SELECT window_spec, SUM(calls) AS calls "    \
        "FROM call_counts GROUP BY window_spec; "                              \
        "GRANT SELECT ON my_counts TO bi_reader"

/* What bi_reader reads: the calls of 1h windows through call_counts and
 * through the user's view, and the rows of recent_call_counts. */
static void check_reader(const struct ops *st, const char *db, int my_view,
                         const char *expect_calls)
{
        char err[512] = "";
        char *v;

        v = value_as(st, "bi_reader", db,
                     "SELECT SUM(calls) FROM call_counts "
                     "WHERE window_spec = '1h'",
                     err, sizeof(err));
        if (!v || strcmp(v, expect_calls))
                fail_msg("bi_reader: call_counts: %s (expected %s)",
                         v ? v : err, expect_calls);
        free(v);
        if (my_view) {
                v = value_as(st, "bi_reader", db,
                             "SELECT calls FROM my_counts "
                             "WHERE window_spec = '1h'",
                             err, sizeof(err));
                if (!v || strcmp(v, expect_calls))
                        fail_msg("bi_reader: my_counts: %s (expected %s)",
                                 v ? v : err, expect_calls);
                free(v);
        }
        v = value_as(st, "bi_reader", db,
                     "SELECT count(*) FROM recent_call_counts", err,
                     sizeof(err));
        if (!v)
                fail_msg("bi_reader: recent_call_counts: %s", err);
        free(v);
}

/* The calls of the baseline's 1h windows, from SQLite. */
static char *lite_calls_1h(const char *lite)
{
        sqlite3 *l = NULL;
        sqlite3_stmt *s = NULL;
        char *v;

        assert_int_equal(sqlite3_open_v2(lite, &l, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(l,
                                            "SELECT SUM(calls) FROM "
                                            "window_counts WHERE "
                                            "window_spec = '1h'",
                                            -1, &s, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        v = th_strdup((const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        sqlite3_close(l);
        return v;
}

static void test_views_survive_restarts(void **state)
{
        struct ops *st = *state;
        char *expect = lite_calls_1h(st->lite_gen);
        char *oid, *oid2, *before, *v, *v2, err[512];
        int round;

        createdb(st, "ops_views", "cs_owner");
        migrate_ok(st, "cs_owner", "ops_views");
        grant_roles(st, "ops_views", "cs_owner");
        sql_as(st, "cs_owner", "ops_views", MY_VIEW);
        oid = value_as(st, "postgres", "ops_views",
                       "SELECT 'call_counts'::regclass::oid", NULL, 0);
        before = value_as(st, "postgres", "ops_views",
                          "SELECT string_agg(name || checksum || installed_at, "
                          "',' ORDER BY name) FROM schema_views",
                          NULL, 0);
        assert_non_null(oid);
        assert_non_null(before);

        /* The ingest role only reads and writes rows; then the owner's
         * ingest restarts too. */
        for (round = 0; round < 3; round++) {
                ingest_ok(st, st->gen, round < 2 ? "cs_rows" : "cs_owner",
                          "ops_views", NULL);
                check_reader(st, "ops_views", 1, expect);
        }
        assert_int_equal(
                compare(st, "cs_owner", "ops_views", NULL, st->lite_gen), 0);
        oid2 = value_as(st, "postgres", "ops_views",
                        "SELECT 'call_counts'::regclass::oid", NULL, 0);
        assert_string_equal(oid, oid2);
        free(oid2);
        /* Nothing was installed again. */
        oid2 = value_as(st, "postgres", "ops_views",
                        "SELECT string_agg(name || checksum || installed_at, "
                        "',' ORDER BY name) FROM schema_views",
                        NULL, 0);
        assert_string_equal(before, oid2);
        free(oid2);

        /* The README's query of rejected records, as the reader: every
         * payload shows, invalid UTF-8 too. */
        v = value_as(st, "bi_reader", "ops_views", README_REJECTS, err,
                     sizeof(err));
        if (!v)
                fail_msg("bi_reader: the README's rejects query: %s", err);
        free(v);
        v = value_as(st, "bi_reader", "ops_views",
                     "SELECT count(*) FROM (" README_REJECTS_ALL ") AS q "
                     "WHERE payload IS NOT NULL",
                     err, sizeof(err));
        v2 = value_as(st, "bi_reader", "ops_views",
                      "SELECT count(*) FROM rejected_records", NULL, 0);
        assert_non_null(v);
        assert_non_null(v2);
        assert_string_equal(v, v2);
        assert_true(atol(v) > 0);
        free(v);
        free(v2);

        /* A changed definition (as after an upgrade) is replaced in
         * place: same view, same grants, the user's view kept. */
        sql_as(st, "cs_owner", "ops_views",
               "UPDATE schema_views SET checksum = 'old' "
               "WHERE name IN ('call_counts', 'recent_call_counts')");
        ingest_ok(st, st->gen, "cs_owner", "ops_views", NULL);
        check_reader(st, "ops_views", 1, expect);
        oid2 = value_as(st, "postgres", "ops_views",
                        "SELECT 'call_counts'::regclass::oid", NULL, 0);
        assert_string_equal(oid, oid2);
        free(oid2);
        oid2 = value_as(st, "postgres", "ops_views",
                        "SELECT count(*) FROM schema_views "
                        "WHERE checksum = 'old'",
                        NULL, 0);
        assert_string_equal(oid2, "0");
        free(oid2);
        free(oid);
        free(before);
        free(expect);
}

/* A view whose columns changed cannot be replaced: with a user's view on
 * it the start fails naming that view and changes nothing; without, the
 * view and ours on it are created anew with their grants. */
static void test_changed_view_columns(void **state)
{
        struct ops *st = *state;
        char *expect = lite_calls_1h(st->lite_sample);
        char *def, *q, *v;
        struct th_args a = {0};
        struct th_run r;

        createdb(st, "ops_cols", "cs_owner");
        ingest_ok(st, st->sample, "cs_owner", "ops_cols", NULL);
        grant_roles(st, "ops_cols", "cs_owner");
        /* An older call_counts with one more column, as if installed by
         * another version, with a user view on it. */
        def = value_as(st, "cs_owner", "ops_cols",
                       "SELECT rtrim(pg_get_viewdef('call_counts'), ';')", NULL,
                       0);
        assert_non_null(def);
        q = th_asprintf("CREATE OR REPLACE VIEW call_counts AS SELECT q.*, "
                        "0 AS extra FROM (%s) AS q; "
                        "UPDATE schema_views SET checksum = 'old' "
                        "WHERE name = 'call_counts'; " MY_VIEW,
                        def);
        sql_as(st, "cs_owner", "ops_cols", q);
        free(q);
        free(def);
        check_reader(st, "ops_cols", 1, expect);

        q = ci_as(st, "cs_owner", "ops_cols");
        ingest_args(st, &a, st->sample, q, NULL);
        free(q);
        th_run_args(&a, GUARD_MS, &r);
        th_args_free(&a);
        fprintf(stderr, "# with a user view on it: exit %d\n", r.status);
        th_show_tail("stderr", r.err.p, r.err.len);
        assert_int_equal(r.status, 1);
        assert_int_equal(error_lines(r.err.p), 1);
        assert_non_null(strstr(r.err.p, "my_counts"));
        assert_non_null(strstr(r.err.p, "call_counts"));
        th_run_free(&r);
        /* Rolled back whole: the user's view and ours still there. */
        check_reader(st, "ops_cols", 1, expect);

        sql_as(st, "cs_owner", "ops_cols", "DROP VIEW my_counts");
        ingest_ok(st, st->sample, "cs_owner", "ops_cols", NULL);
        check_reader(st, "ops_cols", 0, expect);
        v = value_as(st, "postgres", "ops_cols",
                     "SELECT count(*) FROM information_schema.columns "
                     "WHERE table_name = 'call_counts' "
                     "AND column_name = 'extra'",
                     NULL, 0);
        assert_string_equal(v, "0");
        free(v);
        v = value_as(st, "bi_reader", "ops_cols",
                     "SELECT count(*) FROM top_crime_types", NULL, 0);
        assert_non_null(v);
        free(v);
        free(expect);
}

/*
 * 7.10, 7.11, 8.7: schemas.
 */

/* Several ingests started together on a schema that does not exist yet:
 * one creates it, all finish. Another session creating the same schema,
 * uncommitted until every ingest has started, lines their attempts up
 * behind it, as a close race would; it then rolls back. */
static void test_concurrent_new_schema(void **state)
{
        struct ops *st = *state;
        enum { N = 5, TRIALS = 3 };
        pid_t pids[N];
        char *logs[N];
        char *ci, *q, schema[32];
        PGconn *holder;
        int t, i, rc;

        createdb(st, "ops_conc", "cs_owner");
        ci = ci_as(st, "cs_owner", "ops_conc");
        holder = th_pg_open(ci);
        assert_non_null(holder);
        for (t = 0; t < TRIALS; t++) {
                snprintf(schema, sizeof(schema), "fresh_%d", t);
                q = th_asprintf("BEGIN; CREATE SCHEMA %s", schema);
                th_pg_exec_ok(holder, q);
                free(q);
                for (i = 0; i < N; i++) {
                        struct th_args a = {0};
                        char name[32];

                        snprintf(name, sizeof(name), "conc-%d-%d.log", t, i);
                        logs[i] = path_in(st, name);
                        ingest_args(st, &a, st->sample, ci, schema);
                        pids[i] = th_spawn_logged(&a, logs[i]);
                        th_args_free(&a);
                        assert_true(pids[i] > 0);
                }
                th_sleep_ms(2000); /* every ingest waits on the schema */
                th_pg_exec_ok(holder, "ROLLBACK");
                for (i = 0; i < N; i++) {
                        rc = wait_exit(pids[i], logs[i]);
                        if (rc != 0)
                                fail_msg("trial %d: ingest %d exited %d", t, i,
                                         rc);
                        free(logs[i]);
                }
                assert_int_equal(compare(st, "cs_owner", "ops_conc", schema,
                                         st->lite_sample),
                                 0);
        }
        PQfinish(holder);
        free(ci);
}

/* A schema an administrator made for the ingest role works without CREATE
 * on the database; a schema the role may not create fails at once. */
static void test_admin_made_schema(void **state)
{
        struct ops *st = *state;
        struct th_args a = {0};
        struct th_run r;
        char *ci, *v;

        createdb(st, "ops_sf", NULL);
        sql_as(st, "postgres", "ops_sf",
               "REVOKE CREATE ON DATABASE ops_sf FROM PUBLIC; "
               "CREATE SCHEMA sf AUTHORIZATION cs_sf");
        ingest_ok(st, st->sample, "cs_sf", "ops_sf", "sf");
        ingest_ok(st, st->sample, "cs_sf", "ops_sf", "sf");
        assert_int_equal(compare(st, "cs_sf", "ops_sf", "sf", st->lite_sample),
                         0);
        v = value_as(st, "postgres", "ops_sf",
                     "SELECT count(*) FROM pg_tables WHERE schemaname = 'sf' "
                     "AND tableowner = 'cs_sf' AND tablename = 'calls'",
                     NULL, 0);
        assert_string_equal(v, "1");
        free(v);

        ci = ci_as(st, "cs_sf", "ops_sf");
        ingest_args(st, &a, st->sample, ci, "elsewhere");
        free(ci);
        th_run_args(&a, GUARD_MS, &r);
        th_args_free(&a);
        th_show_tail("stderr", r.err.p, r.err.len);
        assert_int_equal(r.status, 1);
        assert_int_equal(error_lines(r.err.p), 1);
        assert_non_null(strstr(r.err.p, "permission denied"));
        assert_null(strstr(r.err.p, "not available at start"));
        th_run_free(&r);
}

/* Names up to 63 bytes, any characters, are kept whole; longer ones are
 * refused with one clear line. */
static void test_schema_name_lengths(void **state)
{
        struct ops *st = *state;
        char name[64], *ci, *q, *v, *id;
        static const size_t too_long[] = {64, 300};
        size_t i;
        PGconn *c;

        createdb(st, "ops_names", "cs_owner");
        /* 63 bytes with a quote, a space, a semicolon and UTF-8. */
        snprintf(name, sizeof(name), "%s", "we\"ird; name \xc3\xa9");
        memset(name + strlen(name), 'x', 63 - strlen(name));
        name[63] = '\0';
        ingest_ok(st, st->sample, "cs_owner", "ops_names", name);
        assert_int_equal(
                compare(st, "cs_owner", "ops_names", name, st->lite_sample), 0);
        ci = ci_as(st, "cs_owner", "ops_names");
        c = th_pg_open(ci);
        assert_non_null(c);
        id = PQescapeLiteral(c, name, strlen(name));
        PQfinish(c);
        q = th_asprintf("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                        id);
        PQfreemem(id);
        v = value_as(st, "postgres", "ops_names", q, NULL, 0);
        assert_string_equal(v, "1");
        free(v);
        free(q);

        for (i = 0; i < N_OF(too_long); i++) {
                struct th_args a = {0};
                struct th_run r;
                char *longer = th_malloc(too_long[i] + 1);

                memset(longer, 's', too_long[i]);
                longer[too_long[i]] = '\0';
                ingest_args(st, &a, st->sample, ci, longer);
                th_run_args(&a, GUARD_MS, &r);
                th_args_free(&a);
                th_show_tail("stderr", r.err.p, r.err.len);
                assert_int_equal(r.status, 1);
                assert_int_equal(error_lines(r.err.p), 1);
                assert_non_null(strstr(r.err.p, "--schema"));
                assert_non_null(strstr(r.err.p, "63"));
                assert_null(strstr(r.err.p, "unterminated"));
                th_run_free(&r);
                free(longer);
        }
        free(ci);
}

/*
 * 8.1: lock and statement timeouts are outages, not errors.
 */

/* With setting on the role, holds a rebuild's lock on window_counts
 * until the ingest has hit it, then lets go: the ingest finishes exact. */
static void run_held(const struct ops *st, const char *db, const char *setting,
                     const char *needle)
{
        char *ci = ci_as(st, "postgres", db), *log, *q;
        struct th_args a = {0};
        PGconn *holder;
        pid_t pid;

        createdb(st, db, "cs_timeouts");
        migrate_ok(st, "cs_timeouts", db);
        q = th_asprintf("ALTER ROLE cs_timeouts RESET ALL; "
                        "ALTER ROLE cs_timeouts SET %s",
                        setting);
        sql_as(st, "postgres", "postgres", q);
        free(q);
        holder = th_pg_open(ci);
        free(ci);
        assert_non_null(holder);
        th_pg_exec_ok(holder, "BEGIN; LOCK TABLE window_counts, "
                              "late_records IN SHARE ROW EXCLUSIVE MODE");
        ci = ci_as(st, "cs_timeouts", db);
        log = th_asprintf("%s/%s.log", st->dir, db);
        ingest_args(st, &a, st->gen, ci, NULL);
        th_args_addv(&a, "--batch-max-records", "1000", NULL);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        free(ci);
        assert_true(pid > 0);
        wait_for_log(log, needle, pid);
        th_sleep_ms(1500); /* a retry or two against the lock */
        th_pg_exec_ok(holder, "COMMIT");
        PQfinish(holder);
        assert_int_equal(wait_exit(pid, log), 0);
        sql_as(st, "postgres", "postgres", "ALTER ROLE cs_timeouts RESET ALL");
        assert_int_equal(compare(st, "cs_timeouts", db, NULL, st->lite_gen), 0);
        free(log);
}

static void test_lock_timeout(void **state)
{
        run_held(*state, "ops_lock", "lock_timeout = '200ms'", "lock timeout");
}

static void test_statement_timeout(void **state)
{
        run_held(*state, "ops_stmt", "statement_timeout = '300ms'",
                 "statement timeout");
}

/*
 * 8.2: a hung server, and SIGTERM.
 */

/* Starts args (an ingest of the generated stream into db, 20 messages a
 * batch), freezes its backend with SIGSTOP once batches flow, sends it
 * SIGTERM and returns its exit status (-1: still running at the hang
 * guard); the backend goes on (SIGCONT) afterwards. */
static int freeze_and_stop(const struct ops *st, struct th_args *a,
                           const char *db, const char *log)
{
        char *q, *v;
        pid_t pid, backend;
        int64_t t0;
        int rc;

        th_args_addv(a, "--batch-max-records", "20", NULL);
        pid = th_spawn_logged(a, log);
        assert_true(pid > 0);
        q = th_asprintf("SELECT COALESCE((SELECT SUM(next_offset) FROM "
                        "kafka_offsets), 0) > 200");
        t0 = th_now_ms();
        for (;;) {
                v = value_as(st, "postgres", db, q, NULL, 0);
                if (v && !strcmp(v, "t"))
                        break;
                free(v);
                if (th_exited(pid) >= 0 || th_now_ms() - t0 > GUARD_MS) {
                        th_show_file_tail("ingest log", log);
                        fail_msg("the ingest made no progress");
                }
                th_sleep_ms(20);
        }
        free(v);
        free(q);
        q = th_asprintf("SELECT pid FROM pg_stat_activity WHERE datname = "
                        "'%s' AND application_name = 'callstream'",
                        db);
        v = value_as(st, "postgres", db, q, NULL, 0);
        free(q);
        assert_non_null(v);
        backend = (pid_t)atol(v);
        free(v);
        assert_int_equal(kill(backend, SIGSTOP), 0);
        th_sleep_ms(1000); /* the ingest now waits on its backend */
        if (th_exited(pid) >= 0) {
                kill(backend, SIGCONT);
                fail_msg("the ingest finished before its backend froze");
        }
        t0 = th_now_ms();
        kill(pid, SIGTERM);
        rc = th_wait_until(pid, t0 + STOP_BOUND_MS);
        th_child_forget(pid);
        kill(backend, SIGCONT);
        fprintf(stderr,
                "# SIGTERM with a frozen backend: exit %d after %.1f s\n", rc,
                (double)(th_now_ms() - t0) / 1000.0);
        th_show_file_tail("ingest log", log);
        return rc;
}

/* A file replay: it exits by itself (1: the replay was cut short), not
 * killed by the guard; restarted, it ends exact. */
static void test_hung_server_sigterm(void **state)
{
        struct ops *st = *state;
        char *ci = ci_as(st, "cs_owner", "ops_hang"), *log;
        struct th_args a = {0};
        int rc;

        createdb(st, "ops_hang", "cs_owner");
        log = path_in(st, "hang.log");
        ingest_args(st, &a, st->gen, ci, NULL);
        rc = freeze_and_stop(st, &a, "ops_hang", log);
        th_args_free(&a);
        assert_true(rc == 0 || rc == 1);
        ingest_ok(st, st->gen, "cs_owner", "ops_hang", NULL);
        assert_int_equal(
                compare(st, "cs_owner", "ops_hang", NULL, st->lite_gen), 0);
        free(log);
        free(ci);
}

/* The service: an ingest of a Kafka topic exits 0 on SIGTERM with its
 * backend frozen, and a restart resumes from the stored offsets, exact
 * (against the topic ingested into SQLite by one process). */
static void test_hung_server_kafka(void **state)
{
        static const char *const broker_args[] = {"--partitions", "2",
                                                  "--topic", "hang", NULL};
        struct ops *st = *state;
        char *ci = ci_as(st, "cs_owner", "ops_hangk"), *log, *lite, *p;
        struct th_args a = {0};

        p = path_in(st, "broker.err");
        assert_int_equal(th_broker_start(&st->broker, st->bin, broker_args, p),
                         0);
        free(p);
        th_fatal_broker(0, st->broker.pid);
        th_args_addv(&a, st->bin, "produce", "--brokers", st->broker.brokers,
                     "--topic", "hang", st->gen, NULL);
        th_run_ok_free(&a);
        lite = path_in(st, "hangk.db");
        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", "hang", "--db", lite, "--window", "1h",
                     "--window", "1d", "--from-beginning", "--exit-at-end",
                     NULL);
        th_run_ok_free(&a);

        createdb(st, "ops_hangk", "cs_owner");
        log = path_in(st, "hangk.log");
        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", "hang", "--db", ci, "--window", "1h",
                     "--window", "1d", "--from-beginning", NULL);
        assert_int_equal(freeze_and_stop(st, &a, "ops_hangk", log), 0);
        th_args_free(&a);

        th_args_addv(&a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", "hang", "--db", ci, "--window", "1h",
                     "--window", "1d", "--from-beginning", "--exit-at-end",
                     NULL);
        th_run_ok_free(&a);
        assert_int_equal(compare(st, "cs_owner", "ops_hangk", NULL, lite), 0);
        assert_int_equal(th_broker_stop(&st->broker), 0);
        th_fatal_broker(0, 0);
        free(lite);
        free(log);
        free(ci);
}

/* The sink's own statement timeout, through the sink interface: a
 * statement that waits on a lock is cancelled and retried (the server
 * answers the cancel), and one whose backend is frozen gives the
 * connection up; both are outages, and a reconnect cures them. */
static void test_sink_statement_timeout(void **state)
{
        struct ops *st = *state;
        char *ci = ci_as(st, "cs_owner", "ops_silent"), *v;
        struct cs_sink *s = NULL;
        char err[512], names[4][32];
        PGconn *holder;
        pid_t backend;
        int n;

        createdb(st, "ops_silent", "cs_owner");
        assert_int_equal(cs_sink_open(ci, NULL, &s, err, sizeof(err)), 0);
        assert_int_equal(s->ops->migrate(s, err, sizeof(err)), 0);
        s->timeout_ms = 1000;

        holder = th_pg_open(ci);
        assert_non_null(holder);
        th_pg_exec_ok(holder, "BEGIN; LOCK TABLE window_counts IN ACCESS "
                              "EXCLUSIVE MODE");
        assert_int_equal(
                s->ops->window_specs(s, names, 4, &n, err, sizeof(err)),
                CS_RETRY);
        fprintf(stderr, "# behind a lock: %s\n", err);
        assert_non_null(strstr(err, "cancel"));
        th_pg_exec_ok(holder, "COMMIT");
        PQfinish(holder);
        assert_int_equal(s->ops->reconnect(s, err, sizeof(err)), 0);
        assert_int_equal(
                s->ops->window_specs(s, names, 4, &n, err, sizeof(err)), 0);

        v = value_as(st, "postgres", "ops_silent",
                     "SELECT pid FROM pg_stat_activity WHERE datname = "
                     "'ops_silent' AND application_name = 'callstream'",
                     NULL, 0);
        assert_non_null(v);
        backend = (pid_t)atol(v);
        free(v);
        assert_int_equal(kill(backend, SIGSTOP), 0);
        n = s->ops->begin(s, err, sizeof(err));
        kill(backend, SIGCONT);
        fprintf(stderr, "# frozen backend: %s\n", err);
        assert_int_equal(n, CS_RETRY);
        assert_non_null(strstr(err, "no answer"));
        assert_int_equal(s->ops->reconnect(s, err, sizeof(err)), 0);
        assert_int_equal(s->ops->begin(s, err, sizeof(err)), 0);
        s->ops->rollback(s);
        cs_sink_close(s);
        free(ci);
}

/*
 * 8.3: the database down at start.
 */

static void test_database_down_at_start(void **state)
{
        struct ops *st = *state;
        char *ci, *log;
        struct th_args a = {0};
        struct th_run r;
        pid_t pid;
        int64_t t0;

        createdb(st, "ops_down", "cs_owner");
        ci = ci_as(st, "cs_owner", "ops_down");
        assert_int_equal(th_pg_ctl(&st->pg, "fast", "stop"), 0);

        /* SIGTERM ends the wait at once. */
        log = path_in(st, "down-term.log");
        ingest_args(st, &a, st->sample, ci, NULL);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        assert_true(pid > 0);
        wait_for_log(log, "not available at start", pid);
        t0 = th_now_ms();
        kill(pid, SIGTERM);
        assert_int_equal(th_wait_until(pid, t0 + STOP_BOUND_MS), 0);
        th_child_forget(pid);
        free(log);

        /* A service started before its database waits for it. */
        log = path_in(st, "down.log");
        ingest_args(st, &a, st->sample, ci, NULL);
        th_args_addv(&a, "--startup-timeout", "100s", NULL);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        assert_true(pid > 0);
        wait_for_log(log, "not available at start", pid);
        th_sleep_ms(1000);
        assert_int_equal(th_pg_ctl(&st->pg, NULL, "start"), 0);
        assert_int_equal(wait_exit(pid, log), 0);
        free(log);
        assert_int_equal(
                compare(st, "cs_owner", "ops_down", NULL, st->lite_sample), 0);
        free(ci);

        /* A database that does not exist is no outage: exit 1 at once. */
        ci = ci_as(st, "cs_owner", "ops_no_such_db");
        ingest_args(st, &a, st->sample, ci, NULL);
        th_args_addv(&a, "--startup-timeout", "100s", NULL);
        th_run_args(&a, GUARD_MS, &r);
        th_args_free(&a);
        th_show_tail("stderr", r.err.p, r.err.len);
        assert_int_equal(r.status, 1);
        assert_int_equal(error_lines(r.err.p), 1);
        assert_non_null(strstr(r.err.p, "ops_no_such_db"));
        assert_null(strstr(r.err.p, "not available at start"));
        th_run_free(&r);
        free(ci);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_views_survive_restarts,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_changed_view_columns,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_concurrent_new_schema,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_admin_made_schema,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_schema_name_lengths,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_lock_timeout, th_test_teardown),
                cmocka_unit_test_teardown(test_statement_timeout,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_hung_server_sigterm,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_hung_server_kafka,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_sink_statement_timeout,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_database_down_at_start,
                                          th_test_teardown),
        };
        const char *only = getenv("PG_OPS_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("pg_ops", tests, group_setup,
                                           group_teardown);
}
