/* test_config.c: the configuration layers of issue 11 through the real
 * binary (CALLSTREAM_BIN): --config FILE, CALLSTREAM_<OPTION> and flags in
 * that order of precedence, seen in --print-config and in what ingest
 * does (the database it writes, the windows it counts); secrets masked;
 * unknown keys and bad values named by file and line with the flag's own
 * message; a shared file's keys of other commands and their [sections].
 * cs_config_mask is also unit-tested against hand-written expectations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cs_config.h"
#include "harness.h"

#define WATCHDOG_S 300

struct st {
        char *bin;
        char dir[512];
        char *calls; /* 20 generated calls, NDJSON */
};

static struct st *S(void **state)
{
        return *state;
}

static char *path(const struct st *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* Runs bin with env (NULL-terminated "NAME=value" list, or NULL) and the
 * arguments up to NULL into r. */
static void run(const struct st *st, const char *const *env, struct th_run *r,
                ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        th_args_add(&a, st->bin);
        va_start(ap, r);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        for (; env && *env; env++)
                th_args_setenv(&a, *env);
        a.cwd = th_strdup(st->dir);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, r);
        th_args_free(&a);
}

static const char *out(const struct th_run *r)
{
        return r->out.p ? r->out.p : "";
}

static const char *err(const struct th_run *r)
{
        return r->err.p ? r->err.p : "";
}

/* Writes text to name in the test's folder; returns its path (freed by
 * the caller). */
static char *conf(const struct st *st, const char *name, const char *text)
{
        char *p = path(st, name);

        assert_int_equal(th_write_file(p, text, 0), 0);
        return p;
}

static void assert_has(const char *what, const char *text, const char *needle)
{
        if (!strstr(text, needle))
                fail_msg("%s lacks '%s':\n%s", what, needle, text);
}

static void assert_lacks(const char *what, const char *text, const char *needle)
{
        if (strstr(text, needle))
                fail_msg("%s has '%s':\n%s", what, needle, text);
}

/* The lines of the query's one column, joined by ",". */
static char *lite_col(const char *db_path, const char *sql)
{
        struct th_buf b = {0};
        sqlite3 *db = NULL;
        sqlite3_stmt *stmt = NULL;

        th_buf_add(&b, "", 0);
        if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) ||
            sqlite3_prepare_v2(db, sql, -1, &stmt, NULL))
                fail_msg("%s: %s: %s", db_path, sql, sqlite3_errmsg(db));
        while (sqlite3_step(stmt) == SQLITE_ROW)
                th_buf_addf(&b, "%s%s", b.len ? "," : "",
                            (const char *)sqlite3_column_text(stmt, 0));
        sqlite3_finalize(stmt);
        sqlite3_close(db);
        return b.p;
}

/* The lines of an effective configuration, the unset keys and comments
 * left out, each line's padding squeezed to one space before its "#". */
static char *set_lines(const char *text)
{
        struct th_buf b = {0};
        const char *line, *next;

        th_buf_add(&b, "", 0);
        for (line = text; *line; line = next) {
                const char *nl = strchr(line, '\n'), *hash;
                size_t n = nl ? (size_t)(nl - line) : strlen(line);
                size_t v;

                next = line + n + (nl ? 1 : 0);
                if (line[0] == '#' || !n)
                        continue;
                /* The last " # ": a value may hold one. */
                for (hash = NULL, v = 0; v + 3 <= n; v++)
                        if (!strncmp(line + v, " # ", 3))
                                hash = line + v;
                assert_non_null(hash);
                v = (size_t)(hash - line);
                while (v > 0 && line[v - 1] == ' ')
                        v--;
                th_buf_add(&b, line, v);
                th_buf_addf(&b, " #%.*s\n",
                            (int)(n - (size_t)(hash + 2 - line)), hash + 2);
        }
        return b.p;
}

/*
 * Precedence: flags > environment > file, per key; a repeatable key's
 * values come from one layer only.
 */

static void test_precedence_printed(void **state)
{
        struct st *st = S(state);
        char *f = conf(st, "p.conf",
                       "# a comment\n"
                       "\n"
                       "db = file.db\n"
                       "batch-max-records = 10\n"
                       "window = 1h\n"
                       "window = 15m\n"
                       "exit-at-end = true\n"
                       "from-beginning = true\n"
                       "late-policy = drop\n"
                       "brokers = b:9092\n"
                       "topic = from-file\n");
        const char *env[] = {"CALLSTREAM_BATCH_MAX_RECORDS=20",
                             "CALLSTREAM_WINDOW=30m\n2h",
                             "CALLSTREAM_FROM_BEGINNING=false",
                             "CALLSTREAM_TOPIC=from-env",
                             "CALLSTREAM_GROUP=", /* empty: unset */
                             NULL};
        struct th_run r = {0};
        char *lines, *want;

        run(st, env, &r, "ingest", "--config", f, "--print-config", "--topic",
            "from-flag", "-e", NULL);
        assert_int_equal(r.status, 0);
        assert_string_equal(err(&r), "");
        lines = set_lines(out(&r));
        /* In the table's order; origins as the layers say. */
        want = th_asprintf("brokers = b:9092 # %s:10\n"
                           "topic = from-flag # command line\n"
                           "db = file.db # %s:3\n"
                           "window = 30m # CALLSTREAM_WINDOW\n"
                           "window = 2h # CALLSTREAM_WINDOW\n"
                           "from-beginning = false # "
                           "CALLSTREAM_FROM_BEGINNING\n"
                           "exit-at-end = true # command line\n"
                           "batch-max-records = 20 # "
                           "CALLSTREAM_BATCH_MAX_RECORDS\n"
                           "late-policy = drop # %s:9\n",
                           f, f, f);
        assert_string_equal(lines, want);
        assert_has("print-config", out(&r), "# group: not set (default)\n");
        /* The tests' own variables are no option: ignored, and said so. */
        assert_has("print-config", out(&r),
                   "# ignored: CALLSTREAM_BIN (no option of callstream "
                   "ingest)\n");
        free(lines);
        free(want);
        th_run_free(&r);
        free(f);
}

/* The layers change what ingest does: the database it writes and the
 * windows it counts. */
static void test_precedence_used(void **state)
{
        struct st *st = S(state);
        char *f, *file_db = path(st, "u-file.db"),
                 *env_db = path(st, "u-env.db");
        char *flag_db = path(st, "u-flag.db"), *text, *env_var, *got;
        const char *env[3] = {NULL, NULL, NULL};
        struct th_run r = {0};

        text = th_asprintf("db = %s\nwindow = 1h\nwindow = 15m\n", file_db);
        f = conf(st, "u.conf", text);

        /* The file alone: its --db and both its windows. */
        run(st, NULL, &r, "ingest", "--config", f, "--file", st->calls, "-q",
            NULL);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        got = lite_col(file_db, "SELECT count(*) FROM calls");
        assert_string_equal(got, "20");
        free(got);
        got = lite_col(file_db, "SELECT DISTINCT window_spec FROM "
                                "window_counts ORDER BY 1");
        assert_string_equal(got, "15m,1h");
        free(got);

        /* The environment over the file: its database, its one window. */
        env_var = th_asprintf("CALLSTREAM_DB=%s", env_db);
        env[0] = env_var;
        env[1] = "CALLSTREAM_WINDOW=30m";
        run(st, env, &r, "ingest", "--config", f, "--file", st->calls, "-q",
            NULL);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        got = lite_col(env_db, "SELECT DISTINCT window_spec FROM "
                               "window_counts ORDER BY 1");
        assert_string_equal(got, "30m");
        free(got);
        /* The file's database was not touched again: still 20 calls,
         * and no 30m window. */
        got = lite_col(file_db, "SELECT DISTINCT window_spec FROM "
                                "window_counts ORDER BY 1");
        assert_string_equal(got, "15m,1h");
        free(got);

        /* A flag over both; CALLSTREAM_CONFIG names the file. */
        free(env_var);
        env_var = th_asprintf("CALLSTREAM_CONFIG=%s", f);
        env[1] = env_var;
        env[0] = "CALLSTREAM_WINDOW=30m";
        run(st, env, &r, "ingest", "--db", flag_db, "--window", "2h", "--file",
            st->calls, "-q", NULL);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        got = lite_col(flag_db, "SELECT DISTINCT window_spec FROM "
                                "window_counts ORDER BY 1");
        assert_string_equal(got, "2h");
        free(got);
        assert_int_not_equal(access(flag_db, F_OK), -1);

        /* migrate reads the same file for its --db. */
        unlink(file_db);
        run(st, NULL, &r, "migrate", "--config", f, "-q", NULL);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        got = lite_col(file_db, "SELECT count(*) FROM calls");
        assert_string_equal(got, "0");
        free(got);

        free(env_var);
        free(text);
        free(f);
        free(file_db);
        free(env_db);
        free(flag_db);
}

/*
 * Secrets.
 */

static void test_mask_unit(void **state)
{
        static const struct {
                const char *key, *in, *want;
        } cases[] = {
                {"db", "postgresql://u:SECRET@h/db",
                 "postgresql://u:****@h/db"},
                {"db", "postgres://u:SECRET@h:5432/db?sslmode=require",
                 "postgres://u:****@h:5432/db?sslmode=require"},
                {"db", "postgresql://u@h/db?password=SECRET&sslmode=require",
                 "postgresql://u@h/db?password=****&sslmode=require"},
                {"db", "postgresql://h/db", "postgresql://h/db"},
                {"db", "host=h password=SECRET dbname=d",
                 "host=h password=**** dbname=d"},
                {"db", "host=h password = 'SE CRET' dbname=d",
                 "host=h password = '****' dbname=d"},
                {"db", "/var/lib/callstream/callstream.db",
                 "/var/lib/callstream/callstream.db"},
                {"X", "sasl.password=SE CRET=x", "sasl.password=****"},
                {"X", "ssl.key.password=SECRET", "ssl.key.password=****"},
                {"X", "sasl.oauthbearer.client.secret=SECRET",
                 "sasl.oauthbearer.client.secret=****"},
                {"X", "sasl.username=alice", "sasl.username=alice"},
                {"X",
                 "sasl.jaas.config=x required username=\"u\" "
                 "password=\"SE\\\"CRET\";",
                 "sasl.jaas.config=x required username=\"u\" "
                 "password=\"****\";"},
                {"db-password", "SECRET", "****"},
                {"client-secret", "SECRET", "****"},
        };
        char got[256];
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cs_config_mask(cases[i].key, cases[i].in, got, sizeof(got));
                if (strcmp(got, cases[i].want))
                        fail_msg("mask(%s, %s) = %s, want %s", cases[i].key,
                                 cases[i].in, got, cases[i].want);
        }
        /* A short buffer still ends in a terminator. */
        cs_config_mask("db", "postgresql://u:SECRET@h/db", got, 8);
        assert_string_equal(got, "postgre");
}

static void test_mask_printed(void **state)
{
        struct st *st = S(state);
        char *f = conf(st, "m.conf",
                       "X = sasl.password=FILESECRET\n"
                       "X = ssl.key.password=KEYSECRET\n"
                       "X = sasl.username=alice\n"
                       "db = host=h user=u password=CONNSECRET dbname=d\n");
        const char *env[] = {"CALLSTREAM_DB=postgresql://u:URISECRET@h/db",
                             NULL};
        struct th_run r = {0};

        run(st, env, &r, "ingest", "--config", f, "--print-config", NULL);
        assert_int_equal(r.status, 0);
        assert_lacks("print-config", out(&r), "SECRET");
        assert_has("print-config", out(&r), "X = sasl.password=****");
        assert_has("print-config", out(&r), "X = ssl.key.password=****");
        assert_has("print-config", out(&r), "X = sasl.username=alice");
        /* The environment's URI wins over the file's conninfo. */
        assert_has("print-config", out(&r), "db = postgresql://u:****@h/db");
        th_run_free(&r);
        free(f);
}

/*
 * Errors: one line, exit 2, naming the file and line.
 */

/* The first line of text (the whole of it must be one line). */
static void assert_one_line(const char *what, const char *text)
{
        const char *nl = strchr(text, '\n');

        if (!nl || nl[1])
                fail_msg("%s: not one line:\n%s", what, text);
}

static void test_unknown_keys(void **state)
{
        static const struct {
                const char *text;
                const char *want; /* after "callstream ingest: FILE:" */
        } cases[] = {
                {"db = x.db\n\n# c\nbatch-max-record = 5\n",
                 "4: unknown key 'batch-max-record'"},
                {"help = true\n", "1: 'help' cannot be set in a file"},
                {"config = other.conf\n",
                 "1: 'config' cannot be set in a file"},
                {"db x.db\n", "1: expected key = value"},
                {"[ingest]\ndb = x.db\n[nosuch]\n",
                 "3: unknown section [nosuch]: expected a command name"},
                {"[report]\ntop = 3\nbogus = 1\n",
                 "3: unknown key 'bogus' (callstream report has no such "
                 "option)"},
                /* In its own section a key of another command is wrong. */
                {"[ingest]\ntop = 3\n", "2: unknown key 'top'"},
                {"exit-at-end = maybe\n",
                 "1: invalid exit-at-end 'maybe': expected true or false"},
                {"db =\n", "1: db needs a value"},
        };
        struct st *st = S(state);
        struct th_run r = {0};
        char *f, *want;
        size_t i;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                f = conf(st, "k.conf", cases[i].text);
                run(st, NULL, &r, "ingest", "--config", f, "--print-config",
                    NULL);
                want = th_asprintf("callstream ingest: %s:%s (see "
                                   "'callstream ingest --help')\n",
                                   f, cases[i].want);
                assert_int_equal(r.status, 2);
                assert_string_equal(err(&r), want);
                assert_string_equal(out(&r), "");
                th_run_free(&r);
                free(want);
                free(f);
        }

        /* A missing file. */
        run(st, NULL, &r, "report", "--config", "no-such.conf", NULL);
        assert_int_equal(r.status, 2);
        assert_has("stderr", err(&r),
                   "cannot read --config no-such.conf: No such file");
        assert_one_line("stderr", err(&r));
        th_run_free(&r);
}

/* A file shared by several commands: each takes its keys and its own
 * section's, and skips the keys of the others. */
static void test_shared_file(void **state)
{
        struct st *st = S(state);
        char *f = conf(st, "s.conf",
                       "db = shared.db\n"
                       "brokers = b:9092\n"
                       "topic = calls\n"
                       "window = 1h\n"
                       "[report]\n"
                       "window = 15m\n"
                       "top = 3\n"
                       "[ingest]\n"
                       "batch-max-records = 7\n"
                       "quiet = true\n"
                       "X = acks=all\n");
        struct th_run r = {0};
        char *lines, *want;

        run(st, NULL, &r, "report", "--config", f, "--print-config", NULL);
        assert_int_equal(r.status, 0);
        lines = set_lines(out(&r));
        /* The section's window replaces the one above every section. */
        want = th_asprintf("db = shared.db # %s:1\n"
                           "window = 15m # %s:6\n"
                           "top = 3 # %s:7\n",
                           f, f, f);
        assert_string_equal(lines, want);
        free(lines);
        free(want);
        th_run_free(&r);

        run(st, NULL, &r, "offsets", "list", "--config", f, "--print-config",
            NULL);
        assert_int_equal(r.status, 0);
        lines = set_lines(out(&r));
        want = th_asprintf("db = shared.db # %s:1\n"
                           "topic = calls # %s:3\n",
                           f, f);
        assert_string_equal(lines, want);
        free(lines);
        free(want);
        th_run_free(&r);

        run(st, NULL, &r, "produce", "--config", f, "--print-config", NULL);
        assert_int_equal(r.status, 0);
        assert_has("produce", out(&r), "brokers = b:9092");
        assert_lacks("produce", out(&r), "db =");
        th_run_free(&r);
        free(f);
}

/* A bad value from the file or the environment gets the flag's own
 * message, with where it came from after the command's name. */
static void test_bad_values(void **state)
{
        static const struct {
                const char *key, *flag, *value;
        } cases[] = {
                {"batch-max-records", "--batch-max-records", "abc"},
                {"window", "--window", "7x"},
                {"allowed-lateness", "--allowed-lateness", "90"},
                {"late-policy", "--late-policy", "sometimes"},
                {"X", "-X", "no-equals-sign"},
        };
        struct st *st = S(state);
        struct th_run flag = {0}, file = {0}, env = {0};
        char *f, *text, *want, *env_var, env_name[64];
        const char *envv[2] = {NULL, NULL};
        const char *tail;
        size_t i, j;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                run(st, NULL, &flag, "ingest", cases[i].flag, cases[i].value,
                    "--print-config", NULL);
                assert_int_equal(flag.status, 2);
                assert_one_line("flag", err(&flag));
                tail = err(&flag) + strlen("callstream ingest: ");

                text = th_asprintf("# x\n%s = %s\n", cases[i].key,
                                   cases[i].value);
                f = conf(st, "v.conf", text);
                run(st, NULL, &file, "ingest", "--config", f, "--print-config",
                    NULL);
                want = th_asprintf("callstream ingest: %s:2: %s", f, tail);
                assert_int_equal(file.status, 2);
                assert_string_equal(err(&file), want);
                free(want);

                snprintf(env_name, sizeof(env_name), "CALLSTREAM_%s",
                         cases[i].key);
                for (j = 11; env_name[j]; j++)
                        env_name[j] =
                                env_name[j] == '-'
                                        ? '_'
                                        : (char)(env_name[j] >= 'a' &&
                                                                 env_name[j] <=
                                                                         'z'
                                                         ? env_name[j] - 32
                                                         : env_name[j]);
                env_var = th_asprintf("%s=%s", env_name, cases[i].value);
                envv[0] = env_var;
                run(st, envv, &env, "ingest", "--print-config", NULL);
                want = th_asprintf("callstream ingest: %s: %s", env_name, tail);
                assert_int_equal(env.status, 2);
                assert_string_equal(err(&env), want);
                free(want);

                free(env_var);
                free(text);
                free(f);
                th_run_free(&flag);
                th_run_free(&file);
                th_run_free(&env);
        }
}

/* A shared file's topic narrows `offsets list` rather than stopping it:
 * the database holds two replays, the file names one. */
static void test_offsets_list_topic(void **state)
{
        struct st *st = S(state);
        char *db = path(st, "o.db"), *text, *f;
        struct th_run r = {0};

        run(st, NULL, &r, "ingest", "--file", st->calls, "--topic", "t1",
            "--db", db, "-q", NULL);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        run(st, NULL, &r, "ingest", "--file", st->calls, "--topic", "t2",
            "--db", db, "-q", NULL);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        text = th_asprintf("db = %s\ntopic = t1\n", db);
        f = conf(st, "o.conf", text);

        run(st, NULL, &r, "offsets", "list", "--config", f, NULL);
        assert_int_equal(r.status, 0);
        /* The header and t1's one partition (20 lines: next offset 21). */
        assert_int_equal(th_count_lines(out(&r), r.out.len), 2);
        assert_has("offsets list", out(&r), "\nt1\t0\t21\t");
        assert_lacks("offsets list", out(&r), "\nt2\t");
        th_run_free(&r);

        /* A flag's topic over the file's. */
        run(st, NULL, &r, "offsets", "list", "--config", f, "-t", "t2", NULL);
        assert_int_equal(r.status, 0);
        assert_int_equal(th_count_lines(out(&r), r.out.len), 2);
        assert_has("offsets list", out(&r), "\nt2\t0\t21\t");
        th_run_free(&r);
        free(text);
        free(f);
        free(db);
}

/* A value is the rest of its line, spaces trimmed at both ends, taken as
 * it is: a # inside it, quotes, CRLF line ends. */
static void test_values_verbatim(void **state)
{
        struct st *st = S(state);
        char *f = conf(st, "w.conf",
                       "   # an indented comment\r\n"
                       "topic =   a # b  \r\n"
                       "\t[ingest]  \r\n"
                       "group=\"g\"\r\n");
        struct th_run r = {0};
        char *lines, *want;

        run(st, NULL, &r, "ingest", "--config", f, "--print-config", NULL);
        assert_int_equal(r.status, 0);
        lines = set_lines(out(&r));
        want = th_asprintf("topic = a # b # %s:2\n"
                           "group = \"g\" # %s:4\n",
                           f, f);
        assert_string_equal(lines, want);
        free(lines);
        free(want);
        th_run_free(&r);
        free(f);
}

/* --help and --version read no layer: a broken file does not stop them;
 * broker and generate read none at all. */
static void test_help_and_others(void **state)
{
        struct st *st = S(state);
        char *f = conf(st, "h.conf", "bogus = 1\n");
        const char *env[] = {"CALLSTREAM_BROKERS=not-a-count",
                             "CALLSTREAM_COUNT=bogus", NULL};
        struct th_run r = {0};

        run(st, NULL, &r, "ingest", "--config", f, "--help", NULL);
        assert_int_equal(r.status, 0);
        assert_has("help", out(&r), "--config FILE");
        assert_has("help", out(&r), "--print-config");
        th_run_free(&r);

        run(st, env, &r, "generate", "--count", "2", "--seed", "1", NULL);
        assert_int_equal(r.status, 0);
        assert_int_equal(th_count_lines(out(&r), r.out.len), 2);
        th_run_free(&r);

        run(st, NULL, &r, "broker", "--config", f, NULL);
        assert_int_equal(r.status, 2);
        assert_has("broker", err(&r), "unknown option '--config'");
        th_run_free(&r);
        free(f);
}

static int group_setup(void **state)
{
        struct st *st = calloc(1, sizeof(*st));
        struct th_args a = {0};
        struct th_run r = {0};
        char *data = NULL;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_config", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data) ||
            th_tmpdir_make("cs_test_config", st->dir, sizeof(st->dir))) {
                free(data);
                return -1;
        }
        free(data);
        th_fatal_dir(st->dir);
        th_args_addv(&a, st->bin, "generate", "--count", "20", "--seed", "3",
                     NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        st->calls = path(st, "calls.ndjson");
        if (r.status != 0 || !r.out.p ||
            th_write_file(st->calls, r.out.p, 0) < 0) {
                th_run_free(&r);
                return -1;
        }
        th_run_free(&r);
        return 0;
}

static int group_teardown(void **state)
{
        struct st *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->calls);
        free(st);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mask_unit),
                cmocka_unit_test_teardown(test_precedence_printed,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_precedence_used,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_mask_printed, th_test_teardown),
                cmocka_unit_test_teardown(test_unknown_keys, th_test_teardown),
                cmocka_unit_test_teardown(test_shared_file, th_test_teardown),
                cmocka_unit_test_teardown(test_bad_values, th_test_teardown),
                cmocka_unit_test_teardown(test_offsets_list_topic,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_values_verbatim,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_help_and_others,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("config", tests, group_setup,
                                           group_teardown);
}
