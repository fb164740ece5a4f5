/* test_sqlite_ops.c: running callstream on a SQLite file as an operator
 * does (issues 7 and 8): one ingest per database while rebuild, migrate and
 * the sqlite3 shell work beside it; path errors that name their cause and
 * leave nothing behind; typos that create no database; file modes; and
 * waits for another connection's lock that SIGTERM ends and that give up
 * after the busy timeout saying so.
 *
 * Everything runs the real binary on files in a temporary folder. Checks
 * that need permissions to apply run as nobody (runuser) when the test is
 * root, as it is in CI; expected values come from the input the test makes
 * (its lines and distinct crime_ids counted here with jansson). E2E_KEEP=1
 * keeps the folder; SQLITE_OPS_TEST_FILTER='test_path*' runs some tests. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "harness.h"

/* Safety nets only: nothing here asserts on speed. */
#define WATCHDOG_S 900

#define SAMPLE_FILE "police-department-calls-for-service.sample.json"

/* The sink's busy timeout; a stopped wait must end well before it. */
#define BUSY_TIMEOUT_MS 30000
#define STOP_GUARD_MS   10000

struct ot {
        char dir[512];
        char *bin, *data, *sample;
        char *calls;     /* NDJSON of generated calls */
        char *big;       /* more of them: batches of 10000 */
        long lines, ids; /* its lines and distinct crime_ids */
        long big_lines, big_ids;
        const char *nobody; /* runuser, or NULL when not root */
};

static char *path_in(const struct ot *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* A fresh folder under the test folder, of mode mode, owned by nobody
 * when the test is root (so that only the mode can refuse nobody). */
static char *folder(const struct ot *st, const char *name, mode_t mode)
{
        char *p = path_in(st, name);

        if (mkdir(p, 0700) < 0)
                fail_msg("mkdir %s: %s", p, strerror(errno));
        if (st->nobody && chown(p, 65534, 65534) < 0)
                fail_msg("chown %s: %s", p, strerror(errno));
        if (chmod(p, mode) < 0)
                fail_msg("chmod %s: %s", p, strerror(errno));
        return p;
}

/* "callstream ARGS..." as nobody when the test is root; a is zeroed. */
static void cmd(const struct ot *st, struct th_args *a, int as_nobody)
{
        memset(a, 0, sizeof(*a));
        if (as_nobody && st->nobody)
                th_args_addv(a, st->nobody, "-u", "nobody", "--", NULL);
        th_args_add(a, st->bin);
}

/* Runs a (taken) to completion into r, showing the command and the first
 * line of its stderr. */
static void run(struct th_args *a, struct th_run *r)
{
        char *s = th_args_str(a);

        th_run_args(a, TH_RUN_TIMEOUT_MS, r);
        fprintf(stderr, "# $ %s  -> %d: %.*s\n", s, r->status,
                (int)strcspn(r->err.p ? r->err.p : "", "\n"),
                r->err.p ? r->err.p : "");
        free(s);
        th_args_free(a);
}

/* The entries of dir, sorted, one line each ("" when empty). */
static char *listing(const char *dir)
{
        struct th_args a = {0};
        struct th_run r;
        char *s;

        th_args_addv(&a, "ls", "-A", dir, NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        s = th_strdup(r.out.p ? r.out.p : "");
        th_run_free(&r);
        return s;
}

/* Expects a refused command: exit 1, one line on stderr holding each of
 * the NULL-terminated words, no summary line, and dir listed as before.
 * Returns the number of failed checks (said on stderr). */
static int expect_refused(struct th_run *r, const char *dir, const char *before,
                          ...)
{
        const char *err = r->err.p ? r->err.p : "";
        const char *word;
        char *after = listing(dir);
        va_list ap;
        int bad = 0;

        if (r->status != 1 || th_count_lines(err, r->err.len) != 1) {
                fprintf(stderr, "#   expected exit 1 and one line\n");
                th_show_tail("stderr", err, r->err.len);
                bad++;
        }
        va_start(ap, before);
        while ((word = va_arg(ap, const char *)))
                if (!strstr(err, word)) {
                        fprintf(stderr, "#   the error does not say '%s'\n",
                                word);
                        bad++;
                }
        va_end(ap);
        if (strstr(err, "messages from")) {
                fprintf(stderr, "#   a summary line was printed\n");
                bad++;
        }
        if (strcmp(before, after)) {
                fprintf(stderr, "#   %s changed: was [%s], is [%s]\n", dir,
                        before, after);
                bad++;
        }
        free(after);
        return bad;
}

/* Starts a with its stdin fed from the pipe whose write end goes to *fd,
 * stdout and stderr appended to log. */
static pid_t spawn_fed(const struct th_args *a, const char *log, int *fd)
{
        pid_t parent = getpid(), pid;
        int p[2], out;

        if (pipe2(p, O_CLOEXEC) < 0)
                fail_msg("pipe: %s", strerror(errno));
        out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (out < 0)
                fail_msg("open %s: %s", log, strerror(errno));
        pid = fork();
        if (pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
                    getppid() != parent || dup2(p[0], 0) < 0 ||
                    dup2(out, 1) < 0 || dup2(out, 2) < 0)
                        _exit(127);
                signal(SIGPIPE, SIG_DFL);
                execvp(a->v[0], a->v);
                _exit(127);
        }
        th_child_track(pid);
        close(p[0]);
        close(out);
        *fd = p[1];
        return pid;
}

/* Writes the whole file at path to fd. */
static void feed(int fd, const char *path)
{
        struct th_buf b = {0};
        size_t off = 0;
        ssize_t n;

        if (th_read_file(path, &b) < 0)
                fail_msg("cannot read %s", path);
        while (off < b.len) {
                n = write(fd, b.p + off, b.len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        fail_msg("feeding the ingest: %s", strerror(errno));
                off += (size_t)n;
        }
        th_buf_free(&b);
}

/* Writes what the pipe takes of the file at path to fd without blocking,
 * giving up once the ingest stops reading (it waits for a lock). */
static void feed_some(int fd, const char *path)
{
        struct th_buf b = {0};
        size_t off = 0;
        ssize_t n;
        int idle = 0;

        if (th_read_file(path, &b) < 0)
                fail_msg("cannot read %s", path);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                fail_msg("fcntl: %s", strerror(errno));
        while (off < b.len && idle < 40) {
                n = write(fd, b.p + off, b.len - off);
                if (n > 0) {
                        off += (size_t)n;
                        idle = 0;
                } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                        th_sleep_ms(50);
                        idle++;
                } else {
                        fail_msg("feeding the ingest: %s", strerror(errno));
                }
        }
        fprintf(stderr, "# fed %zu of %zu bytes\n", off, b.len);
        th_buf_free(&b);
}

/* A connection of the test's own, waiting up to busy_ms for locks. */
static sqlite3 *lite_open(const char *path, int busy_ms)
{
        sqlite3 *db = NULL;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK)
                fail_msg("cannot open %s: %s", path, sqlite3_errmsg(db));
        sqlite3_busy_timeout(db, busy_ms);
        return db;
}

/* One integer from sql on path (-1 when there is no row). */
static long long lite_int(const char *path, const char *sql)
{
        sqlite3 *db = lite_open(path, 10000);
        sqlite3_stmt *st;
        long long v = -1;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

/* Messages the ingest committed (kafka_offsets' progress counts). */
static long long committed(const char *db)
{
        return lite_int(db, "SELECT coalesce(sum(calls_total + "
                            "duplicates_total + rejected_total), 0) "
                            "FROM kafka_offsets");
}

/* Waits until the ingest pid committed want messages; fails the test if
 * it ends first or the hang guard passes. */
static void wait_committed(pid_t pid, const char *db, const char *log,
                           long long want)
{
        int64_t deadline = th_now_ms() + TH_RUN_TIMEOUT_MS;
        int status;

        while (access(db, F_OK) < 0 || committed(db) < want) {
                if ((status = th_exited(pid)) >= 0) {
                        th_show_file_tail("ingest log", log);
                        fail_msg("the ingest ended (%d) before committing "
                                 "%lld messages",
                                 status, want);
                }
                if (th_now_ms() > deadline) {
                        th_show_file_tail("ingest log", log);
                        fail_msg("no %lld messages committed in time", want);
                }
                th_sleep_ms(50);
        }
}

static mode_t mode_of(const char *path)
{
        struct stat sb;

        if (stat(path, &sb) < 0)
                fail_msg("stat %s: %s", path, strerror(errno));
        return sb.st_mode & 07777;
}

static void migrate_ok(const struct ot *st, const char *db)
{
        struct th_args a;

        cmd(st, &a, 0);
        th_args_addv(&a, "migrate", "--db", db, NULL);
        th_run_ok_free(&a);
}

/*
 * Tests.
 */

/* 7.18, 7.21, 8.6: an ingest holds the database for its lifetime; a second
 * ingest is refused naming it (its pid), while rebuild, migrate and an
 * UPDATE from another connection with a 5 s busy timeout (the README's
 * sqlite3 recipe) go through; the progress counts are the input's. New
 * files are 0600 under umask 0. */
static void test_one_ingest(void **state)
{
        struct ot *st = *state;
        char *db = path_in(st, "one.db"), *log = path_in(st, "one.log");
        char *side, *want;
        struct th_args a;
        struct th_run r;
        sqlite3 *lite;
        mode_t old_umask;
        pid_t pid;
        int fd, status, bad = 0;
        size_t i;
        static const char *const files[] = {"", "-wal", "-shm", "-lock"};

        old_umask = umask(0);
        cmd(st, &a, 0);
        th_args_addv(&a, "ingest", "--file", "-", "--topic", "calls", "--db",
                     db, "--batch-max-records", "100", NULL);
        pid = spawn_fed(&a, log, &fd);
        th_args_free(&a);
        umask(old_umask);
        feed(fd, st->calls);
        /* Reading stdin in 64 KiB chunks, it commits batches of 100 as
         * they come: one is enough to know it runs. */
        wait_committed(pid, db, log, 100);

        for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                side = th_asprintf("%s%s", db, files[i]);
                if (mode_of(side) != 0600) {
                        fprintf(stderr, "#   %s has mode %04o, not 0600\n",
                                side, (unsigned)mode_of(side));
                        bad++;
                }
                free(side);
        }

        cmd(st, &a, 0);
        th_args_addv(&a, "ingest", "--file", st->calls, "--topic", "calls",
                     "--db", db, NULL);
        run(&a, &r);
        want = th_asprintf("another callstream ingest (pid %d) is writing "
                           "to %s",
                           (int)pid, db);
        if (r.status != 1 || th_count_lines(r.err.p, r.err.len) != 1 ||
            !strstr(r.err.p, want)) {
                fprintf(stderr, "#   expected exit 1 and '%s'\n", want);
                bad++;
        }
        free(want);
        th_run_free(&r);

        /* Documented as safe beside a running ingest. */
        cmd(st, &a, 0);
        th_args_addv(&a, "rebuild", "--db", db, NULL);
        run(&a, &r);
        bad += r.status != 0;
        th_run_free(&r);
        cmd(st, &a, 0);
        th_args_addv(&a, "migrate", "--db", db, NULL);
        run(&a, &r);
        bad += r.status != 0;
        th_run_free(&r);

        /* The input again, while the shell-like connection updates. */
        lite = lite_open(db, 5000);
        for (i = 0; i < 2; i++) {
                if (i)
                        feed(fd, st->calls);
                if (sqlite3_exec(lite,
                                 "UPDATE settings SET value = '7' WHERE "
                                 "name = 'recent_hours'",
                                 NULL, NULL, NULL) != SQLITE_OK) {
                        fprintf(stderr, "#   UPDATE settings: %s\n",
                                sqlite3_errmsg(lite));
                        bad++;
                }
        }
        sqlite3_close(lite);
        close(fd);
        status = th_wait_until(pid, th_now_ms() + TH_RUN_TIMEOUT_MS);
        if (status != 0) {
                th_show_file_tail("ingest log", log);
                fail_msg("the ingest ended with %d", status);
        }
        if (lite_int(db, "SELECT calls_total FROM kafka_offsets") != st->ids ||
            lite_int(db, "SELECT duplicates_total FROM kafka_offsets") !=
                    2 * st->lines - st->ids ||
            lite_int(db, "SELECT count(*) FROM calls") != st->ids) {
                fprintf(stderr,
                        "#   expected %ld calls and %ld duplicates, got "
                        "%lld and %lld, %lld stored\n",
                        st->ids, 2 * st->lines - st->ids,
                        lite_int(db, "SELECT calls_total FROM kafka_offsets"),
                        lite_int(db,
                                 "SELECT duplicates_total FROM kafka_offsets"),
                        lite_int(db, "SELECT count(*) FROM calls"));
                bad++;
        }
        if (lite_int(db, "SELECT value FROM settings WHERE name = "
                         "'recent_hours'") != 7) {
                fprintf(stderr, "#   the UPDATE did not stay\n");
                bad++;
        }
        free(db);
        free(log);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 7.21: the README's recipe, an UPDATE of settings from another
 * connection waiting up to 5 s for locks (the sqlite3 shell's .timeout
 * 5000), goes through every time while an ingest writes batches of 10000
 * calls. */
static void test_update_while_ingesting(void **state)
{
        struct ot *st = *state;
        char *db = path_in(st, "busy.db"), *log = path_in(st, "busy.log");
        struct th_args a;
        sqlite3 *lite;
        pid_t pid;
        int status = -1, ok = 0, bad = 0;
        char sql[96];

        migrate_ok(st, db);
        lite = lite_open(db, 5000);
        cmd(st, &a, 0);
        th_args_addv(&a, "ingest", "--file", st->big, "--db", db, NULL);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        while ((status = th_exited(pid)) < 0) {
                snprintf(sql, sizeof(sql),
                         "UPDATE settings SET value = '%d' WHERE name = "
                         "'top_n'",
                         ok + 1);
                if (sqlite3_exec(lite, sql, NULL, NULL, NULL) != SQLITE_OK) {
                        fprintf(stderr, "#   %s: %s\n", sql,
                                sqlite3_errmsg(lite));
                        bad++;
                        break;
                }
                ok++;
                th_sleep_ms(20);
        }
        sqlite3_close(lite);
        if (status < 0)
                status = th_wait_until(pid, th_now_ms() + TH_RUN_TIMEOUT_MS);
        fprintf(stderr, "# %d updates while the ingest ran; it ended %d\n", ok,
                status);
        if (status != 0) {
                th_show_file_tail("ingest log", log);
                bad++;
        }
        if (lite_int(db, "SELECT count(*) FROM calls") < 1 ||
            lite_int(db, "SELECT value FROM settings WHERE name = 'top_n'") !=
                    ok) {
                fprintf(stderr, "#   expected calls and top_n %d\n", ok);
                bad++;
        }
        free(db);
        free(log);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 7.19, 8.6: a missing directory, a directory as --db, a read-only file,
 * a read-only folder and an unsearchable one each give one line naming
 * the cause, exit 1, and no file: no database, -wal or -shm. */
static void test_path_errors(void **state)
{
        struct ot *st = *state;
        char *ro_file = folder(st, "ro-file", 0700);
        char *ro_dir = folder(st, "ro-dir", 0700);
        char *closed = path_in(st, "closed");
        char *db, *before, *existing, *nodir, *asdir;
        struct th_args a;
        struct th_run r;
        int bad = 0;

        /* A database made by an earlier run, then made read-only. */
        existing = th_asprintf("%s/calls.db", ro_file);
        migrate_ok(st, existing);
        if (st->nobody && chown(existing, 65534, 65534) < 0)
                fail_msg("chown: %s", strerror(errno));
        if (chmod(existing, 0444) < 0)
                fail_msg("chmod: %s", strerror(errno));
        if (chmod(ro_dir, 0555) < 0 || mkdir(closed, 0700) < 0)
                fail_msg("chmod, mkdir: %s", strerror(errno));

        nodir = path_in(st, "nosuch/calls.db");
        before = listing(st->dir);
        cmd(st, &a, 1);
        th_args_addv(&a, "ingest", "--file", st->sample, "--db", nodir, NULL);
        run(&a, &r);
        bad += expect_refused(&r, st->dir, before, "no such directory",
                              "nosuch", NULL);
        th_run_free(&r);
        free(nodir);

        asdir = path_in(st, "ro-dir");
        cmd(st, &a, 1);
        th_args_addv(&a, "ingest", "--file", st->sample, "--db", asdir, NULL);
        run(&a, &r);
        bad += expect_refused(&r, st->dir, before, "is a directory", NULL);
        th_run_free(&r);
        free(asdir);
        free(before);

        if (!st->nobody && geteuid() == 0) {
                fprintf(stderr, "# no runuser: permission cases skipped\n");
                goto done;
        }
        before = listing(ro_file);
        cmd(st, &a, 1);
        th_args_addv(&a, "ingest", "--file", st->sample, "--db", existing,
                     NULL);
        run(&a, &r);
        bad += expect_refused(&r, ro_file, before, "permission denied",
                              "may not write", "0444", NULL);
        th_run_free(&r);
        free(before);

        before = listing(ro_dir);
        db = th_asprintf("%s/calls.db", ro_dir);
        cmd(st, &a, 1);
        th_args_addv(&a, "ingest", "--file", st->sample, "--db", db, NULL);
        run(&a, &r);
        bad += expect_refused(&r, ro_dir, before, "permission denied",
                              "may not create files in", ro_dir, NULL);
        th_run_free(&r);
        free(db);
        free(before);

        before = listing(closed);
        db = th_asprintf("%s/calls.db", closed);
        cmd(st, &a, 1);
        th_args_addv(&a, "migrate", "--db", db, NULL);
        run(&a, &r);
        bad += expect_refused(&r, closed, before, "permission denied",
                              "may not search", NULL);
        th_run_free(&r);
        free(db);
        free(before);

        /* A read-only -shm left by another user is named too. */
        if (chmod(existing, 0644) < 0)
                fail_msg("chmod: %s", strerror(errno));
        db = th_asprintf("%s-shm", existing);
        if (th_write_file(db, "", 0) < 0 ||
            (st->nobody && chown(db, 65534, 65534) < 0) || chmod(db, 0444) < 0)
                fail_msg("cannot make %s", db);
        before = listing(ro_file);
        cmd(st, &a, 1);
        th_args_addv(&a, "ingest", "--file", st->sample, "--db", existing,
                     NULL);
        run(&a, &r);
        bad += expect_refused(&r, ro_file, before, "permission denied", db,
                              NULL);
        th_run_free(&r);
        unlink(db);
        free(db);
        free(before);

        /* Once the mode is fixed the database works: nothing blocks it. */
        cmd(st, &a, 1);
        th_args_addv(&a, "ingest", "--file", st->sample, "--db", existing,
                     NULL);
        run(&a, &r);
        if (r.status != 0) {
                th_show_tail("stderr", r.err.p, r.err.len);
                bad++;
        }
        th_run_free(&r);
done:
        free(existing);
        free(ro_file);
        free(ro_dir);
        free(closed);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 7.20: rebuild of a database that is not there, and an ingest of a file
 * that is not there, create nothing; migrate is meant to create one. */
static void test_typos(void **state)
{
        struct ot *st = *state;
        char *dir = folder(st, "typos", 0755);
        char *db = th_asprintf("%s/nosuch.db", dir);
        char *json = th_asprintf("%s/nosuch.json", dir);
        char *before = listing(dir);
        struct th_args a;
        struct th_run r;
        int bad = 0;

        cmd(st, &a, 0);
        th_args_addv(&a, "rebuild", "--db", db, NULL);
        run(&a, &r);
        bad += expect_refused(&r, dir, before, "no such database", db, NULL);
        th_run_free(&r);

        cmd(st, &a, 0);
        th_args_addv(&a, "ingest", "--file", json, "--db", db, NULL);
        run(&a, &r);
        bad += expect_refused(&r, dir, before, json, NULL);
        th_run_free(&r);

        migrate_ok(st, db);
        if (access(db, F_OK) < 0) {
                fprintf(stderr, "#   migrate did not create %s\n", db);
                bad++;
        }
        free(before);
        free(dir);
        free(db);
        free(json);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* Starts an ingest of the sample on db, whose write lock the caller holds,
 * and waits a moment so that it is waiting for the lock. */
static pid_t start_waiting(const struct ot *st, const char *db, const char *log)
{
        struct th_args a;
        pid_t pid;

        cmd(st, &a, 0);
        th_args_addv(&a, "ingest", "--file", st->sample, "--db", db, NULL);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        if (pid < 0)
                fail_msg("cannot start the ingest");
        /* Not a timing assertion: time to reach the lock. */
        th_sleep_ms(1500);
        return pid;
}

/* 8.3, 8.4: SIGTERM ends a wait for another connection's lock at once, at
 * start (exit 0, nothing written) and mid-stream. */
static void test_stop_while_locked(void **state)
{
        struct ot *st = *state;
        char *db = path_in(st, "stop.db"), *log = path_in(st, "stop.log");
        char *log2 = path_in(st, "stop2.log");
        struct th_args a;
        sqlite3 *lite;
        struct th_buf text = {0};
        long long done;
        pid_t pid;
        int fd, status, bad = 0;

        migrate_ok(st, db);
        lite = lite_open(db, 10000);
        if (sqlite3_exec(lite, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
            SQLITE_OK)
                fail_msg("BEGIN IMMEDIATE: %s", sqlite3_errmsg(lite));
        pid = start_waiting(st, db, log);
        if (th_exited(pid) >= 0) {
                th_show_file_tail("ingest log", log);
                fail_msg("the ingest did not wait for the lock");
        }
        kill(pid, SIGTERM);
        status = th_wait_until(pid, th_now_ms() + STOP_GUARD_MS);
        fprintf(stderr, "# SIGTERM while waiting at start: %d\n", status);
        if (status != 0) {
                th_show_file_tail("ingest log", log);
                bad++;
        }
        sqlite3_exec(lite, "ROLLBACK", NULL, NULL, NULL);
        if (lite_int(db, "SELECT count(*) FROM calls") != 0) {
                fprintf(stderr, "#   calls were written\n");
                bad++;
        }

        /* Mid-stream: the second input's batch waits for the lock. */
        cmd(st, &a, 0);
        th_args_addv(&a, "ingest", "--file", "-", "--topic", "calls", "--db",
                     db, "--batch-max-records", "100", NULL);
        pid = spawn_fed(&a, log2, &fd);
        th_args_free(&a);
        feed(fd, st->calls);
        wait_committed(pid, db, log2, 100);
        if (sqlite3_exec(lite, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
            SQLITE_OK)
                fail_msg("BEGIN IMMEDIATE: %s", sqlite3_errmsg(lite));
        done = committed(db);
        feed_some(fd, st->calls);
        th_sleep_ms(1500);
        kill(pid, SIGTERM);
        status = th_wait_until(pid, th_now_ms() + STOP_GUARD_MS);
        fprintf(stderr, "# SIGTERM while waiting mid-stream: %d\n", status);
        if (th_read_file(log2, &text) < 0)
                fail_msg("cannot read %s", log2);
        if (status < 0 || status >= 128 || !text.p ||
            !strstr(text.p, "stopped while waiting for another "
                            "connection's lock")) {
                fprintf(stderr, "#   expected it stopped while waiting\n");
                th_show_file_tail("ingest log", log2);
                bad++;
        }
        th_buf_free(&text);
        close(fd);
        sqlite3_exec(lite, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(lite);
        if (committed(db) != done) {
                fprintf(stderr, "#   expected %lld messages committed\n", done);
                bad++;
        }
        free(db);
        free(log);
        free(log2);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* Writes lines [from, to) of the file at src to the file at dst. */
static void copy_lines(const char *src, const char *dst, long from, long to)
{
        struct th_buf in = {0};
        const char *p, *q, *end;
        long n = 0;

        if (th_read_file(src, &in) < 0 || !in.p)
                fail_msg("cannot read %s", src);
        end = in.p + in.len;
        for (p = in.p; p < end && n < from; p = memchr(p, '\n', end - p) + 1)
                n++;
        for (q = p; q < end && n < to; q = memchr(q, '\n', end - q) + 1)
                n++;
        {
                char *text = th_asprintf("%.*s", (int)(q - p), p);

                if (th_write_file(dst, text, 0) < 0)
                        fail_msg("cannot write %s", dst);
                free(text);
        }
        th_buf_free(&in);
}

/* 8.4: a lock held past the busy timeout mid-stream: the ingest says how
 * long it waited, checks the lock at each reconnect attempt, resumes once
 * it is free, and the stream ends up stored exactly once. A topic rather
 * than a file, so that the second half arrives only once the lock is held
 * (a file could be read to its end first, however fast the ingest). */
static void test_locked_mid_stream(void **state)
{
        static const char *const broker_args[] = {"--topic", "mid",
                                                  "--partitions", "8", NULL};
        struct ot *st = *state;
        char *db = path_in(st, "mid.db"), *log = path_in(st, "mid.log");
        char *half[2] = {path_in(st, "mid1.ndjson"),
                         path_in(st, "mid2.ndjson")};
        char *berr = path_in(st, "mid-broker.log");
        struct th_broker broker = {0};
        struct th_buf text = {0};
        struct th_args a;
        sqlite3 *lite;
        int64_t deadline;
        pid_t pid;
        int i, status, bad = 0;

        copy_lines(st->big, half[0], 0, st->big_lines / 2);
        copy_lines(st->big, half[1], st->big_lines / 2, st->big_lines);
        if (th_broker_start(&broker, st->bin, broker_args, berr) < 0)
                fail_msg("no broker");
        migrate_ok(st, db);
        lite = lite_open(db, 10000);
        for (i = 0; i < 2; i++) {
                if (i == 1) {
                        wait_committed(pid, db, log, st->big_lines / 2);
                        if (sqlite3_exec(lite, "BEGIN IMMEDIATE", NULL, NULL,
                                         NULL) != SQLITE_OK)
                                fail_msg("BEGIN IMMEDIATE: %s",
                                         sqlite3_errmsg(lite));
                }
                cmd(st, &a, 0);
                th_args_addv(&a, "produce", "-b", broker.brokers, "-t", "mid",
                             half[i], NULL);
                th_run_ok_free(&a);
                if (i == 0) {
                        cmd(st, &a, 0);
                        th_args_addv(&a, "ingest", "-b", broker.brokers, "-t",
                                     "mid", "--from-beginning", "--db", db,
                                     "--batch-max-records", "500", NULL);
                        pid = th_spawn_logged(&a, log);
                        th_args_free(&a);
                }
        }
        /* Until it gave up once and found the lock still held. */
        deadline = th_now_ms() + 3 * BUSY_TIMEOUT_MS;
        for (;;) {
                th_buf_free(&text);
                if (th_read_file(log, &text) < 0)
                        fail_msg("cannot read %s", log);
                if (text.p && strstr(text.p, "reconnect attempt"))
                        break;
                if (th_exited(pid) >= 0 || th_now_ms() > deadline) {
                        sqlite3_exec(lite, "ROLLBACK", NULL, NULL, NULL);
                        th_show_file_tail("ingest log", log);
                        fail_msg("no failed reconnect attempt while locked");
                }
                th_sleep_ms(100);
        }
        sqlite3_exec(lite, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(lite);
        wait_committed(pid, db, log, st->big_lines);
        kill(pid, SIGTERM);
        status = th_wait_until(pid, th_now_ms() + TH_RUN_TIMEOUT_MS);
        th_broker_stop(&broker);
        th_buf_free(&text);
        if (th_read_file(log, &text) < 0)
                fail_msg("cannot read %s", log);
        fprintf(stderr, "# locked mid-stream: %d\n", status);
        if (status != 0 || !text.p ||
            !strstr(text.p, "database locked by another connection for 30") ||
            !strstr(text.p, "checking the write lock: database locked by "
                            "another connection") ||
            !strstr(text.p, "database back after")) {
                fprintf(stderr, "#   expected exit 0, the 30 s wait, a "
                                "checked lock and the way back\n");
                th_show_tail("log", text.p, text.len);
                bad++;
        }
        if (lite_int(db, "SELECT sum(calls_total) FROM kafka_offsets") !=
                    st->big_ids ||
            lite_int(db, "SELECT sum(duplicates_total) FROM kafka_offsets") !=
                    st->big_lines - st->big_ids ||
            lite_int(db, "SELECT count(*) FROM calls") != st->big_ids) {
                fprintf(stderr, "#   expected %ld calls, %ld duplicates\n",
                        st->big_ids, st->big_lines - st->big_ids);
                bad++;
        }
        th_buf_free(&text);
        free(db);
        free(log);
        free(half[0]);
        free(half[1]);
        free(berr);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/* 8.3: a database locked past the busy timeout at start: an ingest that is
 * to end (--file: 30 s of --startup-timeout) exits 1 saying the database
 * was locked by another connection and for how long. */
static void test_locked_at_start(void **state)
{
        struct ot *st = *state;
        char *db = path_in(st, "locked.db"), *log = path_in(st, "locked.log");
        struct th_buf text = {0};
        sqlite3 *lite;
        pid_t pid;
        int status, bad = 0;

        migrate_ok(st, db);
        lite = lite_open(db, 10000);
        if (sqlite3_exec(lite, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
            SQLITE_OK)
                fail_msg("BEGIN IMMEDIATE: %s", sqlite3_errmsg(lite));
        pid = start_waiting(st, db, log);
        status = th_wait_until(pid, th_now_ms() + 3 * BUSY_TIMEOUT_MS);
        sqlite3_exec(lite, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(lite);
        if (th_read_file(log, &text) < 0)
                fail_msg("cannot read %s", log);
        fprintf(stderr, "# locked at start: %d\n", status);
        th_show_tail("log", text.p, text.len);
        if (status != 1 || !text.p ||
            !strstr(text.p, "locked by another connection for 30") ||
            !strstr(text.p, "--startup-timeout") ||
            strstr(text.p, "database back") ||
            strstr(text.p, "messages from")) {
                fprintf(stderr, "#   expected exit 1 naming the lock, its "
                                "30 s and --startup-timeout\n");
                bad++;
        }
        th_buf_free(&text);
        free(db);
        free(log);
        if (bad)
                fail_msg("%d check(s) failed (details above)", bad);
}

/*
 * Fixture.
 */

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Counts the lines and distinct crime_ids of the NDJSON at path. */
static void count_input(const char *path, long *lines, long *distinct)
{
        struct th_buf b = {0};
        char **ids = NULL, *line, *save = NULL;
        long n = 0, i;

        if (th_read_file(path, &b) < 0)
                fail_msg("cannot read %s", path);
        for (line = strtok_r(b.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                json_t *o = json_loads(line, 0, NULL);
                const char *id =
                        json_string_value(json_object_get(o, "crime_id"));

                if (!id)
                        fail_msg("line %ld has no crime_id", n + 1);
                ids = th_realloc(ids, (size_t)(n + 1) * sizeof(*ids));
                ids[n++] = th_strdup(id);
                json_decref(o);
        }
        qsort(ids, (size_t)n, sizeof(*ids), cmp_str);
        *lines = n;
        *distinct = 0;
        for (i = 0; i < n; i++)
                *distinct += i == 0 || strcmp(ids[i], ids[i - 1]) != 0;
        for (i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
        th_buf_free(&b);
}

static int group_teardown(void **state)
{
        struct ot *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->data);
        free(st->sample);
        free(st->calls);
        free(st->big);
        free(st);
        *state = NULL;
        return 0;
}

static int group_setup(void **state)
{
        struct ot *st = calloc(1, sizeof(*st));
        struct th_args a = {0};
        struct th_run r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_sqlite_ops", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data))
                goto fail;
        if (th_tmpdir_make("callstream-sqlite-ops", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        fprintf(stderr, "# folder %s (E2E_KEEP=1 keeps it)\n", st->dir);
        /* nobody must reach the folders it is refused in. */
        if (chmod(st->dir, 0755) < 0)
                goto fail;
        /* A copy that nobody may read. */
        st->sample = th_asprintf("%s/%s", st->dir, SAMPLE_FILE);
        {
                char *from = th_asprintf("%s/%s", st->data, SAMPLE_FILE);
                struct th_buf b = {0};
                int rc = th_read_file(from, &b);

                free(from);
                if (rc < 0 || th_write_file(st->sample, b.p, 0) < 0 ||
                    chmod(st->sample, 0644) < 0) {
                        th_buf_free(&b);
                        goto fail;
                }
                th_buf_free(&b);
        }

        /* As root, permissions apply only to another user; nobody must be
         * able to run the binary for those checks. */
        if (geteuid() == 0 && access("/usr/sbin/runuser", X_OK) == 0) {
                th_args_addv(&a, "/usr/sbin/runuser", "-u", "nobody", "--",
                             st->bin, "--help", NULL);
                th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
                if (r.status == 0)
                        st->nobody = "/usr/sbin/runuser";
                else
                        fprintf(stderr, "# nobody cannot run %s\n", st->bin);
                th_run_free(&r);
                th_args_free(&a);
        }

        /* Calls with repeats, so that duplicates are counted too. */
        st->calls = th_asprintf("%s/calls.ndjson", st->dir);
        th_args_addv(&a, st->bin, "generate", "--count", "500", "--duplicates",
                     "0.1", NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        if (r.status != 0 || th_write_file(st->calls, r.out.p, 0) < 0) {
                th_run_free(&r);
                goto fail;
        }
        th_run_free(&r);
        count_input(st->calls, &st->lines, &st->ids);
        st->big = th_asprintf("%s/big.ndjson", st->dir);
        th_args_addv(&a, st->bin, "generate", "--count", "50000", "--seed", "2",
                     NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        if (r.status != 0 || th_write_file(st->big, r.out.p, 0) < 0) {
                th_run_free(&r);
                goto fail;
        }
        th_run_free(&r);
        count_input(st->big, &st->big_lines, &st->big_ids);
        fprintf(stderr, "# input: %ld lines, %ld distinct calls\n", st->lines,
                st->ids);
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_one_ingest, th_test_teardown),
                cmocka_unit_test_teardown(test_update_while_ingesting,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_path_errors, th_test_teardown),
                cmocka_unit_test_teardown(test_typos, th_test_teardown),
                cmocka_unit_test_teardown(test_stop_while_locked,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_locked_at_start,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_locked_mid_stream,
                                          th_test_teardown),
        };
        const char *only = getenv("SQLITE_OPS_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("sqlite_ops", tests, group_setup,
                                           group_teardown);
}
