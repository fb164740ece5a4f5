/* test_replay.c: end-to-end tests of file replays and window specs with
 * the real binary (CALLSTREAM_BIN), in SQLite: issue 7, items 5 to 7.
 *
 *   test_stdin_needs_topic      `--file -` without --topic: exit 2, one line
 *   test_stdin_other_stream     a second, different stdin stream under one
 *                               topic is refused (exit 2, one line naming
 *                               the topic and `offsets forget`) and nothing
 *                               of it is stored or skipped; under another
 *                               topic all of it is stored; the first stream
 *                               again changes nothing; the first stream
 *                               grown resumes after its stored lines
 *   test_same_file_paths        one file by relative, absolute, `..` and
 *                               symlinked paths is one topic (its real
 *                               path) read once; other content at the path
 *                               is refused until `offsets forget`
 *   test_retention_stdin        --retention applies to a replay
 *   test_window_spec_change     a new spec warns and names `rebuild`; a
 *                               dropped spec warns, shows maintained = 0
 *                               in window_specs and its windows past the
 *                               watermark of then are not final; taking it
 *                               back warns that it missed calls
 *
 * The input is written here, one call every few minutes from a known time,
 * so every expected count, watermark and is_final follows from the test's
 * own arithmetic (model.c's calendar), not from the code under test. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "model.h"

#define WATCHDOG_S 300

struct rt {
        char dir[PATH_MAX];
        char *bin;
};

/* The seconds of "YYYY-MM-DD HH:MM:SS". */
static int64_t sec_of(const char *ts)
{
        int64_t us;

        if (tm_parse_ts(ts, strlen(ts), &us))
                fail_msg("bad time '%s' in the test", ts);
        return us / TM_USEC;
}

/* Writes (or appends) n calls "<prefix><i>", i from first, at start +
 * i * step seconds, as NDJSON. */
static void write_calls(const char *path, const char *prefix, int first, int n,
                        int64_t start, int64_t step, int append)
{
        struct th_buf b = {0};
        char ts[TM_TS_SIZE];
        int i;

        th_buf_add(&b, "", 0);
        for (i = first; i < first + n; i++) {
                tm_format_sec(start + (int64_t)i * step, ts);
                ts[10] = 'T';
                th_buf_addf(&b,
                            "{\"crime_id\":\"%s%d\",\"original_crime_type_"
                            "name\":\"Type %d\",\"call_date_time\":\"%s\","
                            "\"disposition\":\"HAN\"}\n",
                            prefix, i, i % 3, ts);
        }
        if (th_write_file(path, b.p, append))
                fail_msg("cannot write %s", path);
        th_buf_free(&b);
}

static char *path_in(const struct rt *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* Runs callstream with args (up to NULL), stdin from the file in_path
 * (NULL: /dev/null), in cwd (NULL: ours). */
static void run_cs(const struct rt *st, struct th_run *r, const char *in_path,
                   const char *cwd, ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        if (in_path) {
                char *env = th_asprintf("CS_STDIN=%s", in_path);

                th_args_addv(&a, "sh", "-c",
                             "exec \"$0\" \"$@\" < \"$CS_STDIN\"", st->bin,
                             NULL);
                th_args_setenv(&a, env);
                free(env);
        } else {
                th_args_add(&a, st->bin);
        }
        if (cwd)
                a.cwd = th_strdup(cwd);
        va_start(ap, cwd);
        while ((s = va_arg(ap, const char *)) != NULL)
                th_args_add(&a, s);
        va_end(ap);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, r);
        th_args_free(&a);
}

/* Fails unless r exited with status and, for a refusal, said it on one
 * line holding each of the NULL-terminated words. */
static void expect_status(struct th_run *r, int status, ...)
{
        const char *w;
        va_list ap;
        int bad = r->status != status;

        if (status == 2 &&
            (!r->err.p || th_count_lines(r->err.p, r->err.len) != 1))
                bad = 1;
        va_start(ap, status);
        while ((w = va_arg(ap, const char *)) != NULL)
                if (!r->err.p || !strstr(r->err.p, w)) {
                        fprintf(stderr, "# stderr lacks '%s'\n", w);
                        bad = 1;
                }
        va_end(ap);
        if (bad) {
                th_show_tail("stderr", r->err.p ? r->err.p : "", r->err.len);
                fail_msg("exit status %d, expected %d (with one line on "
                         "stderr for 2)",
                         r->status, status);
        }
}

static void run_ok(const struct rt *st, const char *in_path, const char *cwd,
                   const char *const *args)
{
        struct th_args a = {0};
        struct th_run r;
        int i;

        if (in_path) {
                char *env = th_asprintf("CS_STDIN=%s", in_path);

                th_args_addv(&a, "sh", "-c",
                             "exec \"$0\" \"$@\" < \"$CS_STDIN\"", st->bin,
                             NULL);
                th_args_setenv(&a, env);
                free(env);
        } else {
                th_args_add(&a, st->bin);
        }
        if (cwd)
                a.cwd = th_strdup(cwd);
        for (i = 0; args[i]; i++)
                th_args_add(&a, args[i]);
        th_run_ok(&a, &r);
        th_run_free(&r);
        th_args_free(&a);
}

/* The one value of sql on the SQLite database at path, as text ("NULL"
 * for NULL); the caller frees it. */
static char *q_text(const char *path, const char *sql)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        char *v = NULL;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
                    SQLITE_OK ||
            sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s in %s", path, sqlite3_errmsg(db), sql);
        if (sqlite3_step(st) == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(st, 0);

                v = th_strdup(t ? (const char *)t : "NULL");
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (!v)
                fail_msg("%s: no row from %s", path, sql);
        return v;
}

static long long q_int(const char *path, const char *sql)
{
        char *v = q_text(path, sql);
        long long n = atoll(v);

        free(v);
        return n;
}

#define CHECK_INT(bad, path, sql, want)                                        \
        do {                                                                   \
                long long got_ = q_int(path, sql);                             \
                if (got_ != (long long)(want)) {                               \
                        fprintf(stderr, "# %s: %lld, expected %lld\n", sql,    \
                                got_, (long long)(want));                      \
                        (bad)++;                                               \
                }                                                              \
        } while (0)

#define CHECK_TEXT(bad, path, sql, want)                                       \
        do {                                                                   \
                char *got_ = q_text(path, sql);                                \
                if (strcmp(got_, want)) {                                      \
                        fprintf(stderr, "# %s: '%s', expected '%s'\n", sql,    \
                                got_, want);                                   \
                        (bad)++;                                               \
                }                                                              \
                free(got_);                                                    \
        } while (0)

/*
 * Item 5: replays resume only over the input they stored.
 */

static void test_stdin_needs_topic(void **state)
{
        struct rt *st = *state;
        char *in = path_in(st, "t0.ndjson"), *db = path_in(st, "t0.db");
        struct th_run r;

        write_calls(in, "N", 0, 5, sec_of("2019-01-01 00:00:00"), 60, 0);
        run_cs(st, &r, in, NULL, "ingest", "--file", "-", "--db", db, NULL);
        expect_status(&r, 2, "--topic", NULL);
        th_run_free(&r);
        assert_int_equal(access(db, F_OK), -1);
        free(in);
        free(db);
}

static void test_stdin_other_stream(void **state)
{
        struct rt *st = *state;
        char *a = path_in(st, "a.ndjson"), *b = path_in(st, "b.ndjson");
        char *db = path_in(st, "stdin.db");
        const int64_t t0 = sec_of("2019-01-01 00:00:00");
        struct th_run r;
        int bad = 0;

        write_calls(a, "A", 0, 100, t0, 60, 0);
        write_calls(b, "B", 0, 150, t0, 30, 0);
        {
                const char *args[] = {"ingest", "--file", "-",  "--topic", "s",
                                      "--db",   db,       "-q", NULL};

                run_ok(st, a, NULL, args);
        }
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM calls", 100);
        CHECK_INT(bad, db,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 's'",
                  101);

        /* Before issue 7 this stored B's lines 101-150 and skipped the
         * rest without a word. */
        run_cs(st, &r, b, NULL, "ingest", "--file", "-", "--topic", "s", "--db",
               db, "-q", NULL);
        expect_status(&r, 2, "topic 's'", "--topic",
                      "callstream offsets forget --topic s", NULL);
        th_run_free(&r);
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM calls", 100);
        CHECK_INT(bad, db,
                  "SELECT COUNT(*) FROM calls WHERE crime_id LIKE 'B%'", 0);
        CHECK_INT(bad, db,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 's'",
                  101);

        /* Under a topic of its own, all of it. */
        {
                const char *args[] = {"ingest", "--file", "-",  "--topic", "s2",
                                      "--db",   db,       "-q", NULL};

                run_ok(st, b, NULL, args);
        }
        CHECK_INT(bad, db,
                  "SELECT COUNT(*) FROM calls WHERE kafka_topic = 's2'", 150);
        CHECK_INT(bad, db,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 's2'",
                  151);

        /* The first stream again: nothing new; grown by 20 lines: those. */
        {
                const char *args[] = {"ingest", "--file", "-",  "--topic", "s",
                                      "--db",   db,       "-q", NULL};

                run_ok(st, a, NULL, args);
                CHECK_INT(bad, db, "SELECT COUNT(*) FROM calls", 250);
                CHECK_INT(bad, db,
                          "SELECT calls + duplicates FROM pipeline_progress "
                          "WHERE topic = 's'",
                          100);
                write_calls(a, "A", 100, 20, t0, 60, 1);
                run_ok(st, a, NULL, args);
        }
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM calls WHERE kafka_topic = 's'",
                  120);
        CHECK_INT(bad, db,
                  "SELECT calls + duplicates FROM pipeline_progress "
                  "WHERE topic = 's'",
                  120);
        CHECK_INT(bad, db,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 's'",
                  121);
        free(a);
        free(b);
        free(db);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

static void test_same_file_paths(void **state)
{
        struct rt *st = *state;
        char *sub = path_in(st, "sub"), *db = path_in(st, "paths.db");
        char *file = path_in(st, "sub/f.ndjson");
        char *dotted = path_in(st, "sub/../sub/f.ndjson");
        char *link = path_in(st, "link.ndjson");
        const int64_t t0 = sec_of("2019-01-02 00:00:00");
        char real[PATH_MAX], *sql;
        struct th_run r;
        int bad = 0;

        assert_int_equal(mkdir(sub, 0700), 0);
        write_calls(file, "F", 0, 40, t0, 120, 0);
        assert_int_equal(symlink(file, link), 0);
        assert_non_null(realpath(file, real));
        {
                const char *rel[] = {"ingest", "--file", "f.ndjson", "--db",
                                     db,       "-q",     NULL};
                const char *abs[] = {"ingest", "--file", file, "--db",
                                     db,       "-q",     NULL};
                const char *dot[] = {"ingest", "--file", dotted, "--db",
                                     db,       "-q",     NULL};
                const char *lnk[] = {"ingest", "--file", link, "--db",
                                     db,       "-q",     NULL};

                run_ok(st, NULL, sub, rel);
                run_ok(st, NULL, NULL, abs);
                run_ok(st, NULL, NULL, dot);
                run_ok(st, NULL, NULL, lnk);
        }
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM kafka_offsets", 1);
        CHECK_TEXT(bad, db, "SELECT topic FROM kafka_offsets", real);
        CHECK_TEXT(bad, db, "SELECT path FROM replay_sources", real);
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM calls", 40);
        /* Read once: the later runs found nothing past the stored line. */
        CHECK_INT(bad, db, "SELECT calls + duplicates FROM pipeline_progress",
                  40);

        /* Other content at the same path is another input. */
        write_calls(file, "G", 0, 10, t0, 60, 0);
        run_cs(st, &r, NULL, NULL, "ingest", "--file", file, "--db", db, "-q",
               NULL);
        expect_status(&r, 2, "offsets forget", NULL);
        th_run_free(&r);
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM calls", 40);
        run_cs(st, &r, NULL, NULL, "offsets", "forget", "--db", db, "--topic",
               real, NULL);
        expect_status(&r, 0, NULL);
        th_run_free(&r);
        {
                const char *abs[] = {"ingest", "--file", file, "--db",
                                     db,       "-q",     NULL};

                run_ok(st, NULL, NULL, abs);
        }
        sql = th_asprintf(
                "SELECT COUNT(*) FROM calls WHERE crime_id LIKE 'G%%'");
        CHECK_INT(bad, db, sql, 10);
        free(sql);
        CHECK_INT(bad, db, "SELECT next_offset FROM kafka_offsets", 11);
        free(sub);
        free(db);
        free(file);
        free(dotted);
        free(link);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/*
 * Item 6: --retention with a replay.
 */

static void test_retention_stdin(void **state)
{
        struct rt *st = *state;
        char *in = path_in(st, "ret.ndjson"), *db = path_in(st, "ret.db");
        const int64_t t0 = sec_of("2019-01-03 00:00:00");
        const char *args[] = {
                "ingest", "--file",      "-",  "--topic",
                "ret",    "--db",        db,   "--allowed-lateness",
                "0",      "--retention", "1h", "-q",
                NULL};
        char horizon[TM_TS_SIZE], *sql;
        int bad = 0;

        /* 60 calls every 10 minutes: the last at 09:50, the watermark too
         * (lateness 0), the horizon at 08:50: calls 53 to 59 stay. */
        write_calls(in, "R", 0, 60, t0, 600, 0);
        tm_format_sec(t0 + 59 * 600 - 3600, horizon);
        assert_string_equal(horizon, "2019-01-03 08:50:00");
        run_ok(st, in, NULL, args);
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM calls", 7);
        CHECK_TEXT(bad, db, "SELECT MIN(call_ts) FROM calls", horizon);
        sql = th_asprintf("SELECT COUNT(*) FROM window_counts WHERE "
                          "window_end <= '%s'",
                          horizon);
        CHECK_INT(bad, db, sql, 0);
        free(sql);
        free(in);
        free(db);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/*
 * Item 7: window specs changed between runs.
 */

/* Checks every call_counts row of spec: is_final exactly when its end is
 * at or before final_until. Returns the number of wrong rows. */
static int check_final(const char *db, const char *spec, int64_t until,
                       int rows_want)
{
        sqlite3 *h = NULL;
        sqlite3_stmt *q = NULL;
        int rows = 0, bad = 0;

        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(h,
                               "SELECT window_end, is_final FROM call_counts "
                               "WHERE window_spec = ?1",
                               -1, &q, NULL) != SQLITE_OK)
                fail_msg("%s: %s", db, sqlite3_errmsg(h));
        sqlite3_bind_text(q, 1, spec, -1, SQLITE_STATIC);
        while (sqlite3_step(q) == SQLITE_ROW) {
                const char *end = (const char *)sqlite3_column_text(q, 0);
                int want = sec_of(end) <= until;

                rows++;
                if (sqlite3_column_int(q, 1) != want && bad++ < 10)
                        fprintf(stderr,
                                "# %s window ending %s: is_final %d, "
                                "expected %d\n",
                                spec, end, sqlite3_column_int(q, 1), want);
        }
        sqlite3_finalize(q);
        sqlite3_close(h);
        if (rows != rows_want) {
                fprintf(stderr, "# %s: %d call_counts rows, expected %d\n",
                        spec, rows, rows_want);
                bad++;
        }
        return bad;
}

static void test_window_spec_change(void **state)
{
        struct rt *st = *state;
        char *in = path_in(st, "spec.ndjson"), *db = path_in(st, "spec.db");
        const int64_t t0 = sec_of("2019-01-04 00:00:00");
        const char *one[] = {
                "ingest", "--file",   in,   "--db", db,  "--allowed-lateness",
                "0",      "--window", "1h", "-q",   NULL};
        char until[TM_TS_SIZE];
        struct th_run r;
        int bad = 0;

        /* Calls every 5 minutes, 00:00 to 04:55: 1h windows 00 to 04 (3
         * crime types each), watermark 04:55. */
        write_calls(in, "W", 0, 60, t0, 300, 0);
        run_ok(st, NULL, NULL, one);
        CHECK_INT(bad, db, "SELECT COUNT(*) FROM window_specs", 1);
        bad += check_final(db, "1h", t0 + 59 * 300, 15);

        /* 05:00 to 09:55 more, now counted in 1h/15m only. */
        write_calls(in, "W", 60, 60, t0, 300, 1);
        run_cs(st, &r, NULL, NULL, "ingest", "--file", in, "--db", db,
               "--allowed-lateness", "0", "--window", "1h/15m", NULL);
        expect_status(&r, 0, "window spec 1h/15m is new",
                      "callstream rebuild --window 1h/15m",
                      "window spec 1h is no longer maintained", NULL);
        th_run_free(&r);
        tm_format_sec(t0 + 59 * 300, until);
        CHECK_INT(bad, db,
                  "SELECT maintained FROM window_specs WHERE window_spec = "
                  "'1h'",
                  0);
        CHECK_TEXT(bad, db,
                   "SELECT final_until FROM window_specs WHERE window_spec = "
                   "'1h'",
                   until);
        CHECK_INT(bad, db,
                  "SELECT maintained FROM window_specs WHERE window_spec = "
                  "'1h/15m'",
                  1);
        /* The watermark is 09:55 now, but 1h stopped at 04:55: its 04:00
         * window misses the calls from 05:00 on... */
        bad += check_final(db, "1h", t0 + 59 * 300, 15);
        /* ...and 1h/15m (counted from 05:00 on) is final up to 09:55:
         * windows starting 04:15 (the first holding 05:00) to 09:45, 23 of
         * them, each with all 3 crime types (every 15 minutes has 3
         * consecutive calls). */
        bad += check_final(db, "1h/15m", t0 + 119 * 300, 23 * 3);

        /* Taking 1h back: a warning that it missed calls. */
        run_cs(st, &r, NULL, NULL, "ingest", "--file", in, "--db", db,
               "--allowed-lateness", "0", "--window", "1h", "--window",
               "1h/15m", NULL);
        expect_status(&r, 0, "window spec 1h was not maintained",
                      "callstream rebuild --window 1h", NULL);
        th_run_free(&r);
        CHECK_INT(bad, db, "SELECT SUM(maintained) FROM window_specs", 2);
        free(in);
        free(db);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

static int group_setup(void **state)
{
        struct rt *st = calloc(1, sizeof(*st));
        char *data = NULL;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_replay", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data)) {
                free(data);
                return -1;
        }
        free(data);
        if (th_tmpdir_make("callstream-replay", st->dir, sizeof(st->dir)))
                return -1;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        return 0;
}

static int group_teardown(void **state)
{
        struct rt *st = *state;

        if (!st)
                return 0;
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st);
        *state = NULL;
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_stdin_needs_topic,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_stdin_other_stream,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_same_file_paths,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_retention_stdin,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_window_spec_change,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("replay", tests, group_setup,
                                           group_teardown);
}
