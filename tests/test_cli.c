/* test_cli.c: what every subcommand shares on its command line, run through
 * the real binary (CALLSTREAM_BIN): --help, --version, -v and -q taken
 * alike by all; one duration syntax for every duration option (the parser
 * itself unit-tested); ingest --max-future against a call dated 9000; the
 * number of calls rebuild says it counted; an edited migration stopping
 * migrate and ingest with exit 1, as the README says; the watermarks
 * view's allowed_lateness as a duration, in SQLite and in a PostgreSQL of
 * the test's own (PG_BINDIR). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <sqlite3.h>

#include "cs_cli.h"
#include "cs_version.h"
#include "harness.h"
#include "pgutil.h"

#define WATCHDOG_S  600
#define SAMPLE_FILE "police-department-calls-for-service.sample.json"

static const char *const subcommands[] = {"broker",  "produce", "generate",
                                          "migrate", "ingest",  "rebuild",
                                          "report",  "tail"};

struct st {
        char *bin;
        char *sample;
        char dir[512];
        struct th_pg pg; /* stopped by the group teardown too */
};

static struct st *S(void **state)
{
        return *state;
}

/* Runs bin with the arguments up to NULL into r (freed by the caller). */
static void run(const struct st *st, struct th_run *r, ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        th_args_add(&a, st->bin);
        va_start(ap, r);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        a.cwd = th_strdup(st->dir);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, r);
        th_args_free(&a);
}

/* A path in the test's folder; the caller frees it. */
static char *path(const struct st *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

static void lite_exec(const char *db_path, const char *sql)
{
        sqlite3 *db = NULL;

        if (sqlite3_open(db_path, &db) ||
            sqlite3_exec(db, sql, NULL, NULL, NULL))
                fail_msg("%s on %s: %s", sql, db_path, sqlite3_errmsg(db));
        sqlite3_close(db);
}

static void expect_status(const char *what, const struct th_run *r, int want)
{
        if (r->status != want) {
                th_show_tail("stdout", r->out.p ? r->out.p : "", r->out.len);
                th_show_tail("stderr", r->err.p ? r->err.p : "", r->err.len);
                fail_msg("%s: exit status %d, expected %d", what, r->status,
                         want);
        }
}

static const char *text(const struct th_buf *b)
{
        return b->p ? b->p : "";
}

/*
 * 1. The duration parser, alone.
 */

static void test_duration_parser(void **state)
{
        static const struct {
                const char *in;
                int64_t min, max;
                int64_t want; /* -1: refused */
        } cases[] = {
                {"90s", 0, 86400, 90},
                {"15m", 0, 86400, 15 * 60},
                {"1h", 0, 86400, 60 * 60},
                {"2d", 0, 3 * 86400, 2 * 24 * 60 * 60},
                {"0", 0, 86400, 0},
                {"0s", 0, 86400, 0},
                {"0", 1, 86400, -1},  /* zero where a positive one is due */
                {"0m", 1, 86400, -1}, /* the same with a unit */
                {"90", 0, 86400, -1}, /* seconds or minutes? refused */
                {"3600", 0, 86400, -1},
                {"1.5h", 0, 86400, -1},
                {"-1h", 0, 86400, -1},
                {"", 0, 86400, -1},
                {"h", 0, 86400, -1},
                {"1x", 0, 86400, -1},
                {"1hh", 0, 86400, -1},
                {" 1h", 0, 86400, -1},
                {"1h ", 0, 86400, -1},
                {"1d", 0, 86400, 86400}, /* max itself */
                {"86401s", 0, 86400, -1},
                {"25h", 0, 86400, -1},
                {"59s", 60, 86400, -1}, /* below min */
                {"60s", 60, 86400, 60},
                {"1m", 60, 86400, 60}, /* min in seconds, not in units */
                {"30m", 60, 86400, 30 * 60},
                {"1h", 7200, 86400, -1},
                {"99999999999999999999d", 0, 86400, -1},
        };
        size_t i;
        int saved = dup(2), devnull = open("/dev/null", O_WRONLY);

        (void)state;
        /* The refusals print their one-line errors; not into the TAP. */
        fflush(stderr);
        dup2(devnull, 2);
        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                int64_t out = -12345;
                int r = cs_cli_duration("test", "--d", cases[i].in,
                                        cases[i].min, cases[i].max, &out);

                if (cases[i].want < 0 ? r != -1 || out != -12345
                                      : r != 0 || out != cases[i].want) {
                        fflush(stderr);
                        dup2(saved, 2);
                        fail_msg("'%s' in [%lld, %lld]: returned %d, %lld; "
                                 "expected %lld",
                                 cases[i].in, (long long)cases[i].min,
                                 (long long)cases[i].max, r, (long long)out,
                                 (long long)cases[i].want);
                }
        }
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        close(devnull);
}

/*
 * 2. Every duration option of every subcommand: one syntax.
 */

static void test_duration_options_agree(void **state)
{
        struct st *st = S(state);
        char *calls = path(st, "two.ndjson");
        static const char *const ingest_opts[] = {
                "--allowed-lateness", "--retention", "--max-future"};
        struct th_run r;
        size_t i;

        assert_int_equal(
                th_write_file(
                        calls,
                        "{\"crime_id\":\"1\",\"original_crime_type_name\":"
                        "\"A\",\"call_date_time\":\"2018-01-01T10:00\"}\n"
                        "{\"crime_id\":\"2\",\"original_crime_type_name\":"
                        "\"A\",\"call_date_time\":\"2018-01-01T10:05\"}\n",
                        0),
                0);
        for (i = 0; i < CS_ARRAY_SIZE(ingest_opts); i++) {
                char *db = th_asprintf("%s/dur%zu.db", st->dir, i);
                char *what = th_asprintf("ingest %s 90", ingest_opts[i]);

                run(st, &r, "ingest", "-q", "--file", calls, "--db", db,
                    ingest_opts[i], "90", NULL);
                expect_status(what, &r, 2);
                if (!strstr(text(&r.err), "a duration needs a unit"))
                        fail_msg("%s: unexpected error: %s", what,
                                 text(&r.err));
                th_run_free(&r);
                free(what);
                what = th_asprintf("ingest %s 90m", ingest_opts[i]);
                run(st, &r, "ingest", "-q", "--file", calls, "--db", db,
                    ingest_opts[i], "90m", NULL);
                expect_status(what, &r, 0);
                th_run_free(&r);
                free(what);
                free(db);
        }
        /* generate --max-delay used to take a bare number as seconds. */
        run(st, &r, "generate", "--count", "1", "--max-delay", "90", NULL);
        expect_status("generate --max-delay 90", &r, 2);
        assert_non_null(strstr(text(&r.err), "a duration needs a unit"));
        th_run_free(&r);
        run(st, &r, "generate", "--count", "1", "--max-delay", "90m", NULL);
        expect_status("generate --max-delay 90m", &r, 0);
        th_run_free(&r);
        free(calls);
}

/*
 * 3. --help, --version, -v, -q: every subcommand alike.
 */

/* The version lines callstream must print, from the libraries as this
 * test process sees them (the same shared libraries). */
static char *expected_version(void)
{
        int pq = PQlibVersion();

        return th_asprintf("callstream %s\nlibrdkafka %s\nSQLite %s\n"
                           "libpq %d.%d\n",
                           CS_VERSION, rd_kafka_version_str(),
                           sqlite3_libversion(), pq / 10000, pq % 10000);
}

static void test_common_options(void **state)
{
        struct st *st = S(state);
        char *want = expected_version();
        struct th_run r;
        size_t i;

        run(st, &r, "--version", NULL);
        expect_status("callstream --version", &r, 0);
        assert_string_equal(text(&r.out), want);
        th_run_free(&r);

        for (i = 0; i < CS_ARRAY_SIZE(subcommands); i++) {
                const char *cmd = subcommands[i];
                char *usage = th_asprintf("Usage: callstream %s", cmd);
                char *what = th_asprintf("callstream %s --version", cmd);
                static const char *const flags[][2] = {
                        {"-q", "--help"},      {"-v", "--help"},
                        {"--quiet", "--help"}, {"--verbose", "--help"},
                        {"-h", NULL},          {"--help", NULL},
                };
                size_t f;

                run(st, &r, cmd, "--version", NULL);
                expect_status(what, &r, 0);
                if (strcmp(text(&r.out), want))
                        fail_msg("%s printed '%s', expected '%s'", what,
                                 text(&r.out), want);
                th_run_free(&r);
                free(what);

                for (f = 0; f < CS_ARRAY_SIZE(flags); f++) {
                        what = th_asprintf("callstream %s %s %s", cmd,
                                           flags[f][0],
                                           flags[f][1] ? flags[f][1] : "");
                        run(st, &r, cmd, flags[f][0], flags[f][1], NULL);
                        expect_status(what, &r, 0);
                        if (strncmp(text(&r.out), usage, strlen(usage)))
                                fail_msg("%s: help does not start with '%s'",
                                         what, usage);
                        /* Every help names the common options. */
                        if (!strstr(text(&r.out), "--version") ||
                            !strstr(text(&r.out), "--quiet") ||
                            !strstr(text(&r.out), "--verbose"))
                                fail_msg("%s: help lacks --version, --quiet "
                                         "or --verbose",
                                         what);
                        th_run_free(&r);
                        free(what);
                }

                what = th_asprintf("callstream %s --no-such-flag", cmd);
                run(st, &r, cmd, "--no-such-flag", NULL);
                expect_status(what, &r, 2);
                if (!strstr(text(&r.err), "unknown option '--no-such-flag'"))
                        fail_msg("%s: unexpected error: %s", what,
                                 text(&r.err));
                th_run_free(&r);
                free(what);
                free(usage);
        }
        free(want);
}

/* migrate -q (refused before) logs nothing; without it, the migrations
 * applied are logged. */
static void test_migrate_quiet(void **state)
{
        struct st *st = S(state);
        char *db = path(st, "quiet.db"), *db2 = path(st, "loud.db");
        struct th_run r;

        run(st, &r, "migrate", "-q", "--db", db, NULL);
        expect_status("migrate -q", &r, 0);
        assert_int_equal(r.err.len, 0);
        th_run_free(&r);
        assert_true(th_sqlite_int(
                            db, "SELECT COUNT(*) FROM schema_migrations") > 0);
        run(st, &r, "migrate", "--db", db2, NULL);
        expect_status("migrate", &r, 0);
        assert_non_null(strstr(text(&r.err), "applied migration"));
        th_run_free(&r);
        run(st, &r, "migrate", "--quiet", "--db", db2, NULL);
        expect_status("migrate --quiet", &r, 0);
        assert_int_equal(r.err.len, 0);
        th_run_free(&r);
        free(db);
        free(db2);
}

/*
 * 4. --max-future: a call dated 9000 cannot poison the watermark.
 */

/* Writes n calls a minute apart from 2018-01-01 10:00, with a call dated
 * 9000-01-01 after the third. */
static void write_poisoned(const char *file, int n)
{
        struct th_buf b = {0};
        int i;

        for (i = 0; i < n; i++) {
                th_buf_addf(&b,
                            "{\"crime_id\":\"%d\",\"original_crime_type_name\":"
                            "\"Traffic Stop\",\"call_date_time\":"
                            "\"2018-01-01T10:%02d:00\"}\n",
                            100 + i, i);
                if (i == 2)
                        th_buf_addf(&b, "{\"crime_id\":\"9\","
                                        "\"original_crime_type_name\":"
                                        "\"Poison\",\"call_date_time\":"
                                        "\"9000-01-01T00:00:00\"}\n");
        }
        assert_int_equal(th_write_file(file, b.p, 0), 0);
        th_buf_free(&b);
}

static void test_max_future(void **state)
{
        struct st *st = S(state);
        char *file = path(st, "poisoned.ndjson");
        char *with = path(st, "with.db"), *without = path(st, "without.db");
        const int n = 20;
        struct th_run r;

        write_poisoned(file, n);

        /* Without the option, behaviour is unchanged: the poison is a
         * call, and under drop every call after it is late. */
        run(st, &r, "ingest", "-q", "--file", file, "--db", without,
            "--late-policy", "drop", NULL);
        expect_status("ingest without --max-future", &r, 0);
        th_run_free(&r);
        assert_int_equal(th_sqlite_int(without, "SELECT COUNT(*) FROM calls"),
                         n + 1);
        assert_int_equal(
                th_sqlite_int(without, "SELECT COUNT(*) FROM late_records"),
                n - 3);
        assert_int_equal(
                th_sqlite_int(without, "SELECT COUNT(*) FROM rejected_records"),
                0);

        /* With it, the poison is rejected and no call is late. */
        run(st, &r, "ingest", "-q", "--file", file, "--db", with,
            "--late-policy", "drop", "--max-future", "1d", NULL);
        expect_status("ingest --max-future 1d", &r, 0);
        th_run_free(&r);
        assert_int_equal(th_sqlite_int(with, "SELECT COUNT(*) FROM calls"), n);
        assert_int_equal(
                th_sqlite_int(with, "SELECT COUNT(*) FROM late_records"), 0);
        assert_int_equal(th_sqlite_int(with, "SELECT SUM(late_calls) FROM "
                                             "window_counts"),
                         0);
        assert_int_equal(
                th_sqlite_int(with, "SELECT SUM(calls) FROM window_counts"), n);
        /* The poison call is line 4, its offset. */
        assert_int_equal(
                th_sqlite_int(with,
                              "SELECT COUNT(*) FROM rejected_records WHERE "
                              "kafka_offset = 4 AND reason = 'event time too "
                              "far in the future' AND CAST(payload AS TEXT) "
                              "LIKE '%9000-01-01%'"),
                1);
        assert_int_equal(th_sqlite_int(with, "SELECT COUNT(*) FROM "
                                             "rejected_records"),
                         1);
        assert_int_equal(th_sqlite_int(with, "SELECT COUNT(*) FROM watermarks "
                                             "WHERE max_event_ts = "
                                             "'2018-01-01 10:19:00'"),
                         1);
        free(file);
        free(with);
        free(without);
}

/* The bound is the wall clock + 14 h + D: a call 13 h ahead passes with
 * --max-future 0, one 2 days ahead fails with 1d and passes with 3d. */
static void test_max_future_bound(void **state)
{
        struct st *st = S(state);
        char *file = path(st, "ahead.ndjson");
        time_t now = time(NULL);
        time_t ahead[2] = {now + 13 * 3600, now + 2 * 86400};
        struct th_buf b = {0};
        static const char *const opt[] = {"0", "1d", "3d"};
        static const int want_calls[] = {1, 1, 2};
        int i;

        for (i = 0; i < 2; i++) {
                struct tm tm;
                char ts[32];

                gmtime_r(&ahead[i], &tm);
                strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
                th_buf_addf(&b,
                            "{\"crime_id\":\"%d\",\"original_crime_type_name\":"
                            "\"A\",\"call_date_time\":\"%s\"}\n",
                            i + 1, ts);
        }
        assert_int_equal(th_write_file(file, b.p, 0), 0);
        th_buf_free(&b);
        for (i = 0; i < 3; i++) {
                char *db = th_asprintf("%s/ahead%d.db", st->dir, i);
                struct th_run r;

                run(st, &r, "ingest", "-q", "--file", file, "--db", db,
                    "--max-future", opt[i], NULL);
                expect_status("ingest --max-future", &r, 0);
                th_run_free(&r);
                if (th_sqlite_int(db, "SELECT COUNT(*) FROM calls") !=
                    want_calls[i])
                        fail_msg(
                                "--max-future %s: %lld calls stored, "
                                "expected %d",
                                opt[i],
                                th_sqlite_int(db, "SELECT COUNT(*) FROM calls"),
                                want_calls[i]);
                free(db);
        }
        free(file);
}

/*
 * 5. rebuild says how many calls it counted, not how many it scanned.
 */

static void test_rebuild_counts(void **state)
{
        struct st *st = S(state);
        char *db = path(st, "rebuild.db");
        long long want;
        char *line;
        struct th_run r;

        run(st, &r, "ingest", "-q", "--file", st->sample, "--db", db,
            "--window", "1h", NULL);
        expect_status("ingest the sample", &r, 0);
        th_run_free(&r);
        /* The windows starting in [18:00, 20:00) hold the calls of those
         * two hours; the scan also reads 20:xx, a window size beyond. */
        want = th_sqlite_int(db, "SELECT COUNT(*) FROM calls WHERE call_ts >= "
                                 "'2018-12-31 18:00:00' AND call_ts < "
                                 "'2018-12-31 20:00:00'");
        assert_true(want > 0);
        assert_true(th_sqlite_int(db,
                                  "SELECT COUNT(*) FROM calls WHERE call_ts "
                                  ">= '2018-12-31 20:00:00' AND call_ts < "
                                  "'2018-12-31 21:00:00'") > 0);
        run(st, &r, "rebuild", "--db", db, "--window", "1h", "--from",
            "2018-12-31 18:00", "--to", "2018-12-31 20:00", NULL);
        expect_status("rebuild", &r, 0);
        /* "rebuilt 1h: N window counts from M calls, K late records" */
        line = th_asprintf(" window counts from %lld calls, 0 late records",
                           want);
        if (!strstr(text(&r.err), "rebuilt 1h: ") ||
            !strstr(text(&r.err), line))
                fail_msg("rebuild logged '%s', expected '...%s'", text(&r.err),
                         line);
        th_run_free(&r);
        free(line);
        free(db);
}

/*
 * 6. An edited migration stops every command with exit 1 (the README says
 * so): a checksum that no longer matches.
 */

static void test_edited_migration(void **state)
{
        struct st *st = S(state);
        char *db = path(st, "edited.db");
        static const char *const cmds[][4] = {
                {"migrate", NULL},
                {"ingest", "--file", "/dev/null", NULL},
                {"rebuild", NULL},
        };
        struct th_run r;
        size_t i;

        run(st, &r, "migrate", "-q", "--db", db, NULL);
        expect_status("migrate", &r, 0);
        th_run_free(&r);
        lite_exec(db, "UPDATE schema_migrations SET checksum = "
                      "'0000000000000000' WHERE version = 1");
        for (i = 0; i < CS_ARRAY_SIZE(cmds); i++) {
                run(st, &r, cmds[i][0], "--db", db, cmds[i][1], cmds[i][2],
                    NULL);
                expect_status(cmds[i][0], &r, 1);
                if (!strstr(text(&r.err), "001_schema.sql was changed after "
                                          "it was applied"))
                        fail_msg("%s: unexpected error: %s", cmds[i][0],
                                 text(&r.err));
                th_run_free(&r);
        }
        free(db);
}

/*
 * 7. watermarks.allowed_lateness reads as a duration, in both dialects.
 */

static const struct {
        const char *opt;  /* --allowed-lateness */
        const char *view; /* watermarks.allowed_lateness */
        long long seconds;
} lateness[] = {
        {"0", "0", 0},         {"90s", "90s", 90},     {"90m", "90m", 5400},
        {"120m", "2h", 7200},  {"36h", "36h", 129600}, {"2d", "2d", 172800},
        {"3600s", "1h", 3600},
};

/* The text the one-row, one-column query gives on the SQLite file; the
 * caller frees it. */
static char *lite_text(const char *db_path, const char *sql)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *stmt = NULL;
        char *v;

        if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) ||
            sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) ||
            sqlite3_step(stmt) != SQLITE_ROW)
                fail_msg("%s on %s: %s", sql, db_path, sqlite3_errmsg(db));
        v = th_strdup((const char *)sqlite3_column_text(stmt, 0));
        sqlite3_finalize(stmt);
        sqlite3_close(db);
        return v;
}

static void write_two_calls(const char *file)
{
        assert_int_equal(
                th_write_file(
                        file,
                        "{\"crime_id\":\"1\",\"original_crime_type_name\":"
                        "\"A\",\"call_date_time\":\"2018-01-01T10:00\"}\n"
                        "{\"crime_id\":\"2\",\"original_crime_type_name\":"
                        "\"A\",\"call_date_time\":\"2018-01-01T10:05\"}\n",
                        0),
                0);
}

static void test_watermarks_lateness(void **state)
{
        struct st *st = S(state);
        char *file = path(st, "lateness.ndjson");
        struct th_pg *pg = &st->pg;
        char *ci = NULL;
        PGconn *c = NULL;
        size_t i;

        write_two_calls(file);
        if (th_pg_start(pg, st->dir, 0) < 0 ||
            th_pg_createdb(pg, "cs_cli", NULL) < 0) {
                fail_msg("cannot start PostgreSQL (PG_BINDIR?)");
        }
        ci = th_pg_conninfo(pg, "cs_cli");
        for (i = 0; i < CS_ARRAY_SIZE(lateness); i++) {
                char *db = th_asprintf("%s/late%zu.db", st->dir, i);
                char *topic = th_asprintf("t%zu", i);
                char *got;
                struct th_run r;

                run(st, &r, "ingest", "-q", "--file", file, "--topic", topic,
                    "--db", db, "--allowed-lateness", lateness[i].opt, NULL);
                expect_status("ingest (SQLite)", &r, 0);
                th_run_free(&r);
                got = lite_text(db, "SELECT allowed_lateness FROM watermarks");
                if (strcmp(got, lateness[i].view))
                        fail_msg("SQLite, --allowed-lateness %s: watermarks "
                                 "shows '%s', expected '%s'",
                                 lateness[i].opt, got, lateness[i].view);
                free(got);
                assert_int_equal(th_sqlite_int(db,
                                               "SELECT allowed_lateness FROM "
                                               "kafka_offsets"),
                                 lateness[i].seconds);
                run(st, &r, "ingest", "-q", "--file", file, "--topic", topic,
                    "--db", ci, "--allowed-lateness", lateness[i].opt, NULL);
                expect_status("ingest (PostgreSQL)", &r, 0);
                th_run_free(&r);
                free(topic);
                free(db);
        }
        c = th_pg_open(ci);
        assert_non_null(c);
        for (i = 0; i < CS_ARRAY_SIZE(lateness); i++) {
                char *sql = th_asprintf("SELECT allowed_lateness FROM "
                                        "watermarks WHERE topic = 't%zu'",
                                        i);
                PGresult *res = PQexec(c, sql);

                if (PQresultStatus(res) != PGRES_TUPLES_OK ||
                    PQntuples(res) != 1 ||
                    strcmp(PQgetvalue(res, 0, 0), lateness[i].view))
                        fail_msg("PostgreSQL, --allowed-lateness %s: "
                                 "watermarks shows '%s', expected '%s' %s",
                                 lateness[i].opt,
                                 PQntuples(res) == 1 ? PQgetvalue(res, 0, 0)
                                                     : "no row",
                                 lateness[i].view, PQerrorMessage(c));
                PQclear(res);
                free(sql);
        }
        PQfinish(c);
        th_pg_stop(pg);
        free(ci);
        free(file);
}

/*
 * Fixture.
 */

static int group_setup(void **state)
{
        struct st *st = calloc(1, sizeof(*st));
        char *data = NULL;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_cli", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data) ||
            th_tmpdir_make("cs_test_cli", st->dir, sizeof(st->dir))) {
                free(data);
                return -1;
        }
        th_fatal_dir(st->dir);
        st->sample = th_asprintf("%s/" SAMPLE_FILE, data);
        free(data);
        return access(st->sample, R_OK) ? -1 : 0;
}

static int group_teardown(void **state)
{
        struct st *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_pg_stop(&st->pg);
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->sample);
        free(st);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duration_parser),
                cmocka_unit_test_teardown(test_duration_options_agree,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_common_options,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_migrate_quiet, th_test_teardown),
                cmocka_unit_test_teardown(test_max_future, th_test_teardown),
                cmocka_unit_test_teardown(test_max_future_bound,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_rebuild_counts,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_edited_migration,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_watermarks_lateness,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("cli", tests, group_setup,
                                           group_teardown);
}
