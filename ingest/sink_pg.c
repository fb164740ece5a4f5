/* sink_pg.c: the PostgreSQL sink.
 *
 * A batch goes in a few round trips, whatever its size: its calls, window
 * counts and rejects are COPYed into per-connection temporary tables and
 * merged with one set-based INSERT ... ON CONFLICT each. Rows are merged in
 * key order, so ingest processes sharing the database lock rows in the same
 * order. Errors that a reconnect or a retry can cure (the server restarting,
 * a dropped connection, a deadlock) come back as CS_SINK_RETRY. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cs_arena.h"
#include "cs_migrate.h"
#include "cs_sink.h"

#define DIALECT "postgresql"

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
        ST_COUNT
};

static const struct {
        const char *name;
        int nparams;
} stmts[ST_COUNT] = {
        [ST_INSERT_CALLS] = {"insert_calls", 2},
        [ST_ADD_WINDOW_COUNTS] = {"add_window_counts", 0},
        [ST_INSERT_REJECTS] = {"insert_rejects", 1},
        [ST_STORE_OFFSETS] = {"store_offsets", 11},
        [ST_LOAD_OFFSETS] = {"load_offsets", 2},
        [ST_INSERT_LATE_RECORDS] = {"insert_late_records", 1},
        [ST_REPLACE_CALLS] = {"replace_calls", 2},
        [ST_DROP_EMPTY_WINDOWS] = {"drop_empty_windows", 0},
        [ST_RETAIN_CALLS] = {"retain_calls", 2},
        [ST_RETAIN_WINDOWS] = {"retain_windows", 2},
        [ST_RETAIN_LATE] = {"retain_late", 2},
        [ST_RETAIN_REJECTS] = {"retain_rejects", 2},
};

/* A growable text buffer, kept across batches. */
struct buf {
        char *p;
        size_t len;
        size_t cap;
};

struct pg_sink {
        struct cs_sink base;
        PGconn *conn;
        char *conninfo; /* may hold a password: never printed */
        char *schema;
        struct buf copy;      /* one COPY's rows */
        struct cs_arena *old; /* strings of replaced calls */
        unsigned staged;      /* staging tables filled in this transaction */
        struct buf arr[9];    /* array literals for store_offsets */
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

/* Writes "where: what: first line of the server's message" to errstr and
 * says whether retrying can help. */
static int fail(struct pg_sink *s, const PGresult *res, const char *what,
                char *errstr, size_t errstr_size)
{
        const char *state =
                res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *msg = res ? PQresultErrorMessage(res) : "";
        int transient;

        if (!msg || !*msg)
                msg = PQerrorMessage(s->conn);
        snprintf(errstr, errstr_size, "%s: %s: %.*s", s->base.name, what,
                 (int)strcspn(msg, "\n"), msg);
        /* Lost connection (class 08, admin/crash shutdown 57P0x), lost
         * race (40001, 40P01) or no resources (53): worth another try. */
        transient = PQstatus(s->conn) != CONNECTION_OK || !state ||
                    !strncmp(state, "08", 2) || !strncmp(state, "57P", 3) ||
                    !strncmp(state, "40", 2) || !strncmp(state, "53", 2);
        return transient ? CS_SINK_RETRY : -1;
}

/* Runs sql (no parameters, any number of statements); 0 or fail(). */
static int exec(struct pg_sink *s, const char *sql, const char *what,
                char *errstr, size_t errstr_size)
{
        PGresult *res = PQexec(s->conn, sql);
        int r = 0;

        if (PQresultStatus(res) != PGRES_COMMAND_OK &&
            PQresultStatus(res) != PGRES_TUPLES_OK)
                r = fail(s, res, what, errstr, errstr_size);
        PQclear(res);
        return r;
}

/* Runs a prepared statement; on success *out holds the result (the caller
 * PQclear()s it) unless out is NULL. */
static int run(struct pg_sink *s, enum stmt st, const char *const *params,
               PGresult **out, char *errstr, size_t errstr_size)
{
        PGresult *res =
                PQexecPrepared(s->conn, stmts[st].name, stmts[st].nparams,
                               params, NULL, NULL, 0);
        ExecStatusType status = PQresultStatus(res);

        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
                int r = fail(s, res, stmts[st].name, errstr, errstr_size);

                PQclear(res);
                return r;
        }
        if (out)
                *out = res;
        else
                PQclear(res);
        return 0;
}

/* Sends s->copy through "COPY table FROM STDIN" (the named statement). */
static int copy_in(struct pg_sink *s, const char *name, char *errstr,
                   size_t errstr_size)
{
        size_t len;
        const char *sql = cs_sql_statement(DIALECT, name, &len);
        char query[128];
        PGresult *res;
        int r = 0;

        static const char *const copies[] = {"copy_calls", "copy_windows",
                                             "copy_rejects", "copy_late"};
        unsigned bit = 0;
        size_t k;

        /* A staging table empties at commit; one transaction may fill it
         * twice (rebuild does, spec by spec): empty it first then. */
        for (k = 0; k < CS_ARRAY_SIZE(copies); k++)
                if (!strcmp(name, copies[k]))
                        bit = 1u << k;
        if (s->staged & bit) {
                snprintf(query, sizeof(query), "TRUNCATE %.*s",
                         (int)strcspn(sql + 5, " "), sql + 5);
                if ((r = exec(s, query, name, errstr, errstr_size)) < 0)
                        return r;
        }
        s->staged |= bit;
        snprintf(query, sizeof(query), "%.*s", (int)len, sql);
        res = PQexec(s->conn, query);
        if (PQresultStatus(res) != PGRES_COPY_IN) {
                r = fail(s, res, name, errstr, errstr_size);
                PQclear(res);
                return r;
        }
        PQclear(res);
        if (PQputCopyData(s->conn, s->copy.p, (int)s->copy.len) != 1 ||
            PQputCopyEnd(s->conn, NULL) != 1)
                return fail(s, NULL, name, errstr, errstr_size);
        while ((res = PQgetResult(s->conn))) {
                if (!r && PQresultStatus(res) != PGRES_COMMAND_OK)
                        r = fail(s, res, name, errstr, errstr_size);
                PQclear(res);
        }
        return r;
}

/* Returns the NUL-terminated text of a statement, or NULL. */
static char *statement(const char *name)
{
        size_t len;
        const char *sql = cs_sql_statement(DIALECT, name, &len);

        return sql ? strndup(sql, len) : NULL;
}

/* Server notices ("relation already exists, skipping") are for debugging. */
static void on_notice(void *arg, const char *msg)
{
        (void)arg;
        cs_log(CS_LOG_DEBUG, "PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* Readies a new connection: search_path, staging tables, statements. */
static int setup_session(struct pg_sink *s, char *errstr, size_t errstr_size)
{
        char *sql;
        int r;

        PQsetNoticeProcessor(s->conn, on_notice, NULL);
        if (PQsetClientEncoding(s->conn, "UTF8") != 0)
                return fail(s, NULL, "setting client encoding", errstr,
                            errstr_size);
        /* Timestamps come back as cs_parse_timestamp() reads them. */
        if ((r = exec(s, "SET DateStyle TO ISO", "setting DateStyle", errstr,
                      errstr_size)) < 0)
                return r;
        if (s->schema) {
                char *id = PQescapeIdentifier(s->conn, s->schema,
                                              strlen(s->schema));
                char q[512];

                if (!id)
                        return fail(s, NULL, "quoting --schema", errstr,
                                    errstr_size);
                /* The schema must exist before it can be searched. */
                snprintf(q, sizeof(q),
                         "CREATE SCHEMA IF NOT EXISTS %s; "
                         "SET search_path TO %s",
                         id, id);
                PQfreemem(id);
                if ((r = exec(s, q, "setting --schema", errstr, errstr_size)) <
                    0)
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
                PGresult *res;

                if (!sql) {
                        snprintf(errstr, errstr_size, "no SQL statement %s",
                                 stmts[i].name);
                        return -1;
                }
                res = PQprepare(s->conn, stmts[i].name, sql, stmts[i].nparams,
                                NULL);
                free(sql);
                if (PQresultStatus(res) != PGRES_COMMAND_OK)
                        r = fail(s, res, stmts[i].name, errstr, errstr_size);
                PQclear(res);
        }
        return r;
}

/* Applies one migration unless it is recorded, under the migration lock. */
static int apply_migration(struct pg_sink *s, const struct cs_migration *m,
                           char *lock, char *check, char *record, char *errstr,
                           size_t errstr_size)
{
        const char *name = strrchr(m->path, '/') + 1;
        char version[16];
        const char *params[3] = {version, name, m->checksum};
        PGresult *res = NULL;
        int r;

        snprintf(version, sizeof(version), "%d", m->version);
        if ((r = exec(s, "BEGIN", "starting migration", errstr, errstr_size)) <
                    0 ||
            (r = exec(s, lock, "locking migrations", errstr, errstr_size)) < 0)
                goto done;
        res = PQexecParams(s->conn, check, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                r = fail(s, res, "reading schema_migrations", errstr,
                         errstr_size);
                goto done;
        }
        if (PQntuples(res) == 1) {
                const char *sum = PQgetvalue(res, 0, 0);

                if (strcmp(sum, m->checksum)) {
                        snprintf(errstr, errstr_size,
                                 "%s: migration %s was changed after it was "
                                 "applied (checksum %s, now %s)",
                                 s->base.name, name, sum, m->checksum);
                        r = -1;
                }
                goto done;
        }
        PQclear(res);
        res = NULL;
        if ((r = exec(s, m->sql, name, errstr, errstr_size)) < 0)
                goto done;
        res = PQexecParams(s->conn, record, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                r = fail(s, res, "recording migration", errstr, errstr_size);
                goto done;
        }
        cs_log(CS_LOG_INFO, "%s: applied migration %s", s->base.name, name);
done:
        PQclear(res);
        if (r == 0)
                r = exec(s, "COMMIT", "committing migration", errstr,
                         errstr_size);
        else
                PQclear(PQexec(s->conn, "ROLLBACK"));
        return r;
}

static int exec_views(struct pg_sink *s, char *errstr, size_t errstr_size)
{
        const char *views[CS_VIEWS_MAX];
        int i, n = cs_views(DIALECT, views, CS_VIEWS_MAX), r = 0;

        for (i = 0; i < n && !r; i++)
                r = exec(s, views[i], "creating views", errstr, errstr_size);
        return r;
}

static int pg_migrate(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = cs_migrations(DIALECT, m, CS_MIGRATIONS_MAX);
        char *create = statement("create_migrations_table");
        char *lock = statement("lock_migrations");
        char *check = statement("migration_checksum");
        char *record = statement("record_migration");
        char *latest = statement("latest_migration");
        PGresult *res = NULL;
        int i, r = -1;

        if (!create || !lock || !check || !record || !latest) {
                snprintf(errstr, errstr_size, "out of memory");
                goto done;
        }
        if ((r = exec(s, "BEGIN", "starting migration", errstr, errstr_size)) <
                    0 ||
            (r = exec(s, lock, "locking migrations", errstr, errstr_size)) <
                    0 ||
            (r = exec(s, create, "creating schema_migrations", errstr,
                      errstr_size)) < 0 ||
            (r = exec(s, "COMMIT", "creating schema_migrations", errstr,
                      errstr_size)) < 0)
                goto done;
        res = PQexec(s->conn, latest);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                r = fail(s, res, "reading schema_migrations", errstr,
                         errstr_size);
                goto done;
        }
        if (n > 0 && atoi(PQgetvalue(res, 0, 0)) > m[n - 1].version) {
                snprintf(errstr, errstr_size,
                         "%s: schema version %s is newer than this "
                         "callstream knows (%d); upgrade callstream",
                         s->base.name, PQgetvalue(res, 0, 0), m[n - 1].version);
                r = -1;
                goto done;
        }
        for (i = 0; i < n; i++)
                if ((r = apply_migration(s, &m[i], lock, check, record, errstr,
                                         errstr_size)) < 0)
                        goto done;
        if ((r = exec(s, "BEGIN", "starting views", errstr, errstr_size)) < 0 ||
            (r = exec(s, lock, "locking migrations", errstr, errstr_size)) <
                    0 ||
            (r = exec_views(s, errstr, errstr_size)) < 0 ||
            (r = exec(s, "COMMIT", "committing views", errstr, errstr_size)) <
                    0)
                goto done;
        r = prepare_all(s, errstr, errstr_size);
done:
        if (r < 0 && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
                PQclear(PQexec(s->conn, "ROLLBACK"));
        PQclear(res);
        free(create);
        free(lock);
        free(check);
        free(record);
        free(latest);
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
                        cs_format_timestamp(w->max_event.sec, w->max_event.usec,
                                            v + 1);
                        strcat(v, "\"");
                } else {
                        strcpy(v, "NULL");
                }
                if (put_elem(&s->arr[2], !i, v) < 0)
                        return -1;
                if (w->valid) {
                        cs_format_timestamp(w->mark.sec, w->mark.usec, v + 1);
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
                        w->valid = !PQgetisnull(res, row, 2) &&
                                   !PQgetisnull(res, row, 3) &&
                                   cs_parse_timestamp(
                                           max, strlen(max), &w->max_event.sec,
                                           &w->max_event.usec) == 0 &&
                                   cs_parse_timestamp(mark, strlen(mark),
                                                      &w->mark.sec,
                                                      &w->mark.usec) == 0;
                }
        }
        PQclear(res);
        return 0;
}

static int pg_begin(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        ((struct pg_sink *)base)->staged = 0;
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
                if (cs_parse_timestamp(ts, strlen(ts), &o->ts, &usec) < 0) {
                        PQclear(res);
                        snprintf(errstr, errstr_size,
                                 "%s: unreadable call_ts %s", s->base.name, ts);
                        return -1;
                }
                o->has_mark =
                        !PQgetisnull(res, row, 4) &&
                        cs_parse_timestamp(mark, strlen(mark), &o->mark.sec,
                                           &o->mark.usec) == 0;
                o->late_drop = !strcmp(PQgetvalue(res, row, 5), "drop");
                outcome[idx] = CS_CALL_REPLACED;
        }
        PQclear(res);
        return 0;
}

static int pg_write_calls(struct cs_sink *base, const struct cs_batch *b,
                          unsigned char *inserted, struct cs_old_call *old,
                          char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        const char *params[2] = {b->topic, b->late_policy};
        char ts[CS_TS_BUFSZ];
        PGresult *res;
        size_t i;
        int f, row, r;

        memset(inserted, 0, b->ncalls);
        if (!b->ncalls)
                return 0;
        s->copy.len = 0;
        for (i = 0; i < b->ncalls; i++) {
                const struct cs_batch_call *c = &b->calls[i];
                struct cs_str t = {ts, 0};

                if (putf(&s->copy, "%lld\t", (long long)i) < 0)
                        return oom(errstr, errstr_size);
                for (f = 0; f < CS_F_COUNT; f++)
                        if (put_field(&s->copy, c->field[f], '\t') < 0)
                                return oom(errstr, errstr_size);
                t.len = cs_format_timestamp(c->ts, c->ts_usec, ts);
                if (put_field(&s->copy, t, '\t') < 0 ||
                    putf(&s->copy, "%lld\t", c->partition) < 0 ||
                    putf(&s->copy, "%lld\t", c->offset) < 0)
                        return oom(errstr, errstr_size);
                t.ptr = c->has_mark ? ts : NULL;
                t.len = c->has_mark ? cs_format_timestamp(c->mark.sec,
                                                          c->mark.usec, ts)
                                    : 0;
                if (put_field(&s->copy, t, '\n') < 0)
                        return oom(errstr, errstr_size);
        }
        if ((r = copy_in(s, "copy_calls", errstr, errstr_size)) < 0 ||
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

static int pg_write_window_counts(struct cs_sink *base,
                                  const struct cs_window_count *rows, size_t n,
                                  const struct cs_window_spec *specs,
                                  char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        char start[CS_TS_BUFSZ], end[CS_TS_BUFSZ];
        size_t i;
        int r;

        if (!n)
                return 0;
        s->copy.len = 0;
        for (i = 0; i < n; i++) {
                const struct cs_window_count *w = &rows[i];
                const struct cs_window_spec *spec = &specs[w->spec];
                struct cs_str disp = w->disposition;

                /* The key column is NOT NULL: no disposition is ''. */
                if (!disp.ptr)
                        disp.ptr = "";
                cs_format_timestamp(w->start, 0, start);
                cs_format_timestamp(w->start + spec->size, 0, end);
                if (put_text(&s->copy, spec->name, '\t') < 0 ||
                    put_text(&s->copy, start, '\t') < 0 ||
                    put_text(&s->copy, end, '\t') < 0 ||
                    put_field(&s->copy, w->crime_type, '\t') < 0 ||
                    put_field(&s->copy, disp, '\t') < 0 ||
                    putf(&s->copy, "%lld\t", w->calls) < 0 ||
                    putf(&s->copy, "%lld\n", w->late_calls) < 0)
                        return oom(errstr, errstr_size);
        }
        if ((r = copy_in(s, "copy_windows", errstr, errstr_size)) < 0 ||
            (r = run(s, ST_ADD_WINDOW_COUNTS, NULL, NULL, errstr,
                     errstr_size)) < 0)
                return r;
        for (i = 0; i < n; i++)
                if (rows[i].calls < 0)
                        return run(s, ST_DROP_EMPTY_WINDOWS, NULL, NULL, errstr,
                                   errstr_size);
        return 0;
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
                t.len = cs_format_timestamp(c->ts, c->ts_usec, ts);
                if (put_field(&s->copy, t, '\t') < 0)
                        return oom(errstr, errstr_size);
                t.len = cs_format_timestamp(c->mark.sec, c->mark.usec, ts);
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

static void pg_rollback(struct cs_sink *base);

/* Runs the named statement of statements.sql with text parameters; on
 * success *out gets the result (the caller PQclear()s it) unless NULL. */
static int run_named(struct pg_sink *s, const char *name,
                     const char *const *params, int n, PGresult **out,
                     char *errstr, size_t errstr_size)
{
        char *sql = statement(name);
        PGresult *res;
        ExecStatusType st;
        int r = 0;

        if (!sql)
                return oom(errstr, errstr_size);
        res = n ? PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0)
                : PQexec(s->conn, sql);
        free(sql);
        st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                r = fail(s, res, name, errstr, errstr_size);
                PQclear(res);
                return r;
        }
        if (out)
                *out = res;
        else
                PQclear(res);
        return 0;
}

static int pg_rebuild_begin(struct cs_sink *base, char *errstr,
                            size_t errstr_size)
{
        ((struct pg_sink *)base)->staged = 0;
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

        cs_format_bound(lo, from);
        cs_format_bound(hi, to);
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
                             cs_parse_timestamp(mark, strlen(mark), &c.mark.sec,
                                                &c.mark.usec) == 0;
                if (cs_parse_timestamp(ts, strlen(ts), &c.ts.sec, &c.ts.usec) <
                            0 ||
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

        cs_format_bound(from, lo);
        cs_format_bound(to, hi);
        if ((r = run_named(s, "clear_windows", params, 3, NULL, errstr,
                           errstr_size)) < 0)
                return r;
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
                cs_format_timestamp(l->ts.sec, l->ts.usec, ts);
                cs_format_timestamp(l->mark.sec, l->mark.usec, mark);
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
        if ((r = exec(s, "BEGIN", "BEGIN", errstr, errstr_size)) < 0)
                return r;
        for (i = ST_RETAIN_CALLS; i <= ST_RETAIN_REJECTS; i++) {
                if ((r = run(s, i, params, &res, errstr, errstr_size)) < 0) {
                        pg_rollback(base);
                        return r;
                }
                *deleted += atol(PQcmdTuples(res));
                PQclear(res);
        }
        if ((r = exec(s, "COMMIT", "COMMIT", errstr, errstr_size)) < 0)
                pg_rollback(base);
        return r;
}

static int pg_commit(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        return exec((struct pg_sink *)base, "COMMIT", "COMMIT", errstr,
                    errstr_size);
}

static void pg_rollback(struct cs_sink *base)
{
        struct pg_sink *s = (struct pg_sink *)base;

        if (PQstatus(s->conn) == CONNECTION_OK &&
            PQtransactionStatus(s->conn) != PQTRANS_IDLE)
                PQclear(PQexec(s->conn, "ROLLBACK"));
}

static int pg_reconnect(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct pg_sink *s = (struct pg_sink *)base;
        int r;

        if (PQstatus(s->conn) == CONNECTION_OK) {
                /* A lost race, not a lost connection: check it lives. */
                r = exec(s, "SELECT 1", "checking the connection", errstr,
                         errstr_size);
                if (r == 0 || PQstatus(s->conn) == CONNECTION_OK)
                        return r;
        }
        PQreset(s->conn);
        if (PQstatus(s->conn) != CONNECTION_OK)
                return fail(s, NULL, "reconnecting", errstr, errstr_size);
        if ((r = setup_session(s, errstr, errstr_size)) < 0)
                return r;
        return prepare_all(s, errstr, errstr_size);
}

static void pg_close(struct cs_sink *base)
{
        struct pg_sink *s = (struct pg_sink *)base;

        pg_rollback(base);
        PQfinish(s->conn);
        cs_arena_destroy(s->old);
        free(s->copy.p);
        for (size_t i = 0; i < CS_ARRAY_SIZE(s->arr); i++)
                free(s->arr[i].p);
        free(s->conninfo);
        free(s->schema);
        free(s);
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
        .write_gaps = pg_write_gaps,
        .store_high_watermarks = pg_store_high_watermarks,
};

int cs_sink_pg_open(const char *conninfo, const char *schema,
                    struct cs_sink **out, char *errstr, size_t errstr_size)
{
        /* Defaults first: the caller's conninfo (expanded from dbname)
         * overrides them. */
        static const char *const keys[] = {"connect_timeout",
                                           "application_name", "dbname", NULL};
        const char *values[4] = {"10", "callstream", conninfo, NULL};
        struct pg_sink *s = calloc(1, sizeof(*s));
        const char *host, *port, *db;

        *out = NULL;
        if (!s || !(s->conninfo = strdup(conninfo)) ||
            (schema && !(s->schema = strdup(schema)))) {
                if (s)
                        free(s->conninfo);
                free(s);
                return oom(errstr, errstr_size);
        }
        s->base.ops = &pg_ops;
        if (!(s->old = cs_arena_new())) {
                free(s->conninfo);
                free(s->schema);
                free(s);
                return oom(errstr, errstr_size);
        }
        s->conn = PQconnectdbParams(keys, values, 1);
        if (!s->conn) {
                pg_close(&s->base);
                return oom(errstr, errstr_size);
        }
        host = PQhost(s->conn);
        port = PQport(s->conn);
        db = PQdb(s->conn);
        snprintf(s->base.name, sizeof(s->base.name),
                 "PostgreSQL at host %s port %s database %s",
                 host && *host ? host : "(default)",
                 port && *port ? port : "(default)", db ? db : "(default)");
        if (PQstatus(s->conn) != CONNECTION_OK) {
                const char *msg = PQerrorMessage(s->conn);

                snprintf(errstr, errstr_size, "%s: cannot connect: %.*s",
                         s->base.name, (int)strcspn(msg, "\n"), msg);
                pg_close(&s->base);
                return -1;
        }
        if (setup_session(s, errstr, errstr_size) < 0) {
                pg_close(&s->base);
                return -1;
        }
        *out = &s->base;
        return 0;
}
