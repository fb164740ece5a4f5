/* harness.h: what the end-to-end tests share: memory and text helpers, child
 * processes run to completion or in the background, the local broker, a
 * temporary directory, a PostgreSQL server of the test's own and rows as
 * sorted text lines. Test code only; it links no project module nor any
 * database library (pgutil.h has what needs libpq or SQLite).
 *
 * Helpers that cannot go on (out of memory, a pipe that cannot be made)
 * abort or fail the running cmocka test; the others return -1 and say why
 * on stderr, as "# ..." TAP comments. */
#ifndef TH_HARNESS_H
#define TH_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* Safety nets only: nothing here asserts on speed. */
#define TH_RUN_TIMEOUT_MS    (120 * 1000)
#define TH_BROKER_TIMEOUT_MS (15 * 1000)

/*
 * Memory and text.
 */

/* malloc, realloc, strndup, strdup, asprintf that abort when out of
 * memory; the caller frees what they return. */
void *th_malloc(size_t n);
void *th_realloc(void *p, size_t n);
char *th_strndup(const char *s, size_t n);
char *th_strdup(const char *s);
char *th_asprintf(const char *fmt, ...) TH_PRINTF(1, 2);

/* Monotonic clock in milliseconds, and a sleep that survives signals. */
int64_t th_now_ms(void);
void th_sleep_ms(int64_t ms);

/* A growable byte buffer, always NUL-terminated once anything was added;
 * zero-initialise it, free it with th_buf_free(). */
struct th_buf {
        char *p;
        size_t len;
        size_t cap;
};

void th_buf_add(struct th_buf *b, const void *data, size_t n);
void th_buf_addf(struct th_buf *b, const char *fmt, ...) TH_PRINTF(2, 3);
void th_buf_free(struct th_buf *b);

/* Appends the whole file at path to out. Returns 0, or -1 with errno. */
int th_read_file(const char *path, struct th_buf *out);

/* Writes text to the file at path (created 0600 when missing), appended
 * or replacing what was there. Returns 0, or -1 after saying why. */
int th_write_file(const char *path, const char *text, int append);

/* Lines of text, counting a last line without a newline. */
int th_count_lines(const char *text, size_t len);

/* Prints the last 1500 bytes of a child's output (what, e.g. "stderr"),
 * escaped, one TAP comment line per line. */
void th_show_tail(const char *what, const char *text, size_t len);

/* Shows the tail of the file at path, as th_show_tail(). */
void th_show_file_tail(const char *what, const char *path);

/*
 * Child processes. Every pid started is tracked so that a teardown can kill
 * whatever a failed assertion left behind; each child also gets SIGKILL
 * when the test process dies (PR_SET_PDEATHSIG).
 */

/* An argument vector, with optional extra environment ("NAME=value") and
 * working directory for the child. Zero-initialise it; every string is
 * copied and freed by th_args_free(). */
struct th_args {
        char *v[64];
        int n;
        char *env[8];
        int nenv;
        char *cwd;
};

void th_args_add(struct th_args *a, const char *s);
/* Adds each argument up to a NULL. */
void th_args_addv(struct th_args *a, ...);
void th_args_setenv(struct th_args *a, const char *name_value);
void th_args_free(struct th_args *a);
/* "callstream ingest --db ..." (the basename of v[0]) for messages; the
 * caller frees it. */
char *th_args_str(const struct th_args *a);

/* Starts a (v[0] a path, or a name looked up in PATH) with stdin from
 * /dev/null and stdout, stderr on out_fd, err_fd, which are borrowed (the
 * caller closes its copies). Returns the pid, or -1 when fork fails. */
pid_t th_spawn(const struct th_args *a, int out_fd, int err_fd);

/* Starts a with stdout and stderr appended to the file at log_path. */
pid_t th_spawn_logged(const struct th_args *a, const char *log_path);

void th_child_track(pid_t pid);
void th_child_forget(pid_t pid);
/* Kills (SIGKILL) and reaps every tracked child. Async-signal-safe. */
void th_children_kill_all(void);

/* An exit status as one number: the exit code, or 128 + signal. */
int th_status_code(int ws);

/* Waits for pid until deadline (th_now_ms() clock), then kills it. Returns
 * the status code, or -1 when the deadline passed. */
int th_wait_until(pid_t pid, int64_t deadline);

/* Returns the status code of pid when it has ended (reaping it), or -1
 * while it runs. */
int th_exited(pid_t pid);

/* The outcome of a command run to completion. */
struct th_run {
        int status; /* exit code, 128 + signal, or -1 on timeout */
        struct th_buf out;
        struct th_buf err;
        int64_t ms;
};

/* Runs a to completion, collecting stdout and stderr; kills it after
 * timeout_ms. Free r with th_run_free(). */
void th_run_args(const struct th_args *a, int timeout_ms, struct th_run *r);

/* Runs a and fails the test unless it exits with status 0, showing its
 * stderr. */
void th_run_ok(const struct th_args *a, struct th_run *r);

/* th_run_ok(), then frees the result and the arguments (a is taken). */
void th_run_ok_free(struct th_args *a);

/* A cmocka per-test teardown: nothing a failed test started outlives it. */
int th_test_teardown(void **state);

void th_run_free(struct th_run *r);

/*
 * Temporary directory.
 */

/* Creates a fresh directory "$TMPDIR/<prefix>.XXXXXX" (or under /tmp) and
 * writes its path to out. Returns 0 or -1 (said on stderr). */
int th_tmpdir_make(const char *prefix, char *out, size_t size);

/* Deletes dir and everything in it, unless E2E_KEEP is set in the
 * environment (then says where it is kept). */
void th_tmpdir_remove(const char *dir);

/*
 * Set-up shared by the end-to-end tests.
 */

/* Finds the callstream binary ($CALLSTREAM_BIN, else build/callstream,
 * which must be executable) and the data folder ($CALLSTREAM_DATA, else
 * tests/data) as absolute paths in *bin and *data, which the caller
 * frees (either may be set on failure). Returns 0, or -1 after saying
 * which one is missing. */
int th_find_bin_data(char **bin, char **data);

/* Ignores SIGPIPE and makes SIGINT, SIGTERM, SIGHUP and the watchdog's
 * SIGALRM (raised after watchdog_s seconds) kill the registered brokers
 * and every tracked child, stop the test's PostgreSQL server, delete the
 * registered folder (unless E2E_KEEP is set), say so as "# name: killed or
 * timed out..." and die of the signal. name is borrowed: a literal. */
void th_fatal_handlers(const char *name, unsigned watchdog_s);

/* Registers the folder the handler deletes (copied; NULL: none). */
void th_fatal_dir(const char *dir);

/* Registers in slot (0 to TH_FATAL_BROKERS - 1) a broker the handler
 * kills; pid 0 forgets it. */
#define TH_FATAL_BROKERS 4
void th_fatal_broker(int slot, pid_t pid);

/*
 * The local broker: `callstream broker`, started once per test group.
 */

struct th_broker {
        pid_t pid;
        int out; /* its stdout, kept open so it never gets SIGPIPE */
        char brokers[512];
};

/* Starts "bin broker ARGS..." (extra: NULL-terminated, may be NULL) with
 * its stderr in the file at err_path and reads its bootstrap address.
 * Returns 0, or -1 after showing why. */
int th_broker_start(struct th_broker *b, const char *bin,
                    const char *const *extra, const char *err_path);

/* Stops the broker with SIGTERM. Returns 0, or -1 when it did not end
 * cleanly (said on stderr). Does nothing for a broker never started. */
int th_broker_stop(struct th_broker *b);

/* Fails the test at once when the broker is gone, rather than letting
 * every command wait for it until its safety timeout. */
void th_broker_assert_alive(struct th_broker *b);

/*
 * A PostgreSQL server of the test's own, for tests that start one: initdb
 * into a folder of the test, trusting its Unix socket there, started with
 * pg_ctl on a free port; with TH_PG_TCP it also listens on 127.0.0.1 and
 * asks for a scram-sha-256 password there. When the test runs as root the
 * server's tools run through runuser as postgres (the server refuses
 * root), which must reach the folder: th_pg_start() opens the parent to
 * others (0711) and gives the server its own folder.
 */

/* th_pg_start() flags. */
#define TH_PG_TCP 0x1 /* 127.0.0.1:port too, scram-sha-256 passwords */

struct th_pg {
        char *bindir; /* initdb, pg_ctl, createdb */
        char *dir;    /* parent/pg: the socket's folder, the server's own */
        char *data;   /* dir/data */
        char *log;    /* dir/server.log */
        const char *runuser; /* root: server tools run through it */
        int port; /* names the socket (and TCP port); free when chosen */
        int started;
};

/* Finds the server binaries ($PG_BINDIR, else pg_config --bindir, else
 * /usr/lib/postgresql/15/bin), runs initdb into parent/pg and starts the
 * server (flags: TH_PG_TCP or 0); a port taken meanwhile gets a retry.
 * Also unsets the libpq environment (PGHOST, PGUSER...) and points
 * PGPASSFILE at nothing, so only what a test names reaches libpq. pg is
 * zero-initialised by the call. Returns 0, or -1 after saying why; either
 * way th_pg_stop() cleans up. One server per test process (the signal-safe
 * stop below remembers its pid file). */
int th_pg_start(struct th_pg *pg, const char *parent, int flags);

/* Stops the server (immediate mode, else SIGKILL to the postmaster) and
 * frees pg's strings; the folder stays for th_tmpdir_remove(). Accepts a
 * server never started. */
void th_pg_stop(struct th_pg *pg);

/* Runs "pg_ctl -m MODE ACTION" (mode may be NULL) on the server, e.g. to
 * restart it under a client. Returns its status; shows its output and the
 * server log when it is not 0. */
int th_pg_ctl(const struct th_pg *pg, const char *mode, const char *action);

/* Stops the server from a signal handler (SIGQUIT, then waits up to 5 s).
 * Async-signal-safe. */
void th_pg_stop_async(void);

/* "host=DIR port=N user=postgres dbname=DB": the superuser over the
 * socket. The caller frees it. */
char *th_pg_conninfo(const struct th_pg *pg, const char *db);

/* The same as user (trusted on the socket, whatever its password). The
 * caller frees it. */
char *th_pg_conninfo_as(const struct th_pg *pg, const char *user,
                        const char *db);

/* Creates database name, owned by owner (NULL: postgres), with createdb
 * as postgres over the socket. Returns 0, or -1 after showing createdb's
 * output. */
int th_pg_createdb(const struct th_pg *pg, const char *name, const char *owner);

/*
 * Rows as text lines, compared as sorted multisets.
 */

/* Zero-initialise; th_lines_free() frees the lines and the vector. */
struct th_lines {
        char **v;
        size_t n;
        size_t cap;
};

/* Appends s, which the lines take (it must come from malloc). */
void th_lines_add(struct th_lines *l, char *s);
/* Appends a formatted line. */
void th_lines_addf(struct th_lines *l, const char *fmt, ...) TH_PRINTF(2, 3);
void th_lines_sort(struct th_lines *l);
/* Accepts NULL. */
void th_lines_free(struct th_lines *l);

/* Compares two sorted multisets of rows, printing up to max_shown rows
 * that are only on one side (each cut at 400 bytes) and a summary line
 * when they differ. Returns the number of rows only on one side. */
size_t th_lines_compare(const char *what, const char *an,
                        const struct th_lines *a, const char *bn,
                        const struct th_lines *b, size_t max_shown);

/* Typed cell text, as both databases' rows are rendered for comparison:
 * text 'quoted' with control bytes, quote and backslash as \xNN (so a row
 * is one line and 'NULL' differs from NULL); bytes as x'hex'. */
void th_put_quoted(struct th_buf *b, const unsigned char *p, size_t n);
void th_put_hex(struct th_buf *b, const unsigned char *p, size_t n);

/*
 * A folder for one test of a sink (test_migrate, test_window_keys), as a
 * cmocka set-up and tear-down. The tear-down closes the sink with
 * cs_sink_close(): a program that uses them links the project library.
 */

struct cs_sink;

struct th_sinkdir {
        char dir[64];         /* a new folder under /tmp */
        char path[96];        /* dir/t.db, not created */
        struct cs_sink *sink; /* the test's, or NULL: the tear-down closes it */
};

/* Makes the folder; *state gets a struct th_sinkdir. */
int th_sinkdir_setup(void **state);

/* Closes the sink, removes the folder and frees the state. */
int th_sinkdir_teardown(void **state);

/* The first column of the first row of sql on the SQLite file path, read
 * only; fails the test when the file cannot be opened, the statement is
 * refused or it returns no row. */
long long th_sqlite_int(const char *path, const char *sql);

/*
 * An owner of a Kafka source (cs_kafka_source_conf) with nothing stored:
 * every partition starts where --from-beginning says, and a revocation has
 * nothing to commit.
 */

struct cs_partition_offset;

int th_no_offsets(void *opaque, struct cs_partition_offset *offs, size_t n);
int th_nothing_to_commit(void *opaque);

/*
 * HTTP over loopback (test_http, test_metrics).
 */

/* One answer: the status, the Content-Type (NULL when none) and the body,
 * which point into raw (NUL-terminated). */
struct th_http_resp {
        int status;
        char *type;
        char *body;
        size_t len;
        struct th_buf raw;
};

/* GETs target from 127.0.0.1:port over HTTP/1.0 and reads the whole
 * answer into *r (30 s at most per read); fails the test when it cannot
 * connect or the answer is not HTTP. */
void th_http_get(int port, const char *target, struct th_http_resp *r);

/* Frees what th_http_get() filled in and clears *r. */
void th_http_resp_free(struct th_http_resp *r);

#endif
