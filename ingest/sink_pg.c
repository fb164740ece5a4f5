/* sink_pg.c: the PostgreSQL sink.
 *
 * A batch goes in a few round trips, whatever its size: its calls, window
 * counts and rejects are COPYed into per-connection temporary tables and
 * merged with one set-based INSERT ... ON CONFLICT each. Rows are merged in
 * key order, so ingest processes sharing the database lock rows in the same
 * order. Errors that a reconnect or a retry can cure (the server restarting,
 * a dropped connection, a deadlock, a lock or statement timeout) come back
 * as CS_RETRY.
 *
 * The connection is non-blocking: every wait on the server is a poll() of
 * at most SLICE_MS that also looks at the caller's stop request and the
 * sink's statement timeout, so a server that hangs becomes an outage and a
 * stop request ends the wait within STOP_GRACE_MS. Views are installed only
 * when their text changed (schema_views), so a start needs no DDL and keeps
 * grants and users' views. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cs_arena.h"
#include "cs_migrate.h"
#include "cs_idmap.h"
#include "cs_sink.h"
#include "cs_time.h"

#define DIALECT "postgresql"

/* The longest name PostgreSQL keeps whole (NAMEDATALEN - 1). */
#define CS_PG_NAME_MAX 63

/* The prepared statements, by their names in statements.sql. */
enum stmt {
        ST_INSERT_CALLS,
        ST_ADD_WINDOW_COUNTS,
        ST_INSERT_REJECTS,
        ST_STORE_OFFSETS,
        ST_LOAD_OFFSETS,
        ST_INSERT_LATE_RECORDS,
        ST_REPLACE_CALLS,
        ST_DROP_EMPTY_WINDOWS,
        ST_RETAIN_CALLS,
        ST_RETAIN_WINDOWS,
        ST_RETAIN_LATE,
        ST_RETAIN_REJECTS,
        ST_FIND_WINDOW_KEYS,
        ST_LOCK_WINDOW_KEYS,
        ST_ADD_WINDOW_KEYS,
        ST_STORED_WINDOW_KEYS,
        ST_STORED_CALLS,
        ST_COUNT
};

static const struct {
        const char *name;
        int nparams;
} stmts[ST_COUNT] = {
        [ST_INSERT_CALLS] = {"insert_calls", 2},
        [ST_ADD_WINDOW_COUNTS] = {"add_window_counts", 7},
        [ST_INSERT_REJECTS] = {"insert_rejects", 1},
        [ST_STORE_OFFSETS] = {"store_offsets", 11},
        [ST_LOAD_OFFSETS] = {"load_offsets", 2},
        [ST_INSERT_LATE_RECORDS] = {"insert_late_records", 1},
        [ST_REPLACE_CALLS] = {"replace_calls", 2},
        [ST_DROP_EMPTY_WINDOWS] = {"drop_empty_windows", 4},
        [ST_RETAIN_CALLS] = {"retain_calls", 2},
        [ST_RETAIN_WINDOWS] = {"retain_windows", 2},
        [ST_RETAIN_LATE] = {"retain_late", 2},
        [ST_RETAIN_REJECTS] = {"retain_rejects", 2},
        [ST_FIND_WINDOW_KEYS] = {"find_window_keys", 3},
        [ST_LOCK_WINDOW_KEYS] = {"lock_window_keys", 0},
        [ST_ADD_WINDOW_KEYS] = {"add_window_keys", 3},
        [ST_STORED_WINDOW_KEYS] = {"stored_window_keys", 4},
        [ST_STORED_CALLS] = {"stored_calls", 1},
};

/* A growable text buffer, kept across batches. */
struct buf {
        char *p;
        size_t len;
        size_t cap;
};

/* The dictionaries of window_totals (011_window_keys.sql), in the order of
 * find_window_keys' first column. */
enum dict { DICT_SPEC, DICT_CRIME_TYPE, DICT_DISPOSITION, DICT_COUNT };

/* A window count row with its key as stored, for writing in key order. */
struct keyed_row {
        int64_t key[4]; /* spec id, window start, crime type, disposition */
        int64_t end, calls, late_calls;
        int negative; /* a row summed into it had calls < 0 */
        int stored;   /* window_totals holds its key */
};

struct pg_sink {
        struct cs_sink base;
        PGconn *conn;   /* NULL once given up: the next reconnect opens one */
        char *conninfo; /* may hold a password: never printed */
        char *schema;
        struct buf copy;      /* one COPY's rows */
        struct cs_arena *old; /* strings of replaced calls */
        unsigned staged;      /* staging tables filled in this transaction */
        struct buf arr[9];    /* array literals for store_offsets */
        /* Each dictionary's ids by text, as stored. Ids never change once
         * committed, so they are kept across batches and connections. */
        struct cs_idmap ids[DICT_COUNT];
        /* The open transaction added dictionary ids: until it commits,
         * they may yet be undone, so the next begin forgets the maps. */
        int ids_uncommitted;
        struct keyed_row *keyed; /* write_window_counts' rows */
        size_t keyed_cap;
        struct buf bin[11];  /* its binary arrays */
        struct buf names[3]; /* text arrays of missing dictionary keys */
        int64_t stop_at;     /* when the stop request was first seen */
        char why[256];       /* why the connection was given up */
        /* A COPY sent whose result is read later (copy_send()), so that
         * the server works through it while the writer prepares what comes
         * next; the next statement reads it first (settle()). */
        const char *pending;
        const char *pending_failed; /* its name, for fail(), if it failed */
};

static int reserve(struct buf *b, size_t more)
{
        size_t cap;
        char *p;

        if (b->len + more <= b->cap)
                return 0;
        cap = b->cap ? b->cap : 64 * 1024;
        while (cap < b->len + more)
                cap *= 2;
        p = realloc(b->p, cap);
        if (!p)
                return -1;
        b->p = p;
        b->cap = cap;
        return 0;
}

static int put(struct buf *b, const char *s, size_t n)
{
        if (reserve(b, n) < 0)
                return -1;
        memcpy(b->p + b->len, s, n);
        b->len += n;
        return 0;
}

/* Appends the size low bytes of v, most significant first (room
 * reserved by the caller). */
static void put_be(struct buf *b, uint64_t v, size_t size)
{
        while (size--)
                b->p[b->len++] = (char)(v >> (8 * size));
}

/* Empties b and starts a binary COPY in it: the signature, no flags, no
 * header extension. */
static int copy_start(struct buf *b)
{
        static const char head[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

        b->len = 0;
        return put(b, head, sizeof(head));
}

/* Ends the binary COPY in b: its trailer, a field count of -1. */
static int copy_finish(struct buf *b)
{
        if (reserve(b, 2) < 0)
                return -1;
        put_be(b, 0xffff, 2);
        return 0;
}

static int putf(struct buf *b, const char *fmt, long long v)
{
        char tmp[32];
        int n = snprintf(tmp, sizeof(tmp), fmt, v);

        return put(b, tmp, (size_t)n);
}

/* Appends s as one COPY text field: NULL as \N, and the four bytes COPY
 * gives meaning to escaped. The parser has ruled out NUL and bad UTF-8. */
static int put_field(struct buf *b, struct cs_str s, char end)
{
        size_t i;

        if (reserve(b, s.len * 2 + 3) < 0)
                return -1;
        if (!s.ptr) {
                memcpy(b->p + b->len, "\\N", 2);
                b->len += 2;
        }
        for (i = 0; s.ptr && i < s.len; i++) {
                char c = s.ptr[i];

                switch (c) {
                case '\\':
                case '\t':
                case '\n':
                case '\r':
                        b->p[b->len++] = '\\';
                        c = c == '\\'   ? '\\'
                            : c == '\t' ? 't'
                            : c == '\n' ? 'n'
                                        : 'r';
                        break;
                default:
                        break;
                }
                b->p[b->len++] = c;
        }
        b->p[b->len++] = end;
        return 0;
}

static int put_text(struct buf *b, const char *s, char end)
{
        struct cs_str str = {s, strlen(s)};

        return put_field(b, str, end);
}
/* How long a stop request lets the statements in flight finish (the last
 * batch usually commits in time), how long a statement cancelled for
 * running past the sink's timeout has to answer before the connection is
 * given up, the connect timeout unless the conninfo sets one, and the
 * longest single wait between two looks at the stop request. */
#define STOP_GRACE_MS      5000
#define CANCEL_GRACE_MS    5000
#define CONNECT_TIMEOUT_MS 10000
#define SLICE_MS           100

/* Gives the connection up (a silent server, or stopping): the next
 * statement fails at once as an outage and a reconnect opens a new one.
 * why (one line) is kept for the error message. */
static void give_up(struct pg_sink *s, const char *why)
{
        snprintf(s->why, sizeof(s->why), "%s", why);
        cs_log(CS_LOG_WARN, "%s: %s; closing the connection", s->base.name,
               why);
        PQfinish(s->conn);
        s->conn = NULL;
        s->pending = NULL;
}

/* Gives up a connection that broke, keeping libpq's reason. */
static void lost(struct pg_sink *s)
{
        const char *msg = PQerrorMessage(s->conn);

        snprintf(s->why, sizeof(s->why), "%.*s", (int)strcspn(msg, "\n"), msg);
        PQfinish(s->conn);
        s->conn = NULL;
        s->pending = NULL;
}

/* Whether the stop request's grace is over; notes when it came. */
static int stop_due(struct pg_sink *s)
{
        if (!s->base.stop || !*s->base.stop)
                return 0;
        if (!s->stop_at)
                s->stop_at = cs_now_ms();
        return cs_now_ms() >= s->stop_at + STOP_GRACE_MS;
}

/* Waits up to SLICE_MS for the socket to be readable (or writable too with
 * want_write) and reads what came. Returns 0, or -1 when it broke. */
static int wait_io(struct pg_sink *s, int want_write)
{
        struct pollfd p = {PQsocket(s->conn),
                           POLLIN | (want_write ? POLLOUT : 0), 0};

        if (p.fd < 0)
                return -1;
        if (poll(&p, 1, SLICE_MS) < 0 && errno != EINTR)
                return -1;
        if ((p.revents & (POLLIN | POLLERR | POLLHUP)) &&
            !PQconsumeInput(s->conn))
                return -1;
        return 0;
}

/* Asks the server to cancel the statement running on the connection. */
static void cancel(struct pg_sink *s)
{
        PGcancel *c = PQgetCancel(s->conn);
        char err[256];

        if (c) {
                PQcancel(c, err, sizeof(err));
                PQfreeCancel(c);
        }
}

/* Sends what libpq holds and waits until a result can be read without
 * blocking, looking at the stop request between waits. A statement past
 * the sink's timeout is cancelled; one that still does not answer, a stop
 * request past its grace, or a broken socket gives the connection up.
 * Returns 0, or -1 with s->conn NULL. */
static int await(struct pg_sink *s)
{
        int64_t deadline =
                s->base.timeout_ms > 0 ? cs_now_ms() + s->base.timeout_ms : 0;
        int cancelled = 0, pending;
        char why[128];

        for (;;) {
                if ((pending = PQflush(s->conn)) < 0)
                        break;
                if (!pending && !PQisBusy(s->conn))
                        return 0;
                if (stop_due(s)) {
                        snprintf(why, sizeof(why),
                                 "stopping: no answer %d s after the stop "
                                 "request",
                                 STOP_GRACE_MS / 1000);
                        give_up(s, why);
                        return -1;
                }
                if (deadline && cs_now_ms() >= deadline) {
                        if (cancelled) {
                                snprintf(why, sizeof(why),
                                         "no answer %lld ms after a statement "
                                         "was cancelled",
                                         (long long)CANCEL_GRACE_MS);
                                give_up(s, why);
                                return -1;
                        }
                        cs_log(CS_LOG_WARN,
                               "%s: a statement ran past %lld ms; cancelling "
                               "it",
                               s->base.name, (long long)s->base.timeout_ms);
                        cancel(s);
                        cancelled = 1;
                        deadline = cs_now_ms() + CANCEL_GRACE_MS;
                }
                if (wait_io(s, pending) < 0)
                        break;
        }
        lost(s);
        return -1;
}

/* Reads the results of the statement sent: the first error, else the last
 * result; a COPY result ends the reading. NULL when the connection was
 * lost or given up. */
static PGresult *collect(struct pg_sink *s)
{
        PGresult *keep = NULL, *res;

        for (;;) {
                ExecStatusType st;

                if (await(s) < 0) {
                        PQclear(keep);
                        return NULL;
                }
                if (!(res = PQgetResult(s->conn)))
                        return keep;
                st = PQresultStatus(res);
                if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
                    st == PGRES_COPY_BOTH) {
                        PQclear(keep);
                        return res;
                }
                if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
                        PQclear(res);
                } else {
                        PQclear(keep);
                        keep = res;
                }
        }
}

/* Reads the result of the COPY copy_send() left pending, if any. Returns
 * NULL when it succeeded, when none was pending, or when the connection
 * was lost (s->conn is NULL then); else its error result, which fail()
 * then names after the COPY. */
static PGresult *settle(struct pg_sink *s)
{
        PGresult *res;

        if (!s->pending)
                return NULL;
        res = s->conn ? collect(s) : NULL;
        if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
                PQclear(res);
                res = NULL;
        } else if (res) {
                s->pending_failed = s->pending;
        }
        s->pending = NULL;
        return res;
}

/* How a statement goes to the server. */
enum send {
        SEND_QUERY,    /* text: any number of statements, no parameters */
        SEND_PARAMS,   /* text: one statement with n parameters */
        SEND_PREPARED, /* name: a prepared statement with n parameters */
        SEND_PREPARE,  /* prepares text as name */
};

/* Sends one statement without blocking and returns its result (see
 * collect()), or NULL when the connection is lost or was given up. */
static PGresult *roundtrip(struct pg_sink *s, enum send how, const char *name,
                           const char *text, int n, const char *const *params)
{
        PGresult *res;
        int sent = 0;

        /* A COPY still pending failed: that is this statement's answer
         * (it is not sent; the transaction is aborted anyway). */
        if ((res = settle(s)))
                return res;
        if (!s->conn)
                return NULL;
        switch (how) {
        case SEND_QUERY:
                sent = PQsendQuery(s->conn, text);
                break;
        case SEND_PARAMS:
                sent = PQsendQueryParams(s->conn, text, n, NULL, params, NULL,
                                         NULL, 0);
                break;
        case SEND_PREPARED:
                sent = PQsendQueryPrepared(s->conn, name, n, params, NULL, NULL,
                                           0);
                break;
        case SEND_PREPARE:
                sent = PQsendPrepare(s->conn, name, text, n, NULL);
                break;
        }
        if (!sent) {
                if (PQstatus(s->conn) != CONNECTION_OK)
                        lost(s);
                return NULL;
        }
        return collect(s);
}

/* Writes "where: what: first line of the server's message" to errstr and
 * says whether retrying can help. */
static int fail(struct pg_sink *s, const PGresult *res, const char *what,
                char *errstr, size_t errstr_size)
{
        const char *state =
                res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *msg = res ? PQresultErrorMessage(res) : "";
        int transient;

        if (s->pending_failed) {
                what = s->pending_failed;
                s->pending_failed = NULL;
        }
        if (!msg || !*msg)
                msg = s->conn ? PQerrorMessage(s->conn) : s->why;
        snprintf(errstr, errstr_size, "%s: %s: %.*s", s->base.name, what,
                 (int)strcspn(msg, "\n"), msg);
        /* Lost connection (class 08, admin/crash shutdown 57P0x), lost
         * race (40001, 40P01), no resources (53), or a statement or lock
         * timeout (57014, 55P03: another session holds a lock, say a
         * rebuild): worth another try. */
        transient = !s->conn || PQstatus(s->conn) != CONNECTION_OK || !state ||
                    !strncmp(state, "08", 2) || !strncmp(state, "57", 2) ||
                    !strncmp(state, "40", 2) || !strncmp(state, "53", 2) ||
                    !strcmp(state, "55P03");
        return transient ? CS_RETRY : -1;
}

/* Takes the result of a statement: 0 with it in *out (the caller
 * PQclear()s it) unless out is NULL, or fail(). */
static int take(struct pg_sink *s, PGresult *res, const char *what,
                PGresult **out, char *errstr, size_t errstr_size)
{
        ExecStatusType st = PQresultStatus(res);
        int r;

        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                r = fail(s, res, what, errstr, errstr_size);
                PQclear(res);
                return r;
        }
        if (out)
                *out = res;
        else
                PQclear(res);
        return 0;
}

/* Runs sql (no parameters, any number of statements); 0 or fail(). */
static int exec(struct pg_sink *s, const char *sql, const char *what,
                char *errstr, size_t errstr_size)
{
        return take(s, roundtrip(s, SEND_QUERY, NULL, sql, 0, NULL), what, NULL,
                    errstr, errstr_size);
}

/* Runs a prepared statement; on success *out holds the result (the caller
 * PQclear()s it) unless out is NULL. */
static int run(struct pg_sink *s, enum stmt st, const char *const *params,
               PGresult **out, char *errstr, size_t errstr_size)
{
        return take(s,
                    roundtrip(s, SEND_PREPARED, stmts[st].name, NULL,
                              stmts[st].nparams, params),
                    stmts[st].name, out, errstr, errstr_size);
}

/* Sends the COPY name with the rows in s->copy and leaves its result to
 * be read by the next statement (settle()): the server works through the
 * rows while the writer goes on. Returns 0, or fail(). */
static int copy_send(struct pg_sink *s, const char *name, char *errstr,
                     size_t errstr_size)
{
        size_t len;
        const char *sql = cs_sql_statement(DIALECT, name, &len);
        char query_text[512];
        PGresult *res;
        int r = 0, k;

        static const char *const copies[] = {"copy_calls", "copy_rejects",
                                             "copy_late"};
        unsigned bit = 0;
        size_t i;

        /* A staging table empties at commit; one transaction may fill it
         * twice (rebuild does, spec by spec): empty it first then. */
        for (i = 0; i < CS_ARRAY_SIZE(copies); i++)
                if (!strcmp(name, copies[i]))
                        bit = 1u << i;
        if (s->staged & bit) {
                snprintf(query_text, sizeof(query_text), "TRUNCATE %.*s",
                         (int)strcspn(sql + 5, " "), sql + 5);
                if ((r = exec(s, query_text, name, errstr, errstr_size)) < 0)
                        return r;
        }
        s->staged |= bit;
        snprintf(query_text, sizeof(query_text), "%.*s", (int)len, sql);
        res = roundtrip(s, SEND_QUERY, NULL, query_text, 0, NULL);
        if (PQresultStatus(res) != PGRES_COPY_IN) {
                r = fail(s, res, name, errstr, errstr_size);
                PQclear(res);
                return r;
        }
        PQclear(res);
        /* Non-blocking: 0 means libpq's buffer is full; send and retry. */
        while ((k = PQputCopyData(s->conn, s->copy.p, (int)s->copy.len)) == 0)
                if (await(s) < 0)
                        return fail(s, NULL, name, errstr, errstr_size);
        while (k > 0 && (k = PQputCopyEnd(s->conn, NULL)) == 0)
                if (await(s) < 0)
                        return fail(s, NULL, name, errstr, errstr_size);
        if (k < 0) {
                r = fail(s, NULL, name, errstr, errstr_size);
                lost(s);
                return r;
        }
        /* All of it on its way, so that the server need not wait. */
        while ((k = PQflush(s->conn)) > 0)
                if (wait_io(s, 1) < 0)
                        break;
        if (k != 0) {
                r = fail(s, NULL, name, errstr, errstr_size);
                lost(s);
                return r;
        }
        s->pending = name;
        return 0;
}

/* Runs the COPY name with the rows in s->copy. Returns 0, or fail(). */
static int copy_in(struct pg_sink *s, const char *name, char *errstr,
                   size_t errstr_size)
{
        PGresult *res;
        int r;

        if ((r = copy_send(s, name, errstr, errstr_size)) < 0)
                return r;
        if ((res = settle(s)))
                return take(s, res, name, NULL, errstr, errstr_size);
        return s->conn ? 0 : fail(s, NULL, name, errstr, errstr_size);
}

/* Returns the NUL-terminated text of a statement, or NULL. */
static char *statement(const char *name)
{
        size_t len;
        const char *sql = cs_sql_statement(DIALECT, name, &len);

        return sql ? strndup(sql, len) : NULL;
}

/* Runs the named statement of statements.sql with n text parameters; as
 * take(). */
static int run_named(struct pg_sink *s, const char *name,
                     const char *const *params, int n, PGresult **out,
                     char *errstr, size_t errstr_size)
{
        char *sql = statement(name);
        PGresult *res;

        if (!sql) {
                snprintf(errstr, errstr_size, "no SQL statement %s", name);
                return -1;
        }
        res = n ? roundtrip(s, SEND_PARAMS, NULL, sql, n, params)
                : roundtrip(s, SEND_QUERY, NULL, sql, 0, NULL);
        free(sql);
        return take(s, res, name, out, errstr, errstr_size);
}

/* Runs a named statement that returns one value, and copies it to value
 * (at most size bytes). */
static int value_of(struct pg_sink *s, const char *name,
                    const char *const *params, int n, char *value, size_t size,
                    char *errstr, size_t errstr_size)
{
        PGresult *res;
        int r = run_named(s, name, params, n, &res, errstr, errstr_size);

        if (r < 0)
                return r;
        snprintf(value, size, "%s",
                 PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
        PQclear(res);
        return 0;
}

/* Server notices ("relation already exists, skipping") are for debugging. */
static void on_notice(void *arg, const char *msg)
{
        (void)arg;
        cs_log(CS_LOG_DEBUG, "PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* Readies a new connection: encoding, search_path, staging tables. The
 * schema is not created here but by migrate, under the migration lock. */
static int setup_session(struct pg_sink *s, char *errstr, size_t errstr_size)
{
        const char *dt = PQparameterStatus(s->conn, "integer_datetimes");
        char *sql;
        int r;

        PQsetNoticeProcessor(s->conn, on_notice, NULL);
        /* Calls go in binary COPY, timestamps as 64-bit microseconds: what
         * every server since PostgreSQL 10 keeps. */
        if (dt && strcmp(dt, "on")) {
                snprintf(errstr, errstr_size,
                         "%s: the server keeps timestamps as floating point "
                         "(integer_datetimes off): callstream needs "
                         "PostgreSQL 10 or later",
                         s->base.name);
                return -1;
        }
        /* Timestamps come back as cs_time_parse() reads them. */
        if ((r = exec(s, "SET client_encoding TO 'UTF8'; SET DateStyle TO ISO",
                      "setting the session up", errstr, errstr_size)) < 0)
                return r;
        if (s->schema) {
                char *id = PQescapeIdentifier(s->conn, s->schema,
                                              strlen(s->schema));
                struct buf q = {0};

                if (!id)
                        return fail(s, NULL, "quoting --schema", errstr,
                                    errstr_size);
                /* The schema need not exist yet: migrate creates it. */
                if (put(&q, "SET search_path TO ", 19) < 0 ||
                    put(&q, id, strlen(id) + 1) < 0) {
                        PQfreemem(id);
                        free(q.p);
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                PQfreemem(id);
                r = exec(s, q.p, "setting --schema", errstr, errstr_size);
                free(q.p);
                if (r < 0)
                        return r;
        }
        sql = statement("stage_tables");
        if (!sql) {
                snprintf(errstr, errstr_size, "no SQL statement stage_tables");
                return -1;
        }
        r = exec(s, sql, "creating staging tables", errstr, errstr_size);
        free(sql);
        return r;
}

/* Prepares the statements; needs the tables, so runs after migrations. */
static int prepare_all(struct pg_sink *s, char *errstr, size_t errstr_size)
{
        int i, r = 0;

        for (i = 0; i < ST_COUNT && !r; i++) {
                char *sql = statement(stmts[i].name);

                if (!sql) {
                        snprintf(errstr, errstr_size, "no SQL statement %s",
                                 stmts[i].name);
                        return -1;
                }
                r = take(s,
                         roundtrip(s, SEND_PREPARE, stmts[i].name, sql,
                                   stmts[i].nparams, NULL),
                         stmts[i].name, NULL, errstr, errstr_size);
                free(sql);
        }
        return r;
}

/* Rolls back the transaction open on the connection, if any. */
static void rollback(struct pg_sink *s)
{
        char err[256];

        /* Whatever a pending COPY did, the transaction goes. */
        PQclear(settle(s));
        s->pending_failed = NULL;
        if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
            PQtransactionStatus(s->conn) != PQTRANS_IDLE)
                exec(s, "ROLLBACK", "ROLLBACK", err, sizeof(err));
}

/* The migration primitives of migrate.c. The lock is a transaction-level
 * advisory lock (lock_migrations): one migrating process at a time. */
static int pg_migration_lock(struct cs_sink *base, const char *what,
                             char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char *lock = statement("lock_migrations");
        int r;

        if (!lock) {
                snprintf(errstr, errstr_size, "no SQL statement %s",
                         "lock_migrations");
                return -1;
        }
        if ((r = exec(s, "BEGIN", what, errstr, errstr_size)) == 0 &&
            (r = exec(s, lock, "locking migrations", errstr, errstr_size)) < 0)
                rollback(s);
        free(lock);
        return r;
}

static int pg_migration_unlock(struct cs_sink *base, const char *what,
                               char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        int r = what ? exec(s, "COMMIT", what, errstr, errstr_size) : -1;

        if (r < 0)
                rollback(s);
        return what ? r : 0;
}

static int pg_migration_exec(struct cs_sink *base, const char *sql,
                             const char *what, char *errstr, size_t errstr_size)
{
        return exec((struct pg_sink *)base, sql, what, errstr, errstr_size);
}

/* One view of sql/postgresql/views*.sql. */
struct view {
        char name[64];
        const char *text; /* "CREATE VIEW name AS ..." up to its ';' */
        size_t len;
        char checksum[17];
        int installed; /* schema_views holds its checksum */
};

#define VIEWS_MAX 32

/* Splits the view scripts into their CREATE VIEW statements, in order
 * (a view may use the ones before it). Returns how many, or -1. */
static int parse_views(struct view *v, char *errstr, size_t errstr_size)
{
        const char *files[CS_VIEWS_MAX];
        int nfiles = cs_views(DIALECT, files, CS_VIEWS_MAX), f, n = 0;

        for (f = 0; f < nfiles; f++) {
                const char *p = files[f];

                for (;;) {
                        const char *end, *name;
                        size_t nlen;

                        /* Skip blanks and "--" comment lines. */
                        for (;;) {
                                p += strspn(p, " \t\r\n");
                                if (strncmp(p, "--", 2))
                                        break;
                                p += strcspn(p, "\n");
                        }
                        if (!*p)
                                break;
                        end = strchr(p, ';');
                        if (!end)
                                end = p + strlen(p);
                        if (!strncmp(p, "CREATE VIEW ", 12))
                                name = p + 12;
                        else if (!strncmp(p, "CREATE OR REPLACE VIEW ", 23))
                                name = p + 23;
                        else
                                name = NULL;
                        nlen = name ? strcspn(name, " \n") : 0;
                        if (!name || !nlen || nlen >= sizeof(v->name) ||
                            n == VIEWS_MAX) {
                                snprintf(errstr, errstr_size,
                                         "view scripts: not one CREATE VIEW "
                                         "per statement: %.40s",
                                         p);
                                return -1;
                        }
                        memcpy(v[n].name, name, nlen);
                        v[n].name[nlen] = '\0';
                        v[n].text = p;
                        v[n].len = (size_t)(end - p);
                        snprintf(v[n].checksum, sizeof(v[n].checksum),
                                 "%016llx",
                                 (unsigned long long)cs_hash(p, v[n].len, 0));
                        v[n].installed = 0;
                        n++;
                        p = *end ? end + 1 : end;
                }
        }
        return n;
}

/* Marks the views whose checksum schema_views holds (and that exist);
 * returns how many are not. */
static int views_due(struct pg_sink *s, struct view *v, int n, char *errstr,
                     size_t errstr_size)
{
        PGresult *res;
        int i, row, due = 0, r;

        if ((r = run_named(s, "installed_views", NULL, 0, &res, errstr,
                           errstr_size)) < 0)
                return r;
        for (i = 0; i < n; i++) {
                v[i].installed = 0;
                for (row = 0; row < PQntuples(res); row++)
                        if (!strcmp(PQgetvalue(res, row, 0), v[i].name) &&
                            !strcmp(PQgetvalue(res, row, 1), v[i].checksum))
                                v[i].installed = 1;
                due += !v[i].installed;
        }
        PQclear(res);
        return due;
}

/* Appends name to the array literal a ("{" first). Our view names are
 * plain identifiers. */
static int put_name(struct buf *a, const char *name)
{
        return put(a, a->len ? "," : "{", 1) < 0 ||
                               put(a, name, strlen(name)) < 0
                       ? -1
                       : 0;
}

/* A view whose columns changed cannot be replaced: drops it without
 * CASCADE, with the views of ours built on it (marked for installing
 * again, their grants kept in *grants to give again), unless an object
 * of the user's is built on it: then the error names it. */
static int drop_view(struct pg_sink *s, struct view *v, int n, int at,
                     struct buf *grants, char *errstr, size_t errstr_size)
{
        struct buf ours = {0}, users = {0}, drop = {0};
        const char *params[2];
        PGresult *res = NULL;
        int i, row, r = -1;

        for (i = 0; i < n; i++)
                if (put_name(&ours, v[i].name) < 0)
                        goto oom;
        if (put(&ours, "}", 2) < 0)
                goto oom;
        params[0] = v[at].name;
        params[1] = ours.p;
        if ((r = run_named(s, "view_dependents", params, 2, &res, errstr,
                           errstr_size)) < 0)
                goto done;
        drop.len = 0;
        for (row = 0; row < PQntuples(res); row++) {
                const char *name = PQgetvalue(res, row, 0);

                if (strcmp(PQgetvalue(res, row, 2), "t")) {
                        if ((users.len && put(&users, ", ", 2) < 0) ||
                            put(&users, PQgetvalue(res, row, 1),
                                strlen(PQgetvalue(res, row, 1))) < 0)
                                goto oom;
                        continue;
                }
                if (put_name(&drop, name) < 0)
                        goto oom;
                for (i = 0; i < n; i++)
                        if (!strcmp(v[i].name, name))
                                v[i].installed = 0;
        }
        if (users.len) {
                if (put(&users, "", 1) < 0)
                        goto oom;
                snprintf(errstr, errstr_size,
                         "%s: view %s changed its columns, so it must be "
                         "dropped and created again, but these depend on "
                         "it: %s; drop them, start again, then create them "
                         "anew",
                         s->base.name, v[at].name, users.p);
                r = -1;
                goto done;
        }
        if (put_name(&drop, v[at].name) < 0 || put(&drop, "}", 2) < 0)
                goto oom;
        params[0] = drop.p;
        PQclear(res);
        res = NULL;
        /* Grants on the views dropped here are given again afterwards. */
        if ((r = run_named(s, "view_grants", params, 1, &res, errstr,
                           errstr_size)) < 0)
                goto done;
        if (put(grants, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0))) <
                    0 ||
            put(grants, " ", 1) < 0)
                goto oom;
        /* "{a,b}" -> "DROP VIEW a,b": dependants first in the list. */
        drop.p[0] = ' ';
        drop.p[drop.len - 2] = '\0';
        users.len = 0;
        if (put(&users, "DROP VIEW", 9) < 0 ||
            put(&users, drop.p, strlen(drop.p) + 1) < 0)
                goto oom;
        cs_log(CS_LOG_WARN, "%s: view %s changed its columns: dropping%s",
               s->base.name, v[at].name, drop.p);
        r = exec(s, users.p, "dropping a changed view", errstr, errstr_size);
        goto done;
oom:
        snprintf(errstr, errstr_size, "out of memory");
        r = -1;
done:
        PQclear(res);
        free(ours.p);
        free(users.p);
        free(drop.p);
        return r;
}

/* Installs (CREATE OR REPLACE VIEW) each view whose text changed since it
 * was installed, in the migration transaction: a view that is unchanged is
 * left alone, with its grants and the views built on it, and a start needs
 * no DDL privilege then. */
static int install_views(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        struct view v[VIEWS_MAX];
        struct buf sql = {0}, grants = {0};
        int n, i, r;

        if ((n = parse_views(v, errstr, errstr_size)) < 0)
                return -1;
        /* Without the lock first: nothing to do is the common case. */
        if ((r = views_due(s, v, n, errstr, errstr_size)) <= 0)
                return r;
        if ((r = pg_migration_lock(base, "starting views", errstr,
                                   errstr_size)) < 0)
                return r;
        if ((r = views_due(s, v, n, errstr, errstr_size)) < 0)
                goto done;
        for (i = 0; i < n; i++) {
                const char *params[2] = {v[i].name, v[i].checksum};
                PGresult *res;

                if (v[i].installed)
                        continue;
                sql.len = 0;
                if (put(&sql, "SAVEPOINT view; CREATE OR REPLACE VIEW ", 39) <
                            0 ||
                    put(&sql, v[i].text + (v[i].text[7] == 'O' ? 23 : 12),
                        v[i].len - (v[i].text[7] == 'O' ? 23 : 12)) < 0 ||
                    put(&sql, "", 1) < 0) {
                        snprintf(errstr, errstr_size, "out of memory");
                        r = -1;
                        goto done;
                }
                res = roundtrip(s, SEND_QUERY, NULL, sql.p, 0, NULL);
                if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                        const char *state =
                                PQresultErrorField(res, PG_DIAG_SQLSTATE);

                        /* Columns renamed, dropped or retyped (42P16,
                         * 42804): PostgreSQL replaces no such view. */
                        if (!state || (strcmp(state, "42P16") &&
                                       strcmp(state, "42804"))) {
                                r = fail(s, res, v[i].name, errstr,
                                         errstr_size);
                                PQclear(res);
                                goto done;
                        }
                        PQclear(res);
                        if ((r = exec(s, "ROLLBACK TO SAVEPOINT view",
                                      v[i].name, errstr, errstr_size)) < 0 ||
                            (r = drop_view(s, v, n, i, &grants, errstr,
                                           errstr_size)) < 0 ||
                            (r = exec(s, sql.p, v[i].name, errstr,
                                      errstr_size)) < 0)
                                goto done;
                } else {
                        PQclear(res);
                }
                if ((r = run_named(s, "record_view", params, 2, NULL, errstr,
                                   errstr_size)) < 0)
                        goto done;
                v[i].installed = 1;
                cs_log(CS_LOG_INFO, "%s: installed view %s", s->base.name,
                       v[i].name);
        }
        if (grants.len && put(&grants, "", 1) == 0 &&
            (r = exec(s, grants.p, "granting again", errstr, errstr_size)) < 0)
                goto done;
        r = exec(s, "COMMIT", "committing views", errstr, errstr_size);
done:
        if (r < 0)
                rollback(s);
        free(sql.p);
        free(grants.p);
        return r;
}

/* Under the migration lock: creates --schema and schema_migrations when
 * they are missing (only then: an existing schema needs no CREATE
 * privilege on the database). */
static int prepare_schema(struct cs_sink *base, char *errstr,
                          size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        const char *params[1] = {s->schema};
        char has[8];
        int r;

        if (s->schema) {
                if ((r = value_of(s, "schema_exists", params, 1, has,
                                  sizeof(has), errstr, errstr_size)) < 0)
                        return r;
                if (!strcmp(has, "0")) {
                        char *id = PQescapeIdentifier(s->conn, s->schema,
                                                      strlen(s->schema));
                        struct buf q = {0};

                        if (!id || put(&q, "CREATE SCHEMA ", 14) < 0 ||
                            put(&q, id, strlen(id) + 1) < 0) {
                                PQfreemem(id);
                                free(q.p);
                                snprintf(errstr, errstr_size, "out of memory");
                                return -1;
                        }
                        PQfreemem(id);
                        r = exec(s, q.p, "creating --schema", errstr,
                                 errstr_size);
                        free(q.p);
                        if (r < 0)
                                return r;
                        cs_log(CS_LOG_INFO, "%s: created schema %s",
                               s->base.name, s->schema);
                }
        }
        if ((r = value_of(s, "migrations_table_exists", NULL, 0, has,
                          sizeof(has), errstr, errstr_size)) < 0 ||
            !strcmp(has, "t"))
                return r;
        return run_named(s, "create_migrations_table", NULL, 0, NULL, errstr,
                         errstr_size);
}

static const struct cs_migrate_ops pg_migrator = {
        .lock = pg_migration_lock,
        .unlock = pg_migration_unlock,
        .exec = pg_migration_exec,
        .prepare = prepare_schema,
        .install_views = install_views,
};

static int pg_migrate(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        int r = cs_migrate_run(base, &pg_migrator, errstr, errstr_size);

        if (r == 0)
                r = prepare_all(s, errstr, errstr_size);
        if (r < 0)
                rollback(s);
        return r;
}

/* Appends one element to array literal a: "{" first, "," after. */
static int put_elem(struct buf *a, int first, const char *v)
{
        return put(a, first ? "{" : ",", 1) < 0 || put(a, v, strlen(v)) < 0 ? -1
                                                                            : 0;
}

/* Fills the array literals "{a,b,...}" of partitions and, with
 * with_offsets, of offsets, highest event times, watermarks, high
 * watermarks and the batch's counts, in s->arr[0..8]. */
static int offset_arrays(struct pg_sink *s,
                         const struct cs_partition_offset *offs, size_t n,
                         int with_offsets)
{
        char v[CS_TS_BUFSZ + 2];
        size_t i;
        int a;

        for (a = 0; a < 9; a++)
                s->arr[a].len = 0;
        for (i = 0; i < n; i++) {
                const struct cs_watermark *w = &offs[i].watermark;

                snprintf(v, sizeof(v), "%d", (int)offs[i].partition);
                if (put_elem(&s->arr[0], !i, v) < 0)
                        return -1;
                if (!with_offsets)
                        continue;
                snprintf(v, sizeof(v), "%lld", (long long)offs[i].next_offset);
                if (put_elem(&s->arr[1], !i, v) < 0)
                        return -1;
                if (w->valid) {
                        v[0] = '"';
                        cs_time_format(w->max_event.sec, w->max_event.usec,
                                       v + 1);
                        strcat(v, "\"");
                } else {
                        strcpy(v, "NULL");
                }
                if (put_elem(&s->arr[2], !i, v) < 0)
                        return -1;
                if (w->valid) {
                        cs_time_format(w->mark.sec, w->mark.usec, v + 1);
                        strcat(v, "\"");
                }
                if (put_elem(&s->arr[3], !i, v) < 0)
                        return -1;
                if (offs[i].high_watermark >= 0)
                        snprintf(v, sizeof(v), "%lld",
                                 (long long)offs[i].high_watermark);
                else
                        strcpy(v, "NULL");
                if (put_elem(&s->arr[4], !i, v) < 0)
                        return -1;
                for (a = 0; a < 4; a++) {
                        const int64_t counts[4] = {
                                offs[i].calls, offs[i].duplicates,
                                offs[i].rejected, offs[i].late};

                        snprintf(v, sizeof(v), "%lld", (long long)counts[a]);
                        if (put_elem(&s->arr[5 + a], !i, v) < 0)
                                return -1;
                }
        }
        for (a = 0; a < 9; a++)
                if ((!n && put(&s->arr[a], "{", 1) < 0) ||
                    put(&s->arr[a], "}", 2) < 0)
                        return -1;
        return 0;
}

static int pg_load_offsets(struct cs_sink *base, const char *topic,
                           struct cs_partition_offset *offs, size_t n,
                           char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        const char *params[2];
        PGresult *res;
        size_t i;
        int row, r;

        if (offset_arrays(s, offs, n, 0) < 0) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        params[0] = topic;
        params[1] = s->arr[0].p;
        if ((r = run(s, ST_LOAD_OFFSETS, params, &res, errstr, errstr_size)))
                return r;
        for (i = 0; i < n; i++) {
                struct cs_watermark *w = &offs[i].watermark;

                offs[i].next_offset = -1;
                w->valid = 0;
                for (row = 0; row < PQntuples(res); row++) {
                        const char *max = PQgetvalue(res, row, 2);
                        const char *mark = PQgetvalue(res, row, 3);

                        if (atoi(PQgetvalue(res, row, 0)) != offs[i].partition)
                                continue;
                        offs[i].next_offset = atoll(PQgetvalue(res, row, 1));
                        w->valid =
                                !PQgetisnull(res, row, 2) &&
                                !PQgetisnull(res, row, 3) &&
                                cs_time_parse(max, strlen(max),
                                              &w->max_event.sec,
                                              &w->max_event.usec) == 0 &&
                                cs_time_parse(mark, strlen(mark), &w->mark.sec,
                                              &w->mark.usec) == 0;
                }
        }
        PQclear(res);
        return 0;
}

static void forget_ids(struct pg_sink *s);

/* Before a transaction: ids that a transaction added but did not see
 * committed may have been undone with it. */
static void forget_uncommitted_ids(struct pg_sink *s)
{
        if (s->ids_uncommitted)
                forget_ids(s);
}

static int pg_begin(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        ((struct pg_sink *)base)->staged = 0;
        forget_uncommitted_ids((struct pg_sink *)base);
        return exec((struct pg_sink *)base, "BEGIN", "BEGIN", errstr,
                    errstr_size);
}

static int oom(char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
}

/* With --on-duplicate update: replaces stored calls that differ from their
 * staged copy, noting in outcome and old what each was. */
static int replace_changed(struct pg_sink *s, const struct cs_batch *b,
                           unsigned char *outcome, struct cs_old_call *old,
                           char *errstr, size_t errstr_size)
{
        const char *params[2] = {b->topic, b->late_policy};
        PGresult *res;
        int row, r;

        cs_arena_reset(s->old);
        if ((r = run(s, ST_REPLACE_CALLS, params, &res, errstr, errstr_size)))
                return r;
        for (row = 0; row < PQntuples(res); row++) {
                long idx = atol(PQgetvalue(res, row, 0));
                const char *ts = PQgetvalue(res, row, 3);
                const char *mark = PQgetvalue(res, row, 4);
                struct cs_str ct = {PQgetvalue(res, row, 1),
                                    (size_t)PQgetlength(res, row, 1)};
                struct cs_str disp = {PQgetvalue(res, row, 2),
                                      (size_t)PQgetlength(res, row, 2)};
                struct cs_old_call *o;
                int32_t usec;

                if (idx < 0 || (size_t)idx >= b->ncalls)
                        continue;
                o = &old[idx];
                memset(o, 0, sizeof(*o));
                if (PQgetisnull(res, row, 2))
                        disp.ptr = NULL;
                if (cs_arena_copy(s->old, ct, &o->crime_type) < 0 ||
                    cs_arena_copy(s->old, disp, &o->disposition) < 0) {
                        PQclear(res);
                        return oom(errstr, errstr_size);
                }
                if (cs_time_parse(ts, strlen(ts), &o->ts, &usec) < 0) {
                        PQclear(res);
                        snprintf(errstr, errstr_size,
                                 "%s: unreadable call_ts %s", s->base.name, ts);
                        return -1;
                }
                o->has_mark = !PQgetisnull(res, row, 4) &&
                              cs_time_parse(mark, strlen(mark), &o->mark.sec,
                                            &o->mark.usec) == 0;
                o->late_drop = !strcmp(PQgetvalue(res, row, 5), "drop");
                outcome[idx] = CS_CALL_REPLACED;
        }
        PQclear(res);
        return 0;
}

static int bin_array(struct buf *a, uint32_t oid, size_t n, size_t elem);
static int run_binary(struct pg_sink *s, enum stmt st, struct buf *arrays,
                      int n, PGresult **out, char *errstr, size_t errstr_size);

/* PostgreSQL's binary timestamp: microseconds since 2000-01-01 00:00:00
 * (integer_datetimes, checked in setup_session()). */
#define PG_EPOCH_SEC 946684800LL

static uint64_t pg_timestamp(int64_t sec, int32_t usec)
{
        return (uint64_t)((sec - PG_EPOCH_SEC) * 1000000 + usec);
}

/* Appends s as one binary COPY text field (room reserved by the caller):
 * its length and bytes, NULL as length -1, as put_field() maps them. The
 * server checks the bytes are UTF-8 (textrecv) as it checks a text COPY;
 * the parser has ruled out NUL and bad UTF-8. */
static void put_bin_field(struct buf *b, struct cs_str s)
{
        if (!s.ptr) {
                put_be(b, UINT32_MAX, 4);
                return;
        }
        put_be(b, s.len, 4);
        memcpy(b->p + b->len, s.ptr, s.len);
        b->len += s.len;
}

/* Appends call i of b as a binary COPY row: its fields, call_ts, the
 * partition and offset and watermark_at_count; into calls itself
 * (copy_new_calls) with the topic before the partition and the late policy
 * last, into the staging table (staged, copy_calls) after the call's index
 * in the batch. */
static int put_call_row(struct buf *out, const struct cs_batch *b, size_t i,
                        int staged)
{
        const struct cs_batch_call *c = &b->calls[i];
        struct cs_str topic = {b->topic, strlen(b->topic)};
        struct cs_str policy = {b->late_policy, strlen(b->late_policy)};
        /* The column count, the index, call_ts, the partition, the offset
         * and watermark_at_count (each with its length), the lengths of
         * the text columns, then their bytes. */
        size_t need = 2 + 8 + 12 + 8 + 12 + 12 + 4 * (CS_F_COUNT + 2) +
                      topic.len + policy.len;
        int f;

        for (f = 0; f < CS_F_COUNT; f++)
                need += c->field[f].len;
        if (reserve(out, need) < 0)
                return -1;
        put_be(out, staged ? CS_F_COUNT + 5 : CS_F_COUNT + 6, 2);
        if (staged) {
                put_be(out, 4, 4);
                put_be(out, i, 4);
        }
        for (f = 0; f < CS_F_COUNT; f++)
                put_bin_field(out, c->field[f]);
        put_be(out, 8, 4);
        put_be(out, pg_timestamp(c->ts, c->ts_usec), 8);
        if (!staged)
                put_bin_field(out, topic);
        put_be(out, 4, 4);
        put_be(out, (uint32_t)c->partition, 4);
        put_be(out, 8, 4);
        put_be(out, (uint64_t)c->offset, 8);
        if (c->has_mark) {
                put_be(out, 8, 4);
                put_be(out, pg_timestamp(c->mark.sec, c->mark.usec), 8);
        } else {
                put_be(out, UINT32_MAX, 4);
        }
        if (!staged)
                put_bin_field(out, policy);
        return 0;
}

/* Without --on-duplicate update: under lock_window_keys, the batch's
 * crime_ids that calls holds are found with one probe each, and the rest
 * copied straight into calls: no staging table, no INSERT ... ON
 * CONFLICT. Calls are unique in a batch (cs_batch). */
static int write_new_calls(struct pg_sink *s, const struct cs_batch *b,
                           unsigned char *inserted, char *errstr,
                           size_t errstr_size)
{
        enum { TEXT_OID = 25 };
        struct buf *ids = &s->bin[0];
        PGresult *res;
        size_t i, nnew;
        int row, r;

        if (bin_array(ids, TEXT_OID, b->ncalls, 0) < 0)
                return oom(errstr, errstr_size);
        for (i = 0; i < b->ncalls; i++) {
                struct cs_str id = b->calls[i].field[CS_F_CRIME_ID];

                if (reserve(ids, 4 + id.len) < 0)
                        return oom(errstr, errstr_size);
                put_be(ids, id.len, 4);
                memcpy(ids->p + ids->len, id.ptr, id.len);
                ids->len += id.len;
        }
        if ((r = run(s, ST_LOCK_WINDOW_KEYS, NULL, NULL, errstr, errstr_size)) <
                    0 ||
            (r = run_binary(s, ST_STORED_CALLS, ids, 1, &res, errstr,
                            errstr_size)) < 0)
                return r;
        /* inserted[] is all CS_CALL_KEPT: mark the stored, then flip. */
        for (row = 0; row < PQntuples(res); row++) {
                long at = atol(PQgetvalue(res, row, 0));

                if (at >= 1 && (size_t)at <= b->ncalls)
                        inserted[at - 1] = 1;
        }
        PQclear(res);
        if (copy_start(&s->copy) < 0)
                return oom(errstr, errstr_size);
        for (i = 0, nnew = 0; i < b->ncalls; i++) {
                inserted[i] = inserted[i] ? CS_CALL_KEPT : CS_CALL_NEW;
                if (inserted[i] != CS_CALL_NEW)
                        continue;
                if (put_call_row(&s->copy, b, i, 0) < 0)
                        return oom(errstr, errstr_size);
                nnew++;
        }
        if (!nnew)
                return 0;
        if (copy_finish(&s->copy) < 0)
                return oom(errstr, errstr_size);
        /* Its result is read by the next statement: meanwhile the writer
         * counts the batch into windows and prepares their rows. */
        if ((r = copy_send(s, "copy_new_calls", errstr, errstr_size)) < 0)
                memset(inserted, CS_CALL_KEPT, b->ncalls);
        return r;
}

static int pg_write_calls(struct cs_sink *base, const struct cs_batch *b,
                          unsigned char *inserted, struct cs_old_call *old,
                          char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        const char *params[2] = {b->topic, b->late_policy};
        PGresult *res;
        size_t i;
        int row, r;

        memset(inserted, 0, b->ncalls);
        if (!b->ncalls)
                return 0;
        if (!b->update)
                return write_new_calls(s, b, inserted, errstr, errstr_size);
        if (copy_start(&s->copy) < 0)
                return oom(errstr, errstr_size);
        for (i = 0; i < b->ncalls; i++)
                if (put_call_row(&s->copy, b, i, 1) < 0)
                        return oom(errstr, errstr_size);
        if (copy_finish(&s->copy) < 0)
                return oom(errstr, errstr_size);
        /* The same lock as write_new_calls(), whose copies would fail on
         * a call inserted meanwhile. */
        if ((r = run(s, ST_LOCK_WINDOW_KEYS, NULL, NULL, errstr, errstr_size)) <
                    0 ||
            (r = copy_in(s, "copy_calls", errstr, errstr_size)) < 0 ||
            (b->update && (r = replace_changed(s, b, inserted, old, errstr,
                                               errstr_size)) < 0) ||
            (r = run(s, ST_INSERT_CALLS, params, &res, errstr, errstr_size)) <
                    0)
                return r;
        for (row = 0; row < PQntuples(res); row++) {
                long idx = atol(PQgetvalue(res, row, 0));

                if (idx >= 0 && (size_t)idx < b->ncalls)
                        inserted[idx] = CS_CALL_NEW;
        }
        PQclear(res);
        return 0;
}

/* Forgets the dictionary ids in memory (they are read again). */
static void forget_ids(struct pg_sink *s)
{
        int d;

        for (d = 0; d < DICT_COUNT; d++)
                cs_idmap_clear(&s->ids[d]);
        s->ids_uncommitted = 0;
}

/* Appends text to the array literal a as one quoted element ("{" first):
 * every byte as it is but '"' and '\', which get a backslash. */
static int put_quoted_elem(struct buf *a, const char *text, size_t len)
{
        size_t i;

        if (reserve(a, len * 2 + 4) < 0)
                return -1;
        a->p[a->len] = a->len ? ',' : '{';
        a->len++;
        a->p[a->len++] = '"';
        for (i = 0; i < len; i++) {
                if (text[i] == '"' || text[i] == '\\')
                        a->p[a->len++] = '\\';
                a->p[a->len++] = text[i];
        }
        a->p[a->len++] = '"';
        return 0;
}

/* The text of row w's key in dictionary d ('' for no disposition). */
static struct cs_str key_text(const struct cs_window_count *w,
                              const struct cs_window_spec *specs, enum dict d)
{
        struct cs_str t = {"", 0};

        if (d == DICT_SPEC) {
                t.ptr = specs[w->spec].name;
                t.len = strlen(t.ptr);
        } else if (d == DICT_CRIME_TYPE) {
                t = w->crime_type;
        } else if (w->disposition.ptr) {
                t = w->disposition;
        }
        return t;
}

/* Keeps the (dictionary, id, text) rows of find_window_keys or
 * add_window_keys in the maps. */
static int keep_ids(struct pg_sink *s, const PGresult *res)
{
        int row;

        for (row = 0; row < PQntuples(res); row++) {
                int d = atoi(PQgetvalue(res, row, 0));

                if (d < 0 || d >= DICT_COUNT ||
                    cs_idmap_add(&s->ids[d], PQgetvalue(res, row, 2),
                                 (size_t)PQgetlength(res, row, 2),
                                 cs_hash(PQgetvalue(res, row, 2),
                                         (size_t)PQgetlength(res, row, 2), 0),
                                 atoi(PQgetvalue(res, row, 1))) < 0)
                        return -1;
        }
        return 0;
}

/* Makes sure the maps hold the id of every key text of rows: the texts
 * missing are looked up in one statement, and those still missing added
 * under lock_window_keys (rare: a new crime type or disposition). */
static int resolve_ids(struct pg_sink *s, const struct cs_window_count *rows,
                       size_t n, const struct cs_window_spec *specs,
                       char *errstr, size_t errstr_size)
{
        const char *params[3];
        PGresult *res;
        int d, pass, missing, r;
        size_t i;

        /* Pass 0 finds, pass 1 adds, pass 2 only checks. */
        for (pass = 0; pass < 3; pass++) {
                struct cs_idmap seen[DICT_COUNT] = {{0}};

                missing = 0;
                for (d = 0; d < DICT_COUNT; d++)
                        s->names[d].len = 0;
                for (i = 0; i < n; i++)
                        for (d = 0; d < DICT_COUNT; d++) {
                                struct cs_str t = key_text(&rows[i], specs, d);
                                uint64_t h = cs_hash(t.ptr, t.len, 0);

                                if (cs_idmap_find(&s->ids[d], t.ptr, t.len,
                                                  h) >= 0 ||
                                    cs_idmap_find(&seen[d], t.ptr, t.len, h) >=
                                            0)
                                        continue;
                                missing++;
                                if (cs_idmap_add(&seen[d], t.ptr, t.len, h, 0) <
                                            0 ||
                                    put_quoted_elem(&s->names[d], t.ptr,
                                                    t.len) < 0) {
                                        missing = -1;
                                        break;
                                }
                        }
                for (d = 0; d < DICT_COUNT; d++) {
                        cs_idmap_clear(&seen[d]);
                        if (missing >= 0 &&
                            ((!s->names[d].len && put(&s->names[d], "{", 1)) ||
                             put(&s->names[d], "}", 2) < 0))
                                missing = -1;
                        params[d] = s->names[d].p;
                }
                if (missing <= 0)
                        return missing < 0 ? oom(errstr, errstr_size) : 0;
                if (pass == 2)
                        break;
                if (pass == 0) {
                        r = run(s, ST_FIND_WINDOW_KEYS, params, &res, errstr,
                                errstr_size);
                } else {
                        s->ids_uncommitted = 1;
                        if ((r = run(s, ST_LOCK_WINDOW_KEYS, NULL, NULL, errstr,
                                     errstr_size)) < 0)
                                return r;
                        r = run(s, ST_ADD_WINDOW_KEYS, params, &res, errstr,
                                errstr_size);
                }
                if (r < 0)
                        return r;
                r = keep_ids(s, res);
                PQclear(res);
                if (r < 0)
                        return oom(errstr, errstr_size);
        }
        snprintf(errstr, errstr_size, "%s: window keys missing after adding",
                 s->base.name);
        return -1;
}

static int cmp_keyed(const void *pa, const void *pb)
{
        const struct keyed_row *a = pa, *b = pb;
        int i;

        for (i = 0; i < 4; i++)
                if (a->key[i] != b->key[i])
                        return a->key[i] < b->key[i] ? -1 : 1;
        return 0;
}

/* Starts a one-dimensional binary array (array_recv's format) of n
 * elements of type oid. */
static int bin_array(struct buf *a, uint32_t oid, size_t n, size_t elem)
{
        const uint32_t head[5] = {1, 0, oid, (uint32_t)n, 1};
        int i;

        a->len = 0;
        if (reserve(a, sizeof(head) + n * (4 + elem)) < 0)
                return -1;
        for (i = 0; i < 5; i++)
                put_be(a, head[i], 4);
        return 0;
}

/* Runs a prepared statement whose n parameters are binary arrays; *out
 * gets its result (the caller PQclear()s it) unless out is NULL. */
static int run_binary(struct pg_sink *s, enum stmt st, struct buf *arrays,
                      int n, PGresult **out, char *errstr, size_t errstr_size)
{
        const char *values[7];
        int lengths[7], formats[7], i;
        PGresult *res;

        for (i = 0; i < n; i++) {
                values[i] = arrays[i].p;
                lengths[i] = (int)arrays[i].len;
                formats[i] = 1;
        }
        if ((res = settle(s)))
                return take(s, res, stmts[st].name, out, errstr, errstr_size);
        if (!s->conn || !PQsendQueryPrepared(s->conn, stmts[st].name, n, values,
                                             lengths, formats, 0)) {
                if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
                        lost(s);
                return fail(s, NULL, stmts[st].name, errstr, errstr_size);
        }
        return take(s, collect(s), stmts[st].name, out, errstr, errstr_size);
}

/* int4 and int8, as pg_type has them, and which of a window_totals row's
 * seven columns are int4. */
enum { INT4_OID = 23, INT8_OID = 20 };
#define IS_INT4(col) ((col) == 0 || (col) == 2 || (col) == 3)

/* Fills arrays[0..ncols) with column 0..ncols of the rows of s->keyed[0,
 * m) that are stored (or not, as stored says; -1: all). */
static int window_arrays(struct pg_sink *s, struct buf *arrays, int ncols,
                         size_t m, int stored)
{
        size_t i, n = 0;
        int a;

        for (i = 0; i < m; i++)
                n += stored < 0 || s->keyed[i].stored == stored;
        for (a = 0; a < ncols; a++)
                if (bin_array(&arrays[a], IS_INT4(a) ? INT4_OID : INT8_OID, n,
                              8) < 0)
                        return -1;
        for (i = 0; i < m; i++) {
                const struct keyed_row *k = &s->keyed[i];
                const int64_t v[7] = {k->key[0],    k->key[1], k->key[2],
                                      k->key[3],    k->end,    k->calls,
                                      k->late_calls};

                if (stored >= 0 && k->stored != stored)
                        continue;
                for (a = 0; a < ncols; a++) {
                        size_t size = IS_INT4(a) ? 4 : 8;

                        put_be(&arrays[a], size, 4);
                        put_be(&arrays[a], (uint64_t)v[a], size);
                }
        }
        return 0;
}

/* Keys within this many seconds of each other are looked up in one range:
 * a stretch of a stream, even reaching back, is one range per spec, and a
 * call far out of order one of its own. */
#define RANGE_GAP (6 * 3600)

/* Fills arrays[0..2] with the spec ids, first and last window starts of
 * the stretches that the keys of s->keyed[0, m) (in key order) fall in,
 * and arrays[3] with limit, as stored_window_keys takes them. */
static int window_ranges(struct pg_sink *s, struct buf *arrays, size_t m,
                         int64_t limit)
{
        size_t i, n = 0, pass;

        /* Pass 0 counts the ranges, pass 1 writes them. */
        for (pass = 0; pass < 2; pass++) {
                int64_t spec = 0, lo = 0, hi = 0;
                int open = 0;

                if (pass == 1 && (bin_array(&arrays[0], INT4_OID, n, 4) < 0 ||
                                  bin_array(&arrays[1], INT8_OID, n, 8) < 0 ||
                                  bin_array(&arrays[2], INT8_OID, n, 8) < 0))
                        return -1;
                n = 0;
                for (i = 0; i <= m; i++) {
                        const struct keyed_row *k = i < m ? &s->keyed[i] : NULL;

                        if (open && k && k->key[0] == spec &&
                            k->key[1] - hi <= RANGE_GAP) {
                                hi = k->key[1];
                                continue;
                        }
                        if (open && pass == 1) {
                                put_be(&arrays[0], 4, 4);
                                put_be(&arrays[0], (uint64_t)spec, 4);
                                put_be(&arrays[1], 8, 4);
                                put_be(&arrays[1], (uint64_t)lo, 8);
                                put_be(&arrays[2], 8, 4);
                                put_be(&arrays[2], (uint64_t)hi, 8);
                        }
                        n += open;
                        if ((open = k != NULL)) {
                                spec = k->key[0];
                                lo = hi = k->key[1];
                        }
                }
        }
        arrays[3].len = 0;
        if (reserve(&arrays[3], 8) < 0)
                return -1;
        put_be(&arrays[3], (uint64_t)limit, 8);
        return 0;
}

/* Marks the keys of s->keyed[0, m) that the rows of res (spec, start, type,
 * disposition) name as stored; returns how many it marked. */
static size_t mark_stored(struct pg_sink *s, size_t m, const PGresult *res)
{
        size_t n = 0;
        int row, d;

        for (row = 0; row < PQntuples(res); row++) {
                struct keyed_row key, *k;

                for (d = 0; d < 4; d++)
                        key.key[d] = atoll(PQgetvalue(res, row, d));
                k = bsearch(&key, s->keyed, m, sizeof(*s->keyed), cmp_keyed);
                if (k && !k->stored) {
                        k->stored = 1;
                        n++;
                }
        }
        return n;
}

/* The binary COPY of the rows of s->keyed[0, m) not stored, in s->copy;
 * how many in *n. */
static int window_copy(struct pg_sink *s, size_t m, size_t *n)
{
        size_t i;
        int a;

        *n = 0;
        if (copy_start(&s->copy) < 0 ||
            reserve(&s->copy, m * (2 + 7 * 4 + 4 * 3 + 8 * 4) + 2) < 0)
                return -1;
        for (i = 0; i < m; i++) {
                const struct keyed_row *k = &s->keyed[i];
                const int64_t v[7] = {k->key[0],    k->key[1], k->key[2],
                                      k->key[3],    k->end,    k->calls,
                                      k->late_calls};

                if (k->stored)
                        continue;
                put_be(&s->copy, 7, 2);
                for (a = 0; a < 7; a++) {
                        size_t size = IS_INT4(a) ? 4 : 8;

                        put_be(&s->copy, size, 4);
                        put_be(&s->copy, (uint64_t)v[a], size);
                }
                (*n)++;
        }
        return copy_finish(&s->copy);
}

/* The batch's rows (summed by key by the pipeline) go as stored: keyed by
 * dictionary ids, summed again where two texts share a key (no disposition
 * and ''), in key order. Under lock_window_keys the keys already stored
 * are updated, one probe each, and say which they are; the rest, in a batch
 * that reaches back in event time most of them, are copied in, binary, without
 * INSERT ... ON CONFLICT's speculative insertion: about half the server's
 * work per row (see the README, PostgreSQL). */
static int pg_write_window_counts(struct cs_sink *base,
                                  const struct cs_window_count *rows, size_t n,
                                  const struct cs_window_spec *specs,
                                  char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        PGresult *res;
        size_t i, m, nstored, ncopy;
        int d, negative = 0, r;

        if (!n)
                return 0;
        if ((r = resolve_ids(s, rows, n, specs, errstr, errstr_size)) < 0)
                return r;
        if (n > s->keyed_cap) {
                struct keyed_row *k = realloc(s->keyed, n * sizeof(*k));

                if (!k)
                        return oom(errstr, errstr_size);
                s->keyed = k;
                s->keyed_cap = n;
        }
        for (i = 0; i < n; i++) {
                const struct cs_window_count *w = &rows[i];
                struct keyed_row *k = &s->keyed[i];

                k->key[1] = w->start;
                for (d = 0; d < DICT_COUNT; d++) {
                        struct cs_str t = key_text(w, specs, d);

                        k->key[d ? d + 1 : 0] =
                                cs_idmap_find(&s->ids[d], t.ptr, t.len,
                                              cs_hash(t.ptr, t.len, 0));
                }
                k->end = w->start + specs[w->spec].size;
                k->calls = w->calls;
                k->late_calls = w->late_calls;
                k->negative = w->calls < 0;
                k->stored = 0;
        }
        qsort(s->keyed, n, sizeof(*s->keyed), cmp_keyed);
        for (i = 1, m = 1; i < n; i++) {
                struct keyed_row *last = &s->keyed[m - 1], *k = &s->keyed[i];

                if (cmp_keyed(last, k)) {
                        s->keyed[m++] = *k;
                        continue;
                }
                last->calls += k->calls;
                last->late_calls += k->late_calls;
                last->negative |= k->negative;
        }
        for (i = 0; i < m; i++)
                negative |= s->keyed[i].negative;
        /* The stored keys: by a scan of the batch's stretches of window
         * starts while they hold fewer rows than a quarter of the keys
         * (s->bin[7..10]), else by the update itself, which probes every
         * key and returns those it found (s->bin[0..6]: every row; [0..3]
         * serve drop_empty_windows too). After a scan the update takes
         * only the stored rows (s->bin[4..10]). */
        if (window_arrays(s, s->bin, 7, m, -1) < 0 ||
            window_ranges(s, s->bin + 7, m, (int64_t)(m / 4 + 64)) < 0)
                return oom(errstr, errstr_size);
        if ((r = run(s, ST_LOCK_WINDOW_KEYS, NULL, NULL, errstr, errstr_size)) <
                    0 ||
            (r = run_binary(s, ST_STORED_WINDOW_KEYS, s->bin + 7, 4, &res,
                            errstr, errstr_size)) < 0)
                return r;
        if ((size_t)PQntuples(res) < m / 4 + 64) {
                nstored = mark_stored(s, m, res);
                PQclear(res);
                if (nstored &&
                    (window_arrays(s, s->bin + 4, 7, m, 1) < 0 ||
                     (r = run_binary(s, ST_ADD_WINDOW_COUNTS, s->bin + 4, 7,
                                     NULL, errstr, errstr_size)) < 0))
                        return r < 0 ? r : oom(errstr, errstr_size);
        } else {
                PQclear(res);
                if ((r = run_binary(s, ST_ADD_WINDOW_COUNTS, s->bin, 7, &res,
                                    errstr, errstr_size)) < 0)
                        return r;
                mark_stored(s, m, res);
                PQclear(res);
        }
        if (window_copy(s, m, &ncopy) < 0)
                return oom(errstr, errstr_size);
        if (ncopy &&
            (r = copy_in(s, "copy_window_totals", errstr, errstr_size)) < 0)
                return r;
        /* As before 011: any count that moved down drops every key of the
         * batch that is at zero. */
        return negative ? run_binary(s, ST_DROP_EMPTY_WINDOWS, s->bin, 4, NULL,
                                     errstr, errstr_size)
                        : 0;
}

static int pg_write_rejects(struct cs_sink *base, const struct cs_batch *b,
                            char *errstr, size_t errstr_size)
{
        static const char hex[] = "0123456789abcdef";
        struct pg_sink *s = (struct pg_sink *)base;
        const char *params[1] = {b->topic};
        size_t i, j;
        int r;

        if (!b->nrejects)
                return 0;
        s->copy.len = 0;
        for (i = 0; i < b->nrejects; i++) {
                const struct cs_batch_reject *rj = &b->rejects[i];

                if (putf(&s->copy, "%lld\t", rj->partition) < 0 ||
                    putf(&s->copy, "%lld\t", rj->offset) < 0 ||
                    put_field(&s->copy, rj->reason, '\t') < 0 ||
                    reserve(&s->copy, rj->payload.len * 2 + 4) < 0)
                        return oom(errstr, errstr_size);
                /* bytea in hex, its backslash escaped for COPY: \\x... */
                memcpy(s->copy.p + s->copy.len, "\\\\x", 3);
                s->copy.len += 3;
                for (j = 0; j < rj->payload.len; j++) {
                        unsigned char c = (unsigned char)rj->payload.ptr[j];

                        s->copy.p[s->copy.len++] = hex[c >> 4];
                        s->copy.p[s->copy.len++] = hex[c & 15];
                }
                s->copy.p[s->copy.len++] = '\t';
                if (putf(&s->copy, "%lld\n", (long long)rj->payload_size) < 0)
                        return oom(errstr, errstr_size);
        }
        if ((r = copy_in(s, "copy_rejects", errstr, errstr_size)) < 0)
                return r;
        return run(s, ST_INSERT_REJECTS, params, NULL, errstr, errstr_size);
}

static int pg_write_late_records(struct cs_sink *base, const struct cs_batch *b,
                                 const struct cs_late_record *recs, size_t n,
                                 const struct cs_window_spec *specs,
                                 char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        const char *params[1] = {b->topic};
        char ts[CS_TS_BUFSZ];
        size_t i;
        int r;

        if (!n)
                return 0;
        s->copy.len = 0;
        for (i = 0; i < n; i++) {
                const struct cs_batch_call *c = &b->calls[recs[i].call];
                struct cs_str t = {ts, 0};

                if (put_field(&s->copy, c->field[CS_F_CRIME_ID], '\t') < 0 ||
                    put_text(&s->copy, specs[recs[i].spec].name, '\t') < 0)
                        return oom(errstr, errstr_size);
                t.len = cs_time_format(c->ts, c->ts_usec, ts);
                if (put_field(&s->copy, t, '\t') < 0)
                        return oom(errstr, errstr_size);
                t.len = cs_time_format(c->mark.sec, c->mark.usec, ts);
                if (put_field(&s->copy, t, '\t') < 0 ||
                    putf(&s->copy, "%lld\t", recs[i].windows_dropped) < 0 ||
                    putf(&s->copy, "%lld\t", c->partition) < 0 ||
                    putf(&s->copy, "%lld\n", c->offset) < 0)
                        return oom(errstr, errstr_size);
        }
        if ((r = copy_in(s, "copy_late", errstr, errstr_size)) < 0)
                return r;
        return run(s, ST_INSERT_LATE_RECORDS, params, NULL, errstr,
                   errstr_size);
}

static int pg_store_offsets(struct cs_sink *base, const struct cs_batch *b,
                            char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        const char *params[11];
        char lateness[24];
        int a;

        if (!b->noffsets)
                return 0;
        if (offset_arrays(s, b->offsets, b->noffsets, 1) < 0)
                return oom(errstr, errstr_size);
        snprintf(lateness, sizeof(lateness), "%lld",
                 (long long)b->offsets[0].watermark.lateness);
        params[0] = b->topic;
        params[1] = s->arr[0].p;
        params[2] = s->arr[1].p;
        params[3] = s->arr[2].p;
        params[4] = s->arr[3].p;
        params[5] = lateness;
        for (a = 4; a < 9; a++)
                params[a + 2] = s->arr[a].p;
        return run(s, ST_STORE_OFFSETS, params, NULL, errstr, errstr_size);
}

static int pg_rebuild_begin(struct cs_sink *base, char *errstr,
                            size_t errstr_size)
{
        ((struct pg_sink *)base)->staged = 0;
        forget_uncommitted_ids((struct pg_sink *)base);
        return run_named((struct pg_sink *)base, "rebuild_begin", NULL, 0, NULL,
                         errstr, errstr_size);
}

static int pg_scan_calls(struct cs_sink *base, int64_t lo, int64_t hi,
                         cs_sink_call_cb *cb, void *opaque, char *errstr,
                         size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char from[CS_TS_BUFSZ], to[CS_TS_BUFSZ];
        const char *params[2] = {from, to};
        PGresult *res;
        int row, r;

        cs_time_format_bound(lo, from);
        cs_time_format_bound(hi, to);
        if ((r = run_named(s, "scan_calls", params, 2, &res, errstr,
                           errstr_size)) < 0)
                return r;
        for (row = 0; row < PQntuples(res) && !r; row++) {
                struct cs_stored_call c;
                const char *ts = PQgetvalue(res, row, 3);
                const char *mark = PQgetvalue(res, row, 4);

                memset(&c, 0, sizeof(c));
                c.crime_id.ptr = PQgetvalue(res, row, 0);
                c.crime_id.len = (size_t)PQgetlength(res, row, 0);
                c.crime_type.ptr = PQgetvalue(res, row, 1);
                c.crime_type.len = (size_t)PQgetlength(res, row, 1);
                if (!PQgetisnull(res, row, 2)) {
                        c.disposition.ptr = PQgetvalue(res, row, 2);
                        c.disposition.len = (size_t)PQgetlength(res, row, 2);
                }
                c.late_drop = !strcmp(PQgetvalue(res, row, 5), "drop");
                c.topic.ptr = PQgetvalue(res, row, 6);
                c.topic.len = (size_t)PQgetlength(res, row, 6);
                c.partition = atoi(PQgetvalue(res, row, 7));
                c.offset = atoll(PQgetvalue(res, row, 8));
                c.has_mark = !PQgetisnull(res, row, 4) &&
                             cs_time_parse(mark, strlen(mark), &c.mark.sec,
                                           &c.mark.usec) == 0;
                if (cs_time_parse(ts, strlen(ts), &c.ts.sec, &c.ts.usec) < 0 ||
                    cb(opaque, &c)) {
                        snprintf(errstr, errstr_size,
                                 "%s: reading back call %s failed",
                                 s->base.name, PQgetvalue(res, row, 0));
                        r = -1;
                }
        }
        PQclear(res);
        return r;
}

static int pg_clear_windows(struct cs_sink *base, const char *spec,
                            int64_t from, int64_t to, char *errstr,
                            size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char lo[CS_TS_BUFSZ], hi[CS_TS_BUFSZ];
        const char *params[3] = {spec, lo, hi};
        int r;

        /* window_totals keeps seconds, late_records timestamps. */
        snprintf(lo, sizeof(lo), "%lld", (long long)from);
        snprintf(hi, sizeof(hi), "%lld", (long long)to);
        if ((r = run_named(s, "clear_windows", params, 3, NULL, errstr,
                           errstr_size)) < 0)
                return r;
        cs_time_format_bound(from, lo);
        cs_time_format_bound(to, hi);
        return run_named(s, "clear_late", params, 3, NULL, errstr, errstr_size);
}

static int pg_write_stored_late(struct cs_sink *base, const char *spec,
                                const struct cs_stored_late *recs, size_t n,
                                char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char ts[CS_TS_BUFSZ], mark[CS_TS_BUFSZ], dropped[16], part[16], off[24];
        const char *params[8] = {NULL,    spec, ts,   mark,
                                 dropped, NULL, part, off};
        size_t i;
        int r = 0;

        for (i = 0; i < n && !r; i++) {
                const struct cs_stored_late *l = &recs[i];

                params[0] = l->crime_id.ptr;
                params[5] = l->topic.ptr;
                cs_time_format(l->ts.sec, l->ts.usec, ts);
                cs_time_format(l->mark.sec, l->mark.usec, mark);
                snprintf(dropped, sizeof(dropped), "%d", l->windows_dropped);
                snprintf(part, sizeof(part), "%d", (int)l->partition);
                snprintf(off, sizeof(off), "%lld", (long long)l->offset);
                r = run_named(s, "insert_stored_late", params, 8, NULL, errstr,
                              errstr_size);
        }
        return r;
}

static int pg_window_specs(struct cs_sink *base, char (*names)[32], int max,
                           int *n, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        PGresult *res;
        int row, r;

        *n = 0;
        if ((r = run_named(s, "window_specs", NULL, 0, &res, errstr,
                           errstr_size)) < 0)
                return r;
        for (row = 0; row < PQntuples(res) && *n < max; row++)
                snprintf(names[(*n)++], 32, "%s", PQgetvalue(res, row, 0));
        PQclear(res);
        return 0;
}

static int pg_retain(struct cs_sink *base, int64_t retention, int limit,
                     long *deleted, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char secs[24], lim[16];
        const char *params[2] = {secs, lim};
        PGresult *res;
        int i, r;

        *deleted = 0;
        snprintf(secs, sizeof(secs), "%lld", (long long)retention);
        snprintf(lim, sizeof(lim), "%d", limit);
        /* Under the ingests' lock: a batch that found a call or window
         * count stored must not see it deleted before it commits. */
        if ((r = exec(s, "BEGIN", "BEGIN", errstr, errstr_size)) < 0)
                return r;
        if ((r = run(s, ST_LOCK_WINDOW_KEYS, NULL, NULL, errstr, errstr_size)) <
            0) {
                rollback(s);
                return r;
        }
        for (i = ST_RETAIN_CALLS; i <= ST_RETAIN_REJECTS; i++) {
                if ((r = run(s, i, params, &res, errstr, errstr_size)) < 0) {
                        rollback(s);
                        return r;
                }
                *deleted += atol(PQcmdTuples(res));
                PQclear(res);
        }
        if ((r = exec(s, "COMMIT", "COMMIT", errstr, errstr_size)) < 0)
                rollback(s);
        return r;
}

static int pg_commit(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        int r = exec(s, "COMMIT", "COMMIT", errstr, errstr_size);

        if (r == 0)
                s->ids_uncommitted = 0;
        return r;
}

static void pg_rollback(struct cs_sink *base)
{
        rollback((struct pg_sink *)base);
}

/* Whether a failed connection may succeed later: the server is not there
 * yet (refused, no socket, unreachable, timed out), starting up, shutting
 * down or full. Not when it turned us away (password, no such database or
 * role, permission denied) or the conninfo is wrong. libpq gives no
 * SQLSTATE here: the server's reasons follow "FATAL:". */
static int connect_transient(PGconn *c, const char *msg)
{
        static const char *const later[] = {
                "starting up", "shutting down",    "in recovery",
                "too many",    "connection slots", "not yet accepting",
                NULL};
        static const char *const never[] = {
                "password", "authentication", "SSL",        "certificate",
                "GSS",      "invalid",        "missing \"", "unterminated",
                NULL};
        const char *const *p;

        if (PQconnectionNeedsPassword(c))
                return 0;
        if (strstr(msg, "FATAL:") || strstr(msg, "ERROR:")) {
                for (p = later; *p; p++)
                        if (strstr(msg, *p))
                                return 1;
                return 0;
        }
        for (p = never; *p; p++)
                if (strstr(msg, *p))
                        return 0;
        return 1;
}

/* The conninfo's connect_timeout in ms, or CONNECT_TIMEOUT_MS. */
static int64_t connect_timeout(PGconn *c)
{
        PQconninfoOption *opts = PQconninfo(c), *o;
        int64_t ms = CONNECT_TIMEOUT_MS;

        for (o = opts; o && o->keyword; o++)
                if (!strcmp(o->keyword, "connect_timeout") && o->val &&
                    atoi(o->val) > 0)
                        ms = (int64_t)atoi(o->val) * 1000;
        PQconninfoFree(opts);
        return ms;
}

/* Opens s->conn without blocking, looking at the stop request between
 * waits, names the sink after it and readies the session. Returns 0,
 * CS_RETRY when the server may come (or stopping), or -1. */
static int connect_db(struct pg_sink *s, char *errstr, size_t errstr_size)
{
        /* Defaults first: the caller's conninfo (expanded from dbname)
         * overrides them. Keepalives and tcp_user_timeout turn a peer that
         * vanished into a broken connection instead of a wait without
         * end. */
        static const char *const keys[] = {"connect_timeout",
                                           "application_name",
                                           "keepalives",
                                           "keepalives_idle",
                                           "keepalives_interval",
                                           "keepalives_count",
                                           "tcp_user_timeout",
                                           "dbname",
                                           NULL};
        const char *values[] = {"10", "callstream", "1",         "30", "10",
                                "3",  "60000",      s->conninfo, NULL};
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        const char *host, *port, *db, *msg;
        int64_t deadline;
        int r;

        PQfinish(s->conn);
        s->stop_at = 0;
        if (!(s->conn = PQconnectStartParams(keys, values, 1))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        deadline = cs_now_ms() + connect_timeout(s->conn);
        while (PQstatus(s->conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
               st != PGRES_POLLING_FAILED) {
                struct pollfd p = {
                        PQsocket(s->conn),
                        st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};

                if ((s->base.stop && *s->base.stop) || cs_now_ms() >= deadline)
                        break;
                if (p.fd < 0 || poll(&p, 1, SLICE_MS) > 0)
                        st = PQconnectPoll(s->conn);
        }
        host = PQhost(s->conn);
        port = PQport(s->conn);
        db = PQdb(s->conn);
        snprintf(s->base.name, sizeof(s->base.name),
                 "PostgreSQL at host %s port %s database %s",
                 host && *host ? host : "(default)",
                 port && *port ? port : "(default)", db ? db : "(default)");
        if (PQstatus(s->conn) != CONNECTION_OK) {
                if (st == PGRES_POLLING_FAILED ||
                    PQstatus(s->conn) == CONNECTION_BAD) {
                        msg = PQerrorMessage(s->conn);
                        r = connect_transient(s->conn, msg) ? CS_RETRY : -1;
                } else if (s->base.stop && *s->base.stop) {
                        msg = "stopped while connecting";
                        r = CS_RETRY;
                } else {
                        msg = "timeout expired";
                        r = CS_RETRY;
                }
                snprintf(errstr, errstr_size, "%s: cannot connect: %.*s",
                         s->base.name, (int)strcspn(msg, "\n"), msg);
                snprintf(s->why, sizeof(s->why), "cannot connect");
                PQfinish(s->conn);
                s->conn = NULL;
                return r;
        }
        if (PQsetnonblocking(s->conn, 1) != 0)
                return fail(s, NULL, "going non-blocking", errstr, errstr_size);
        return setup_session(s, errstr, errstr_size);
}

static int pg_reconnect(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        int r;

        if (s->conn && PQstatus(s->conn) == CONNECTION_OK) {
                /* A lost race, not a lost connection: check it lives. */
                r = exec(s, "SELECT 1", "checking the connection", errstr,
                         errstr_size);
                if (r == 0 || (s->conn && PQstatus(s->conn) == CONNECTION_OK))
                        return r;
        }
        if ((r = connect_db(s, errstr, errstr_size)) < 0)
                return r;
        return prepare_all(s, errstr, errstr_size);
}

static void pg_close(struct cs_sink *base)
{
        struct pg_sink *s = (struct pg_sink *)base;

        rollback(s);
        PQfinish(s->conn);
        cs_arena_destroy(s->old);
        free(s->copy.p);
        for (size_t i = 0; i < CS_ARRAY_SIZE(s->arr); i++)
                free(s->arr[i].p);
        for (size_t i = 0; i < CS_ARRAY_SIZE(s->bin); i++)
                free(s->bin[i].p);
        for (size_t i = 0; i < CS_ARRAY_SIZE(s->names); i++)
                free(s->names[i].p);
        forget_ids(s);
        free(s->keyed);
        free(s->conninfo);
        free(s->schema);
        free(s);
}

static int pg_query(struct cs_sink *base, const char *name,
                    const char *const *params, int n, cs_sink_row_cb *cb,
                    void *opaque, long *changed, char *errstr,
                    size_t errstr_size)
{
        enum { COLS_MAX = 16 };
        struct pg_sink *s = (struct pg_sink *)base;
        const char *vals[COLS_MAX];
        PGresult *res;
        int row, i, ncols, r;

        /* run_named() sends no parameters as a simple query. */
        if ((r = run_named(s, name, params, n, &res, errstr, errstr_size)) < 0)
                return r;
        ncols = PQnfields(res);
        if (ncols > COLS_MAX)
                ncols = COLS_MAX;
        for (row = 0; row < PQntuples(res) && !r; row++) {
                for (i = 0; i < ncols; i++)
                        vals[i] = PQgetisnull(res, row, i)
                                          ? NULL
                                          : PQgetvalue(res, row, i);
                if (cb && cb(opaque, ncols, vals)) {
                        snprintf(errstr, errstr_size, "%s: %s: out of memory",
                                 s->base.name, name);
                        r = -1;
                }
        }
        if (changed)
                *changed = r == 0 ? atol(PQcmdTuples(res)) : 0;
        PQclear(res);
        return r;
}

/* The Kafka bookkeeping below runs rarely: unprepared statements. */
static int pg_write_gaps(struct cs_sink *base, const char *topic,
                         const struct cs_offset_gap *gaps, size_t n,
                         char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char part[16], first[24], last[24];
        const char *params[4] = {topic, part, first, last};
        size_t i;
        int r = 0;

        for (i = 0; i < n && r == 0; i++) {
                snprintf(part, sizeof(part), "%d", (int)gaps[i].partition);
                snprintf(first, sizeof(first), "%lld",
                         (long long)gaps[i].first);
                snprintf(last, sizeof(last), "%lld", (long long)gaps[i].last);
                r = run_named(s, "write_gap", params, 4, NULL, errstr,
                              errstr_size);
        }
        return r;
}

static int pg_store_high_watermarks(struct cs_sink *base, const char *topic,
                                    const struct cs_partition_offset *offs,
                                    size_t n, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char part[16], high[24];
        const char *params[3] = {topic, part, high};
        size_t i;
        int r = 0;

        for (i = 0; i < n && r == 0; i++) {
                snprintf(part, sizeof(part), "%d", (int)offs[i].partition);
                snprintf(high, sizeof(high), "%lld",
                         (long long)offs[i].high_watermark);
                r = run_named(s, "store_high_watermark", params, 3, NULL,
                              errstr, errstr_size);
        }
        return r;
}

static const struct cs_sink_ops pg_ops = {
        .dialect = DIALECT,
        .migrate = pg_migrate,
        .load_offsets = pg_load_offsets,
        .begin = pg_begin,
        .write_calls = pg_write_calls,
        .write_window_counts = pg_write_window_counts,
        .write_rejects = pg_write_rejects,
        .write_late_records = pg_write_late_records,
        .store_offsets = pg_store_offsets,
        .retain = pg_retain,
        .rebuild_begin = pg_rebuild_begin,
        .scan_calls = pg_scan_calls,
        .clear_windows = pg_clear_windows,
        .write_stored_late = pg_write_stored_late,
        .window_specs = pg_window_specs,
        .commit = pg_commit,
        .rollback = pg_rollback,
        .reconnect = pg_reconnect,
        .close = pg_close,
        .query = pg_query,
        .write_gaps = pg_write_gaps,
        .store_high_watermarks = pg_store_high_watermarks,
};

int cs_sink_pg_open(const char *conninfo, const char *schema,
                    struct cs_sink **out, char *errstr, size_t errstr_size)
{
        struct pg_sink *s;
        int r;

        *out = NULL;
        /* PostgreSQL would cut a longer name to 63 bytes without a word. */
        if (schema && (!*schema || strlen(schema) > CS_PG_NAME_MAX)) {
                snprintf(errstr, errstr_size,
                         "--schema: a PostgreSQL name is 1 to %d bytes, not "
                         "%zu",
                         CS_PG_NAME_MAX, strlen(schema));
                return -1;
        }
        s = calloc(1, sizeof(*s));
        if (!s || !(s->conninfo = strdup(conninfo)) ||
            (schema && !(s->schema = strdup(schema)))) {
                if (s)
                        free(s->conninfo);
                free(s);
                return oom(errstr, errstr_size);
        }
        s->base.ops = &pg_ops;
        if (!(s->old = cs_arena_new())) {
                pg_close(&s->base);
                return oom(errstr, errstr_size);
        }
        if ((r = connect_db(s, errstr, errstr_size)) < 0) {
                pg_close(&s->base);
                return r;
        }
        *out = &s->base;
        return 0;
}
