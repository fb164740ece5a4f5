/* test_offsets.c: end-to-end tests of finality per topic and of
 * `callstream offsets list|reset|forget` with the real binary
 * (CALLSTREAM_BIN), a local broker and both databases: issue 7, item 8.
 *
 *   test_offsets_sqlite, test_offsets_pg   the same scenario in SQLite and
 *                                          in a PostgreSQL server of the
 *                                          test's own:
 *   1. a live Kafka topic: its 1h windows final up to its watermark;
 *   2. a replay of older data under another topic, read to its end: the
 *      live topic's windows stay final (before issue 7 none was), the
 *      replay's own last stretch is not; recent_call_counts follows the
 *      live watermark;
 *   3. a second Kafka topic of old data, consumed once: it holds finality
 *      back, until `offsets forget` retires it (its calls stay);
 *   4. `offsets list` shows each position, the replay's file, fingerprint
 *      (FNV-1a of its bytes, computed here), size and end;
 *   5. `offsets reset` --to-timestamp, --to-offset, --to-earliest, and a
 *      re-read that counts nothing twice; wrong uses exit 2 with one line;
 *   6. `offsets forget` of the replay; Kafka refused on a replay's topic
 *      and a replay on a Kafka topic's.
 *
 * The calls are written here at known times, so the expected watermarks,
 * offsets and is_final values come from the test's own arithmetic. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "model.h"
#include "pgutil.h"

#define WATCHDOG_S 400

struct ot {
        char dir[PATH_MAX];
        char *bin;
        struct th_broker broker;
        struct th_pg pg;
        int pg_ok;
        char *live_file, *stale_file;
};

/* A database of the scenario: a SQLite path or a PostgreSQL conninfo. */
struct db {
        int pg;
        char *target;
        sqlite3 *lite;
        PGconn *conn;
};

static int64_t sec_of(const char *ts)
{
        int64_t us;

        if (tm_parse_ts(ts, strlen(ts), &us))
                fail_msg("bad time '%s'", ts);
        return us / TM_USEC;
}

/* n calls "<prefix><i>" at start + i * step seconds, NDJSON. */
static void write_calls(const char *path, const char *prefix, int n,
                        int64_t start, int64_t step)
{
        struct th_buf b = {0};
        char ts[TM_TS_SIZE];
        int i;

        th_buf_add(&b, "", 0);
        for (i = 0; i < n; i++) {
                tm_format_sec(start + (int64_t)i * step, ts);
                ts[10] = 'T';
                th_buf_addf(&b,
                            "{\"crime_id\":\"%s%d\",\"original_crime_type_"
                            "name\":\"Type %d\",\"call_date_time\":\"%s\"}\n",
                            prefix, i, i % 2, ts);
        }
        if (th_write_file(path, b.p, 0))
                fail_msg("cannot write %s", path);
        th_buf_free(&b);
}

/* Runs callstream args... (up to NULL) with --db (and nothing else added). */
static void cs(const struct ot *st, const struct db *d, struct th_run *r, ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        th_args_add(&a, st->bin);
        va_start(ap, r);
        while ((s = va_arg(ap, const char *)) != NULL)
                th_args_add(&a, s);
        va_end(ap);
        th_args_addv(&a, "--db", d->target, NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, r);
        th_args_free(&a);
}

static void expect(struct th_run *r, int status, const char *word)
{
        int lines = r->err.p ? th_count_lines(r->err.p, r->err.len) : 0;

        if (r->status != status || (status == 2 && lines != 1) ||
            (word && (!r->err.p || !strstr(r->err.p, word)))) {
                th_show_tail("stderr", r->err.p ? r->err.p : "", r->err.len);
                fail_msg("exit status %d, expected %d%s%s", r->status, status,
                         word ? " and a line with " : "", word ? word : "");
        }
}

#define CS_OK(st, d, ...)                                                      \
        do {                                                                   \
                struct th_run r_;                                              \
                cs(st, d, &r_, __VA_ARGS__, NULL);                             \
                expect(&r_, 0, NULL);                                          \
                th_run_free(&r_);                                              \
        } while (0)

#define CS_USAGE(st, d, word, ...)                                             \
        do {                                                                   \
                struct th_run r_;                                              \
                cs(st, d, &r_, __VA_ARGS__, NULL);                             \
                expect(&r_, 2, word);                                          \
                th_run_free(&r_);                                              \
        } while (0)

/* The rows of sql, cells joined by '|', NULL as "NULL", in order. In sql
 * {col} is a timestamp shown as 'YYYY-MM-DD HH:MM:SS' and [col] a boolean
 * as 0 or 1, in both dialects. */
static void rows(struct db *d, const char *q, struct th_lines *out)
{
        struct th_buf sql = {0};

        th_buf_add(&sql, "", 0);
        for (; *q; q++) {
                size_t n;

                if (*q != '{' && *q != '[') {
                        th_buf_add(&sql, q, 1);
                        continue;
                }
                n = strcspn(q + 1, "}]");
                if (!d->pg)
                        th_buf_addf(&sql, "%.*s", (int)n, q + 1);
                else if (*q == '{')
                        th_buf_addf(&sql,
                                    "to_char(%.*s, 'YYYY-MM-DD HH24:MI:SS')",
                                    (int)n, q + 1);
                else
                        th_buf_addf(&sql, "(%.*s)::int", (int)n, q + 1);
                q += n + 1;
        }
        if (d->pg) {
                PGresult *res = PQexec(d->conn, sql.p);
                int i, j;

                if (PQresultStatus(res) != PGRES_TUPLES_OK)
                        fail_msg("%s in %s", PQerrorMessage(d->conn), sql.p);
                for (i = 0; i < PQntuples(res); i++) {
                        struct th_buf b = {0};

                        th_buf_add(&b, "", 0);
                        for (j = 0; j < PQnfields(res); j++)
                                th_buf_addf(&b, "%s%s", j ? "|" : "",
                                            PQgetisnull(res, i, j)
                                                    ? "NULL"
                                                    : PQgetvalue(res, i, j));
                        th_lines_add(out, b.p);
                }
                PQclear(res);
        } else {
                sqlite3_stmt *st = NULL;
                int j;

                if (sqlite3_prepare_v2(d->lite, sql.p, -1, &st, NULL) !=
                    SQLITE_OK)
                        fail_msg("%s in %s", sqlite3_errmsg(d->lite), sql.p);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        struct th_buf b = {0};

                        th_buf_add(&b, "", 0);
                        for (j = 0; j < sqlite3_column_count(st); j++) {
                                const unsigned char *v =
                                        sqlite3_column_text(st, j);

                                th_buf_addf(&b, "%s%s", j ? "|" : "",
                                            v ? (const char *)v : "NULL");
                        }
                        th_lines_add(out, b.p);
                }
                sqlite3_finalize(st);
        }
        th_buf_free(&sql);
}

static long long q_int(struct db *d, const char *q)
{
        struct th_lines l = {0};
        long long v;

        rows(d, q, &l);
        if (l.n != 1)
                fail_msg("%zu rows from %s", l.n, q);
        v = atoll(l.v[0]);
        th_lines_free(&l);
        return v;
}

#define CHECK_INT(bad, d, q, want)                                             \
        do {                                                                   \
                long long got_ = q_int(d, q);                                  \
                if (got_ != (long long)(want)) {                               \
                        fprintf(stderr, "# %s: %lld, expected %lld\n", q,      \
                                got_, (long long)(want));                      \
                        (bad)++;                                               \
                }                                                              \
        } while (0)

/* The topics' times, from how the test wrote them. */
#define LIVE_START  "2019-01-05 00:00:00" /* 30 calls every 10 min */
#define LIVE_N      30
#define OLD_START   "2018-12-20 00:00:00" /* 20 calls every 10 min */
#define OLD_N       20
#define STALE_START "2018-12-25 00:00:00" /* 10 calls every 10 min */
#define STALE_N     10
#define STEP        600

/* Checks is_final of every call_counts row (spec 1h) against final(start,
 * end): returns the number of wrong rows, and the rows in *n. */
typedef int final_fn(int64_t start, int64_t end);

static int check_final(struct db *d, const char *what, final_fn *final,
                       size_t want_rows)
{
        struct th_lines l = {0};
        size_t i;
        int bad = 0;

        rows(d,
             "SELECT {window_start}, {window_end}, crime_type, [is_final] "
             "FROM call_counts WHERE window_spec = '1h' ORDER BY 1, 3",
             &l);
        for (i = 0; i < l.n; i++) {
                char start[TM_TS_SIZE], end[TM_TS_SIZE];
                int got, want;

                if (sscanf(l.v[i], "%19[^|]|%19[^|]|%*[^|]|%d", start, end,
                           &got) != 3)
                        fail_msg("odd row %s", l.v[i]);
                want = final(sec_of(start), sec_of(end));
                if (got != want && bad++ < 10)
                        fprintf(stderr, "# %s: %s: is_final %d, expected %d\n",
                                what, l.v[i], got, want);
        }
        if (l.n != want_rows) {
                fprintf(stderr, "# %s: %zu rows, expected %zu\n", what, l.n,
                        want_rows);
                bad++;
        }
        th_lines_free(&l);
        return bad;
}

static int64_t live_wm(void)
{
        return sec_of(LIVE_START) + (LIVE_N - 1) * STEP; /* lateness 0 */
}

static int64_t old_wm(void)
{
        return sec_of(OLD_START) + (OLD_N - 1) * STEP;
}

/* Only the live topic. */
static int final_live(int64_t start, int64_t end)
{
        (void)start;
        return end <= live_wm();
}

/* Live topic and the finished replay: the replay holds back only windows
 * it has calls in (start <= its last call) that its own watermark has not
 * passed. */
static int final_with_replay(int64_t start, int64_t end)
{
        return end <= live_wm() && !(end > old_wm() && start <= old_wm());
}

/* A stale live topic at 2018-12-25 01:30 holds everything back. */
static int final_with_stale(int64_t start, int64_t end)
{
        return final_with_replay(start, end) &&
               end <= sec_of(STALE_START) + (STALE_N - 1) * STEP;
}

/* FNV-1a, 64 bits, of the file at path: what the fingerprint must be. */
static void fnv_hex(const char *path, char out[17], size_t *size)
{
        struct th_buf b = {0};
        uint64_t h = 14695981039346656037ULL;
        size_t i;

        if (th_read_file(path, &b))
                fail_msg("cannot read %s", path);
        for (i = 0; i < b.len && i < 65536; i++)
                h = (h ^ (unsigned char)b.p[i]) * 1099511628211ULL;
        snprintf(out, 17, "%016llx", (unsigned long long)h);
        *size = b.len < 65536 ? b.len : 65536;
        th_buf_free(&b);
}

static void scenario(struct ot *st, int pg)
{
        char *old = th_asprintf("%s/old-%d.ndjson", st->dir, pg);
        char real[PATH_MAX], fp[17], *want;
        struct db d = {0};
        struct th_run r;
        size_t size;
        int bad = 0;

        d.pg = pg;
        if (pg) {
                if (!st->pg_ok)
                        fail_msg("PostgreSQL did not start");
                if (th_pg_createdb(&st->pg, "offsets", NULL))
                        fail_msg("createdb failed");
                d.target = th_pg_conninfo(&st->pg, "offsets");
        } else {
                d.target = th_asprintf("%s/offsets.db", st->dir);
        }

        /* 1. The live topic alone: 5 windows of 2 crime types. */
        CS_OK(st, &d, "ingest", "--brokers", st->broker.brokers, "--topic",
              "live", "--from-beginning", "--exit-at-end", "--allowed-lateness",
              "0", "-q");
        if (pg) {
                d.conn = th_pg_open(d.target);
                assert_non_null(d.conn);
        } else {
                assert_int_equal(sqlite3_open_v2(d.target, &d.lite,
                                                 SQLITE_OPEN_READONLY, NULL),
                                 SQLITE_OK);
        }
        bad += check_final(&d, "live topic alone", final_live, 10);

        /* 2. A replay of older data, to its end. */
        write_calls(old, "O", OLD_N, sec_of(OLD_START), STEP);
        assert_non_null(realpath(old, real));
        CS_OK(st, &d, "ingest", "--file", old, "--allowed-lateness", "0", "-q");
        bad += check_final(&d, "live topic and a finished replay",
                           final_with_replay, 18);
        /* The rolling view follows the live watermark: the live windows. */
        CHECK_INT(bad, &d, "SELECT COUNT(*) FROM recent_call_counts", 10);
        CHECK_INT(bad, &d,
                  "SELECT COUNT(*) FROM recent_call_counts "
                  "WHERE {window_start} < '2019-01-05'",
                  0);

        /* 3. An old Kafka topic, consumed once, holds finality back... */
        CS_OK(st, &d, "ingest", "--brokers", st->broker.brokers, "--topic",
              "stale", "--from-beginning", "--exit-at-end",
              "--allowed-lateness", "0", "-q");
        bad += check_final(&d, "with a stale Kafka topic", final_with_stale,
                           22);
        /* ...until it is retired; its calls stay. */
        CS_OK(st, &d, "offsets", "forget", "--topic", "stale");
        bad += check_final(&d, "stale topic forgotten", final_with_replay, 22);
        CHECK_INT(bad, &d,
                  "SELECT COUNT(*) FROM calls WHERE kafka_topic = 'stale'",
                  STALE_N);
        CHECK_INT(bad, &d,
                  "SELECT COUNT(*) FROM kafka_offsets WHERE topic = 'stale'",
                  0);

        /* 4. offsets list. */
        cs(st, &d, &r, "offsets", "list", NULL);
        expect(&r, 0, NULL);
        fnv_hex(old, fp, &size);
        want = th_asprintf("topic\tpartition\tnext_offset\twatermark\tlag\t"
                           "file\tfingerprint\tfingerprint_bytes\tat_end\t"
                           "\n"
                           "%s\t0\t%d\t2018-12-20 03:10:00\t-\t%s\t%s\t%zu\t"
                           "yes\t\n"
                           "live\t0\t%d\t2019-01-05 04:50:00\t0\t-\t-\t-\t-\t"
                           "\n",
                           real, OLD_N + 1, real, fp, size, LIVE_N);
        /* updated_at is the time of the run: cut it from each line. */
        {
                struct th_buf got = {0};
                const char *p = r.out.p ? r.out.p : "";

                th_buf_add(&got, "", 0);
                while (*p) {
                        size_t n = strcspn(p, "\n");
                        const char *tab = p + n;

                        while (tab > p && tab[-1] != '\t')
                                tab--;
                        th_buf_add(&got, p, (size_t)(tab - p));
                        th_buf_add(&got, "\n", 1);
                        p += n + (p[n] == '\n');
                }
                if (strcmp(got.p, want)) {
                        fprintf(stderr, "# offsets list:\n%s# expected:\n%s",
                                got.p, want);
                        bad++;
                }
                th_buf_free(&got);
        }
        free(want);
        th_run_free(&r);

        /* 5. reset: by event time (02:00 is the 13th call, offset 12), by
         * offset, to the earliest; a re-read stores nothing twice. */
        cs(st, &d, &r, "offsets", "reset", "--topic", "live", "--to-timestamp",
           "2019-01-05 02:00", NULL);
        expect(&r, 0, NULL);
        if (!r.out.p || strcmp(r.out.p, "partition 0: next offset 12\n")) {
                fprintf(stderr, "# reset said: %s\n", r.out.p ? r.out.p : "");
                bad++;
        }
        th_run_free(&r);
        CHECK_INT(bad, &d,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 'live'",
                  12);
        CS_OK(st, &d, "offsets", "reset", "--topic", "live", "--partition", "0",
              "--to-offset", "5");
        CHECK_INT(bad, &d,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 'live'",
                  5);
        cs(st, &d, &r, "offsets", "reset", "--topic", "live", "--to-timestamp",
           "2019-02-01", NULL);
        expect(&r, 0, NULL);
        if (!r.out.p || !strstr(r.out.p, "no stored call at or after")) {
                fprintf(stderr, "# reset said: %s\n", r.out.p ? r.out.p : "");
                bad++;
        }
        th_run_free(&r);
        CHECK_INT(bad, &d,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 'live'",
                  5);
        CS_OK(st, &d, "offsets", "reset", "--topic", "live", "--to-earliest");
        CHECK_INT(bad, &d,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 'live'",
                  0);
        CS_OK(st, &d, "ingest", "--brokers", st->broker.brokers, "--topic",
              "live", "--exit-at-end", "--allowed-lateness", "0", "-q");
        CHECK_INT(bad, &d,
                  "SELECT next_offset FROM kafka_offsets WHERE topic = 'live'",
                  LIVE_N);
        CHECK_INT(bad, &d,
                  "SELECT calls FROM pipeline_progress WHERE topic = 'live'",
                  LIVE_N);
        CHECK_INT(bad, &d,
                  "SELECT duplicates FROM pipeline_progress "
                  "WHERE topic = 'live'",
                  LIVE_N);
        CHECK_INT(bad, &d, "SELECT COUNT(*) FROM calls",
                  LIVE_N + OLD_N + STALE_N);
        bad += check_final(&d, "after the re-read", final_with_replay, 22);

        /* Wrong uses: exit 2, one line. */
        CS_USAGE(st, &d, "nosuch", "offsets", "reset", "--topic", "nosuch",
                 "--to-earliest");
        CS_USAGE(st, &d, "partition 3", "offsets", "reset", "--topic", "live",
                 "--partition", "3", "--to-earliest");
        CS_USAGE(st, &d, "--to-", "offsets", "reset", "--topic", "live");
        CS_USAGE(st, &d, "--to-", "offsets", "reset", "--topic", "live",
                 "--to-offset", "1", "--to-earliest");
        CS_USAGE(st, &d, "--to-timestamp", "offsets", "reset", "--topic",
                 "live", "--to-timestamp", "yesterday");
        CS_USAGE(st, &d, "nosuch", "offsets", "forget", "--topic", "nosuch");
        CS_USAGE(st, &d, "action", "offsets", "rewind", "--topic", "live");

        /* 6. forget the replay: gone from the list, its calls stay. */
        CS_OK(st, &d, "offsets", "forget", "--topic", real);
        cs(st, &d, &r, "offsets", "list", NULL);
        expect(&r, 0, NULL);
        if (!r.out.p || th_count_lines(r.out.p, r.out.len) != 2 ||
            strstr(r.out.p, real)) {
                fprintf(stderr, "# list after forget:\n%s",
                        r.out.p ? r.out.p : "");
                bad++;
        }
        th_run_free(&r);
        CHECK_INT(bad, &d, "SELECT COUNT(*) FROM replay_sources", 0);
        CHECK_INT(bad, &d, "SELECT COUNT(*) FROM calls",
                  LIVE_N + OLD_N + STALE_N);

        /* A replay's topic is no Kafka topic, nor the other way round. */
        CS_USAGE(st, &d, "no replay fingerprint", "ingest", "--file", old,
                 "--topic", "live", "-q");
        CS_OK(st, &d, "ingest", "--file", old, "--topic", "replayed", "-q");
        CS_USAGE(st, &d, "holds a file replay", "ingest", "--brokers",
                 st->broker.brokers, "--topic", "replayed", "--exit-at-end",
                 "-q");

        if (d.lite)
                sqlite3_close(d.lite);
        if (d.conn)
                PQfinish(d.conn);
        free(d.target);
        free(old);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

static void test_offsets_sqlite(void **state)
{
        scenario(*state, 0);
}

static void test_offsets_pg(void **state)
{
        scenario(*state, 1);
}

/* reset and forget while an ingest holds the SQLite database: refused,
 * naming the ingest, and the stored position untouched; once it ended,
 * forget works and the replay's calls stay. The ingest replays standard
 * input from a FIFO this test keeps open, so it holds the database until
 * the test closes it. */
static void test_forget_while_ingesting(void **state)
{
        struct ot *st = *state;
        char *db = th_asprintf("%s/busy.db", st->dir);
        char *fifo = th_asprintf("%s/busy.fifo", st->dir);
        char *lock = th_asprintf("%s/busy.db-lock", st->dir);
        char *cmd = th_asprintf("exec %s ingest --file - --topic held --db %s "
                                "-q < %s",
                                st->bin, db, fifo);
        struct th_args a = {0};
        struct th_buf calls = {0};
        struct th_run r;
        int64_t deadline = th_now_ms() + 20000;
        pid_t pid;
        int fd, stored = 0;

        assert_int_equal(mkfifo(fifo, 0600), 0);
        th_args_addv(&a, "sh", "-c", cmd, NULL);
        pid = th_spawn(&a, 2, 2);
        th_args_free(&a);
        assert_true(pid > 0);
        fd = open(fifo, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        /* More than the 64 KiB a replay fingerprints before it opens the
         * database: copies of the live calls, duplicates after the first. */
        while (calls.len < 70000)
                assert_int_equal(th_read_file(st->live_file, &calls), 0);
        assert_int_equal(write(fd, calls.p, calls.len), (ssize_t)calls.len);
        th_buf_free(&calls);
        /* Wait until the ingest holds the database: its lock file names
         * its pid once the lock is taken. */
        while (!stored && th_now_ms() < deadline) {
                struct th_buf pidtext = {0};

                stored = th_read_file(lock, &pidtext) == 0 && pidtext.len &&
                         atoi(pidtext.p) == (int)pid;
                th_buf_free(&pidtext);
                if (!stored)
                        th_sleep_ms(50);
        }
        assert_true(stored);
        th_args_addv(&a, st->bin, "offsets", "forget", "--db", db, "--topic",
                     "held", NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        assert_int_equal(r.status, 1);
        assert_non_null(r.err.p);
        assert_non_null(strstr(r.err.p, "stop the ingest first"));
        assert_non_null(strstr(r.err.p, "another callstream ingest"));
        assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
        th_run_free(&r);
        th_args_addv(&a, st->bin, "offsets", "reset", "--db", db, "--topic",
                     "held", "--to-earliest", NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        assert_int_equal(r.status, 1);
        th_run_free(&r);

        /* End of input: the replay commits and exits. */
        close(fd);
        assert_int_equal(th_wait_until(pid, th_now_ms() + 20000), 0);
        th_args_addv(&a, st->bin, "offsets", "forget", "--db", db, "--topic",
                     "held", NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        free(cmd);
        free(fifo);
        free(lock);
        free(db);
}

static int group_teardown(void **state)
{
        struct ot *st = *state;
        int failed = 0;

        if (!st)
                return 0;
        th_pg_stop(&st->pg);
        if (th_broker_stop(&st->broker) < 0)
                failed = 1;
        th_fatal_broker(0, 0);
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->live_file);
        free(st->stale_file);
        free(st);
        *state = NULL;
        return failed ? -1 : 0;
}

static int produce(struct ot *st, const char *topic, const char *file)
{
        struct th_args a = {0};
        struct th_run r;
        int status;

        th_args_addv(&a, st->bin, "produce", "--brokers", st->broker.brokers,
                     "--topic", topic, file, NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        status = r.status;
        if (status)
                th_show_tail("produce stderr", r.err.p ? r.err.p : "",
                             r.err.len);
        th_run_free(&r);
        th_args_free(&a);
        return status ? -1 : 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {
                "--partitions", "1",     "--topic", "live",
                "--topic",      "stale", NULL};
        struct ot *st = calloc(1, sizeof(*st));
        char *data = NULL, *p;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_offsets", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data)) {
                free(data);
                goto fail;
        }
        free(data);
        if (th_tmpdir_make("callstream-offsets", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        st->live_file = th_asprintf("%s/live.ndjson", st->dir);
        st->stale_file = th_asprintf("%s/stale.ndjson", st->dir);
        write_calls(st->live_file, "L", LIVE_N, sec_of(LIVE_START), STEP);
        write_calls(st->stale_file, "S", STALE_N, sec_of(STALE_START), STEP);
        p = th_asprintf("%s/broker.err", st->dir);
        r = th_broker_start(&st->broker, st->bin, broker_args, p);
        free(p);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);
        if (produce(st, "live", st->live_file) ||
            produce(st, "stale", st->stale_file))
                goto fail;
        st->pg_ok = th_pg_start(&st->pg, st->dir, 0) == 0;
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_offsets_sqlite,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_offsets_pg, th_test_teardown),
                cmocka_unit_test_teardown(test_forget_while_ingesting,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("offsets", tests, group_setup,
                                           group_teardown);
}
