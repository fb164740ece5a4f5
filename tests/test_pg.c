/* test_pg.c: end-to-end test of the PostgreSQL sink (issue 3) against a real
 * PostgreSQL 15 server that the test starts itself.
 *
 * The group setup runs initdb into a temporary folder (through runuser as
 * the postgres user when the test runs as root, since the server refuses
 * root), with pg_hba trusting the Unix socket in that folder and asking for
 * a scram-sha-256 password over TCP on 127.0.0.1 at a free port; it creates
 * a role with a known password and starts `callstream broker`. The group
 * teardown stops the server (immediate mode), kills every child and deletes
 * the folder, whatever happened; a watchdog and the fatal-signal handlers
 * stop the server too.
 *
 * Expected values never come from project code (none is linked): they come
 * from the same topic ingested into SQLite by one uninterrupted process
 * (the SQLite sink is what test_e2e checks against an independent model),
 * or, for the calendar limits, are worked out by hand. Tables and views of
 * both databases are rendered as typed text rows and compared as sorted
 * sets, row for row. Streams come from `callstream generate` with fixed
 * seeds (printed with each command), so a failure reproduces; E2E_KEEP=1
 * keeps the folder, PG_TEST_FILTER='test_scale*' runs one test. */
#include <ctype.h>
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

#include "harness.h"
#include "pgutil.h"

/* Safety nets only: nothing here asserts on speed. */
#define CLI_TIMEOUT_MS    (15 * 1000)
#define SETTLE_TIMEOUT_MS (120 * 1000)
#define WATCHDOG_S        600

#define MAX_SHOWN 10 /* differences printed per comparison */
#define MAX_PARTS 64

/* The role the ingests log in as over TCP, with its known password, and a
 * wrong one that must never be echoed. */
#define ROLE     "cstest"
#define ROLE_PW  "cs-test-pw-4711"
#define WRONG_PW "WRONGPASS-q7z"

/* The generated streams (seeds fixed, so every run is reproducible). */
#define EQUIV_COUNT   "20000"
#define EQUIV_SEED    "11"
#define SCALE_COUNT   "60000"
#define SCALE_SEED    "12"
#define RESTART_COUNT "40000"
#define RESTART_SEED  "13"
#define TOPIC_PARTS   "8"

struct pgt {
        char dir[PATH_MAX]; /* everything of this run */
        char *bin;          /* callstream */
        char *data_dir;     /* tests/data: the real sample */
        struct th_broker broker;
        struct th_pg pg; /* TCP too: the role's password there */

        /* Test 1's stream in SQLite: the baseline of tests 1 and 2. */
        int baseline_state; /* 0 not tried, 1 ready, -1 failed */
        char *baseline;
        long long equiv_total;
};

static char *path_in(const struct pgt *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/*
 * Rows as typed text lines, compared as sorted sets.
 */

/* Appends the rows of sql on the SQLite database at path, as typed lines
 * (th_lite_lines()). Returns 0 or -1 (said). */
static int sqlite_lines(const char *path, const char *sql, struct th_lines *out)
{
        sqlite3 *db = NULL;
        int rc;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK) {
                fprintf(stderr, "# %s: %s\n", path,
                        db ? sqlite3_errmsg(db) : "out of memory");
                sqlite3_close(db);
                return -1;
        }
        sqlite3_busy_timeout(db, 10000);
        rc = th_lite_lines(db, sql, NULL, NULL, out);
        sqlite3_close(db);
        return rc;
}

static void show_line(const char *tag, const char *line)
{
        size_t n = strlen(line);

        fprintf(stderr, "#   %s %.*s%s\n", tag, n > 400 ? 400 : (int)n, line,
                n > 400 ? "..." : "");
}

/* One table or view in both dialects, rendered alike. PostgreSQL
 * timestamps become SQLite's text: 'YYYY-MM-DD HH:MM:SS', and call_ts gets
 * '.ffffff' only when it has a fraction. ingested_at, rejected_at,
 * updated_at and the rejected_records id depend on when and how often the
 * ingest ran, so they are left out. */
#define PG_TS(col) "to_char(" col ", 'YYYY-MM-DD HH24:MI:SS')"
#define PG_CALL_TS                                                             \
        PG_TS("call_ts")                                                       \
        " || CASE WHEN extract(microseconds FROM call_ts)::bigint % 1000000 "  \
        "<> 0 THEN to_char(call_ts, '.US') ELSE '' END"
#define PG_WINDOW                                                              \
        "window_spec, " PG_TS("window_start") ", " PG_TS(                      \
                "window_end") ", crime_type, "
#define CALL_FIELDS                                                            \
        "crime_id, original_crime_type_name, report_date, call_date, "         \
        "offense_date, call_time, call_date_time, disposition, address, "      \
        "city, state, agency_id, address_type, common_location, "

static const struct cmp {
        const char *what;
        const char *sqlite_sql;
        const char *pg_sql;
} cmps[] = {
        {"call_counts",
         "SELECT window_spec, window_start, window_end, crime_type, calls "
         "FROM call_counts",
         "SELECT " PG_WINDOW "calls FROM call_counts"},
        {"disposition_counts",
         "SELECT window_spec, window_start, window_end, crime_type, "
         "disposition, disposition_description, calls FROM "
         "disposition_counts",
         "SELECT " PG_WINDOW "disposition, disposition_description, calls "
         "FROM disposition_counts"},
        {"calls",
         "SELECT " CALL_FIELDS "call_ts, kafka_topic, kafka_partition, "
         "kafka_offset FROM calls",
         "SELECT " CALL_FIELDS PG_CALL_TS ", kafka_topic, kafka_partition, "
         "kafka_offset FROM calls"},
        {"rejected_records",
         "SELECT kafka_topic, kafka_partition, kafka_offset, reason, payload, "
         "payload_size FROM rejected_records",
         "SELECT kafka_topic, kafka_partition, kafka_offset, reason, payload, "
         "payload_size FROM rejected_records"},
        {"kafka_offsets",
         "SELECT topic, kafka_partition, next_offset FROM kafka_offsets",
         "SELECT topic, kafka_partition, next_offset FROM kafka_offsets"},
};

/* Compares every table and view of cmps between the SQLite database at
 * path and the PostgreSQL connection c (its search_path set). Returns the
 * number of tables that differ. An empty baseline table fails too: equal
 * empty sets would prove nothing, and every stream here has rejects. */
static int compare_with_sqlite(const char *path, PGconn *c)
{
        size_t i;
        int bad = 0;

        for (i = 0; i < sizeof(cmps) / sizeof(cmps[0]); i++) {
                struct th_lines a = {0}, b = {0};

                if (sqlite_lines(path, cmps[i].sqlite_sql, &a) ||
                    th_pg_lines(c, cmps[i].pg_sql, &b)) {
                        bad++;
                } else {
                        th_lines_sort(&a);
                        th_lines_sort(&b);
                        if (th_lines_compare(cmps[i].what, "sqlite    ", &a,
                                             "postgresql", &b, MAX_SHOWN))
                                bad++;
                        if (a.n == 0) {
                                fprintf(stderr,
                                        "# %s: the SQLite baseline is "
                                        "empty\n",
                                        cmps[i].what);
                                bad++;
                        }
                }
                th_lines_free(&a);
                th_lines_free(&b);
        }
        return bad;
}

/*
 * PostgreSQL from the test's side: the superuser over the Unix socket.
 */

static char *tcp_uri(const struct pgt *st, const char *pw, const char *db)
{
        return th_asprintf("postgresql://" ROLE ":%s@127.0.0.1:%d/%s", pw,
                           st->pg.port, db);
}

/* The superuser on database db, over the socket; fails the test when the
 * server does not answer. */
static PGconn *pg_admin(const struct pgt *st, const char *db)
{
        char *ci = th_pg_conninfo_as(&st->pg, "postgres", db);
        PGconn *c = th_pg_open(ci);

        free(ci);
        if (!c)
                fail_msg("cannot connect to database %s as postgres", db);
        return c;
}

/* The integer in the first column of the first row of sql with $1 = arg
 * (may be NULL), or LLONG_MIN (said unless quiet). */
static long long pg_int(PGconn *c, const char *sql, const char *arg, int quiet)
{
        const char *params[1] = {arg};
        PGresult *res =
                PQexecParams(c, sql, arg ? 1 : 0, NULL, params, NULL, NULL, 0);
        long long v = LLONG_MIN;

        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
            !PQgetisnull(res, 0, 0))
                v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        else if (!quiet)
                fprintf(stderr, "# PostgreSQL: %s#   in: %s\n",
                        PQerrorMessage(c), sql);
        PQclear(res);
        return v;
}

/* sum(next_offset) of topic, or LLONG_MIN when the query fails. */
static long long pg_progress(PGconn *c, const char *topic)
{
        return pg_int(c,
                      "SELECT COALESCE(SUM(next_offset), 0) FROM "
                      "kafka_offsets WHERE topic = $1",
                      topic, 1);
}

/* A fresh database owned by the test role. */
static void create_database(const struct pgt *st, const char *name)
{
        if (th_pg_createdb(&st->pg, name, ROLE) != 0)
                fail_msg("cannot create database %s", name);
}

/*
 * Fixture.
 */

/* Creates the role and proves pg_hba does what the tests rely on: its
 * password works over TCP, a wrong one does not. */
static int server_roles(struct pgt *st)
{
        char *ci = th_pg_conninfo_as(&st->pg, "postgres", "postgres");
        PGconn *c = th_pg_open(ci);
        PGresult *res;
        int ok;

        free(ci);
        if (!c)
                return -1;
        res = PQexec(c, "CREATE ROLE " ROLE " LOGIN PASSWORD '" ROLE_PW "'");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
                fprintf(stderr, "# CREATE ROLE: %s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
        if (!ok)
                return -1;

        ci = th_asprintf("host=127.0.0.1 port=%d user=" ROLE
                         " password=" ROLE_PW " dbname=postgres",
                         st->pg.port);
        c = th_pg_open(ci);
        free(ci);
        if (!c)
                return -1;
        PQfinish(c);
        ci = th_asprintf("host=127.0.0.1 port=%d user=" ROLE
                         " password=" WRONG_PW " dbname=postgres",
                         st->pg.port);
        c = PQconnectdb(ci);
        free(ci);
        ok = PQstatus(c) != CONNECTION_OK;
        PQfinish(c);
        if (!ok)
                fprintf(stderr, "# pg_hba: a wrong password was accepted "
                                "over TCP\n");
        return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
        struct pgt *st = *state;
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
        free(st->baseline);
        free(st->bin);
        free(st->data_dir);
        free(st);
        *state = NULL;
        return failed ? -1 : 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {
                "--partitions", TOPIC_PARTS, "--topic", "equiv",   "--topic",
                "scale",        "--topic",   "restart", "--topic", "edge",
                "--topic",      "calendar",  NULL};
        struct pgt *st = calloc(1, sizeof(*st));
        char *p;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_pg", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data_dir))
                goto fail;
        if (th_tmpdir_make("callstream-pg", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        /* Only what the tests say may reach libpq (th_pg_start() clears the
         * environment and ~/.pgpass): no stray server, user or password. */
        if (th_pg_start(&st->pg, st->dir, TH_PG_TCP) < 0 ||
            server_roles(st) < 0)
                goto fail;

        p = path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, p);
        free(p);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);
        return 0;
fail:
        group_teardown(state);
        return -1;
}

/*
 * Commands.
 */

static void generate(const struct pgt *st, const char *count, const char *seed,
                     const char *out_path)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "generate", "--count", count, "--seed", seed,
                     "--duplicates", "0.05", "--changed-duplicates", "0.03",
                     "--out-of-order", "0.1", "--malformed", "0.03",
                     "--int-ids", "0.05", "--output", out_path, NULL);
        th_run_ok_free(&a);
}

static void produce_args(const struct pgt *st, struct th_args *a,
                         const char *topic, const char *file, const char *rate)
{
        th_args_addv(a, st->bin, "produce", "--brokers", st->broker.brokers,
                     "--topic", topic, NULL);
        if (rate)
                th_args_addv(a, "--rate", rate, NULL);
        th_args_add(a, file);
}

static void produce(const struct pgt *st, const char *topic, const char *file)
{
        struct th_args a = {0};

        produce_args(st, &a, topic, file, NULL);
        th_run_ok_free(&a);
}

/* The ingest command line every test uses: three window specs, from the
 * beginning, N messages a batch. schema may be NULL. */
static void ingest_args(const struct pgt *st, struct th_args *a,
                        const char *topic, const char *db, const char *schema,
                        const char *batch)
{
        th_args_addv(a, st->bin, "ingest", "--brokers", st->broker.brokers,
                     "--topic", topic, "--db", db, "--window", "1h", "--window",
                     "1h/15m", "--window", "1d", "--from-beginning",
                     "--batch-max-records", batch, NULL);
        if (schema)
                th_args_addv(a, "--schema", schema, NULL);
}

static void ingest_to_end(const struct pgt *st, const char *topic,
                          const char *db, const char *schema, const char *batch)
{
        struct th_args a = {0};

        ingest_args(st, &a, topic, db, schema, batch);
        th_args_add(&a, "--exit-at-end");
        th_run_ok_free(&a);
}

static void migrate(const struct pgt *st, const char *db, const char *schema)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "migrate", "--db", db, NULL);
        if (schema)
                th_args_addv(&a, "--schema", schema, NULL);
        th_run_ok_free(&a);
}

/* Messages the producer sends for an NDJSON file: its non-blank lines. */
static long long count_messages(const char *path)
{
        struct th_buf b = {0};
        long long n = 0;
        size_t i;
        int blank = 1;

        if (th_read_file(path, &b))
                fail_msg("cannot read %s: %s", path, strerror(errno));
        for (i = 0; i <= b.len; i++) {
                char c = i < b.len ? b.p[i] : '\n';

                if (c == '\n') {
                        n += !blank;
                        blank = 1;
                } else if (c != ' ' && c != '\t' && c != '\r') {
                        blank = 0;
                }
        }
        th_buf_free(&b);
        return n;
}

/* Splits the NDJSON file at path into nparts files of consecutive lines;
 * returns their paths (the caller frees them). */
static void split_file(const struct pgt *st, const char *path, int nparts,
                       char **parts)
{
        struct th_buf b = {0};
        size_t lines = 0, i, line = 0, start = 0;
        int k = 0;

        if (th_read_file(path, &b))
                fail_msg("cannot read %s: %s", path, strerror(errno));
        for (i = 0; i < b.len; i++)
                lines += b.p[i] == '\n';
        for (k = 0; k < nparts; k++) {
                size_t end_line = lines * (size_t)(k + 1) / (size_t)nparts;
                size_t end = start;
                char *name = th_asprintf("part%d.ndjson", k + 1);
                FILE *f;

                while (end < b.len && (line < end_line || k == nparts - 1)) {
                        if (b.p[end++] == '\n')
                                line++;
                }
                parts[k] = path_in(st, name);
                free(name);
                f = fopen(parts[k], "w");
                assert_non_null(f);
                assert_int_equal(fwrite(b.p + start, 1, end - start, f),
                                 end - start);
                assert_int_equal(fclose(f), 0);
                start = end;
        }
        th_buf_free(&b);
}

/* Test 1's stream, produced once into topic equiv and ingested into SQLite
 * by one uninterrupted process: what tests 1 and 2 compare with. */
static void ensure_baseline(struct pgt *st)
{
        char *gen;

        if (st->baseline_state > 0)
                return;
        if (st->baseline_state < 0)
                fail_msg("the SQLite baseline failed earlier");
        st->baseline_state = -1;
        th_broker_assert_alive(&st->broker);
        gen = path_in(st, "equiv.ndjson");
        generate(st, EQUIV_COUNT, EQUIV_SEED, gen);
        st->equiv_total = count_messages(gen);
        produce(st, "equiv", gen);
        free(gen);
        st->baseline = path_in(st, "equiv.db");
        ingest_to_end(st, "equiv", st->baseline, NULL, "700");
        st->baseline_state = 1;
}

/*
 * Tests.
 */

/* Column types the PostgreSQL schema promises. */
static int check_column_types(PGconn *c, const char *schema)
{
        static const struct {
                const char *table;
                const char *column;
                const char *type; /* NULL: any integer type */
        } want[] = {
                {"calls", "call_ts", "timestamp without time zone"},
                {"calls", "ingested_at", "timestamp without time zone"},
                {"window_counts", "window_start",
                 "timestamp without time zone"},
                {"window_counts", "window_end", "timestamp without time zone"},
                {"call_counts", "window_start", "timestamp without time zone"},
                {"call_counts", "window_end", "timestamp without time zone"},
                {"disposition_counts", "window_start",
                 "timestamp without time zone"},
                {"disposition_counts", "window_end",
                 "timestamp without time zone"},
                {"rejected_records", "rejected_at",
                 "timestamp without time zone"},
                {"kafka_offsets", "updated_at", "timestamp without time zone"},
                {"rejected_records", "payload", "bytea"},
                {"window_counts", "calls", NULL},
                {"call_counts", "calls", NULL},
                {"disposition_counts", "calls", NULL},
        };
        size_t i;
        int bad = 0;

        for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                const char *params[3] = {schema, want[i].table, want[i].column};
                PGresult *res = PQexecParams(
                        c,
                        "SELECT data_type FROM information_schema.columns "
                        "WHERE table_schema = $1 AND table_name = $2 AND "
                        "column_name = $3",
                        3, NULL, params, NULL, NULL, 0);
                const char *type = PQresultStatus(res) == PGRES_TUPLES_OK &&
                                                   PQntuples(res) == 1
                                           ? PQgetvalue(res, 0, 0)
                                           : "(no such column)";
                int ok = want[i].type ? !strcmp(type, want[i].type)
                                      : !strcmp(type, "smallint") ||
                                                !strcmp(type, "integer") ||
                                                !strcmp(type, "bigint");

                if (!ok) {
                        fprintf(stderr, "# %s.%s.%s is %s, expected %s\n",
                                schema, want[i].table, want[i].column, type,
                                want[i].type ? want[i].type
                                             : "an integer type");
                        bad++;
                }
                PQclear(res);
        }
        return bad;
}

/* 1. The same stream into SQLite and into PostgreSQL (over TCP, with the
 * password in the URI): row-for-row identical tables and views, also after
 * a second run over the whole topic. */
static void test_equivalence(void **state)
{
        struct pgt *st = *state;
        char *uri;
        PGconn *c;
        int bad;

        ensure_baseline(st);
        create_database(st, "cs_equiv");
        uri = tcp_uri(st, ROLE_PW, "cs_equiv");
        ingest_to_end(st, "equiv", uri, NULL, "700");
        free(uri);

        c = pg_admin(st, "cs_equiv");
        fprintf(stderr, "# %lld messages; sum(next_offset) %lld\n",
                st->equiv_total, pg_progress(c, "equiv"));
        bad = compare_with_sqlite(st->baseline, c);
        bad += check_column_types(c, "public");

        /* The calls table is the dedup memory: with the stored offsets
         * gone, reading the whole topic again must change nothing (one
         * batch, so every conflict path is taken at once). */
        th_pg_exec_ok(c, "DELETE FROM kafka_offsets");
        uri = tcp_uri(st, ROLE_PW, "cs_equiv");
        ingest_to_end(st, "equiv", uri, NULL, "10000");
        free(uri);
        bad += compare_with_sqlite(st->baseline, c);
        PQfinish(c);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 2. --schema analytics: everything lands in that schema, nothing in
 * public, and the results are test 1's. */
static void test_schema(void **state)
{
        static const struct {
                const char *name;
                char kind;
        } objs[] = {
                {"calls", 'r'},         {"rejected_records", 'r'},
                {"kafka_offsets", 'r'}, {"window_counts", 'v'},
                {"window_totals", 'r'}, {"crime_type_ids", 'r'},
                {"radio_codes", 'r'},   {"schema_migrations", 'r'},
                {"call_counts", 'v'},   {"disposition_counts", 'v'},
        };
        struct pgt *st = *state;
        struct th_lines pub = {0};
        char *ci;
        PGconn *c;
        size_t i;
        int bad = 0;

        ensure_baseline(st);
        create_database(st, "cs_schema");
        ci = th_pg_conninfo_as(&st->pg, ROLE, "cs_schema");
        migrate(st, ci, "analytics");
        ingest_to_end(st, "equiv", ci, "analytics", "700");
        free(ci);

        c = pg_admin(st, "cs_schema");
        for (i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
                long long kind = pg_int(
                        c,
                        "SELECT ascii(c.relkind::text) FROM pg_class c JOIN "
                        "pg_namespace n ON n.oid = c.relnamespace WHERE "
                        "n.nspname = 'analytics' AND c.relname = $1",
                        objs[i].name, 1);

                if (kind != objs[i].kind) {
                        fprintf(stderr,
                                "# analytics.%s: expected relkind '%c', got "
                                "%s\n",
                                objs[i].name, objs[i].kind,
                                kind == LLONG_MIN ? "no such object"
                                                  : "another kind");
                        bad++;
                }
        }
        if (th_pg_lines(c,
                        "SELECT c.relname, c.relkind FROM pg_class c JOIN "
                        "pg_namespace n ON n.oid = c.relnamespace WHERE "
                        "n.nspname = 'public'",
                        &pub))
                bad++;
        for (i = 0; i < pub.n; i++)
                show_line("in public:", pub.v[i]);
        if (pub.n) {
                fprintf(stderr,
                        "# %zu objects in schema public, expected "
                        "none\n",
                        pub.n);
                bad++;
        }
        th_lines_free(&pub);
        th_pg_exec_ok(c, "SET search_path TO analytics");
        bad += compare_with_sqlite(st->baseline, c);
        bad += check_column_types(c, "analytics");
        PQfinish(c);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* Test 1b's hand-written messages: what the generator never makes. Keyed
 * by crime_id, so each crime_id's copies share a partition in this order. */
static const char *const edge_lines[] = {
        /* No, an empty and a null disposition: NULL in the view. Fractions
         * of one and six digits, a space for the T, no seconds. */
        "{\"crime_id\":\"E1\",\"original_crime_type_name\":\"No "
        "disposition\",\"call_date_time\":\"2019-01-01T00:00:00.5\"}",
        "{\"crime_id\":\"E2\",\"original_crime_type_name\":\"Empty "
        "disposition\",\"call_date_time\":\"2019-01-01 00:10:00.123456\","
        "\"disposition\":\"\"}",
        "{\"crime_id\":\"E3\",\"original_crime_type_name\":\"Null "
        "disposition\",\"call_date_time\":\"2019-01-01T00:20\","
        "\"disposition\":null,\"address\":null}",
        /* An integer id, then the same call as a string, changed. */
        "{\"crime_id\":12345,\"original_crime_type_name\":\"Int id\","
        "\"call_date_time\":\"2019-01-01T01:00:00.000000\","
        "\"disposition\":\"ADM\"}",
        "{\"crime_id\":\"12345\",\"original_crime_type_name\":\"Later "
        "copy\",\"call_date_time\":\"2019-01-01T01:00:00\","
        "\"disposition\":\"CIT\"}",
        /* Values that are not strings, kept as their JSON text. */
        "{\"crime_id\":0,\"original_crime_type_name\":\"Zero\","
        "\"call_date_time\":\"2019-01-01T02:00:00.000001\",\"agency_id\":1,"
        "\"city\":true,\"state\":{\"a\":[1, 2]},\"common_location\":1.5e3,"
        "\"report_date\":false,\"call_date\":[]}",
        /* What COPY gives meaning to (tab, newline, CR, backslash),
         * quotes, escapes, control characters, astral and CJK text. */
        "{\"crime_id\":\"E6\",\"original_crime_type_name\":\"A\\\\B\\tC\\nD"
        "\\rE 'q' \\\"dq\\\"\",\"call_date_time\":\"2019-01-01T03:00:00\","
        "\"address\":\"tab\\there \\\\N \\\\. \\u00e9 \\ud83d\\ude00 "
        "\xe6\x97\xa5\xe6\x9c\xac \\u0001\\u001f\","
        "\"disposition\":\"Not recorded\"}",
        "{\"crime_id\":\"E6\",\"original_crime_type_name\":\"A\\\\B\\tC\\nD"
        "\\rE 'q' \\\"dq\\\"\",\"call_date_time\":\"2019-01-01T03:00:00\","
        "\"address\":\"tab\\there \\\\N \\\\. \\u00e9 \\ud83d\\ude00 "
        "\xe6\x97\xa5\xe6\x9c\xac \\u0001\\u001f\","
        "\"disposition\":\"Not recorded\"}",
        /* Duplicate keys (the last wins), unknown keys, a code with no
         * radio code, one with spaces, a leap day, the end of a day. */
        "{\"crime_id\":\"E7\",\"original_crime_type_name\":\"\xc3\x9c"
        "berfall\",\"call_date_time\":\"2019-01-01T04:00:59.99\","
        "\"disposition\":\"HAN\",\"disposition\":\"GOA\"}",
        "{\"crime_id\":\"E8\",\"original_crime_type_name\":\"O'Brien's\","
        "\"call_date_time\":\"2020-02-29T12:00\",\"zzz\":{\"deep\":[1,"
        "{\"x\":null}]},\"disposition\":\"ZZZ\"}",
        "{\"crime_id\":\"E9\",\"original_crime_type_name\":\"Spaces\","
        "\"call_date_time\":\"2019-12-31T23:59:59.999999\","
        "\"disposition\":\" HAN \"}",
        /* Rejects: raw tab, CR and backslash; invalid UTF-8; no such
         * date; \u0000; trailing data; no object; empty id; no id. */
        "not json \t tab \\ backslash \r cr",
        "{\"crime_id\":\"bad\xff\xfe\",\"original_crime_type_name\":\"x\","
        "\"call_date_time\":\"2019-01-01T00:00:00\"}",
        "{\"crime_id\":\"R3\",\"original_crime_type_name\":\"x\","
        "\"call_date_time\":\"2019-02-30T00:00:00\"}",
        "{\"crime_id\":\"R4\",\"original_crime_type_name\":\"x\\u0000y\","
        "\"call_date_time\":\"2019-01-01T00:00:00\"}",
        "{\"crime_id\":\"R6\",\"original_crime_type_name\":\"x\","
        "\"call_date_time\":\"2019-01-01T00:00:00\"} trailing",
        "[1,2,3]",
        "{\"crime_id\":\"\",\"original_crime_type_name\":\"x\","
        "\"call_date_time\":\"2019-01-01T00:00:00\"}",
        "{}",
};

/* Writes test 1b's stream: edge_lines, then a call with a 10000-byte
 * address, a 5000-byte reject and one cut at 4096 bytes inside a
 * two-byte character. */
static void write_edge_stream(const char *path)
{
        FILE *f = fopen(path, "wb");
        size_t i;

        assert_non_null(f);
        for (i = 0; i < sizeof(edge_lines) / sizeof(edge_lines[0]); i++)
                fprintf(f, "%s\n", edge_lines[i]);
        fputs("{\"crime_id\":\"E10\",\"original_crime_type_name\":\"Long\","
              "\"call_date_time\":\"2019-01-01T06:00:00\",\"address\":\"",
              f);
        for (i = 0; i < 10000; i++)
                fputc('a', f);
        fputs("\"}\n", f);
        for (i = 0; i < 5000; i++)
                fputc('x', f);
        fputs("\n{\"crime_id\":\"", f);
        for (i = 0; i < 3000; i++)
                fputs("\xc3\xa9", f);
        fputs("\n", f);
        assert_int_equal(fclose(f), 0);
}

/* 1b. Hand-written edge cases and the real sample (a JSON array of 700
 * calls): SQLite and PostgreSQL agree row for row. */
static void test_edge_cases(void **state)
{
        struct pgt *st = *state;
        char *edge = path_in(st, "edge.ndjson");
        char *sample = th_asprintf(
                "%s/police-department-calls-for-service.sample.json",
                st->data_dir);
        char *sqlite_db = path_in(st, "edge.db");
        char *ci;
        PGconn *c;
        int bad;

        th_broker_assert_alive(&st->broker);
        write_edge_stream(edge);
        produce(st, "edge", edge);
        produce(st, "edge", sample);
        ingest_to_end(st, "edge", sqlite_db, NULL, "700");
        create_database(st, "cs_edge");
        ci = th_pg_conninfo_as(&st->pg, ROLE, "cs_edge");
        ingest_to_end(st, "edge", ci, NULL, "700");
        c = pg_admin(st, "cs_edge");
        bad = compare_with_sqlite(sqlite_db, c);
        PQfinish(c);
        free(ci);
        free(edge);
        free(sample);
        free(sqlite_db);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* The windows of test 1c's two calls that start in year 1 or later, worked
 * out by hand: a call at 0001-01-01 00:10 and one at 9999-12-31
 * 23:59:59.999999, whose windows end in year 10000. */
static const char *const calendar_windows[] = {
        "'1d'|'0001-01-01 00:00:00'|'0001-01-02 00:00:00'|'Year one'|1",
        "'1d'|'9999-12-30 00:00:00'|'9999-12-31 00:00:00'|'Year 9999'|1",
        "'1h'|'0001-01-01 01:00:00'|'0001-01-01 02:00:00'|'Year one'|1",
        "'1h'|'9999-12-30 12:00:00'|'9999-12-30 13:00:00'|'Year 9999'|1",
        "'1h/15m'|'0001-01-01 00:15:00'|'0001-01-01 01:15:00'|'Year one'|1",
        "'1h/15m'|'0001-01-01 00:30:00'|'0001-01-01 01:30:00'|'Year one'|1",
        "'1h/15m'|'0001-01-01 00:45:00'|'0001-01-01 01:45:00'|'Year one'|1",
        "'1h/15m'|'0001-01-01 01:00:00'|'0001-01-01 02:00:00'|'Year one'|1",
        "'1h/15m'|'9999-12-30 11:15:00'|'9999-12-30 12:15:00'|'Year 9999'|1",
        "'1h/15m'|'9999-12-30 11:30:00'|'9999-12-30 12:30:00'|'Year 9999'|1",
        "'1h/15m'|'9999-12-30 11:45:00'|'9999-12-30 12:45:00'|'Year 9999'|1",
        "'1h/15m'|'9999-12-30 12:00:00'|'9999-12-30 13:00:00'|'Year 9999'|1",
};

/* The two calls whose windows would reach outside years 0001-9999, which
 * neither database can hold: Y0 (1h/15m is the first spec that does not
 * fit) and Y9 (1h, the first spec given, already reaches 10000-01-01). */
static const char *const calendar_rejects[] = {
        "'call_date_time out of range: a 1h/15m window would reach outside "
        "years 0001-9999'",
        "'call_date_time out of range: a 1h window would reach outside "
        "years 0001-9999'",
};

static void test_calendar_limits(void **state)
{
        struct pgt *st = *state;
        char *file = path_in(st, "calendar.ndjson");
        char *sqlite_db = path_in(st, "calendar.db");
        struct th_lines want = {0}, lite = {0}, pg = {0}, lite_calls = {0},
                        pg_calls = {0};
        struct th_args a = {0};
        struct th_run r;
        char *ci, *cmd;
        PGconn *c;
        size_t i;
        int bad = 0;

        th_broker_assert_alive(&st->broker);
        assert_int_equal(
                th_write_file(
                        file,
                        "{\"crime_id\":\"Y0\",\"original_crime_type_name\":"
                        "\"Year one\",\"call_date_time\":\"0001-01-01T00:"
                        "10:00\",\"disposition\":\"HAN\"}\n"
                        "{\"crime_id\":\"Y1\",\"original_crime_type_name\":"
                        "\"Year one\",\"call_date_time\":\"0001-01-01T01:"
                        "10:00\",\"disposition\":\"HAN\"}\n"
                        "{\"crime_id\":\"Y9\",\"original_crime_type_name\":"
                        "\"Year 9999\",\"call_date_time\":\"9999-12-31T23:"
                        "59:59.999999\",\"disposition\":\"HAN\"}\n"
                        "{\"crime_id\":\"Y8\",\"original_crime_type_name\":"
                        "\"Year 9999\",\"call_date_time\":\"9999-12-30T12:"
                        "00:00\",\"disposition\":\"HAN\"}\n",
                        0),
                0);
        produce(st, "calendar", file);
        ingest_to_end(st, "calendar", sqlite_db, NULL, "700");
        create_database(st, "cs_calendar");
        ci = th_pg_conninfo_as(&st->pg, ROLE, "cs_calendar");
        ingest_args(st, &a, "calendar", ci, NULL, "700");
        th_args_add(&a, "--exit-at-end");
        cmd = th_args_str(&a);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        fprintf(stderr, "# $ %s  -> %d\n", cmd, r.status);
        free(cmd);
        if (r.status != 0) {
                th_show_tail("stderr", r.err.p, r.err.len);
                bad++;
        }
        th_run_free(&r);
        th_args_free(&a);
        free(ci);

        for (i = 0; i < sizeof(calendar_windows) / sizeof(calendar_windows[0]);
             i++)
                th_lines_add(&want, th_strdup(calendar_windows[i]));
        th_lines_sort(&want);
        c = pg_admin(st, "cs_calendar");
        if (sqlite_lines(sqlite_db,
                         "SELECT window_spec, window_start, window_end, "
                         "crime_type, calls FROM call_counts WHERE "
                         "window_start >= '0001-01-01 00:00:00'",
                         &lite) ||
            th_pg_lines(c, cmps[0].pg_sql, &pg))
                bad++;
        th_lines_sort(&lite);
        th_lines_sort(&pg);
        if (th_lines_compare("call_counts (SQLite)", "expected  ", &want,
                             "sqlite    ", &lite, MAX_SHOWN))
                bad++;
        if (th_lines_compare("call_counts (PostgreSQL)", "expected  ", &want,
                             "postgresql", &pg, MAX_SHOWN))
                bad++;
        if (sqlite_lines(sqlite_db, cmps[2].sqlite_sql, &lite_calls) ||
            th_pg_lines(c, cmps[2].pg_sql, &pg_calls))
                bad++;
        th_lines_sort(&lite_calls);
        th_lines_sort(&pg_calls);
        if (th_lines_compare("calls", "sqlite    ", &lite_calls, "postgresql",
                             &pg_calls, MAX_SHOWN))
                bad++;
        th_lines_free(&want);
        th_lines_free(&lite);
        th_lines_free(&pg);
        memset(&want, 0, sizeof(want));
        memset(&lite, 0, sizeof(lite));
        memset(&pg, 0, sizeof(pg));
        for (i = 0; i < sizeof(calendar_rejects) / sizeof(calendar_rejects[0]);
             i++)
                th_lines_add(&want, th_strdup(calendar_rejects[i]));
        th_lines_sort(&want);
        if (sqlite_lines(sqlite_db, "SELECT reason FROM rejected_records",
                         &lite) ||
            th_pg_lines(c, "SELECT reason FROM rejected_records", &pg))
                bad++;
        th_lines_sort(&lite);
        th_lines_sort(&pg);
        if (th_lines_compare("rejected_records (SQLite)", "expected  ", &want,
                             "sqlite    ", &lite, MAX_SHOWN))
                bad++;
        if (th_lines_compare("rejected_records (PostgreSQL)", "expected  ",
                             &want, "postgresql", &pg, MAX_SHOWN))
                bad++;
        PQfinish(c);
        th_lines_free(&want);
        th_lines_free(&lite);
        th_lines_free(&pg);
        th_lines_free(&lite_calls);
        th_lines_free(&pg_calls);
        free(file);
        free(sqlite_db);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* Test 3's watch on kafka_offsets: every ~100 ms, each partition's stored
 * offset must be at or past where it was. */
struct watch {
        PGconn *c;
        const char *topic;
        long long last[MAX_PARTS];
        long long sum;
        int polls;
        int errors;
        int backwards;
};

static void watch_poll(struct watch *w)
{
        PGresult *res;
        long long sum = 0;
        int row;

        res = PQexecParams(w->c,
                           "SELECT kafka_partition, next_offset FROM "
                           "kafka_offsets WHERE topic = $1",
                           1, NULL, &w->topic, NULL, NULL, 0);
        w->polls++;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                if (w->errors++ < MAX_SHOWN)
                        fprintf(stderr, "# watch: %s", PQerrorMessage(w->c));
                PQclear(res);
                return;
        }
        for (row = 0; row < PQntuples(res); row++) {
                long p = strtol(PQgetvalue(res, row, 0), NULL, 10);
                long long o = strtoll(PQgetvalue(res, row, 1), NULL, 10);

                sum += o;
                if (p < 0 || p >= MAX_PARTS) {
                        if (w->errors++ < MAX_SHOWN)
                                fprintf(stderr, "# watch: partition %ld?\n", p);
                        continue;
                }
                if (o < w->last[p] && w->backwards++ < MAX_SHOWN)
                        fprintf(stderr,
                                "# partition %ld: next_offset went back from "
                                "%lld to %lld\n",
                                p, w->last[p], o);
                if (o > w->last[p])
                        w->last[p] = o;
        }
        w->sum = sum;
        PQclear(res);
}

/* The ingest processes of test 3, each with its log. */
struct member {
        const char *name;
        pid_t pid;
        char *log;
        int killed; /* by the test, with SIGKILL */
};

/* Fails the test when a member that should run has ended. */
static void members_alive(struct member *m, int n)
{
        int i, rc;

        for (i = 0; i < n; i++) {
                if (m[i].pid <= 0 || m[i].killed)
                        continue;
                rc = th_exited(m[i].pid);
                if (rc >= 0) {
                        m[i].pid = 0;
                        th_show_file_tail(m[i].name, m[i].log);
                        fail_msg("ingest %s ended on its own with status %d",
                                 m[i].name, rc);
                }
        }
}

/* Watches for ms milliseconds, or until pid (when > 0) ends; returns pid's
 * status, or -1 when it still runs. */
static int watch_for(struct watch *w, struct member *m, int n, int64_t ms,
                     pid_t pid)
{
        int64_t end = th_now_ms() + ms;
        int rc = -1;

        while (th_now_ms() < end) {
                watch_poll(w);
                members_alive(m, n);
                if (pid > 0 && (rc = th_exited(pid)) >= 0)
                        return rc;
                th_sleep_ms(100);
        }
        return rc;
}

static int count_matches(const char *path, const char *needle)
{
        struct th_buf b = {0};
        const char *p;
        int n = 0;

        if (th_read_file(path, &b))
                return -1;
        for (p = b.p; (p = strstr(p, needle)) != NULL; p += strlen(needle))
                n++;
        th_buf_free(&b);
        return n;
}

/* A producer running in the background while the test watches. */
struct bg_produce {
        pid_t pid;
        char *cmd;
        char *log;
        int64_t start;
        int status; /* -1 while it runs */
};

/* Starts producing file into the watched topic at rate messages a second;
 * its stderr goes to the file log_name in the folder. */
static void produce_start(const struct pgt *st, struct watch *w,
                          struct bg_produce *bp, const char *file,
                          const char *rate, const char *log_name)
{
        struct th_args a = {0};

        produce_args(st, &a, w->topic, file, rate);
        bp->cmd = th_args_str(&a);
        bp->log = path_in(st, log_name);
        bp->start = th_now_ms();
        bp->status = -1;
        bp->pid = th_spawn_logged(&a, bp->log);
        th_args_free(&a);
        assert_true(bp->pid > 0);
}

/* Watches for ms milliseconds, noting the producer's end. */
static void produce_watch(struct watch *w, struct member *m, int n,
                          struct bg_produce *bp, int64_t ms)
{
        if (bp->status < 0)
                bp->status = watch_for(w, m, n, ms, bp->pid);
        else
                watch_for(w, m, n, ms, 0);
}

/* Watches until the producer ends; fails the test unless it exits 0. */
static void produce_finish(struct watch *w, struct member *m, int n,
                           struct bg_produce *bp)
{
        if (bp->status < 0)
                bp->status = watch_for(w, m, n, TH_RUN_TIMEOUT_MS, bp->pid);
        fprintf(stderr, "# $ %s  -> %d (%.1f s)\n", bp->cmd, bp->status,
                (th_now_ms() - bp->start) / 1000.0);
        if (bp->status != 0) {
                th_show_file_tail("produce", bp->log);
                fail_msg("produce exited with %d", bp->status);
        }
        free(bp->cmd);
        free(bp->log);
        memset(bp, 0, sizeof(*bp));
}

/* Watches until member k has logged at least times assignments and
 * sum(next_offset) is above min_sum; fails the test after
 * SETTLE_TIMEOUT_MS. */
static void watch_until(struct watch *w, struct member *m, int n,
                        struct bg_produce *bp, int k, int times,
                        long long min_sum)
{
        int64_t end = th_now_ms() + SETTLE_TIMEOUT_MS;

        while (count_matches(m[k].log, "assigned ") < times ||
               w->sum <= min_sum) {
                if (th_now_ms() >= end)
                        fail_msg("ingest %s: %d assignment(s) and "
                                 "sum(next_offset) %lld; waited for %d and "
                                 "more than %lld",
                                 m[k].name,
                                 count_matches(m[k].log, "assigned "), w->sum,
                                 times, min_sum);
                produce_watch(w, m, n, bp, 100);
        }
}

/* 3. Scale-out: a consumer group of ingest processes sharing one
 * PostgreSQL database, joined mid-stream by a third and losing one to
 * kill -9, ends with what one SQLite ingest of the topic gives, and no
 * stored offset ever moves backwards. */
static void test_scale_out(void **state)
{
        struct pgt *st = *state;
        char *gen = path_in(st, "scale.ndjson");
        char *sqlite_db = path_in(st, "scale.db");
        char *parts[3] = {NULL, NULL, NULL};
        char *group, *ci;
        struct member m[3] = {
                {"A", 0, NULL, 0}, {"B", 0, NULL, 0}, {"C", 0, NULL, 0}};
        struct watch w = {.topic = "scale"};
        struct bg_produce bp = {0};
        long long total;
        int64_t start, stable_since = -1;
        int i, rc, bad = 0;

        th_broker_assert_alive(&st->broker);
        generate(st, SCALE_COUNT, SCALE_SEED, gen);
        total = count_messages(gen);
        split_file(st, gen, 3, parts);
        create_database(st, "cs_scale");
        ci = th_pg_conninfo_as(&st->pg, ROLE, "cs_scale");
        migrate(st, ci, NULL);
        w.c = pg_admin(st, "cs_scale");

        /* A fresh group name: the mock broker remembers groups. */
        group = th_asprintf("cs-scale-%d-%lld", (int)getpid(),
                            (long long)time(NULL));
        fprintf(stderr, "# group %s, %lld messages in 3 parts\n", group, total);
        for (i = 0; i < 3; i++) {
                char *name = th_asprintf("scale_%s.err", m[i].name);

                m[i].log = path_in(st, name);
                free(name);
        }
        for (i = 0; i < 3; i++) {
                struct th_args a = {0};

                if (i == 2) {
                        /* C joins a working group: A and B hold partitions
                         * and have stored part of part 1. */
                        watch_until(&w, m, 3, &bp, 0, 1, 0);
                        watch_until(&w, m, 3, &bp, 1, 1, 0);
                        produce_finish(&w, m, 3, &bp);
                        fprintf(stderr, "# C joins at sum(next_offset) %lld\n",
                                w.sum);
                        /* Part 2, slowly, while the group rebalances. */
                        produce_start(st, &w, &bp, parts[1], "4000",
                                      "produce2.err");
                }
                ingest_args(st, &a, "scale", ci, NULL, "300");
                th_args_addv(&a, "--group", group, "-X",
                             "session.timeout.ms=6000", "-X",
                             "heartbeat.interval.ms=500", NULL);
                m[i].pid = th_spawn_logged(&a, m[i].log);
                assert_true(m[i].pid > 0);
                if (i == 0) {
                        char *cmd = th_args_str(&a);

                        fprintf(stderr, "# ingest A, B, C: %s\n", cmd);
                        free(cmd);
                }
                th_args_free(&a);
                if (i == 1)
                        produce_start(st, &w, &bp, parts[0], "10000",
                                      "produce1.err");
        }
        /* A dies a second after the rebalance that let C in, with its new
         * share of part 2 in hand: two separate rebalances, each with work
         * waiting. */
        watch_until(&w, m, 3, &bp, 2, 1, 0);
        watch_until(&w, m, 3, &bp, 0, 2, 0);
        produce_watch(&w, m, 3, &bp, 1000);
        fprintf(stderr,
                "# kill -9 ingest A (pid %d), mid-stream at sum(next_offset) "
                "%lld of %lld\n",
                (int)m[0].pid, w.sum, total);
        m[0].killed = 1;
        kill(m[0].pid, SIGKILL);
        produce_finish(&w, m, 3, &bp);
        rc = th_wait_until(m[0].pid, th_now_ms() + 10000);
        if (rc != 128 + SIGKILL)
                fprintf(stderr, "# ingest A ended with %d, not by SIGKILL\n",
                        rc);
        m[0].pid = 0;
        watch_for(&w, m, 3, 500, 0);
        produce_start(st, &w, &bp, parts[2], "5000", "produce3.err");
        produce_finish(&w, m, 3, &bp);

        /* Until every message is stored and it stays so for 2 s. */
        start = th_now_ms();
        while (th_now_ms() - start < SETTLE_TIMEOUT_MS) {
                watch_for(&w, m, 3, 100, 0);
                if (w.sum != total) {
                        stable_since = -1;
                        continue;
                }
                if (stable_since < 0)
                        stable_since = th_now_ms();
                if (th_now_ms() - stable_since >= 2000)
                        break;
        }
        fprintf(stderr,
                "# sum(next_offset) %lld of %lld after %.1f s more; %d polls "
                "of kafka_offsets\n",
                w.sum, total, (th_now_ms() - start) / 1000.0, w.polls);
        for (i = 1; i < 3; i++) {
                kill(m[i].pid, SIGTERM);
                rc = th_wait_until(m[i].pid, th_now_ms() + 30000);
                m[i].pid = 0;
                fprintf(stderr,
                        "# ingest %s: %d assignments; on SIGTERM exited "
                        "with %d\n",
                        m[i].name, count_matches(m[i].log, "assigned "), rc);
                if (rc != 0) {
                        th_show_file_tail(m[i].name, m[i].log);
                        bad++;
                }
        }
        fprintf(stderr, "# ingest A: %d assignments before kill -9\n",
                count_matches(m[0].log, "assigned "));
        watch_poll(&w);
        if (w.sum != total) {
                fprintf(stderr, "# sum(next_offset) is %lld, expected %lld\n",
                        w.sum, total);
                bad++;
        }
        if (w.backwards || w.errors) {
                fprintf(stderr,
                        "# %d backward moves of a stored offset, %d failed "
                        "polls\n",
                        w.backwards, w.errors);
                bad++;
        }

        ingest_to_end(st, "scale", sqlite_db, NULL, "10000");
        bad += compare_with_sqlite(sqlite_db, w.c);
        PQfinish(w.c);
        for (i = 0; i < 3; i++) {
                free(parts[i]);
                free(m[i].log);
        }
        free(group);
        free(ci);
        free(gen);
        free(sqlite_db);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* Holds ingest writes of kafka_offsets (EXCLUSIVE lets readers through) so
 * that a restart finds the ingest mid-stream and mid-transaction, whatever
 * the machine's speed. Returns the locking session; *progress is
 * sum(next_offset) under the lock. */
static PGconn *hold_offsets(const struct pgt *st, const char *topic,
                            long long *progress)
{
        PGconn *lock = pg_admin(st, "cs_restart");
        PGconn *peek = pg_admin(st, "cs_restart");
        int64_t deadline = th_now_ms() + 10000;
        long long waiting = 0;

        th_pg_exec_ok(lock, "BEGIN");
        th_pg_exec_ok(lock, "LOCK TABLE kafka_offsets IN EXCLUSIVE MODE");
        *progress = pg_progress(lock, topic);
        /* Until the ingest waits on the lock: the restart then kills a
         * transaction that holds new calls and window counts. */
        while (th_now_ms() < deadline &&
               (waiting = pg_int(peek,
                                 "SELECT count(*) FROM pg_stat_activity "
                                 "WHERE application_name = 'callstream' "
                                 "AND wait_event_type = 'Lock'",
                                 NULL, 0)) == 0)
                th_sleep_ms(20);
        fprintf(stderr,
                "# offsets held at sum(next_offset) %lld; %lld ingest "
                "session(s) waiting on the lock\n",
                *progress, waiting);
        PQfinish(peek);
        return lock;
}

/* Polls sum(next_offset) every 5 ms until it is above floor; fails the
 * test when the ingest ends or nothing moves for SETTLE_TIMEOUT_MS. */
static long long wait_progress(const struct pgt *st, pid_t pid, const char *log,
                               long long floor)
{
        PGconn *c = NULL;
        int64_t deadline = th_now_ms() + SETTLE_TIMEOUT_MS;
        long long v = LLONG_MIN;
        int rc;

        while (th_now_ms() < deadline) {
                if (!c) {
                        char *ci = th_pg_conninfo_as(&st->pg, "postgres",
                                                     "cs_restart");

                        c = PQconnectdb(ci);
                        free(ci);
                        if (PQstatus(c) != CONNECTION_OK) {
                                PQfinish(c);
                                c = NULL;
                        }
                }
                if (c && (v = pg_progress(c, "restart")) > floor)
                        break;
                if (c && PQstatus(c) != CONNECTION_OK) {
                        PQfinish(c);
                        c = NULL;
                }
                if ((rc = th_exited(pid)) >= 0) {
                        PQfinish(c);
                        th_show_file_tail("ingest", log);
                        fail_msg("the ingest ended with %d before "
                                 "sum(next_offset) passed %lld",
                                 rc, floor);
                }
                th_sleep_ms(5);
        }
        PQfinish(c);
        if (v <= floor)
                fail_msg("sum(next_offset) stayed at %lld", v);
        return v;
}

/* Fails the test when the ingest has ended. */
static void assert_running(pid_t pid, const char *log, const char *when)
{
        int rc = th_exited(pid);

        if (rc >= 0) {
                th_show_file_tail("ingest", log);
                fail_msg("the ingest exited with %d %s", rc, when);
        }
}

/* Prints the lines of the file at path that contain needle. */
static void show_matching_lines(const char *path, const char *needle, int max)
{
        struct th_buf b = {0};
        const char *p, *nl;
        int n = 0;

        if (th_read_file(path, &b))
                return;
        for (p = b.p; p && *p && n < max; p = nl ? nl + 1 : NULL) {
                nl = strchr(p, '\n');
                if (memmem(p, nl ? (size_t)(nl - p) : strlen(p), needle,
                           strlen(needle))) {
                        fprintf(stderr, "#   %.*s\n",
                                (int)(nl ? nl - p : (long)strlen(p)), p);
                        n++;
                }
        }
        th_buf_free(&b);
}

/* 4. PostgreSQL restarted twice under a running ingest (fast, then
 * immediate): the ingest rides both out, finishes with status 0, and the
 * result is the uninterrupted one. */
static void test_restarts(void **state)
{
        static const char *const modes[2] = {"fast", "immediate"};
        struct pgt *st = *state;
        char *gen = path_in(st, "restart.ndjson");
        char *sqlite_db = path_in(st, "restart.db");
        char *log = path_in(st, "restart.err");
        struct th_args a = {0};
        char *uri, *cmd;
        long long total, at[2], floor = 0;
        int i, rc, bad = 0, lost, back;
        PGconn *lock, *c;
        pid_t pid;

        th_broker_assert_alive(&st->broker);
        generate(st, RESTART_COUNT, RESTART_SEED, gen);
        total = count_messages(gen);
        produce(st, "restart", gen);
        create_database(st, "cs_restart");
        uri = tcp_uri(st, ROLE_PW, "cs_restart");
        migrate(st, uri, NULL);

        ingest_args(st, &a, "restart", uri, NULL, "200");
        th_args_add(&a, "--exit-at-end");
        cmd = th_args_str(&a);
        fprintf(stderr, "# $ %s  (%lld messages, log %s)\n", cmd, total, log);
        free(cmd);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        assert_true(pid > 0);

        for (i = 0; i < 2; i++) {
                int64_t deadline = th_now_ms() + SETTLE_TIMEOUT_MS;

                /* Back from the last restart first: a batch may commit just
                 * before a fast shutdown ends its session, so progress alone
                 * does not say the ingest has reconnected, and a restart
                 * during its reconnect is a failed attempt, not an outage. */
                while (count_matches(log, "database back after") < i) {
                        assert_running(pid, log, "reconnecting");
                        if (th_now_ms() > deadline)
                                fail_msg("no reconnect after restart %d", i);
                        th_sleep_ms(20);
                }
                floor = wait_progress(st, pid, log, floor);
                lock = hold_offsets(st, "restart", &at[i]);
                if (at[i] <= 0 || at[i] >= total) {
                        PQfinish(lock);
                        fail_msg("before restart %d sum(next_offset) is %lld, "
                                 "not strictly between 0 and %lld",
                                 i + 1, at[i], total);
                }
                assert_running(pid, log, "before the restart");
                rc = th_pg_ctl(&st->pg, modes[i], "restart");
                PQfinish(lock);
                if (rc != 0)
                        fail_msg("pg_ctl restart -m %s exited with %d",
                                 modes[i], rc);
                assert_running(pid, log, "during the outage");
                floor = at[i];
        }
        rc = th_wait_until(pid, th_now_ms() + SETTLE_TIMEOUT_MS);
        lost = count_matches(log, "database unavailable");
        back = count_matches(log, "database back after");
        fprintf(stderr,
                "# ingest exited with %d; %d outages seen, %d reconnects, "
                "%d failed reconnect attempts:\n",
                rc, lost, back, count_matches(log, "reconnect attempt"));
        show_matching_lines(log, "database", 12);
        if (rc != 0) {
                th_show_file_tail("ingest", log);
                bad++;
        }
        if (lost < 2 || back < 2) {
                fprintf(stderr, "# expected at least 2 outages and 2 "
                                "reconnects in the ingest's stderr\n");
                bad++;
        }

        c = pg_admin(st, "cs_restart");
        ingest_to_end(st, "restart", sqlite_db, NULL, "10000");
        bad += compare_with_sqlite(sqlite_db, c);
        PQfinish(c);
        free(uri);
        free(gen);
        free(sqlite_db);
        free(log);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* Whether text holds word with no letter or digit on either side. */
static int has_word(const char *text, const char *word)
{
        size_t n = strlen(word);
        const char *p;

        for (p = text; (p = strstr(p, word)) != NULL; p++) {
                int before = p > text && (isalnum((unsigned char)p[-1]));
                int after = isalnum((unsigned char)p[n]);

                if (!before && !after)
                        return 1;
        }
        return 0;
}

/* Runs a, which must fail at start-up: exit status 1 (a runtime failure),
 * exactly one error line on stderr and it naming host, and the password
 * nowhere in its output. Returns the number of problems (said). */
static int expect_conn_failure(const struct th_args *a, const char *host,
                               const char *secret)
{
        char *cmd = th_args_str(a);
        struct th_run r;
        const char *p, *nl, *err_line = NULL;
        int errors = 0, bad = 0;
        size_t err_len = 0;

        th_run_args(a, CLI_TIMEOUT_MS, &r);
        fprintf(stderr, "# $ %s  -> %d (%.1f s)\n", cmd, r.status,
                r.ms / 1000.0);
        for (p = r.err.p; p && *p; p = nl ? nl + 1 : NULL) {
                nl = strchr(p, '\n');
                /* After the line's timestamp. */
                const char *e = strstr(p, "callstream: error: ");

                if (e && (!nl || e < nl)) {
                        errors++;
                        err_line = p;
                        err_len = nl ? (size_t)(nl - p) : strlen(p);
                }
        }
        if (r.status != 1) {
                fprintf(stderr, "#   expected exit status 1, got %d\n",
                        r.status);
                bad++;
        }
        if (errors != 1) {
                fprintf(stderr, "#   expected one error line, got %d\n",
                        errors);
                bad++;
        } else {
                char *line = th_strndup(err_line, err_len);

                if (!strstr(line, host)) {
                        fprintf(stderr, "#   the error does not name %s\n",
                                host);
                        bad++;
                }
                free(line);
        }
        if (has_word(r.err.p, secret) || has_word(r.out.p, secret)) {
                fprintf(stderr, "#   the output shows the password %s\n",
                        secret);
                bad++;
        }
        if (bad)
                th_show_tail("stderr", r.err.p, r.err.len);
        else
                fprintf(stderr, "#   %.*s\n", (int)err_len, err_line);
        th_run_free(&r);
        free(cmd);
        return bad;
}

/* 5. Bad connections fail at start-up with one clear line that names the
 * host and never the password; a failed migration leaves nothing
 * behind. */
static void test_bad_connections(void **state)
{
        static const char *const ours[] = {
                "calls",       "rejected_records", "kafka_offsets",
                "radio_codes", "call_counts",      "disposition_counts",
                NULL};
        struct pgt *st = *state;
        char *wrong = tcp_uri(st, WRONG_PW, "cs_equiv");
        const char *unreachable = "postgresql://u:pw@127.0.0.1:1/x";
        const char *const *o;
        struct th_args a = {0};
        struct th_lines cols = {0};
        PGconn *c;
        char *ci;
        long long n;
        int bad = 0, step;

        th_broker_assert_alive(&st->broker);
        for (step = 0; step < 4; step++) {
                const char *db = step < 2 ? wrong : unreachable;

                if (step % 2 == 0)
                        th_args_addv(&a, st->bin, "migrate", "--db", db, NULL);
                else
                        th_args_addv(&a, st->bin, "ingest", "--brokers",
                                     st->broker.brokers, "--topic", "equiv",
                                     "--db", db, "--from-beginning",
                                     "--exit-at-end", "--startup-timeout", "1s",
                                     NULL);
                bad += expect_conn_failure(&a, "127.0.0.1",
                                           step < 2 ? WRONG_PW : "pw");
                th_args_free(&a);
        }
        free(wrong);

        /* A table in the way: migration 001 fails, and rolls back whole. */
        create_database(st, "cs_conflict");
        ci = th_pg_conninfo_as(&st->pg, ROLE, "cs_conflict");
        c = th_pg_open(ci);
        assert_non_null(c);
        th_pg_exec_ok(c, "CREATE TABLE window_counts (x integer, note text)");
        PQfinish(c);
        th_args_addv(&a, st->bin, "migrate", "--db", ci, NULL);
        bad += expect_conn_failure(&a, st->pg.dir, ROLE_PW);
        th_args_free(&a);
        free(ci);

        c = pg_admin(st, "cs_conflict");
        for (o = ours; *o; o++) {
                n = pg_int(c,
                           "SELECT count(*) FROM pg_class WHERE relname = $1",
                           *o, 0);
                if (n != 0) {
                        fprintf(stderr,
                                "# after the failed migration %s exists\n", *o);
                        bad++;
                }
        }
        n = pg_int(c,
                   "SELECT count(*) FROM pg_class WHERE relname = "
                   "'schema_migrations'",
                   NULL, 0);
        if (n > 0 && (n = pg_int(c, "SELECT count(*) FROM schema_migrations",
                                 NULL, 0)) != 0) {
                fprintf(stderr,
                        "# schema_migrations holds %lld rows after the failed "
                        "migration\n",
                        n);
                bad++;
        }
        if (th_pg_lines(c,
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'window_counts' ORDER BY "
                        "ordinal_position",
                        &cols) ||
            cols.n != 2 || strcmp(cols.v[0], "'x'") ||
            strcmp(cols.v[1], "'note'")) {
                fprintf(stderr, "# the test's window_counts was changed\n");
                bad++;
        }
        th_lines_free(&cols);
        PQfinish(c);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 6. The password only in PGPASSWORD, over TCP: migrate works; without it
 * the same command is refused, so the variable is what let it in. */
static void test_env_password(void **state)
{
        struct pgt *st = *state;
        char *uri = th_asprintf("postgresql://" ROLE "@127.0.0.1:%d/cs_envpw",
                                st->pg.port);
        char *kv = th_asprintf("host=127.0.0.1 port=%d user=" ROLE
                               " dbname=cs_envpw",
                               st->pg.port);
        struct th_args a = {0};
        struct th_run r;
        PGconn *c;
        int bad = 0;

        create_database(st, "cs_envpw");
        th_args_addv(&a, st->bin, "migrate", "--db", uri, NULL);
        bad += expect_conn_failure(&a, "127.0.0.1", ROLE_PW);
        th_args_free(&a);

        th_args_addv(&a, st->bin, "migrate", "--db", uri, NULL);
        th_args_setenv(&a, "PGPASSWORD=" ROLE_PW);
        th_run_ok(&a, &r);
        if (has_word(r.err.p, ROLE_PW) || has_word(r.out.p, ROLE_PW)) {
                fprintf(stderr, "# migrate shows the password\n");
                bad++;
        }
        th_run_free(&r);
        th_args_free(&a);
        /* The key=value form reads it too (and migrate is idempotent). */
        th_args_addv(&a, st->bin, "migrate", "--db", kv, NULL);
        th_args_setenv(&a, "PGPASSWORD=" ROLE_PW);
        th_run_ok_free(&a);

        c = pg_admin(st, "cs_envpw");
        if (pg_int(c, "SELECT count(*) FROM schema_migrations", NULL, 0) <= 0 ||
            pg_int(c, "SELECT count(*) FROM radio_codes", NULL, 0) <= 0 ||
            pg_int(c, "SELECT count(*) FROM calls", NULL, 0) != 0) {
                fprintf(stderr, "# cs_envpw was not migrated\n");
                bad++;
        }
        PQfinish(c);
        free(uri);
        free(kv);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_equivalence, th_test_teardown),
                cmocka_unit_test_teardown(test_schema, th_test_teardown),
                cmocka_unit_test_teardown(test_edge_cases, th_test_teardown),
                cmocka_unit_test_teardown(test_calendar_limits,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_scale_out, th_test_teardown),
                cmocka_unit_test_teardown(test_restarts, th_test_teardown),
                cmocka_unit_test_teardown(test_bad_connections,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_env_password, th_test_teardown),
        };

        const char *only = getenv("PG_TEST_FILTER");

        /* e.g. PG_TEST_FILTER='test_scale*' to run one test. */
        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("pg", tests, group_setup,
                                           group_teardown);
}
