/* reliability.c: `make reliability`, faults injected into callstream from
 * outside, each run compared with an uninterrupted run of the same stream.
 *
 * One generated stream (duplicates, changed duplicates, late and malformed
 * messages) is produced into `callstream broker` and ingested once without
 * interruption into SQLite and into PostgreSQL: the baselines. Each fault
 * then runs against a fresh database: kill -9 at random moments, the
 * database restarted, locked, full or read-only, the hostile corpus
 * (tests/data/hostile.tsv, each message with its expected outcome). After
 * the fault the ingest is run to the end of the topic and its tables are
 * compared with the baseline's, row for row: calls, window counts, late
 * records, rejected records and offsets. A row only in the baseline is
 * lost, a row only in the faulted run or a count above the baseline's is
 * double-counted.
 *
 * It prints one table (fault, runs, outcome, lost, double-counted, time to
 * recover or exit) and exits non-zero when any fault lost or doubled
 * anything or ended otherwise than expected. Not part of `make test`: it
 * takes minutes. RELIABILITY_CALLS sets the stream's size (default 100000),
 * RELIABILITY_KILLS the number of kill -9 runs per sink (default 20),
 * RELIABILITY_ONLY=substring runs the faults whose name contains it,
 * E2E_KEEP=1 keeps the folder. Timings are reported, never asserted. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pgutil.h"

#define PARTS     "8"
#define SEED      "2026"
#define WATCHDOG  (80 * 60)
#define RUN_MS    (10 * 60 * 1000)
#define MAX_FAULT 32

struct ctx {
        char dir[PATH_MAX];
        char *bin, *data;
        struct th_broker broker;
        struct th_broker hostile;  /* a partition per hostile message */
        struct th_broker cluster3; /* three brokers, for leader moves */
        char *control, *control3;  /* their --control sockets */
        struct th_pg pg;
        int pg_ok;
        long calls; /* generated calls in the stream */
        int kills;
        unsigned rng;
        int ndb;
        char *stream;     /* the generated NDJSON */
        char *base_lite;  /* baseline SQLite path */
        char *base_pg;    /* baseline PostgreSQL conninfo */
        char *base_c3;    /* baseline SQLite path of the 3-broker cluster */
        const char *only; /* RELIABILITY_ONLY */
};

/* One row of the table. */
struct outcome {
        char fault[64];
        char sink[12];
        int runs;
        char result[96];
        long lost, doubled;
        double seconds; /* to recover (or exit) */
        int ok;
};

static struct outcome table[MAX_FAULT];
static int ntable;

static unsigned rnd(struct ctx *c)
{
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 17;
        c->rng ^= c->rng << 5;
        return c->rng;
}

/*
 * Databases: a fresh one per fault, read back as keyed counts.
 */

/* A fresh database: a SQLite path in the folder, or a new PostgreSQL
 * database's conninfo. The caller frees it. */
static char *fresh_db(struct ctx *c, int pg)
{
        char name[32];

        snprintf(name, sizeof(name), "rel%d", ++c->ndb);
        if (!pg)
                return th_asprintf("%s/%s.db", c->dir, name);
        if (th_pg_createdb(&c->pg, name, NULL) < 0)
                return NULL;
        return th_pg_conninfo(&c->pg, name);
}

static int is_pg(const char *db)
{
        return strstr(db, "dbname=") != NULL;
}

/* What is compared, as "key|...|count" lines: the count is the last
 * column. */
static const char *const state_sql[] = {
        "SELECT 'call', crime_id, original_crime_type_name, disposition, "
        "call_ts, kafka_topic, kafka_partition, kafka_offset, 1 FROM calls",
        "SELECT 'window', window_spec, window_start, crime_type, disposition, "
        "calls FROM window_counts",
        "SELECT 'late', window_spec, window_start, crime_type, disposition, "
        "late_calls FROM window_counts WHERE late_calls <> 0",
        "SELECT 'late_record', crime_id, window_spec, windows_dropped, 1 "
        "FROM late_records",
        "SELECT 'reject', kafka_topic, kafka_partition, kafka_offset, reason, "
        "1 FROM rejected_records",
        "SELECT 'offset', topic, kafka_partition, next_offset, 1 FROM "
        "kafka_offsets",
};

/* Appends the rows of the statements sql[0..n) on db, a PostgreSQL
 * conninfo or a SQLite path (opened read-write when writable, which rolls
 * back a hot journal left by kill -9; a reader waits busy_ms for a lock),
 * to out, unsorted. Returns 0, or -1 when the database cannot be opened or
 * a statement fails (the latter said on stderr). */
static int db_lines(const char *db, int writable, int busy_ms,
                    const char *const *sql, size_t n, struct th_lines *out)
{
        size_t i;
        int r = 0;

        if (is_pg(db)) {
                PGconn *pc = th_pg_open(db);

                if (!pc)
                        return -1;
                for (i = 0; i < n && !r; i++)
                        r = th_pg_lines(pc, sql[i], out);
                PQfinish(pc);
        } else {
                sqlite3 *lite;

                if (sqlite3_open_v2(db, &lite,
                                    writable ? SQLITE_OPEN_READWRITE
                                             : SQLITE_OPEN_READONLY,
                                    NULL)) {
                        sqlite3_close(lite);
                        return -1;
                }
                sqlite3_busy_timeout(lite, busy_ms);
                for (i = 0; i < n && !r; i++)
                        r = th_lite_lines(lite, sql[i], NULL, NULL, out);
                sqlite3_close(lite);
        }
        return r;
}

static int read_state(const char *db, struct th_lines *out)
{
        if (db_lines(db, 1, 60000, state_sql,
                     sizeof(state_sql) / sizeof(state_sql[0]), out) < 0) {
                fprintf(stderr, "# cannot read the state of %s\n", db);
                return -1;
        }
        th_lines_sort(out);
        return 0;
}

/* Splits "key|count" at the last '|'. */
static long long line_count(const char *s, size_t *keylen)
{
        const char *bar = strrchr(s, '|');

        *keylen = bar ? (size_t)(bar - s) : strlen(s);
        return bar ? atoll(bar + 1) : 1;
}

/* Compares db with the baseline: *lost counts rows (or counts) only in
 * the baseline, *doubled those only in db or above the baseline's. */
static int compare(const char *base, const char *db, long *lost, long *doubled)
{
        struct th_lines a = {0}, b = {0};
        size_t i = 0, j = 0, shown = 0;

        *lost = *doubled = 0;
        if (read_state(base, &a) < 0 || read_state(db, &b) < 0) {
                th_lines_free(&a);
                th_lines_free(&b);
                return -1;
        }
        while (i < a.n || j < b.n) {
                size_t ka = 0, kb = 0;
                long long ca = i < a.n ? line_count(a.v[i], &ka) : 0;
                long long cb = j < b.n ? line_count(b.v[j], &kb) : 0;
                int cmp;

                if (i >= a.n)
                        cmp = 1;
                else if (j >= b.n)
                        cmp = -1;
                else {
                        cmp = memcmp(a.v[i], b.v[j], ka < kb ? ka : kb);
                        if (!cmp)
                                cmp = ka < kb ? -1 : ka > kb;
                }
                if (cmp < 0) {
                        *lost += ca;
                        if (shown++ < 5)
                                fprintf(stderr, "#   only in baseline: %s\n",
                                        a.v[i]);
                        i++;
                } else if (cmp > 0) {
                        *doubled += cb;
                        if (shown++ < 5)
                                fprintf(stderr, "#   only after fault: %s\n",
                                        b.v[j]);
                        j++;
                } else {
                        if (ca > cb)
                                *lost += ca - cb;
                        if (cb > ca)
                                *doubled += cb - ca;
                        if (ca != cb && shown++ < 5)
                                fprintf(stderr, "#   %s vs %lld\n", a.v[i], cb);
                        i++;
                        j++;
                }
        }
        th_lines_free(&a);
        th_lines_free(&b);
        return 0;
}

/*
 * Running callstream.
 */

static void ingest_args(struct ctx *c, struct th_args *a, const char *topic,
                        const char *db, int exit_at_end)
{
        th_args_addv(a, c->bin, "ingest", "--brokers",
                     !strcmp(topic, "hostile")    ? c->hostile.brokers
                     : !strcmp(topic, "cluster3") ? c->cluster3.brokers
                                                  : c->broker.brokers,
                     "--topic", strcmp(topic, "cluster3") ? topic : "calls",
                     "--db", db, "--window", "1h", "--window", "1h/15m",
                     "--allowed-lateness", "30m", "--from-beginning",
                     "--batch-max-records", "2000", NULL);
        if (exit_at_end)
                th_args_addv(a, "--exit-at-end", NULL);
}

/* Runs an ingest to the end of the topic. Returns its status. */
static int ingest_to_end(struct ctx *c, const char *topic, const char *db,
                         const char *log)
{
        struct th_args a = {0};
        pid_t pid;
        int rc;

        ingest_args(c, &a, topic, db, 1);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        rc = pid > 0 ? th_wait_until(pid, th_now_ms() + RUN_MS) : -1;
        if (rc != 0) {
                fprintf(stderr, "# ingest into %s ended with %d\n", db, rc);
                th_show_file_tail("ingest log", log);
        }
        return rc;
}

static pid_t ingest_start(struct ctx *c, const char *topic, const char *db,
                          const char *log, int exit_at_end)
{
        struct th_args a = {0};
        pid_t pid;

        ingest_args(c, &a, topic, db, exit_at_end);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        return pid;
}

static char *logpath(struct ctx *c, const char *what)
{
        return th_asprintf("%s/%s.log", c->dir, what);
}

static void add_row(const char *fault, const char *sink, int runs, long lost,
                    long doubled, double seconds, int ok, const char *fmt, ...)
        TH_PRINTF(8, 9);

static void add_row(const char *fault, const char *sink, int runs, long lost,
                    long doubled, double seconds, int ok, const char *fmt, ...)
{
        struct outcome *o = &table[ntable < MAX_FAULT ? ntable++ : ntable - 1];
        va_list ap;

        snprintf(o->fault, sizeof(o->fault), "%s", fault);
        snprintf(o->sink, sizeof(o->sink), "%s", sink);
        o->runs = runs;
        o->lost = lost;
        o->doubled = doubled;
        o->seconds = seconds;
        o->ok = ok && lost == 0 && doubled == 0;
        va_start(ap, fmt);
        vsnprintf(o->result, sizeof(o->result), fmt, ap);
        va_end(ap);
        fprintf(stderr, "# == %s (%s): %s, lost %ld, double-counted %ld\n",
                fault, sink, o->result, lost, doubled);
}

/* Whether the named fault is to run. */
static int wanted(const struct ctx *c, const char *fault, int pg)
{
        if (pg && !c->pg_ok)
                return 0;
        return !c->only || strstr(fault, c->only);
}

/*
 * Faults.
 */

/* Calls committed so far, or -1. */
static long long stored_calls(const char *db)
{
        static const char *const sql[] = {"SELECT COUNT(*) FROM calls"};
        struct th_lines l = {0};
        long long n = -1;

        if (db_lines(db, 0, 10000, sql, 1, &l) == 0 && l.n == 1)
                n = atoll(l.v[0]);
        th_lines_free(&l);
        return n;
}

/* kill -9 at random moments, then one run to the end. */
static void fault_kill9(struct ctx *c, int pg)
{
        const char *sink = pg ? "PostgreSQL" : "SQLite";
        char *db = fresh_db(c, pg), *log = logpath(c, pg ? "kill_pg" : "kill");
        long lost = 0, doubled = 0, total = c->calls;
        int i, mid = 0, early = 0, rc;
        int64_t t0;

        if (!db)
                return;
        for (i = 0; i < c->kills; i++) {
                long long before = stored_calls(db), after;
                pid_t pid = ingest_start(c, "calls", db, log, 0);
                /* Spread the kills over the stream: each run gets to a
                 * random point of its share, then dies at a random moment
                 * (in a batch, in a commit, or between them). */
                long long step = total / (c->kills + 2) + 1;
                long long target =
                        (before < 0 ? 0 : before) + step / 2 + rnd(c) % step;
                int64_t deadline = th_now_ms() + 60000;

                while (stored_calls(db) < target && th_exited(pid) < 0 &&
                       th_now_ms() < deadline)
                        th_sleep_ms(10);
                th_sleep_ms(rnd(c) % 250);
                kill(pid, SIGKILL);
                rc = th_wait_until(pid, th_now_ms() + 30000);
                if (rc != 128 + SIGKILL) {
                        fprintf(stderr, "# kill run %d ended with %d\n", i, rc);
                        th_show_file_tail("ingest log", log);
                        early++;
                }
                after = stored_calls(db);
                mid += after > (before < 0 ? 0 : before) && after < total;
        }
        t0 = th_now_ms();
        rc = ingest_to_end(c, "calls", db, log);
        if (rc == 0 &&
            compare(pg ? c->base_pg : c->base_lite, db, &lost, &doubled) < 0)
                rc = -1;
        add_row("kill -9 at random moments", sink, c->kills + 1, lost, doubled,
                (double)(th_now_ms() - t0) / 1000.0, rc == 0 && !early,
                rc == 0 ? "%d kills (%d mid-stream), resumed exactly"
                        : "final run failed (%d)",
                rc == 0 ? c->kills : rc, mid);
        free(db);
        free(log);
}

/* PostgreSQL restarted under a running ingest, in a shutdown mode. */
static void fault_pg_restart(struct ctx *c, const char *mode)
{
        char *db = fresh_db(c, 1), *log = logpath(c, mode);
        char fault[64];
        long lost = 0, doubled = 0;
        int64_t back;
        pid_t pid;
        int rc, rs;

        if (!db)
                return;
        snprintf(fault, sizeof(fault), "PostgreSQL restarted (%s)", mode);
        pid = ingest_start(c, "calls", db, log, 1);
        /* Mid-stream: some batches are in, more to come. */
        while (stored_calls(db) < c->calls / 10 && th_exited(pid) < 0)
                th_sleep_ms(20);
        rs = th_pg_ctl(&c->pg, mode, "restart");
        back = th_now_ms();
        rc = th_wait_until(pid, th_now_ms() + RUN_MS);
        if (rc != 0)
                th_show_file_tail("ingest log", log);
        if (rc == 0 && compare(c->base_pg, db, &lost, &doubled) < 0)
                rc = -1;
        add_row(fault, "PostgreSQL", 1, lost, doubled,
                (double)(th_now_ms() - back) / 1000.0, rc == 0 && rs == 0,
                rc == 0 ? "reconnected, finished, exit 0"
                        : "ingest ended with %d",
                rc);
        free(db);
        free(log);
}

/* Another connection holds SQLite's write lock for hold_s seconds under a
 * running ingest. */
static void fault_sqlite_lock(struct ctx *c, int hold_s)
{
        char *db = fresh_db(c, 0), *log = logpath(c, "lock");
        char fault[64];
        long lost = 0, doubled = 0;
        sqlite3 *lite = NULL;
        int64_t released;
        pid_t pid;
        int rc;

        snprintf(fault, sizeof(fault), "SQLite locked %d s", hold_s);
        pid = ingest_start(c, "calls", db, log, 1);
        while (stored_calls(db) < c->calls / 10 && th_exited(pid) < 0)
                th_sleep_ms(20);
        if (sqlite3_open(db, &lite) == SQLITE_OK) {
                sqlite3_busy_timeout(lite, 60000);
                if (sqlite3_exec(lite, "BEGIN EXCLUSIVE", NULL, NULL, NULL))
                        fprintf(stderr, "# lock: %s\n", sqlite3_errmsg(lite));
        }
        th_sleep_ms(hold_s * 1000LL);
        sqlite3_exec(lite, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(lite);
        released = th_now_ms();
        rc = th_wait_until(pid, th_now_ms() + RUN_MS);
        if (rc != 0)
                th_show_file_tail("ingest log", log);
        if (rc == 0 && compare(c->base_lite, db, &lost, &doubled) < 0)
                rc = -1;
        add_row(fault, "SQLite", 1, lost, doubled,
                (double)(th_now_ms() - released) / 1000.0, rc == 0,
                rc == 0 ? "waited for the lock, finished, exit 0"
                        : "ingest ended with %d",
                rc);
        free(db);
        free(log);
}

/* The database's file system fills up: the ingest stops with an error and
 * nothing torn; with room again, a rerun finishes exactly. */
static void fault_disk_full(struct ctx *c, const char *size)
{
        char *mnt = th_asprintf("%s/full%s", c->dir, size);
        char *db = th_asprintf("%s/calls.db", mnt), *log = logpath(c, "full");
        char fault[64], opts[64];
        long lost = 0, doubled = 0;
        int64_t t0;
        int rc, rerun = -1;

        snprintf(fault, sizeof(fault), "disk full at %s", size);
        snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
        if (mkdir(mnt, 0700) || mount("tmpfs", mnt, "tmpfs", 0, opts)) {
                add_row(fault, "SQLite", 0, 0, 0, 0, 1,
                        "not run: cannot mount tmpfs (%s)", strerror(errno));
                goto out;
        }
        t0 = th_now_ms();
        rc = ingest_to_end(c, "calls", db, log);
        /* A full disk is not transient: the ingest stops, saying why. */
        if (rc != 1) {
                add_row(fault, "SQLite", 1, 0, 0, 0, 0,
                        "expected exit 1 on a full disk, got %d", rc);
                umount2(mnt, MNT_DETACH);
                goto out;
        }
        {
                double exited = (double)(th_now_ms() - t0) / 1000.0;
                struct th_buf err = {0};

                /* The one-line error names the cause. */
                if (th_read_file(log, &err) < 0 || !err.p ||
                    !strstr(err.p, "full")) {
                        add_row(fault, "SQLite", 1, 0, 0, exited, 0,
                                "exit 1 without saying the disk is full");
                        th_buf_free(&err);
                        umount2(mnt, MNT_DETACH);
                        goto out;
                }
                th_buf_free(&err);

                if (mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=1G") == 0)
                        rerun = ingest_to_end(c, "calls", db, log);
                if (rerun == 0 &&
                    compare(c->base_lite, db, &lost, &doubled) < 0)
                        rerun = -1;
                add_row(fault, "SQLite", 2, lost, doubled, exited, rerun == 0,
                        rerun == 0 ? "exit 1 naming the cause; rerun with room "
                                     "finished exactly"
                                   : "rerun ended with %d",
                        rerun);
        }
        umount2(mnt, MNT_DETACH);
out:
        free(mnt);
        free(db);
        free(log);
}

/* Sends one control command (words separated by spaces) to a broker's
 * --control socket. Returns the exit status (0: "ok"). */
static int broker_ctl(struct ctx *c, const char *sock, const char *line)
{
        struct th_args a = {0};
        struct th_run r = {0};
        char *words = th_strdup(line), *w, *save = NULL;
        int rc;

        th_args_addv(&a, c->bin, "broker", "--control", sock, NULL);
        for (w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
                th_args_add(&a, w);
        th_run_args(&a, 30000, &r);
        rc = r.status;
        if (rc) {
                fprintf(stderr, "# broker control '%s': status %d\n", line, rc);
                th_show_tail("its output", r.out.p ? r.out.p : "", r.out.len);
                th_show_tail("its stderr", r.err.p ? r.err.p : "", r.err.len);
        }
        th_run_free(&r);
        th_args_free(&a);
        free(words);
        return rc;
}

/* Waits until a tenth of the stream is stored, or the ingest ended. */
static void wait_mid_stream(struct ctx *c, const char *db, pid_t pid)
{
        while (stored_calls(db) < c->calls / 10 && th_exited(pid) < 0)
                th_sleep_ms(20);
}

/* Ends an ingest that should finish by itself, compares its database with
 * the baseline and adds the row. since: when the fault ended. */
static void finish(struct ctx *c, const char *fault, int pg, const char *db,
                   const char *log, pid_t pid, int64_t since, int fault_ok,
                   const char *what)
{
        long lost = 0, doubled = 0;
        int rc = th_wait_until(pid, th_now_ms() + RUN_MS);

        if (rc != 0)
                th_show_file_tail("ingest log", log);
        if (rc == 0 &&
            compare(pg ? c->base_pg : c->base_lite, db, &lost, &doubled) < 0)
                rc = -1;
        if (rc == 0)
                add_row(fault, pg ? "PostgreSQL" : "SQLite", 1, lost, doubled,
                        (double)(th_now_ms() - since) / 1000.0, fault_ok, "%s",
                        what);
        else
                add_row(fault, pg ? "PostgreSQL" : "SQLite", 1, lost, doubled,
                        (double)(th_now_ms() - since) / 1000.0, 0,
                        "ingest ended with %d", rc);
}

/* The broker goes down mid-stream (its connections closed, new ones
 * refused) and comes back hold_s later. */
static void fault_broker_down(struct ctx *c, int pg, int hold_s, int at_start)
{
        char *db = fresh_db(c, pg), *log = logpath(c, "broker_down");
        char fault[64], secs[16];
        pid_t pid;
        int ok = 1;

        if (!db)
                return;
        snprintf(fault, sizeof(fault), "broker down %d s %s", hold_s,
                 at_start ? "at start" : "mid-stream");
        snprintf(secs, sizeof(secs), "%d", hold_s);
        if (at_start)
                ok &= broker_ctl(c, c->control, "down -1") == 0;
        pid = ingest_start(c, "calls", db, log, 1);
        if (!at_start) {
                wait_mid_stream(c, db, pid);
                ok &= broker_ctl(c, c->control, "down -1") == 0;
        }
        th_sleep_ms(hold_s * 1000LL);
        ok &= broker_ctl(c, c->control, "up -1") == 0;
        finish(c, fault, pg, db, log, pid, th_now_ms(), ok,
               "waited for the broker, finished, exit 0");
        free(db);
        free(log);
}

/* Fetch requests fail (a retriable error, then a transport error) and
 * the broker answers slowly: librdkafka retries, nothing to see. */
static void fault_broker_errors(struct ctx *c)
{
        char *db = fresh_db(c, 0), *log = logpath(c, "fetch_errors");
        pid_t pid;
        int ok = 1;

        pid = ingest_start(c, "calls", db, log, 1);
        wait_mid_stream(c, db, pid);
        ok &= broker_ctl(c, c->control, "rtt -1 300") == 0;
        ok &= broker_ctl(c, c->control,
                         "error Fetch NOT_LEADER_FOR_PARTITION 20") == 0;
        ok &= broker_ctl(c, c->control,
                         "error OffsetCommit REQUEST_TIMED_OUT 5") == 0;
        th_sleep_ms(3000);
        ok &= broker_ctl(c, c->control, "rtt -1 0") == 0;
        finish(c, "Fetch and OffsetCommit errors, 300 ms latency", 0, db, log,
               pid, th_now_ms(), ok, "retried by librdkafka, exit 0");
        free(db);
        free(log);
}

/* In a 3-broker cluster, partition leaders move mid-stream. */
static void fault_leader_moves(struct ctx *c)
{
        char *db = fresh_db(c, 0), *log = logpath(c, "leaders");
        pid_t pid;
        int ok = 1, p;

        pid = ingest_start(c, "cluster3", db, log, 1);
        wait_mid_stream(c, db, pid);
        for (p = 0; p < atoi(PARTS); p++) {
                char cmd[64];

                snprintf(cmd, sizeof(cmd), "leader calls %d %d", p,
                         1 + (p + 1) % 3);
                ok &= broker_ctl(c, c->control3, cmd) == 0;
        }
        {
                long lost = 0, doubled = 0;
                int64_t t0 = th_now_ms();
                int rc = th_wait_until(pid, th_now_ms() + RUN_MS);

                if (rc != 0)
                        th_show_file_tail("ingest log", log);
                if (rc == 0 && compare(c->base_c3, db, &lost, &doubled) < 0)
                        rc = -1;
                add_row("partition leaders moved (3 brokers)", "SQLite", 1,
                        lost, doubled, (double)(th_now_ms() - t0) / 1000.0,
                        rc == 0 && ok,
                        rc == 0 ? "followed the leaders, exit 0"
                                : "ingest ended with %d",
                        rc);
        }
        free(db);
        free(log);
}

/* The ingest's PostgreSQL backend frozen (SIGSTOP) for hold_s, then
 * thawed. */
static pid_t ingest_backend(const char *db)
{
        static const char *const sql[] = {
                "SELECT pid FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid() AND "
                "backend_type = 'client backend' ORDER BY backend_start "
                "LIMIT 1"};
        struct th_lines l = {0};
        pid_t pid = -1;

        if (db_lines(db, 0, 0, sql, 1, &l) == 0 && l.n == 1)
                pid = (pid_t)atol(l.v[0]);
        th_lines_free(&l);
        return pid;
}

static void fault_pg_frozen(struct ctx *c, int hold_s, int sigterm)
{
        char *db = fresh_db(c, 1), *log = logpath(c, "frozen");
        char fault[64];
        pid_t pid, backend;
        int64_t t0;
        int rc;

        if (!db)
                return;
        snprintf(fault, sizeof(fault), "PostgreSQL backend frozen %d s%s",
                 hold_s, sigterm ? ", SIGTERM" : "");
        pid = ingest_start(c, "calls", db, log, 1);
        wait_mid_stream(c, db, pid);
        backend = ingest_backend(db);
        if (backend <= 0 || kill(backend, SIGSTOP)) {
                add_row(fault, "PostgreSQL", 0, 0, 0, 0, 0,
                        "no backend of the ingest found");
                th_wait_until(pid, th_now_ms() + RUN_MS);
                goto out;
        }
        if (sigterm) {
                /* The stop bound: the ingest exits while the server
                 * hangs; a rerun after the thaw finishes exactly. */
                th_sleep_ms(1000);
                t0 = th_now_ms();
                kill(pid, SIGTERM);
                rc = th_wait_until(pid, th_now_ms() + 60000);
                kill(backend, SIGCONT);
                if (rc < 0 || rc >= 128) {
                        add_row(fault, "PostgreSQL", 1, 0, 0,
                                (double)(th_now_ms() - t0) / 1000.0, 0,
                                "SIGTERM did not end the ingest (%d)", rc);
                        goto out;
                }
                {
                        double exited = (double)(th_now_ms() - t0) / 1000.0;
                        long lost = 0, doubled = 0;

                        rc = ingest_to_end(c, "calls", db, log);
                        if (rc == 0 &&
                            compare(c->base_pg, db, &lost, &doubled) < 0)
                                rc = -1;
                        add_row(fault, "PostgreSQL", 2, lost, doubled, exited,
                                rc == 0,
                                rc == 0 ? "exited on SIGTERM while the server "
                                          "hung; rerun finished exactly"
                                        : "rerun ended with %d",
                                rc);
                }
                goto out;
        }
        th_sleep_ms(hold_s * 1000LL);
        kill(backend, SIGCONT);
        finish(c, fault, 1, db, log, pid, th_now_ms(), 1,
               "carried on after the thaw, exit 0");
out:
        free(db);
        free(log);
}

/* Lock and statement timeouts set on the database, and a lock held on
 * window_counts by another session for hold_s. */
static void fault_pg_timeouts(struct ctx *c, int hold_s)
{
        char *db = fresh_db(c, 1), *log = logpath(c, "timeouts");
        PGconn *admin = NULL, *locker = NULL;
        char sql[256], fault[64];
        pid_t pid;
        int64_t t0;

        if (!db)
                return;
        snprintf(fault, sizeof(fault),
                 "PostgreSQL lock_timeout, statement_timeout, lock held %d s",
                 hold_s);
        admin = th_pg_open(db);
        if (!admin)
                goto out;
        snprintf(sql, sizeof(sql),
                 "ALTER DATABASE %s SET lock_timeout = '200ms'; ALTER "
                 "DATABASE %s SET statement_timeout = '2s'",
                 PQdb(admin), PQdb(admin));
        PQclear(PQexec(admin, sql));
        pid = ingest_start(c, "calls", db, log, 1);
        wait_mid_stream(c, db, pid);
        locker = th_pg_open(db);
        if (locker) {
                PQclear(PQexec(locker, "SET lock_timeout = 0; BEGIN; LOCK "
                                       "TABLE window_counts IN ACCESS "
                                       "EXCLUSIVE MODE"));
                th_sleep_ms(hold_s * 1000LL);
                PQclear(PQexec(locker, "COMMIT"));
                PQfinish(locker);
        }
        t0 = th_now_ms();
        finish(c, fault, 1, db, log, pid, t0, locker != NULL,
               "rolled back, retried, exit 0");
        PQfinish(admin);
out:
        free(db);
        free(log);
}

/* finish() for an ingest started as a service (no --exit-at-end) once its
 * fault ended: it gets to nine tenths of the stream, a few seconds for the
 * rest, then SIGTERM, which commits what it holds and exits 0. */
static void finish_service(struct ctx *c, const char *fault, int pg,
                           const char *db, const char *log, pid_t pid,
                           int fault_ok, const char *what)
{
        int64_t back = th_now_ms(), deadline = back + RUN_MS;

        while (stored_calls(db) < c->calls * 9 / 10 && th_exited(pid) < 0 &&
               th_now_ms() < deadline)
                th_sleep_ms(200);
        th_sleep_ms(3000);
        kill(pid, SIGTERM);
        finish(c, fault, pg, db, log, pid, back, fault_ok, what);
}

/* PostgreSQL stopped when the ingest starts, started hold_s later. */
static void fault_pg_down_at_start(struct ctx *c, int hold_s)
{
        char *db = fresh_db(c, 1), *log = logpath(c, "pg_down");
        pid_t pid;
        int ok;

        if (!db)
                return;
        ok = th_pg_ctl(&c->pg, "fast", "stop") == 0;
        pid = ingest_start(c, "calls", db, log, 0);
        th_sleep_ms(hold_s * 1000LL);
        ok &= th_pg_ctl(&c->pg, NULL, "start") == 0;
        finish_service(c, "PostgreSQL down at start", 1, db, log, pid, ok,
                       "waited for the server, finished, exit 0");
        free(db);
        free(log);
}

/* Another connection holds the write lock when the ingest starts. */
static void fault_sqlite_locked_at_start(struct ctx *c, int hold_s)
{
        char *db = fresh_db(c, 0), *log = logpath(c, "locked_start");
        sqlite3 *lite = NULL;
        pid_t pid;
        int ok;

        ok = sqlite3_open(db, &lite) == SQLITE_OK &&
             sqlite3_exec(lite, "PRAGMA journal_mode = WAL; BEGIN EXCLUSIVE",
                          NULL, NULL, NULL) == SQLITE_OK;
        pid = ingest_start(c, "calls", db, log, 0);
        th_sleep_ms(hold_s * 1000LL);
        sqlite3_exec(lite, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(lite);
        finish_service(c, "SQLite locked at start", 0, db, log, pid, ok,
                       "waited for the lock, finished, exit 0");
        free(db);
        free(log);
}

/* The database file, then its folder, read-only for the ingest's user
 * (nobody: root ignores file modes): one line naming the cause, nothing
 * left behind; writable again, a rerun finishes exactly. */
static void fault_read_only(struct ctx *c)
{
        char *dir = th_asprintf("%s/ro", c->dir);
        char *db = th_asprintf("%s/calls.db", dir), *log = logpath(c, "ro");
        long lost = 0, doubled = 0;
        int step, rc = 0, ok = 1, runs = 0;
        pid_t pid;

        if (mkdir(dir, 0755) || chown(dir, 65534, 65534)) {
                add_row("read-only database", "SQLite", 0, 0, 0, 0, 1,
                        "not run: cannot give a folder to nobody");
                goto out;
        }
        /* Part of the stream, stopped cleanly. */
        {
                struct th_args a = {0};

                th_args_addv(&a, "setpriv", "--reuid=65534", "--regid=65534",
                             "--clear-groups", "--", NULL);
                ingest_args(c, &a, "calls", db, 0);
                pid = th_spawn_logged(&a, log);
                th_args_free(&a);
                wait_mid_stream(c, db, pid);
                kill(pid, SIGTERM);
                rc = th_wait_until(pid, th_now_ms() + 60000);
                runs++;
        }
        for (step = 0; step < 2 && rc == 0 && ok; step++) {
                struct th_args a = {0};
                struct th_run r = {0};
                struct stat sb;
                char *wal = th_asprintf("%s-wal", db);

                chmod(step ? dir : db, step ? 0555 : 0444);
                th_args_addv(&a, "setpriv", "--reuid=65534", "--regid=65534",
                             "--clear-groups", "--", NULL);
                ingest_args(c, &a, "calls", db, 1);
                th_run_args(&a, RUN_MS, &r);
                th_args_free(&a);
                runs++;
                ok = r.status == 1 && r.err.p &&
                     th_count_lines(r.err.p, r.err.len) == 1 &&
                     stat(wal, &sb) != 0;
                if (!ok)
                        th_show_tail("read-only ingest", r.err.p, r.err.len);
                th_run_free(&r);
                chmod(step ? dir : db, step ? 0755 : 0644);
                free(wal);
        }
        if (rc == 0 && ok) {
                struct th_args a = {0};

                th_args_addv(&a, "setpriv", "--reuid=65534", "--regid=65534",
                             "--clear-groups", "--", NULL);
                ingest_args(c, &a, "calls", db, 1);
                pid = th_spawn_logged(&a, log);
                th_args_free(&a);
                rc = th_wait_until(pid, th_now_ms() + RUN_MS);
                runs++;
                if (rc == 0 && compare(c->base_lite, db, &lost, &doubled) < 0)
                        rc = -1;
        }
        add_row("read-only database, then folder", "SQLite", runs, lost,
                doubled, 0, rc == 0 && ok,
                rc == 0 && ok ? "exit 1 naming the cause, no -wal left; "
                                "rerun finished exactly"
                              : "failed (status %d, see above)",
                rc);
out:
        free(dir);
        free(db);
        free(log);
}

/*
 * The hostile corpus.
 */

struct hostile {
        char *name, *expect;
        struct th_buf payload;
        int partition;
        int64_t offset;
};

/* Decodes \\, \t, \n and \xHH in place of s into out. */
static void unescape(const char *s, struct th_buf *out)
{
        while (*s) {
                char ch = *s++;

                if (ch == '\\' && *s) {
                        char e = *s++;

                        if (e == 't')
                                ch = '\t';
                        else if (e == 'n')
                                ch = '\n';
                        else if (e == 'x' && s[0] && s[1]) {
                                char hex[3] = {s[0], s[1], 0};

                                ch = (char)strtol(hex, NULL, 16);
                                s += 2;
                        } else
                                ch = e;
                }
                th_buf_add(out, &ch, 1);
        }
}

static void generate_payload(const char *spec, struct th_buf *out)
{
        static const char head[] =
                "\"original_crime_type_name\":\"Passing Call\","
                "\"call_date_time\":\"2018-12-31T23:00:00\"";
        char id[32];
        long n = 0, i;

        if (sscanf(spec, "@bigfield:%31[^:]:%ld", id, &n) == 2) {
                th_buf_addf(out, "{\"crime_id\":\"%s\",%s,\"address\":\"", id,
                            head);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "a", 1);
                th_buf_add(out, "\"}", 2);
        } else if (sscanf(spec, "@digits:%ld", &n) == 1) {
                th_buf_add(out, "{\"crime_id\":", 12);
                for (i = 0; i < n; i++)
                        th_buf_add(out, i ? "7" : "1", 1);
                th_buf_addf(out, ",%s}", head);
        } else if (sscanf(spec, "@nestedobj:%31[^:]:%ld", id, &n) == 2) {
                th_buf_addf(out, "{\"crime_id\":\"%s\",%s,\"x\":", id, head);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "{\"a\":", 5);
                th_buf_add(out, "1", 1);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "}", 1);
                th_buf_add(out, "}", 1);
        } else if (sscanf(spec, "@nested:%31[^:]:%ld", id, &n) == 2) {
                th_buf_addf(out, "{\"crime_id\":\"%s\",%s,\"x\":", id, head);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "[", 1);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "]", 1);
                th_buf_add(out, "}", 1);
        } else {
                fprintf(stderr, "# hostile.tsv: unknown payload %s\n", spec);
        }
}

static int hostile_load(struct ctx *c, struct hostile **out, int *n)
{
        char *path = th_asprintf("%s/hostile.tsv", c->data);
        struct th_buf text = {0};
        struct hostile *h = NULL;
        char *line, *save = NULL;
        int k = 0;

        if (th_read_file(path, &text) < 0) {
                fprintf(stderr, "# cannot read %s\n", path);
                free(path);
                return -1;
        }
        free(path);
        for (line = strtok_r(text.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *t1 = strchr(line, '\t'),
                     *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
                struct th_buf e = {0};

                if (line[0] == '#' || !t2)
                        continue;
                *t1 = *t2 = 0;
                h = th_realloc(h, (size_t)(k + 1) * sizeof(*h));
                memset(&h[k], 0, sizeof(*h));
                h[k].name = th_strdup(line);
                unescape(t1 + 1, &e);
                h[k].expect = e.p ? e.p : th_strdup("");
                if (t2[1] == '@')
                        generate_payload(t2 + 1, &h[k].payload);
                else
                        unescape(t2 + 1, &h[k].payload);
                k++;
        }
        th_buf_free(&text);
        /* A later copy goes after its first copy, in its partition, as a
         * producer keyed by crime_id would send it; any other message gets
         * a partition of its own, at offset 0. */
        {
                int64_t *next = th_malloc((size_t)(k + 1) * sizeof(*next));
                int i, j, parts = 0;

                for (i = 0; i < k; i++) {
                        int first = -1;

                        for (j = 0; j < i && !strncmp(h[i].expect, "dup:", 4);
                             j++)
                                if (!strncmp(h[j].expect, "call:", 5) &&
                                    !strcmp(h[j].expect + 5, h[i].expect + 4))
                                        first = j;
                        if (first < 0) {
                                h[i].partition = parts++;
                                next[h[i].partition] = 0;
                        } else {
                                h[i].partition = h[first].partition;
                                next[h[i].partition]++;
                        }
                        h[i].offset = next[h[i].partition];
                }
                free(next);
        }
        *out = h;
        *n = k;
        return 0;
}

/* Produces message i of the corpus into partition i of topic hostile on
 * the corpus' own broker, with kcat. */
static int hostile_produce(struct ctx *c, struct hostile *h, int n)
{
        int i, rc = 0;

        for (i = 0; i < n && !rc; i++) {
                char *p = th_asprintf("%s/hostile-%03d", c->dir, i);
                char part[16];
                struct th_args a = {0};
                struct th_run r = {0};
                FILE *f = fopen(p, "wb");

                if (!f || (h[i].payload.len &&
                           fwrite(h[i].payload.p, 1, h[i].payload.len, f) !=
                                   h[i].payload.len)) {
                        fprintf(stderr, "# %s: %s\n", p, strerror(errno));
                        rc = -1;
                }
                if (f)
                        fclose(f);
                snprintf(part, sizeof(part), "%d", h[i].partition);
                if (h[i].payload.len) {
                        th_args_addv(&a, "kcat", "-P", "-b", c->hostile.brokers,
                                     "-t", "hostile", "-p", part, "-X",
                                     "message.max.bytes=16000000", p, NULL);
                } else {
                        /* kcat skips an empty file: an empty value after a
                         * key, from standard input. */
                        char *cmd = th_asprintf(
                                "printf 'k:\\n' | kcat -P -b %s -t hostile "
                                "-p %s -K:",
                                c->hostile.brokers, part);

                        th_args_addv(&a, "sh", "-c", cmd, NULL);
                        free(cmd);
                }
                if (!rc) {
                        th_run_args(&a, 120000, &r);
                        rc = r.status;
                        if (rc)
                                th_show_tail("kcat stderr", r.err.p, r.err.len);
                }
                th_run_free(&r);
                th_args_free(&a);
                free(p);
        }
        return rc;
}

/* The outcome of message i: "call:ID", "reject:REASON" or "none". */
static char *hostile_outcome(const char *db, const struct hostile *m)
{
        struct th_lines l = {0};
        char sql[256];
        const char *const sqls[] = {sql};
        char *res = NULL;
        int r;

        snprintf(sql, sizeof(sql),
                 "SELECT 'reject:' || reason FROM rejected_records WHERE "
                 "kafka_topic = 'hostile' AND kafka_partition = %d AND "
                 "kafka_offset = %lld UNION ALL SELECT 'call:' || crime_id "
                 "FROM calls WHERE kafka_topic = 'hostile' AND "
                 "kafka_partition = %d AND kafka_offset = %lld",
                 m->partition, (long long)m->offset, m->partition,
                 (long long)m->offset);
        r = db_lines(db, 0, 0, sqls, 1, &l);
        if (r == 0 && l.n == 1) {
                /* Typed text is quoted: 'reject:...'. */
                size_t len = strlen(l.v[0]);

                res = len >= 2 && l.v[0][0] == '\''
                              ? th_strndup(l.v[0] + 1, len - 2)
                              : th_strdup(l.v[0]);
        } else if (r == 0 && l.n == 0) {
                res = th_strdup("none");
        } else {
                res = th_strdup("error");
        }
        th_lines_free(&l);
        return res;
}

/* Whether message m's outcome got meets its expectation. Text from the
 * database is typed and escaped (th_put_quoted()), so the expectation is
 * escaped alike before comparing. */
static int outcome_ok(const struct hostile *h, int i, const char *got,
                      const char *db)
{
        const char *expect = h[i].expect;
        struct th_buf want = {0};
        size_t n;
        int ok, j;

        if (!strncmp(expect, "dup:", 4)) {
                /* Neither stored at its offset nor rejected, while the
                 * first copy is stored. */
                char *first = NULL;

                for (j = 0; j < i; j++)
                        if (!strncmp(h[j].expect, "call:", 5) &&
                            !strcmp(h[j].expect + 5, expect + 4))
                                break;
                if (j == i || strcmp(got, "none"))
                        return 0;
                first = hostile_outcome(db, &h[j]);
                ok = !strcmp(first, h[j].expect);
                free(first);
                return ok;
        }
        th_put_quoted(&want, (const unsigned char *)expect, strlen(expect));
        n = want.len - 2; /* without the quotes */
        if (!strncmp(expect, "call:", 5) && expect[strlen(expect) - 1] != '*')
                ok = n == strlen(got) && !memcmp(want.p + 1, got, n);
        else if (!strncmp(expect, "call:", 5))
                ok = !strncmp(got, want.p + 1, n - 1);
        else
                ok = !strncmp(got, want.p + 1, n);
        th_buf_free(&want);
        return ok;
}

static void fault_hostile(struct ctx *c, struct hostile *h, int n, int pg)
{
        char *db = fresh_db(c, pg), *log = logpath(c, "hostile");
        int i, wrong = 0, none = 0, rc;
        int64_t t0 = th_now_ms();

        if (!db)
                return;
        rc = ingest_to_end(c, "hostile", db, log);
        for (i = 0; rc == 0 && i < n; i++) {
                char *got = hostile_outcome(db, &h[i]);

                if (!strcmp(got, "none") && strncmp(h[i].expect, "dup:", 4))
                        none++;
                if (!outcome_ok(h, i, got, db)) {
                        wrong++;
                        fprintf(stderr,
                                "# hostile %s: expected %s, got %.200s\n",
                                h[i].name, h[i].expect, got);
                }
                free(got);
        }
        add_row("hostile messages", pg ? "PostgreSQL" : "SQLite", n, none, 0,
                (double)(th_now_ms() - t0) / 1000.0, rc == 0 && wrong == 0,
                rc == 0 ? "%d of %d stored or rejected as expected"
                        : "ingest ended with %d",
                rc == 0 ? n - wrong : rc, n);
        free(db);
        free(log);
}

/*
 * Set-up and the table.
 */

static int setup(struct ctx *c)
{
        char *ctl, *ctl3;
        static const char *const hostile_args[] = {"--partitions", "64",
                                                   "--topic", "hostile", NULL};
        char *berr;
        struct th_args a = {0};
        struct th_run r = {0};
        char count[32];
        const char *env;
        int i;

        if (th_find_bin_data(&c->bin, &c->data) < 0 ||
            th_tmpdir_make("callstream-reliability", c->dir, sizeof(c->dir)))
                return -1;
        th_fatal_dir(c->dir);
        ctl = th_asprintf("%s/broker.sock", c->dir);
        ctl3 = th_asprintf("%s/cluster3.sock", c->dir);
        const char *const broker_args[] = {
                "--partitions", PARTS, "--topic", "calls",
                "--control",    ctl,   NULL};
        const char *const cluster_args[] = {"--partitions",
                                            PARTS,
                                            "--topic",
                                            "calls",
                                            "--brokers-count",
                                            "3",
                                            "--control",
                                            ctl3,
                                            NULL};
        env = getenv("RELIABILITY_CALLS");
        c->calls = env ? atol(env) : 100000;
        env = getenv("RELIABILITY_KILLS");
        c->kills = env ? atoi(env) : 20;
        c->only = getenv("RELIABILITY_ONLY");
        c->rng = 2463534242u;
        berr = logpath(c, "broker");
        if (th_broker_start(&c->broker, c->bin, broker_args, berr) < 0)
                return -1;
        th_fatal_broker(0, c->broker.pid);
        free(berr);
        berr = logpath(c, "broker-hostile");
        if (th_broker_start(&c->hostile, c->bin, hostile_args, berr) < 0)
                return -1;
        th_fatal_broker(1, c->hostile.pid);
        free(berr);
        berr = logpath(c, "cluster3");
        if (th_broker_start(&c->cluster3, c->bin, cluster_args, berr) < 0)
                return -1;
        th_fatal_broker(2, c->cluster3.pid);
        free(berr);
        c->control = ctl;
        c->control3 = ctl3;

        c->stream = th_asprintf("%s/calls.ndjson", c->dir);
        snprintf(count, sizeof(count), "%ld", c->calls);
        th_args_addv(&a, c->bin, "generate", "--count", count, "--seed", SEED,
                     "--duplicates", "0.05", "--changed-duplicates", "0.01",
                     "--out-of-order", "0.05", "--malformed", "0.01",
                     "--output", c->stream, NULL);
        th_run_args(&a, RUN_MS, &r);
        th_args_free(&a);
        if (r.status) {
                th_show_tail("generate", r.err.p, r.err.len);
                th_run_free(&r);
                return -1;
        }
        th_run_free(&r);
        for (i = 0; i < 2; i++) {
                th_args_addv(&a, c->bin, "produce", "--brokers",
                             i ? c->cluster3.brokers : c->broker.brokers,
                             "--topic", "calls", c->stream, NULL);
                th_run_args(&a, RUN_MS, &r);
                th_args_free(&a);
                if (r.status) {
                        th_show_tail("produce", r.err.p, r.err.len);
                        th_run_free(&r);
                        return -1;
                }
                th_run_free(&r);
        }

        c->pg_ok = th_pg_start(&c->pg, c->dir, 0) == 0;
        if (!c->pg_ok)
                fprintf(stderr, "# no PostgreSQL: its faults are not run\n");
        return 0;
}

static int baselines(struct ctx *c)
{
        char *log = logpath(c, "baseline");
        int rc;

        c->base_lite = fresh_db(c, 0);
        rc = ingest_to_end(c, "calls", c->base_lite, log);
        /* The cluster's topic holds the same calls, in an order of its
         * own producer's making: it gets a baseline of its own. */
        c->base_c3 = fresh_db(c, 0);
        if (rc == 0)
                rc = ingest_to_end(c, "cluster3", c->base_c3, log);
        if (rc == 0 && c->pg_ok) {
                c->base_pg = fresh_db(c, 1);
                rc = c->base_pg ? ingest_to_end(c, "calls", c->base_pg, log)
                                : -1;
        }
        free(log);
        return rc;
}

static void print_table(const struct ctx *c)
{
        int i, bad = 0;

        printf("\nReliability: %ld generated calls (5%% duplicates, 1%% "
               "changed, 5%% late, 1%% malformed), %s partitions, windows 1h "
               "and 1h/15m\n\n",
               c->calls, PARTS);
        printf("| fault | sink | runs | outcome | lost | double-counted | "
               "recovered or exited in |\n");
        printf("|---|---|---|---|---|---|---|\n");
        for (i = 0; i < ntable; i++) {
                const struct outcome *o = &table[i];

                printf("| %s | %s | %d | %s%s | %ld | %ld | %.1f s |\n",
                       o->fault, o->sink, o->runs,
                       o->ok ? "" : "FAILED: ", o->result, o->lost, o->doubled,
                       o->seconds);
                bad += !o->ok;
        }
        printf("\n%d passed, %d failed\n", ntable - bad, bad);
}

int main(void)
{
        struct ctx c = {0};
        struct hostile *h = NULL;
        int nh = 0, pg, i, bad = 0;

        th_fatal_handlers("reliability", WATCHDOG);
        if (setup(&c) < 0 || baselines(&c) != 0) {
                fprintf(stderr, "# set-up failed\n");
                th_pg_stop(&c.pg);
                th_broker_stop(&c.broker);
                th_broker_stop(&c.hostile);
                th_broker_stop(&c.cluster3);
                th_tmpdir_remove(c.dir);
                printf("0 passed, 1 failed\n");
                return 1;
        }
        for (pg = 0; pg < 2; pg++)
                if (wanted(&c, "kill -9", pg))
                        fault_kill9(&c, pg);
        if (wanted(&c, "PostgreSQL restarted (fast)", 1))
                fault_pg_restart(&c, "fast");
        if (wanted(&c, "PostgreSQL restarted (immediate)", 1))
                fault_pg_restart(&c, "immediate");
        if (wanted(&c, "SQLite locked", 0)) {
                fault_sqlite_lock(&c, 10);
                fault_sqlite_lock(&c, 45);
        }
        if (wanted(&c, "SQLite locked at start", 0))
                fault_sqlite_locked_at_start(&c, 10);
        for (pg = 0; pg < 2; pg++) {
                if (wanted(&c, "broker down 10 s mid-stream", pg))
                        fault_broker_down(&c, pg, 10, 0);
                if (wanted(&c, "broker down 10 s at start", pg))
                        fault_broker_down(&c, pg, 10, 1);
        }
        if (wanted(&c, "Fetch and OffsetCommit errors", 0))
                fault_broker_errors(&c);
        if (wanted(&c, "partition leaders moved", 0))
                fault_leader_moves(&c);
        if (wanted(&c, "PostgreSQL backend frozen", 1)) {
                fault_pg_frozen(&c, 10, 0);
                fault_pg_frozen(&c, 0, 1);
        }
        if (wanted(&c, "PostgreSQL lock_timeout", 1))
                fault_pg_timeouts(&c, 5);
        if (wanted(&c, "PostgreSQL down at start", 1))
                fault_pg_down_at_start(&c, 5);
        if (wanted(&c, "read-only database", 0))
                fault_read_only(&c);
        if (wanted(&c, "disk full", 0)) {
                /* Full early, half-way and near the end of the stream. */
                static const int eighths[] = {1, 4, 7};
                struct stat sb;

                for (i = 0; i < 3 && !stat(c.base_lite, &sb); i++) {
                        char size[32];

                        snprintf(size, sizeof(size), "%lldk",
                                 (long long)sb.st_size / 1024 * eighths[i] / 8 +
                                         256);
                        fault_disk_full(&c, size);
                }
        }
        if (wanted(&c, "hostile", 0) || wanted(&c, "hostile", 1)) {
                if (hostile_load(&c, &h, &nh) < 0 ||
                    hostile_produce(&c, h, nh) != 0) {
                        add_row("hostile messages", "-", 0, 0, 0, 0, 0,
                                "corpus not produced");
                } else {
                        for (pg = 0; pg < 2; pg++)
                                if (wanted(&c, "hostile", pg))
                                        fault_hostile(&c, h, nh, pg);
                }
        }
        print_table(&c);
        for (i = 0; i < ntable; i++)
                bad += !table[i].ok;
        for (i = 0; i < nh; i++) {
                free(h[i].name);
                free(h[i].expect);
                th_buf_free(&h[i].payload);
        }
        free(h);
        th_pg_stop(&c.pg);
        th_broker_stop(&c.broker);
        th_broker_stop(&c.hostile);
        th_broker_stop(&c.cluster3);
        th_tmpdir_remove(c.dir);
        free(c.control);
        free(c.control3);
        return bad ? 1 : 0;
}
