/* sink_sqlite.c: the SQLite sink, the embedded default.
 *
 * WAL journal with synchronous=NORMAL (FULL with --durability full): a
 * committed batch survives a crash of the process (kill -9), which is what
 * exactly-once needs; a thread of the sink's own copies the WAL back into
 * the database, so that commits never wait for that. Every statement is
 * prepared once and every value bound. Waits for another connection's lock
 * are a busy handler of ours, so that a stop request ends them; an ingest
 * holds an flock on PATH-lock for its lifetime, so that a second one is
 * refused rather than double-counting progress. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cs_arena.h"
#include "cs_migrate.h"
#include "cs_idmap.h"
#include "cs_sink.h"
#include "cs_time.h"

#define DIALECT "sqlite"

/* How long a statement waits for another connection's lock, and the naps
 * it takes meanwhile (short, so that a stop request is seen at once). */
#define BUSY_TIMEOUT_MS 30000
#define BUSY_NAP_MS     10

/* The settings of the writer's connection (README, "SQLite settings").
 * The page cache holds what a batch touches in a file replay, near the
 * ends of call_rows, its indexes and window_totals (a 10000-call batch
 * dirties about 4 MB); more costs memory and saves no CPU, even for
 * batches from partitions read side by side, which touch more than any
 * cache within the ingest's memory bound holds. No memory map: the pages it
 * touched would count in the process's memory. Pages of 8 KB for a new
 * database: half the WAL writes and checkpoint reads of 4 KB ones. */
#define CACHE_KIB  "12288"
#define MMAP_BYTES "0"
#define PAGE_BYTES "8192"
/* The WAL is checkpointed once a commit leaves it this long (SQLite's
 * default of 1000 pages of 4 KB), and truncated to WAL_LIMIT after it
 * grew. */
#define CKPT_BYTES (4 << 20)
/* A commit that leaves the WAL this long checkpoints it itself, with
 * RESTART (restart_wal()), waiting at most CKPT_RESTART_WAIT_MS for the
 * checkpointer thread and for readers. */
#define CKPT_RESTART_BYTES   (64 << 20)
#define CKPT_RESTART_WAIT_MS 1000
/* Window count rows one step of add_window_count writes: its VALUES row
 * repeated (7 parameters each), so that the statement's start, cursors
 * and end are paid once for so many rows rather than for each. */
#define WINDOW_ROWS 64
/* The same for new calls with numeric crime_ids (insert_numeric_calls, 23
 * parameters a row). */
#define CALL_ROWS 32
#define CALL_COLS 23
#define WAL_LIMIT "67108864"

enum stmt {
        ST_BEGIN,
        ST_COMMIT,
        ST_ROLLBACK,
        ST_INSERT_CALL,
        ST_ADD_WINDOW_COUNT,
        ST_INSERT_REJECT,
        ST_STORE_OFFSET,
        ST_LOAD_OFFSET,
        ST_INSERT_LATE_RECORD,
        ST_STORED_CALL,
        ST_STORED_TEXT_CALL,
        ST_MAX_CALL_ID,
        ST_REPLACE_CALL,
        ST_FORGET_LATE,
        ST_DROP_EMPTY_WINDOW,
        ST_RETAIN_CALLS,
        ST_RETAIN_WINDOWS,
        ST_RETAIN_LATE,
        ST_RETAIN_REJECTS,
        ST_SPEC_ID, /* the dictionaries: find, add, in enum dict order */
        ST_ADD_SPEC_ID,
        ST_CRIME_TYPE_ID,
        ST_ADD_CRIME_TYPE_ID,
        ST_DISPOSITION_ID,
        ST_ADD_DISPOSITION_ID,
        ST_COUNT
};

static const char *const stmt_names[ST_COUNT] = {
        [ST_BEGIN] = "begin",
        [ST_COMMIT] = "commit",
        [ST_ROLLBACK] = "rollback",
        [ST_INSERT_CALL] = "insert_call",
        [ST_ADD_WINDOW_COUNT] = "add_window_count",
        [ST_INSERT_REJECT] = "insert_reject",
        [ST_STORE_OFFSET] = "store_offset",
        [ST_LOAD_OFFSET] = "load_offset",
        [ST_INSERT_LATE_RECORD] = "insert_late_record",
        [ST_STORED_CALL] = "stored_call",
        [ST_STORED_TEXT_CALL] = "stored_text_call",
        [ST_MAX_CALL_ID] = "max_call_id",
        [ST_REPLACE_CALL] = "replace_call",
        [ST_FORGET_LATE] = "forget_late_records",
        [ST_DROP_EMPTY_WINDOW] = "drop_empty_window",
        [ST_RETAIN_CALLS] = "retain_calls",
        [ST_RETAIN_WINDOWS] = "retain_windows",
        [ST_RETAIN_LATE] = "retain_late",
        [ST_RETAIN_REJECTS] = "retain_rejects",
        [ST_SPEC_ID] = "spec_id",
        [ST_ADD_SPEC_ID] = "add_spec_id",
        [ST_CRIME_TYPE_ID] = "crime_type_id",
        [ST_ADD_CRIME_TYPE_ID] = "add_crime_type_id",
        [ST_DISPOSITION_ID] = "disposition_id",
        [ST_ADD_DISPOSITION_ID] = "add_disposition_id",
};

/* The dictionaries of window_totals (010_window_keys.sql). */
enum dict { DICT_SPEC, DICT_CRIME_TYPE, DICT_DISPOSITION, DICT_COUNT };

/* Window count rows with their keys as stored, for writing in key order. */
struct keyed_row {
        int64_t key[4]; /* spec id, window start, crime type, disposition */
        size_t row;     /* index in the batch's rows */
};

struct sqlite_sink {
        struct cs_sink base;
        sqlite3 *db;
        char *path;
        sqlite3_stmt *stmt[ST_COUNT];
        sqlite3_stmt *add_windows; /* add_window_count for WINDOW_ROWS */
        sqlite3_stmt *add_calls;   /* insert_numeric_calls for CALL_ROWS */
        int in_txn;
        struct cs_arena *old;  /* strings of replaced calls */
        char now[CS_TS_BUFSZ]; /* UTC time of the open batch */
        int64_t now_sec;       /* the same in seconds since 1970 */
        int lock_fd;           /* PATH-lock once claimed, else -1 */
        /* Each dictionary's ids by text, as stored. Ids are assigned once
         * and never change, so they are kept for the life of the
         * connection; a rollback empties the maps, since it may undo ids
         * its transaction assigned. */
        struct cs_idmap ids[DICT_COUNT];
        struct keyed_row *keyed; /* write_window_counts' rows, by key */
        struct keyed_row *merge; /* and the merge sort's other half */
        size_t keyed_cap;

        /* The busy handler's state: how long a wait may last, when the
         * current one began, and how the last one that gave up ended (for
         * fail(), which clears them): after so long, or stopped. */
        int64_t busy_limit_ms, busy_since, busy_gave_up_ms;
        int busy_stopped;

        /* The checkpointer: a thread with a connection of its own, woken
         * by a commit that left the WAL long (on_wal); it alone uses db. */
        struct {
                sqlite3 *db;
                pthread_t thread;
                pthread_mutex_t mu;
                pthread_cond_t wake;
                int started, pending, quit;
                int frames;         /* CKPT_BYTES in pages */
                int restart_frames; /* CKPT_RESTART_BYTES in pages */
                int restart_at;     /* restart_frames, more after a miss */
                int wal_frames;     /* the WAL's length after the last
                                       commit (on_wal, writer's thread) */
        } ckpt;
};

/* SQLite's busy handler: naps until the lock is free, the wait has lasted
 * busy_limit_ms, or a stop is requested (sqlite3_busy_timeout would sleep
 * through a SIGTERM). Returns 0 to give up. */
static int on_busy(void *opaque, int count)
{
        struct sqlite_sink *s = opaque;
        struct timespec nap = {0, BUSY_NAP_MS * 1000 * 1000};
        int64_t now = cs_now_ms();

        if (count == 0)
                s->busy_since = now;
        if (s->base.stop && *s->base.stop) {
                s->busy_stopped = 1;
                return 0;
        }
        if (now - s->busy_since >= s->busy_limit_ms) {
                s->busy_gave_up_ms = now - s->busy_since;
                return 0;
        }
        nanosleep(&nap, NULL);
        return 1;
}

/* Writes "PATH: what: sqlite's message" to errstr; a database locked by
 * another connection past the busy timeout is worth retrying, not fatal,
 * and the message says how long it waited. */
static int fail(struct sqlite_sink *s, const char *what, char *errstr,
                size_t errstr_size)
{
        int code = sqlite3_errcode(s->db);

        if (code != SQLITE_BUSY && code != SQLITE_LOCKED) {
                snprintf(errstr, errstr_size, "%s: %s: %s", s->path, what,
                         sqlite3_errmsg(s->db));
                return -1;
        }
        if (s->busy_stopped)
                snprintf(errstr, errstr_size,
                         "%s: %s: stopped while waiting for another "
                         "connection's lock",
                         s->path, what);
        else if (s->busy_gave_up_ms > 0)
                snprintf(errstr, errstr_size,
                         "%s: %s: database locked by another connection for "
                         "%.1f s",
                         s->path, what, (double)s->busy_gave_up_ms / 1000.0);
        else
                snprintf(errstr, errstr_size,
                         "%s: %s: database locked by another connection",
                         s->path, what);
        s->busy_stopped = 0;
        s->busy_gave_up_ms = 0;
        return CS_RETRY;
}

/* Runs a statement that returns no rows, then resets it. */
static int run(sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);

        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : -1;
}

static void forget_ids(struct sqlite_sink *s)
{
        int i;

        for (i = 0; i < DICT_COUNT; i++)
                cs_idmap_clear(&s->ids[i]);
}

static int prepare_named(struct sqlite_sink *s, const char *name,
                         sqlite3_stmt **out, char *errstr, size_t errstr_size)
{
        size_t len;
        const char *sql = cs_sql_statement(DIALECT, name, &len);

        if (!sql) {
                snprintf(errstr, errstr_size, "no SQL statement '%s'", name);
                return -1;
        }
        if (sqlite3_prepare_v3(s->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT,
                               out, NULL) != SQLITE_OK) {
                char what[96];

                snprintf(what, sizeof(what), "preparing %s", name);
                return fail(s, what, errstr, errstr_size);
        }
        return 0;
}

/* The statement called name with its VALUES row repeated rows times. */
static int prepare_repeated(struct sqlite_sink *s, const char *name,
                            size_t rows, sqlite3_stmt **out, char *errstr,
                            size_t errstr_size)
{
        static const char values[] = "VALUES (";
        size_t len, head, row, i;
        const char *sql = cs_sql_statement(DIALECT, name, &len);
        const char *at =
                sql ? memmem(sql, len, values, sizeof(values) - 1) : NULL;
        const char *end = at ? memchr(at, ')', len - (size_t)(at - sql)) : NULL;
        char *text, *p, what[96];
        int rc;

        if (!end) {
                snprintf(errstr, errstr_size, "statement %s has no VALUES row",
                         name);
                return -1;
        }
        head = (size_t)(at - sql) + sizeof(values) - 2; /* up to the ( */
        row = (size_t)(end + 1 - (sql + head));
        if (!(text = malloc(len + rows * (row + 2)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        memcpy(text, sql, head);
        p = text + head;
        for (i = 0; i < rows; i++) {
                if (i) {
                        memcpy(p, ", ", 2);
                        p += 2;
                }
                memcpy(p, sql + head, row);
                p += row;
        }
        memcpy(p, end + 1, len - (head + row));
        p += len - (head + row);
        rc = sqlite3_prepare_v3(s->db, text, (int)(p - text),
                                SQLITE_PREPARE_PERSISTENT, out, NULL);
        free(text);
        if (rc == SQLITE_OK)
                return 0;
        snprintf(what, sizeof(what), "preparing %s", name);
        return fail(s, what, errstr, errstr_size);
}

static int prepare_all(struct sqlite_sink *s, char *errstr, size_t errstr_size)
{
        int i, r;

        for (i = 0; i < ST_COUNT; i++)
                if (!s->stmt[i] &&
                    (r = prepare_named(s, stmt_names[i], &s->stmt[i], errstr,
                                       errstr_size)) < 0)
                        return r;
        if (!s->add_windows &&
            (r = prepare_repeated(s, "add_window_count", WINDOW_ROWS,
                                  &s->add_windows, errstr, errstr_size)) < 0)
                return r;
        if (!s->add_calls &&
            (r = prepare_repeated(s, "insert_numeric_calls", CALL_ROWS,
                                  &s->add_calls, errstr, errstr_size)) < 0)
                return r;
        return 0;
}

static void finalize_all(struct sqlite_sink *s)
{
        int i;

        forget_ids(s);
        for (i = 0; i < ST_COUNT; i++) {
                sqlite3_finalize(s->stmt[i]);
                s->stmt[i] = NULL;
        }
        sqlite3_finalize(s->add_windows);
        s->add_windows = NULL;
        sqlite3_finalize(s->add_calls);
        s->add_calls = NULL;
}

static int exec(struct sqlite_sink *s, const char *sql, const char *what,
                char *errstr, size_t errstr_size)
{
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return fail(s, what, errstr, errstr_size);
        return 0;
}

/* The checkpointer thread: a PASSIVE checkpoint each time it is woken.
 * PASSIVE takes no lock the writer needs: the writer goes on appending
 * to the WAL meanwhile, and once a copy has caught up, the next write
 * transaction starts the WAL over from its beginning. (A copy that never
 * catches up is sqlite_commit()'s to finish.) */
static void *checkpointer(void *opaque)
{
        struct sqlite_sink *s = opaque;
        int nlog, nckpt, rc, wal_seen = 0;

        pthread_mutex_lock(&s->ckpt.mu);
        for (;;) {
                while (!s->ckpt.pending && !s->ckpt.quit)
                        pthread_cond_wait(&s->ckpt.wake, &s->ckpt.mu);
                /* A wake-up that came with the stop is still served. */
                if (!s->ckpt.pending)
                        break;
                s->ckpt.pending = 0;
                pthread_mutex_unlock(&s->ckpt.mu);
                /* A connection learns that the file is in WAL mode when it
                 * first reads it; until then a checkpoint does nothing
                 * (a new database is WAL only from its first commit). */
                if (!wal_seen)
                        wal_seen = sqlite3_exec(s->ckpt.db,
                                                "PRAGMA schema_version", NULL,
                                                NULL, NULL) == SQLITE_OK;
                rc = sqlite3_wal_checkpoint_v2(s->ckpt.db, NULL,
                                               SQLITE_CHECKPOINT_PASSIVE, &nlog,
                                               &nckpt);
                /* BUSY: another connection is checkpointing; the next
                 * commit wakes this one again. */
                if (rc == SQLITE_OK)
                        cs_log(CS_LOG_DEBUG,
                               "%s: checkpoint: %d of %d WAL pages copied",
                               s->path, nckpt, nlog);
                else if (rc != SQLITE_BUSY)
                        cs_log(CS_LOG_WARN, "%s: checkpoint: %s", s->path,
                               sqlite3_errmsg(s->ckpt.db));
                pthread_mutex_lock(&s->ckpt.mu);
        }
        pthread_mutex_unlock(&s->ckpt.mu);
        return NULL;
}

static long long pragma_int(struct sqlite_sink *s, const char *sql);

/* SQLite's WAL hook, in the writer after each commit: wakes the
 * checkpointer once the WAL is long. Replaces SQLite's own automatic
 * checkpoint, which runs in the committing connection and so holds the
 * commit up for as long as it copies and syncs. */
static int on_wal(void *opaque, sqlite3 *db, const char *name, int frames)
{
        struct sqlite_sink *s = opaque;

        (void)db;
        (void)name;
        s->ckpt.wal_frames = frames;
        if (frames >= s->ckpt.frames) {
                pthread_mutex_lock(&s->ckpt.mu);
                s->ckpt.pending = 1;
                pthread_cond_signal(&s->ckpt.wake);
                pthread_mutex_unlock(&s->ckpt.mu);
        }
        return SQLITE_OK;
}

/* Starts the checkpointer. Without it (no thread, no second connection)
 * SQLite's automatic checkpoint stays, which is correct, only slower; so
 * a failure is a warning. */
static void start_checkpointer(struct sqlite_sink *s)
{
        const char *why = NULL;
        long long page = pragma_int(s, "PRAGMA page_size");
        sigset_t all, old;

        s->ckpt.frames = page > 0 ? (int)(CKPT_BYTES / page) : 1000;
        s->ckpt.restart_frames =
                page > 0 ? (int)(CKPT_RESTART_BYTES / page) : 16000;
        s->ckpt.restart_at = s->ckpt.restart_frames;
        if (sqlite3_open_v2(s->path, &s->ckpt.db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                why = s->ckpt.db ? sqlite3_errmsg(s->ckpt.db) : "out of memory";
        } else if (pthread_mutex_init(&s->ckpt.mu, NULL) != 0) {
                why = "pthread_mutex_init failed";
        } else if (pthread_cond_init(&s->ckpt.wake, NULL) != 0) {
                pthread_mutex_destroy(&s->ckpt.mu);
                why = "pthread_cond_init failed";
        } else {
                /* Signals (SIGTERM's stop) go to the main thread, whose
                 * waits they cut short, as librdkafka's threads do. */
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                if (pthread_create(&s->ckpt.thread, NULL, checkpointer, s))
                        why = "cannot start a thread";
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                if (why) {
                        pthread_cond_destroy(&s->ckpt.wake);
                        pthread_mutex_destroy(&s->ckpt.mu);
                }
        }
        if (why) {
                cs_log(CS_LOG_WARN,
                       "%s: no checkpoint thread (%s): commits checkpoint "
                       "the WAL themselves",
                       s->path, why);
                sqlite3_close(s->ckpt.db);
                s->ckpt.db = NULL;
                return;
        }
        s->ckpt.started = 1;
        /* Replaces the automatic checkpoint (sqlite3_wal_autocheckpoint
         * is a WAL hook too). */
        sqlite3_wal_hook(s->db, on_wal, s);
}

/* Stops the checkpointer; what the WAL still holds is copied back when
 * the writer's connection, the last one, closes. */
static void stop_checkpointer(struct sqlite_sink *s)
{
        if (!s->ckpt.started)
                return;
        sqlite3_wal_hook(s->db, NULL, NULL);
        pthread_mutex_lock(&s->ckpt.mu);
        s->ckpt.quit = 1;
        pthread_cond_signal(&s->ckpt.wake);
        pthread_mutex_unlock(&s->ckpt.mu);
        pthread_join(s->ckpt.thread, NULL);
        pthread_cond_destroy(&s->ckpt.wake);
        pthread_mutex_destroy(&s->ckpt.mu);
        sqlite3_close(s->ckpt.db);
        s->ckpt.db = NULL;
        s->ckpt.started = 0;
}

/* One integer PRAGMA of the writer's connection, or -1. */
static long long pragma_int(struct sqlite_sink *s, const char *sql)
{
        sqlite3_stmt *st = NULL;
        long long v = -1;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

static int sqlite_set_durability(struct cs_sink *base, int durability,
                                 char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        int r;

        /* FULL syncs the WAL at every commit; NORMAL only before each
         * checkpoint, so a power failure may undo the last batches (never
         * a part of one), and the ingest reads them again. */
        if ((r = exec(s,
                      durability == CS_DURABILITY_FULL
                              ? "PRAGMA synchronous=FULL"
                              : "PRAGMA synchronous=NORMAL",
                      "setting synchronous", errstr, errstr_size)) < 0)
                return r;
        /* Read back, for -v: what the connection really runs with. */
        cs_log(CS_LOG_DEBUG,
               "%s: SQLite settings: synchronous=%lld (1 NORMAL, 2 FULL) "
               "cache_size=%lld mmap_size=%lld journal_size_limit=%lld "
               "page_size=%lld checkpoint %s",
               s->path, pragma_int(s, "PRAGMA synchronous"),
               pragma_int(s, "PRAGMA cache_size"),
               pragma_int(s, "PRAGMA mmap_size"),
               pragma_int(s, "PRAGMA journal_size_limit"),
               pragma_int(s, "PRAGMA page_size"),
               s->ckpt.started ? "thread" : "automatic");
        return 0;
}

/* The migration primitives of migrate.c: BEGIN IMMEDIATE is the lock. */
static int sqlite_migration_lock(struct cs_sink *base, const char *what,
                                 char *errstr, size_t errstr_size)
{
        return exec((struct sqlite_sink *)base, "BEGIN IMMEDIATE", what, errstr,
                    errstr_size);
}

static int sqlite_migration_unlock(struct cs_sink *base, const char *what,
                                   char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        int r = what ? exec(s, "COMMIT", what, errstr, errstr_size) : -1;

        if (r < 0)
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return what ? r : 0;
}

static int sqlite_migration_exec(struct cs_sink *base, const char *sql,
                                 const char *what, char *errstr,
                                 size_t errstr_size)
{
        return exec((struct sqlite_sink *)base, sql, what, errstr, errstr_size);
}

/* Views are recreated at every migrate (migrate.c's default). */
static const struct cs_migrate_ops sqlite_migrator = {
        .lock = sqlite_migration_lock,
        .unlock = sqlite_migration_unlock,
        .exec = sqlite_migration_exec,
};

static int sqlite_migrate(struct cs_sink *base, char *errstr,
                          size_t errstr_size)
{
        int r = cs_migrate_run(base, &sqlite_migrator, errstr, errstr_size);

        return r < 0 ? r
                     : prepare_all((struct sqlite_sink *)base, errstr,
                                   errstr_size);
}

/* Reads a stored time back; the database holds what cs_time_format()
 * wrote. */
static int read_time(sqlite3_stmt *st, int col, struct cs_time *t)
{
        const char *text = (const char *)sqlite3_column_text(st, col);

        return text ? cs_time_parse(text, strlen(text), &t->sec, &t->usec) : -1;
}

static int sqlite_load_offsets(struct cs_sink *base, const char *topic,
                               struct cs_partition_offset *offs, size_t n,
                               char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = s->stmt[ST_LOAD_OFFSET];
        size_t i;
        int rc;

        for (i = 0; i < n; i++) {
                sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 2, offs[i].partition);
                rc = sqlite3_step(st);
                offs[i].next_offset =
                        rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
                offs[i].watermark.valid =
                        rc == SQLITE_ROW &&
                        read_time(st, 1, &offs[i].watermark.max_event) == 0 &&
                        read_time(st, 2, &offs[i].watermark.mark) == 0;
                sqlite3_reset(st);
                if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                        return fail(s, "reading kafka_offsets", errstr,
                                    errstr_size);
        }
        return 0;
}

static int sqlite_begin(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;

        s->now_sec = (int64_t)time(NULL);
        cs_time_format(s->now_sec, 0, s->now);
        if (run(s->stmt[ST_BEGIN]) < 0)
                return fail(s, "BEGIN", errstr, errstr_size);
        s->in_txn = 1;
        return 0;
}

/* The crime_id as the integer key of call_rows (012_compact_calls.sql):
 * 1 to 18 digits without a leading zero; else -1, and it is kept as text. */
static int64_t numeric_id(struct cs_str id)
{
        int64_t v = 0;
        size_t i;

        if (id.len < 1 || id.len > 18 || id.ptr[0] < '1' || id.ptr[0] > '9')
                return -1;
        for (i = 0; i < id.len; i++) {
                if (id.ptr[i] < '0' || id.ptr[i] > '9')
                        return -1;
                v = v * 10 + (id.ptr[i] - '0');
        }
        return v;
}

/* Binds call c of b, but for its crime_id, to parameters at + 2 to at + 23
 * of insert_call, replace_call or insert_numeric_calls (they number them
 * alike). Every text is the batch's, which outlives the statement's step. */
static void bind_fields(struct sqlite_sink *s, sqlite3_stmt *st, int at,
                        const struct cs_batch *b, const struct cs_batch_call *c)
{
        int f;

        for (f = 1; f < CS_F_COUNT; f++) {
                if (c->field[f].ptr)
                        sqlite3_bind_text(st, at + f + 1, c->field[f].ptr,
                                          (int)c->field[f].len, SQLITE_STATIC);
                else
                        sqlite3_bind_null(st, at + f + 1);
        }
        sqlite3_bind_int64(st, at + 15, c->ts);
        sqlite3_bind_int(st, at + 16, c->ts_usec);
        sqlite3_bind_text(st, at + 17, b->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, at + 18, c->partition);
        sqlite3_bind_int64(st, at + 19, c->offset);
        sqlite3_bind_int64(st, at + 20, s->now_sec);
        if (c->has_mark) {
                sqlite3_bind_int64(st, at + 21, c->mark.sec);
                sqlite3_bind_int(st, at + 22, c->mark.usec);
        } else {
                sqlite3_bind_null(st, at + 21);
                sqlite3_bind_null(st, at + 22);
        }
        sqlite3_bind_int(st, at + 23, !strcmp(b->late_policy, "drop"));
}

/* Binds call c of b to ?1..?23 of insert_call or replace_call, and its
 * numeric crime_id (or NULL) to ?24. */
static void bind_call(struct sqlite_sink *s, sqlite3_stmt *st,
                      const struct cs_batch *b, const struct cs_batch_call *c)
{
        const struct cs_str *key = &c->field[CS_F_CRIME_ID];
        int64_t id = numeric_id(*key);

        sqlite3_bind_text(st, 1, key->ptr, (int)key->len, SQLITE_STATIC);
        bind_fields(s, st, 0, b, c);
        if (id >= 0)
                sqlite3_bind_int64(st, 24, id);
        else
                sqlite3_bind_null(st, 24);
}

/* Column col of st as a string copied into the sink's arena. */
static int column_str(struct sqlite_sink *s, sqlite3_stmt *st, int col,
                      struct cs_str *out)
{
        struct cs_str v = {(const char *)sqlite3_column_text(st, col),
                           (size_t)sqlite3_column_bytes(st, col)};

        return cs_arena_copy(s->old, v, out);
}

/* Columns col (seconds) and col + 1 (microseconds) of st as a time; -1
 * when NULL. */
static int column_time(sqlite3_stmt *st, int col, struct cs_time *t)
{
        if (sqlite3_column_type(st, col) == SQLITE_NULL)
                return -1;
        t->sec = sqlite3_column_int64(st, col);
        t->usec = sqlite3_column_int(st, col + 1);
        return 0;
}

/* With --on-duplicate update: replaces the stored copy of c when its fields
 * differ, saying in *old what it was. Returns 1 if replaced, 0 if not, or
 * an error. */
static int replace_changed(struct sqlite_sink *s, const struct cs_batch *b,
                           const struct cs_batch_call *c,
                           struct cs_old_call *old, char *errstr,
                           size_t errstr_size)
{
        const struct cs_str *key = &c->field[CS_F_CRIME_ID];
        int64_t id = numeric_id(*key);
        sqlite3_stmt *get =
                s->stmt[id >= 0 ? ST_STORED_CALL : ST_STORED_TEXT_CALL];
        sqlite3_stmt *put = s->stmt[ST_REPLACE_CALL];
        struct cs_str stored[CS_F_COUNT];
        struct cs_time ts = {0, 0};
        int f, r = 0;

        if (id >= 0)
                sqlite3_bind_int64(get, 1, id);
        else
                sqlite3_bind_text(get, 1, key->ptr, (int)key->len,
                                  SQLITE_STATIC);
        if (sqlite3_step(get) != SQLITE_ROW) {
                r = fail(s, "reading calls", errstr, errstr_size);
                goto done;
        }
        for (f = 0; f < CS_F_COUNT; f++) {
                stored[f].ptr = (const char *)sqlite3_column_text(get, f);
                stored[f].len = (size_t)sqlite3_column_bytes(get, f);
        }
        if (cs_batch_call_same(c, stored))
                goto done;
        memset(old, 0, sizeof(*old));
        if (column_str(s, get, CS_F_ORIGINAL_CRIME_TYPE_NAME,
                       &old->crime_type) < 0 ||
            (sqlite3_column_type(get, CS_F_DISPOSITION) != SQLITE_NULL &&
             column_str(s, get, CS_F_DISPOSITION, &old->disposition) < 0)) {
                snprintf(errstr, errstr_size, "out of memory");
                r = -1;
                goto done;
        }
        column_time(get, 14, &ts);
        old->ts = ts.sec;
        old->has_mark = column_time(get, 16, &old->mark) == 0;
        old->late_drop = sqlite3_column_int(get, 18);
        bind_call(s, put, b, c);
        sqlite3_bind_int64(put, 25, sqlite3_column_int64(get, 19));
        sqlite3_reset(get);
        if (run(put) < 0)
                return fail(s, "replacing a call", errstr, errstr_size);
        sqlite3_bind_text(s->stmt[ST_FORGET_LATE], 1, key->ptr, (int)key->len,
                          SQLITE_STATIC);
        if (run(s->stmt[ST_FORGET_LATE]) < 0)
                return fail(s, "deleting late_records", errstr, errstr_size);
        return 1;
done:
        sqlite3_reset(get);
        return r;
}

/* Inserts call i of b alone (insert_call), setting outcome[i]. */
static int insert_one(struct sqlite_sink *s, const struct cs_batch *b, size_t i,
                      unsigned char *outcome, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = s->stmt[ST_INSERT_CALL];

        bind_call(s, st, b, &b->calls[i]);
        if (sqlite3_step(st) != SQLITE_DONE) {
                sqlite3_reset(st);
                return fail(s, "inserting into calls", errstr, errstr_size);
        }
        outcome[i] = sqlite3_changes(s->db) > 0 ? CS_CALL_NEW : CS_CALL_KEPT;
        sqlite3_reset(st);
        return 0;
}

/* Inserts CALL_ROWS new calls of b, idx[j] with numeric crime_id key[j],
 * in one step of insert_numeric_calls. */
static int insert_new(struct sqlite_sink *s, const struct cs_batch *b,
                      const size_t *idx, const int64_t *key,
                      unsigned char *outcome, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st = s->add_calls;
        size_t j;

        for (j = 0; j < CALL_ROWS; j++) {
                sqlite3_bind_int64(st, (int)j * CALL_COLS + 1, key[j]);
                bind_fields(s, st, (int)j * CALL_COLS, b, &b->calls[idx[j]]);
                outcome[idx[j]] = CS_CALL_NEW;
        }
        if (run(st) < 0)
                return fail(s, "inserting into calls", errstr, errstr_size);
        /* Never so, as long as the transaction holds the write lock: a
         * count short would be calls counted that were not new. */
        if (sqlite3_changes(s->db) != CALL_ROWS) {
                snprintf(errstr, errstr_size,
                         "%s: calls above the largest crime_id were stored "
                         "already",
                         s->path);
                return -1;
        }
        return 0;
}

/* The largest numeric crime_id stored, or -1. */
static int max_call_id(struct sqlite_sink *s, int64_t *max, char *errstr,
                       size_t errstr_size)
{
        sqlite3_stmt *st = s->stmt[ST_MAX_CALL_ID];
        int rc = sqlite3_step(st);

        *max = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
                       ? sqlite3_column_int64(st, 0)
                       : -1;
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0
                                : fail(s, "reading calls", errstr, errstr_size);
}

/* A numeric crime_id above the largest stored is new (a batch holds each
 * crime_id once): such calls go CALL_ROWS to a step, without a lookup of
 * their own. Streams mostly bring growing ids; the others, and the rest,
 * go one by one. Stored copies are compared (b->update) once all are in. */
static int sqlite_write_calls(struct cs_sink *base, const struct cs_batch *b,
                              unsigned char *outcome, struct cs_old_call *old,
                              char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        size_t idx[CALL_ROWS], i, j, n = 0;
        int64_t key[CALL_ROWS], max;
        int r;

        cs_arena_reset(s->old);
        if ((r = max_call_id(s, &max, errstr, errstr_size)) < 0)
                return r;
        for (i = 0; i < b->ncalls; i++) {
                int64_t id = numeric_id(b->calls[i].field[CS_F_CRIME_ID]);

                if (id <= max) { /* text ids are -1 */
                        r = insert_one(s, b, i, outcome, errstr, errstr_size);
                } else {
                        idx[n] = i;
                        key[n++] = id;
                        if (n < CALL_ROWS)
                                continue;
                        n = 0;
                        r = insert_new(s, b, idx, key, outcome, errstr,
                                       errstr_size);
                }
                if (r < 0)
                        return r;
        }
        for (j = 0; j < n; j++)
                if ((r = insert_one(s, b, idx[j], outcome, errstr,
                                    errstr_size)) < 0)
                        return r;
        for (i = 0; i < b->ncalls && b->update; i++) {
                if (outcome[i] != CS_CALL_KEPT)
                        continue;
                r = replace_changed(s, b, &b->calls[i], &old[i], errstr,
                                    errstr_size);
                if (r < 0)
                        return r;
                if (r)
                        outcome[i] = CS_CALL_REPLACED;
        }
        return 0;
}

/* The id of text in dictionary d: from memory, else from the database,
 * where it is added when missing. 0 or fail(). */
static int dict_id(struct sqlite_sink *s, enum dict d, const char *text,
                   size_t len, int64_t *id, char *errstr, size_t errstr_size)
{
        struct cs_idmap *m = &s->ids[d];
        sqlite3_stmt *find = s->stmt[ST_SPEC_ID + 2 * d];
        sqlite3_stmt *add = s->stmt[ST_SPEC_ID + 2 * d + 1];
        uint64_t h = cs_hash(text, len, 0);
        int rc;

        if ((*id = cs_idmap_find(m, text, len, h)) >= 0)
                return 0;
        sqlite3_bind_text(add, 1, text, (int)len, SQLITE_STATIC);
        if (run(add) < 0)
                return fail(s, "adding a window key", errstr, errstr_size);
        sqlite3_bind_text(find, 1, text, (int)len, SQLITE_STATIC);
        rc = sqlite3_step(find);
        *id = sqlite3_column_int64(find, 0);
        sqlite3_reset(find);
        if (rc != SQLITE_ROW)
                return fail(s, "reading a window key", errstr, errstr_size);
        if (cs_idmap_add(m, text, len, h, *id) < 0) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

/* Whether row a goes before b: by key, then (a call without disposition
 * and one with '' share a key) by row. */
static int keyed_before(const struct keyed_row *a, const struct keyed_row *b)
{
        int i;

        static const int order[4] = {1, 0, 2, 3}; /* window_totals' key */

        for (i = 0; i < 4; i++)
                if (a->key[order[i]] != b->key[order[i]])
                        return a->key[order[i]] < b->key[order[i]];
        return a->row < b->row;
}

/* Sorts a[0..n) by key, tmp having room for n: a bottom-up merge sort,
 * the comparison inline (qsort's calls through a pointer cost more than
 * the sort). The rows arrive nearly in order: runs already in order are
 * copied rather than merged. Returns where the sorted rows are. */
static struct keyed_row *sort_keyed(struct keyed_row *a, struct keyed_row *tmp,
                                    size_t n)
{
        size_t width, lo;

        for (width = 1; width < n; width *= 2) {
                for (lo = 0; lo < n; lo += 2 * width) {
                        size_t mid = lo + width < n ? lo + width : n;
                        size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
                        size_t i = lo, j = mid, k = lo;

                        if (mid == hi || !keyed_before(&a[mid], &a[mid - 1])) {
                                memcpy(&tmp[lo], &a[lo],
                                       (hi - lo) * sizeof(*a));
                                continue;
                        }
                        while (i < mid && j < hi)
                                tmp[k++] = keyed_before(&a[j], &a[i]) ? a[j++]
                                                                      : a[i++];
                        while (i < mid)
                                tmp[k++] = a[i++];
                        while (j < hi)
                                tmp[k++] = a[j++];
                }
                {
                        struct keyed_row *t = a;

                        a = tmp;
                        tmp = t;
                }
        }
        return a;
}

/* Binds the key of k to parameters 1 to 4 of st. */
static void bind_key(sqlite3_stmt *st, const struct keyed_row *k)
{
        int i;

        for (i = 0; i < 4; i++)
                sqlite3_bind_int64(st, i + 1, k->key[i]);
}

/* Binds the row of k to parameters at + 1 to at + 7 of add_window_count. */
static void bind_row(sqlite3_stmt *st, int at, const struct keyed_row *k,
                     const struct cs_window_count *rows,
                     const struct cs_window_spec *specs)
{
        const struct cs_window_count *w = &rows[k->row];
        int i;

        for (i = 0; i < 4; i++)
                sqlite3_bind_int64(st, at + i + 1, k->key[i]);
        sqlite3_bind_int64(st, at + 5, w->start + specs[w->spec].size);
        sqlite3_bind_int64(st, at + 6, w->calls);
        sqlite3_bind_int64(st, at + 7, w->late_calls);
}

/* The batch's rows (already summed by key) are written in key order, so
 * that the inserts walk window_totals' B-tree forwards. */
static int sqlite_write_window_counts(struct cs_sink *base,
                                      const struct cs_window_count *rows_in,
                                      size_t n,
                                      const struct cs_window_spec *specs,
                                      char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = s->stmt[ST_ADD_WINDOW_COUNT];
        sqlite3_stmt *drop = s->stmt[ST_DROP_EMPTY_WINDOW];
        struct keyed_row *keyed;
        int64_t spec_id[16]; /* by spec index, found once per batch */
        unsigned known = 0;  /* bit i: spec_id[i] is */
        size_t i;
        int r;

        if (n > s->keyed_cap) {
                struct keyed_row *k = realloc(s->keyed, n * sizeof(*k));

                if (k)
                        s->keyed = k;
                if (k && (k = realloc(s->merge, n * sizeof(*k))))
                        s->merge = k;
                if (!k) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                s->keyed_cap = n;
        }
        for (i = 0; i < n; i++) {
                const struct cs_window_count *w = &rows_in[i];
                const char *name = specs[w->spec].name;
                struct keyed_row *k = &s->keyed[i];

                k->row = i;
                k->key[1] = w->start;
                if (w->spec < 16 && (known >> w->spec & 1)) {
                        k->key[0] = spec_id[w->spec];
                } else if ((r = dict_id(s, DICT_SPEC, name, strlen(name),
                                        &k->key[0], errstr, errstr_size)) < 0) {
                        return r;
                } else if (w->spec < 16) {
                        spec_id[w->spec] = k->key[0];
                        known |= 1u << w->spec;
                }
                /* The key column is NOT NULL: no disposition is ''. */
                if ((r = dict_id(s, DICT_CRIME_TYPE, w->crime_type.ptr,
                                 w->crime_type.len, &k->key[2], errstr,
                                 errstr_size)) < 0 ||
                    (r = dict_id(s, DICT_DISPOSITION,
                                 w->disposition.ptr ? w->disposition.ptr : "",
                                 w->disposition.len, &k->key[3], errstr,
                                 errstr_size)) < 0)
                        return r;
        }
        keyed = sort_keyed(s->keyed, s->merge, n);
        /* WINDOW_ROWS rows a step, then the rest one by one. A step takes
         * its rows in turn, so a key met twice would add up as in two. */
        for (i = 0; i < n;) {
                size_t rows = n - i >= WINDOW_ROWS ? WINDOW_ROWS : 1, j;
                sqlite3_stmt *put = rows > 1 ? s->add_windows : st;

                for (j = 0; j < rows; j++)
                        bind_row(put, (int)j * 7, &keyed[i + j], rows_in,
                                 specs);
                if (run(put) < 0)
                        return fail(s, "updating window_totals", errstr,
                                    errstr_size);
                i += rows;
        }
        /* A count that moved to zero goes (the views list windows with
         * calls): only a replaced copy takes calls away. */
        for (i = 0; i < n; i++) {
                if (rows_in[keyed[i].row].calls >= 0)
                        continue;
                bind_key(drop, &keyed[i]);
                if (run(drop) < 0)
                        return fail(s, "deleting an empty window count", errstr,
                                    errstr_size);
        }
        return 0;
}

static int sqlite_write_rejects(struct cs_sink *base, const struct cs_batch *b,
                                char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = s->stmt[ST_INSERT_REJECT];
        size_t i;

        sqlite3_bind_text(st, 1, b->topic, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, s->now, -1, SQLITE_STATIC);
        for (i = 0; i < b->nrejects; i++) {
                const struct cs_batch_reject *r = &b->rejects[i];

                sqlite3_bind_int(st, 2, r->partition);
                sqlite3_bind_int64(st, 3, r->offset);
                sqlite3_bind_text(st, 4, r->reason.ptr, (int)r->reason.len,
                                  SQLITE_STATIC);
                sqlite3_bind_blob(st, 5, r->payload.ptr, (int)r->payload.len,
                                  SQLITE_STATIC);
                sqlite3_bind_int64(st, 6, (sqlite3_int64)r->payload_size);
                if (run(st) < 0)
                        return fail(s, "inserting into rejected_records",
                                    errstr, errstr_size);
        }
        return 0;
}

static int sqlite_write_late_records(struct cs_sink *base,
                                     const struct cs_batch *b,
                                     const struct cs_late_record *recs,
                                     size_t n,
                                     const struct cs_window_spec *specs,
                                     char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = s->stmt[ST_INSERT_LATE_RECORD];
        char ts[CS_TS_BUFSZ], mark[CS_TS_BUFSZ];
        size_t i;

        sqlite3_bind_text(st, 6, b->topic, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, s->now, -1, SQLITE_STATIC);
        for (i = 0; i < n; i++) {
                const struct cs_batch_call *c = &b->calls[recs[i].call];
                const struct cs_str *id = &c->field[CS_F_CRIME_ID];
                size_t nts = cs_time_format(c->ts, c->ts_usec, ts);
                size_t nmark = cs_time_format(c->mark.sec, c->mark.usec, mark);

                sqlite3_bind_text(st, 1, id->ptr, (int)id->len, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, specs[recs[i].spec].name, -1,
                                  SQLITE_STATIC);
                sqlite3_bind_text(st, 3, ts, (int)nts, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, mark, (int)nmark, SQLITE_STATIC);
                sqlite3_bind_int(st, 5, recs[i].windows_dropped);
                sqlite3_bind_int(st, 7, c->partition);
                sqlite3_bind_int64(st, 8, c->offset);
                if (run(st) < 0)
                        return fail(s, "inserting into late_records", errstr,
                                    errstr_size);
        }
        return 0;
}

static int sqlite_store_offsets(struct cs_sink *base, const struct cs_batch *b,
                                char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = s->stmt[ST_STORE_OFFSET];
        size_t i;

        sqlite3_bind_text(st, 1, b->topic, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, s->now, -1, SQLITE_STATIC);
        for (i = 0; i < b->noffsets; i++) {
                const struct cs_partition_offset *o = &b->offsets[i];
                const struct cs_watermark *w = &o->watermark;
                char max[CS_TS_BUFSZ], mark[CS_TS_BUFSZ];

                sqlite3_bind_int(st, 2, b->offsets[i].partition);
                sqlite3_bind_int64(st, 3, b->offsets[i].next_offset);
                if (w->valid) {
                        size_t nmax = cs_time_format(w->max_event.sec,
                                                     w->max_event.usec, max);
                        size_t nmark =
                                cs_time_format(w->mark.sec, w->mark.usec, mark);

                        sqlite3_bind_text(st, 5, max, (int)nmax, SQLITE_STATIC);
                        sqlite3_bind_int64(st, 6, w->lateness);
                        sqlite3_bind_text(st, 7, mark, (int)nmark,
                                          SQLITE_STATIC);
                } else {
                        sqlite3_bind_null(st, 5);
                        sqlite3_bind_int64(st, 6, w->lateness);
                        sqlite3_bind_null(st, 7);
                }
                if (o->high_watermark >= 0)
                        sqlite3_bind_int64(st, 8, o->high_watermark);
                else
                        sqlite3_bind_null(st, 8);
                sqlite3_bind_int64(st, 9, o->calls);
                sqlite3_bind_int64(st, 10, o->duplicates);
                sqlite3_bind_int64(st, 11, o->rejected);
                sqlite3_bind_int64(st, 12, o->late);
                if (run(st) < 0)
                        return fail(s, "storing kafka_offsets", errstr,
                                    errstr_size);
        }
        return 0;
}

static void sqlite_rollback(struct cs_sink *base);

static int sqlite_rebuild_begin(struct cs_sink *base, char *errstr,
                                size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;

        /* BEGIN IMMEDIATE: the write lock is ours until COMMIT. */
        if (run(s->stmt[ST_BEGIN]) < 0)
                return fail(s, "BEGIN", errstr, errstr_size);
        s->in_txn = 1;
        return 0;
}

/* Runs the named one-off statement with text parameters; 0 or fail(). */
static int run_named(struct sqlite_sink *s, const char *name,
                     const char *const *params, int n, char *errstr,
                     size_t errstr_size)
{
        sqlite3_stmt *st = NULL;
        int i, r;

        if ((r = prepare_named(s, name, &st, errstr, errstr_size)) < 0)
                return r;
        for (i = 0; i < n; i++)
                sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
        r = sqlite3_step(st) == SQLITE_DONE
                    ? 0
                    : fail(s, name, errstr, errstr_size);
        sqlite3_finalize(st);
        return r;
}

static int sqlite_scan_calls(struct cs_sink *base, int64_t lo, int64_t hi,
                             cs_sink_call_cb *cb, void *opaque, char *errstr,
                             size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = NULL;
        int rc, r;

        if ((r = prepare_named(s, "scan_calls", &st, errstr, errstr_size)) < 0)
                return r;
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct cs_stored_call c;

                memset(&c, 0, sizeof(c));
                c.crime_id.ptr = (const char *)sqlite3_column_text(st, 0);
                c.crime_id.len = (size_t)sqlite3_column_bytes(st, 0);
                c.crime_type.ptr = (const char *)sqlite3_column_text(st, 1);
                c.crime_type.len = (size_t)sqlite3_column_bytes(st, 1);
                c.disposition.ptr = (const char *)sqlite3_column_text(st, 2);
                c.disposition.len = (size_t)sqlite3_column_bytes(st, 2);
                column_time(st, 3, &c.ts);
                c.has_mark = column_time(st, 5, &c.mark) == 0;
                c.late_drop = sqlite3_column_int(st, 7);
                c.topic.ptr = (const char *)sqlite3_column_text(st, 8);
                c.topic.len = (size_t)sqlite3_column_bytes(st, 8);
                c.partition = sqlite3_column_int(st, 9);
                c.offset = sqlite3_column_int64(st, 10);
                if (cb(opaque, &c)) {
                        snprintf(errstr, errstr_size,
                                 "%s: reading back call %.*s failed", s->path,
                                 (int)c.crime_id.len, c.crime_id.ptr);
                        sqlite3_finalize(st);
                        return -1;
                }
        }
        r = rc == SQLITE_DONE ? 0
                              : fail(s, "reading calls", errstr, errstr_size);
        sqlite3_finalize(st);
        return r;
}

static int sqlite_clear_windows(struct cs_sink *base, const char *spec,
                                int64_t from, int64_t to, char *errstr,
                                size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        char lo[CS_TS_BUFSZ], hi[CS_TS_BUFSZ];
        const char *params[3] = {spec, lo, hi};
        sqlite3_stmt *st = NULL;
        int r;

        /* window_totals keeps seconds: the bounds as cs_time_format_bound()
         * clamps them for the text of late_records. */
        if ((r = prepare_named(s, "clear_windows", &st, errstr, errstr_size)) <
            0)
                return r;
        sqlite3_bind_text(st, 1, spec, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2,
                           from < CS_TS_MIN    ? CS_TS_MIN
                           : from >= CS_TS_END ? CS_TS_END - 1
                                               : from);
        sqlite3_bind_int64(st, 3,
                           to < CS_TS_MIN    ? CS_TS_MIN
                           : to >= CS_TS_END ? CS_TS_END - 1
                                             : to);
        r = sqlite3_step(st) == SQLITE_DONE
                    ? 0
                    : fail(s, "clear_windows", errstr, errstr_size);
        sqlite3_finalize(st);
        if (r < 0)
                return r;
        cs_time_format_bound(from, lo);
        cs_time_format_bound(to, hi);
        return run_named(s, "clear_late", params, 3, errstr, errstr_size);
}

static int sqlite_write_stored_late(struct cs_sink *base, const char *spec,
                                    const struct cs_stored_late *recs, size_t n,
                                    char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        char ts[CS_TS_BUFSZ], mark[CS_TS_BUFSZ];
        sqlite3_stmt *st = NULL;
        size_t i;
        int r = 0;

        if ((r = prepare_named(s, "insert_stored_late", &st, errstr,
                               errstr_size)) < 0)
                return r;
        for (i = 0; i < n && !r; i++) {
                const struct cs_stored_late *l = &recs[i];

                cs_time_format(l->ts.sec, l->ts.usec, ts);
                cs_time_format(l->mark.sec, l->mark.usec, mark);
                sqlite3_bind_text(st, 1, l->crime_id.ptr, (int)l->crime_id.len,
                                  SQLITE_STATIC);
                sqlite3_bind_text(st, 2, spec, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, ts, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, mark, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 5, l->windows_dropped);
                sqlite3_bind_text(st, 6, l->topic.ptr, (int)l->topic.len,
                                  SQLITE_STATIC);
                sqlite3_bind_int(st, 7, l->partition);
                sqlite3_bind_int64(st, 8, l->offset);
                if (run(st) < 0)
                        r = fail(s, "inserting into late_records", errstr,
                                 errstr_size);
        }
        sqlite3_finalize(st);
        return r;
}

static int sqlite_window_specs(struct cs_sink *base, char (*names)[32], int max,
                               int *n, char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = NULL;
        int rc, r;

        *n = 0;
        if ((r = prepare_named(s, "window_specs", &st, errstr, errstr_size)) <
            0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
                snprintf(names[(*n)++], 32, "%s", sqlite3_column_text(st, 0));
        r = rc == SQLITE_ROW || rc == SQLITE_DONE
                    ? 0
                    : fail(s, "reading window specs", errstr, errstr_size);
        sqlite3_finalize(st);
        return r;
}

static int sqlite_retain(struct cs_sink *base, int64_t retention, int limit,
                         long *deleted, char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        int i, r;

        *deleted = 0;
        if (run(s->stmt[ST_BEGIN]) < 0)
                return fail(s, "BEGIN", errstr, errstr_size);
        for (i = ST_RETAIN_CALLS; i <= ST_RETAIN_REJECTS; i++) {
                sqlite3_bind_int64(s->stmt[i], 1, retention);
                sqlite3_bind_int(s->stmt[i], 2, limit);
                if (run(s->stmt[i]) < 0) {
                        r = fail(s, "deleting past the retention", errstr,
                                 errstr_size);
                        sqlite_rollback(base);
                        return r;
                }
                *deleted += sqlite3_changes(s->db);
        }
        if (run(s->stmt[ST_COMMIT]) < 0) {
                r = fail(s, "COMMIT", errstr, errstr_size);
                sqlite_rollback(base);
                return r;
        }
        return 0;
}

/* After a commit that left the WAL past CKPT_RESTART_BYTES: the passive
 * checkpoints have not caught up (batches that dirty more pages than one
 * copies while the next is written: partitions read side by side), and the
 * WAL would grow with the stream (2 GB for 1M calls). The writer copies
 * the rest itself, a RESTART checkpoint between two batches (the consumer
 * thread fills the next meanwhile), so that the next transaction starts
 * the WAL over. It waits for the checkpointer thread and for readers
 * (a report, a BI tool) as for any lock (on_busy), but only so long:
 * giving up leaves the WAL long, and the next try comes once it has grown
 * by as much again. */
static void restart_wal(struct sqlite_sink *s)
{
        int64_t limit = s->busy_limit_ms;
        int nlog = 0, nckpt = 0, rc;

        if (!s->ckpt.started || s->ckpt.wal_frames < s->ckpt.restart_at)
                return;
        s->busy_limit_ms = CKPT_RESTART_WAIT_MS;
        rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_RESTART,
                                       &nlog, &nckpt);
        s->busy_limit_ms = limit;
        s->busy_gave_up_ms = 0;
        if (rc == SQLITE_OK) {
                s->ckpt.restart_at = s->ckpt.restart_frames;
                cs_log(CS_LOG_DEBUG,
                       "%s: WAL restarted: %d of %d pages copied by the writer",
                       s->path, nckpt, nlog);
        } else {
                s->ckpt.restart_at =
                        s->ckpt.wal_frames + s->ckpt.restart_frames;
                cs_log(CS_LOG_DEBUG, "%s: WAL not restarted: %s", s->path,
                       sqlite3_errmsg(s->db));
        }
}

static int sqlite_commit(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;

        if (run(s->stmt[ST_COMMIT]) < 0) {
                forget_ids(s); /* they may be gone with the transaction */
                return fail(s, "COMMIT", errstr, errstr_size);
        }
        s->in_txn = 0;
        restart_wal(s);
        return 0;
}

static void sqlite_rollback(struct cs_sink *base)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;

        /* A failed COMMIT may have rolled back already; that is fine. */
        if (sqlite3_get_autocommit(s->db) == 0)
                run(s->stmt[ST_ROLLBACK]);
        s->in_txn = 0;
        forget_ids(s); /* ids this transaction assigned are undone */
}

static int sqlite_reconnect(struct cs_sink *base, char *errstr,
                            size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        int r;

        /* A file has no connection to lose; what failed was a lock that
         * another connection held. Whether it let go is known by taking
         * the write lock, without waiting: the pipeline backs off between
         * attempts. */
        s->busy_limit_ms = 0;
        r = exec(s, "BEGIN IMMEDIATE", "checking the write lock", errstr,
                 errstr_size);
        s->busy_limit_ms = BUSY_TIMEOUT_MS;
        if (r == 0)
                r = exec(s, "ROLLBACK", "checking the write lock", errstr,
                         errstr_size);
        return r;
}

/* PATH-lock, beside the database (symbolic links resolved, as SQLite
 * does for PATH-wal), or NULL when out of memory. The caller frees it. */
static char *lock_path(const char *path)
{
        char *real = realpath(path, NULL), *lock;
        const char *p = real ? real : path;

        lock = malloc(strlen(p) + sizeof("-lock"));
        if (lock)
                sprintf(lock, "%s-lock", p);
        free(real);
        return lock;
}

/* An exclusive flock on PATH-lock, held until close. Not on the database
 * file itself: SQLite locks it with fcntl(), whose locks a process loses
 * when it closes any descriptor of the file. The lock file holds the
 * holder's pid for the message; it is never deleted, since another process
 * may be about to lock it. */
static int sqlite_claim(struct cs_sink *base, char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        char *lock = lock_path(s->path), pid[32];
        int fd = -1, n, r = -1;
        ssize_t len;

        if (!lock) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        /* Made by another user: it locks as well read-only. */
        if (fd < 0 && errno == EACCES)
                fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                snprintf(errstr, errstr_size, "%s: cannot open %s: %s", s->path,
                         lock, strerror(errno));
                goto done;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK) {
                        snprintf(errstr, errstr_size, "%s: cannot lock %s: %s",
                                 s->path, lock, strerror(errno));
                        goto done;
                }
                len = pread(fd, pid, sizeof(pid) - 1, 0);
                pid[len > 0 ? len : 0] = '\0';
                n = atoi(pid);
                if (n > 0)
                        snprintf(pid, sizeof(pid), " (pid %d)", n);
                else
                        pid[0] = '\0';
                snprintf(errstr, errstr_size,
                         "another callstream ingest%s is writing to %s; "
                         "SQLite takes one ingest per database",
                         pid, s->path);
                goto done;
        }
        /* Only for the message of a second ingest: no need to fail. */
        n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n)
                cs_log(CS_LOG_DEBUG, "%s: cannot write the pid", lock);
        s->lock_fd = fd;
        fd = -1;
        r = 0;
done:
        if (fd >= 0)
                close(fd);
        free(lock);
        return r;
}

static void sqlite_close(struct cs_sink *base)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;

        if (s->in_txn)
                sqlite_rollback(base);
        stop_checkpointer(s);
        finalize_all(s);
        free(s->keyed);
        free(s->merge);
        cs_arena_destroy(s->old);
        sqlite3_close(s->db);
        /* After SQLite's: its locks outlive no descriptor of ours. */
        if (s->lock_fd >= 0)
                close(s->lock_fd);
        free(s->path);
        free(s);
}

#define QUERY_COLS_MAX 16

static int sqlite_query(struct cs_sink *base, const char *name,
                        const char *const *params, int n, cs_sink_row_cb *cb,
                        void *opaque, long *changed, char *errstr,
                        size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        const char *vals[QUERY_COLS_MAX];
        sqlite3_stmt *st = NULL;
        int i, ncols, rc, r;

        if ((r = prepare_named(s, name, &st, errstr, errstr_size)) < 0)
                return r;
        for (i = 0; i < n; i++)
                sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
        ncols = sqlite3_column_count(st);
        if (ncols > QUERY_COLS_MAX)
                ncols = QUERY_COLS_MAX;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                for (i = 0; i < ncols; i++)
                        vals[i] = (const char *)sqlite3_column_text(st, i);
                if (cb && cb(opaque, ncols, vals)) {
                        snprintf(errstr, errstr_size, "%s: %s: out of memory",
                                 s->path, name);
                        sqlite3_finalize(st);
                        return -1;
                }
        }
        r = rc == SQLITE_DONE ? 0 : fail(s, name, errstr, errstr_size);
        if (changed)
                *changed = r == 0 ? sqlite3_changes(s->db) : 0;
        sqlite3_finalize(st);
        return r;
}

/* The Kafka bookkeeping below runs rarely: its statements are prepared on
 * each use. */
static int sqlite_write_gaps(struct cs_sink *base, const char *topic,
                             const struct cs_offset_gap *gaps, size_t n,
                             char *errstr, size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = NULL;
        size_t i;
        int r = 0;

        if (!n)
                return 0;
        if (prepare_named(s, "write_gap", &st, errstr, errstr_size) < 0)
                return -1;
        sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, s->now, -1, SQLITE_STATIC);
        for (i = 0; i < n && r == 0; i++) {
                sqlite3_bind_int(st, 2, gaps[i].partition);
                sqlite3_bind_int64(st, 3, gaps[i].first);
                sqlite3_bind_int64(st, 4, gaps[i].last);
                if (run(st) < 0)
                        r = fail(s, "storing kafka_gaps", errstr, errstr_size);
        }
        sqlite3_finalize(st);
        return r;
}

static int sqlite_store_high_watermarks(struct cs_sink *base, const char *topic,
                                        const struct cs_partition_offset *offs,
                                        size_t n, char *errstr,
                                        size_t errstr_size)
{
        struct sqlite_sink *s = (struct sqlite_sink *)base;
        sqlite3_stmt *st = NULL;
        size_t i;
        int r = 0;

        if (prepare_named(s, "store_high_watermark", &st, errstr, errstr_size) <
            0)
                return -1;
        sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
        for (i = 0; i < n && r == 0; i++) {
                sqlite3_bind_int(st, 2, offs[i].partition);
                sqlite3_bind_int64(st, 3, offs[i].high_watermark);
                if (run(st) < 0)
                        r = fail(s, "storing high watermarks", errstr,
                                 errstr_size);
        }
        sqlite3_finalize(st);
        return r;
}

static const struct cs_sink_ops sqlite_ops = {
        .dialect = DIALECT,
        .migrate = sqlite_migrate,
        .load_offsets = sqlite_load_offsets,
        .begin = sqlite_begin,
        .write_calls = sqlite_write_calls,
        .write_window_counts = sqlite_write_window_counts,
        .write_rejects = sqlite_write_rejects,
        .write_late_records = sqlite_write_late_records,
        .store_offsets = sqlite_store_offsets,
        .retain = sqlite_retain,
        .rebuild_begin = sqlite_rebuild_begin,
        .scan_calls = sqlite_scan_calls,
        .clear_windows = sqlite_clear_windows,
        .write_stored_late = sqlite_write_stored_late,
        .window_specs = sqlite_window_specs,
        .commit = sqlite_commit,
        .rollback = sqlite_rollback,
        .claim = sqlite_claim,
        .reconnect = sqlite_reconnect,
        .close = sqlite_close,
        .query = sqlite_query,
        .write_gaps = sqlite_write_gaps,
        .store_high_watermarks = sqlite_store_high_watermarks,
        .set_durability = sqlite_set_durability,
};

/* The directory of path, in dir. */
static void directory_of(const char *path, char *dir, size_t size)
{
        const char *slash = strrchr(path, '/');

        if (!slash)
                snprintf(dir, size, ".");
        else if (slash == path)
                snprintf(dir, size, "/");
        else
                snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* "PATH: cannot open the database: why" in errstr; returns -1. */
static int refuse(char *errstr, size_t errstr_size, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int refuse(char *errstr, size_t errstr_size, const char *path,
                  const char *fmt, ...)
{
        va_list ap;
        int n = snprintf(errstr, errstr_size,
                         "%s: cannot open the database: ", path);

        if (n >= 0 && (size_t)n < errstr_size) {
                va_start(ap, fmt);
                vsnprintf(errstr + n, errstr_size - (size_t)n, fmt, ap);
                va_end(ap);
        }
        return -1;
}

int cs_sink_sqlite_check(const char *path, int create, char *errstr,
                         size_t errstr_size)
{
        static const char *const sides[] = {"-wal", "-shm"};
        char dir[PATH_MAX], side[PATH_MAX + 8];
        struct stat st;
        size_t i;

        directory_of(path, dir, sizeof(dir));
        if (stat(path, &st) == 0) {
                if (S_ISDIR(st.st_mode))
                        return refuse(errstr, errstr_size, path,
                                      "it is a directory, not a file");
                if (access(path, R_OK | W_OK) < 0)
                        return refuse(errstr, errstr_size, path,
                                      "permission denied: this user may "
                                      "not %s it (mode %04o)",
                                      access(path, R_OK) < 0 ? "read" : "write",
                                      (unsigned)(st.st_mode & 07777));
                /* Left by a run under another user or umask, they would
                 * fail SQLite half-way. */
                for (i = 0; i < CS_ARRAY_SIZE(sides); i++) {
                        snprintf(side, sizeof(side), "%s%s", path, sides[i]);
                        if (stat(side, &st) == 0 &&
                            access(side, R_OK | W_OK) < 0)
                                return refuse(errstr, errstr_size, path,
                                              "permission denied: this "
                                              "user may not write %s "
                                              "(mode %04o)",
                                              side,
                                              (unsigned)(st.st_mode & 07777));
                }
        } else if (errno == EACCES) {
                return refuse(errstr, errstr_size, path,
                              "permission denied: this user may not search "
                              "a directory on the way");
        } else if (errno == ENOTDIR) {
                return refuse(errstr, errstr_size, path,
                              "a part of the path is not a directory");
        } else if (errno != ENOENT) {
                return refuse(errstr, errstr_size, path, "%s", strerror(errno));
        } else if (stat(dir, &st) < 0) {
                return refuse(errstr, errstr_size, path,
                              errno == ENOENT ? "no such directory: %s"
                                              : "directory %s: %s",
                              dir, strerror(errno));
        } else if (!create) {
                snprintf(errstr, errstr_size,
                         "%s: no such database (callstream migrate or "
                         "ingest creates one)",
                         path);
                return -1;
        }
        /* New files, and SQLite's PATH-wal and PATH-shm, go there. */
        if (access(dir, W_OK | X_OK) < 0)
                return refuse(errstr, errstr_size, path,
                              "permission denied: this user may not create "
                              "files in %s (SQLite keeps %s-wal and "
                              "%s-shm there)",
                              dir, path, path);
        return 0;
}

int cs_sink_sqlite_open(const char *path, struct cs_sink **out, char *errstr,
                        size_t errstr_size)
{
        struct sqlite_sink *s = calloc(1, sizeof(*s));
        int fd, created = 0, r = -1;

        *out = NULL;
        if (!s || !(s->path = strdup(path))) {
                free(s);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        s->base.ops = &sqlite_ops;
        s->lock_fd = -1;
        if (!(s->old = cs_arena_new())) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        snprintf(s->base.name, sizeof(s->base.name), "%s", path);
        /* Before SQLite opens anything: a read-only file must not leave
         * -wal and -shm files behind, nor a path error read "unable to
         * open database file". */
        if (cs_sink_sqlite_check(path, 1, errstr, errstr_size) < 0)
                goto fail;
        /* Made here, not by SQLite, for mode 0600 whatever the umask: the
         * calls hold addresses. SQLite gives -wal and -shm this mode. */
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
                created = 1;
                r = fchmod(fd, 0600);
                close(fd);
                if (r < 0) {
                        snprintf(errstr, errstr_size, "%s: chmod: %s", path,
                                 strerror(errno));
                        r = -1;
                        goto fail;
                }
        } else if (errno != EEXIST) {
                refuse(errstr, errstr_size, path, "%s", strerror(errno));
                goto fail;
        }
        r = -1;
        /* No statistics of SQLite's memory, which nobody reads: they take
         * a global mutex at every allocation. Only before SQLite starts;
         * later (a second sink in one process) it refuses, harmlessly. */
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        if (sqlite3_open_v2(path, &s->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                fail(s, "cannot open the database", errstr, errstr_size);
                goto fail;
        }
        s->busy_limit_ms = BUSY_TIMEOUT_MS;
        sqlite3_busy_handler(s->db, on_busy, s);
        /* WAL: readers (BI tools, sqlite3) never block the ingest. The
         * sizes: PAGE_BYTES (a new database only: before its first write),
         * CACHE_KIB, MMAP_BYTES, WAL_LIMIT. */
        if ((r = exec(s,
                      "PRAGMA page_size=" PAGE_BYTES "; "
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                      "PRAGMA cache_size=-" CACHE_KIB "; "
                      "PRAGMA mmap_size=" MMAP_BYTES "; "
                      "PRAGMA journal_size_limit=" WAL_LIMIT "; "
                      "PRAGMA temp_store=MEMORY",
                      "setting pragmas", errstr, errstr_size)) < 0)
                goto fail;
        start_checkpointer(s);
        *out = &s->base;
        return 0;
fail:
        sqlite3_close(s->db);
        /* Nothing left behind: SQLite removed its -wal and -shm. */
        if (created)
                unlink(path);
        cs_arena_destroy(s->old);
        free(s->path);
        free(s);
        return r;
}
