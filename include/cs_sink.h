/* cs_sink.h: where batches go: the interface every database backend
 * implements (SQLite first; PostgreSQL behind the same table of functions).
 *
 * One batch is one transaction: begin, write_calls, write_window_counts,
 * write_rejects, store_offsets, commit. Nothing is visible until commit, and
 * a failed step is followed by rollback, so the database always holds whole
 * batches. Every function returning int returns 0, or CS_RETRY when the
 * database is unreachable or the transaction lost a race (reconnect and try
 * again later), or -1 for an error that retrying will not fix; errors come
 * with a one-line reason in errstr that names the database, never a
 * password. */
#ifndef CS_SINK_H
#define CS_SINK_H

#include <signal.h>

#include "cs_batch.h"
#include "cs_window.h"

/* CS_RETRY (cs_common.h): the database is down or the transaction must be
 * retried: not a bad record, not a bug. */

struct cs_sink;

/* What a stored call was before a changed copy replaced it (--on-duplicate
 * update), so its counts can move. */
struct cs_old_call {
        struct cs_str crime_type;
        struct cs_str disposition; /* ptr NULL when it had none */
        int64_t ts;
        int has_mark;
        struct cs_time mark; /* the watermark it was counted against */
        int late_drop;       /* it was counted under --late-policy drop */
};

/* write_calls outcomes, per call. */
enum {
        CS_CALL_KEPT = 0,     /* a stored copy stands (or is identical) */
        CS_CALL_NEW = 1,      /* first copy: stored */
        CS_CALL_REPLACED = 2, /* b->update: replaced a different copy */
};

/* A stored call as rebuild reads it back; strings valid during the call. */
struct cs_stored_call {
        struct cs_str crime_id;
        struct cs_str crime_type;
        struct cs_str disposition; /* ptr NULL when it has none */
        struct cs_time ts;
        int has_mark;
        struct cs_time mark; /* the watermark it was counted against */
        int late_drop;
        struct cs_str topic;
        int32_t partition;
        int64_t offset;
};

/* A late_records row rebuilt from a stored call. */
struct cs_stored_late {
        struct cs_str crime_id; /* owned by the caller, NUL-terminated */
        struct cs_str topic;
        struct cs_time ts, mark;
        int windows_dropped;
        int32_t partition;
        int64_t offset;
};

typedef int cs_sink_call_cb(void *opaque, const struct cs_stored_call *c);

/* A row of query(): n column values as text (NULL for SQL NULL; booleans
 * as 0 or 1 when the statement casts them), valid during the call. A
 * non-zero return stops the query with -1. */
typedef int cs_sink_row_cb(void *opaque, int n, const char *const *values);

/* Offsets first..last of a partition, deleted by Kafka's retention before
 * they were read. */
struct cs_offset_gap {
        int32_t partition;
        int64_t first, last;
};

/* The operations of a backend. Every sink has the ingest's: migrate,
 * load_offsets, begin, write_calls, write_window_counts, write_rejects,
 * write_late_records, store_offsets, commit, rollback, reconnect, close,
 * query, write_gaps and store_high_watermarks (cs_sink_open() refuses a
 * backend that lacks one). The others are optional, marked so below: a
 * backend may leave them NULL, and callers go through the cs_sink_...()
 * wrappers at the end, which answer for a NULL one. */
struct cs_sink_ops {
        const char *dialect; /* folder under migrations/ and sql/ */

        /* Creates or upgrades the schema and recreates the views. */
        int (*migrate)(struct cs_sink *s, char *errstr, size_t errstr_size);

        /* For each of offs[0..n) sets next_offset to the stored offset of
         * topic's partition, or to -1 when none is stored, and watermark to
         * its stored watermark (valid = 0 when none; lateness untouched). */
        int (*load_offsets)(struct cs_sink *s, const char *topic,
                            struct cs_partition_offset *offs, size_t n,
                            char *errstr, size_t errstr_size);

        int (*begin)(struct cs_sink *s, char *errstr, size_t errstr_size);

        /* Inserts the batch's calls unless their crime_id is stored already,
         * each with the watermark it is counted against and the batch's
         * late policy, and sets outcome[i] (CS_CALL_...). With b->update a
         * stored call with other fields is replaced (its late_records go)
         * and old[i] says what it was; its strings stay valid until the
         * next write_calls. */
        int (*write_calls)(struct cs_sink *s, const struct cs_batch *b,
                           unsigned char *outcome, struct cs_old_call *old,
                           char *errstr, size_t errstr_size);

        /* Adds rows[i].calls and rows[i].late_calls to each window count;
         * specs are indexed by rows[i].spec. */
        int (*write_window_counts)(struct cs_sink *s,
                                   const struct cs_window_count *rows, size_t n,
                                   const struct cs_window_spec *specs,
                                   char *errstr, size_t errstr_size);

        int (*write_rejects)(struct cs_sink *s, const struct cs_batch *b,
                             char *errstr, size_t errstr_size);

        /* Records calls left out of final windows (late policy drop). */
        int (*write_late_records)(struct cs_sink *s, const struct cs_batch *b,
                                  const struct cs_late_record *recs, size_t n,
                                  const struct cs_window_spec *specs,
                                  char *errstr, size_t errstr_size);

        /* Stores the batch's next offsets with their partitions' watermarks;
         * a stored offset or watermark never moves backwards. */
        int (*store_offsets)(struct cs_sink *s, const struct cs_batch *b,
                             char *errstr, size_t errstr_size);

        /* Optional (NULL: --retention is refused).
         * --retention: in one short transaction of its own, deletes at
         * most limit rows from each of calls, window_counts and
         * late_records older than the smallest watermark less retention
         * seconds, and rejected_records rejected more than retention
         * seconds ago. *deleted gets the number of rows deleted. */
        int (*retain)(struct cs_sink *s, int64_t retention, int limit,
                      long *deleted, char *errstr, size_t errstr_size);

        /* Optional, all five or none (NULL: rebuild is refused).
         * rebuild: starts a transaction that holds off ingest's writes to
         * window counts and late records until it commits. */
        int (*rebuild_begin)(struct cs_sink *s, char *errstr,
                             size_t errstr_size);
        /* rebuild: calls cb for every stored call with lo <= call_ts < hi
         * (seconds); cb returning non-zero stops the scan with -1. */
        int (*scan_calls)(struct cs_sink *s, int64_t lo, int64_t hi,
                          cs_sink_call_cb *cb, void *opaque, char *errstr,
                          size_t errstr_size);
        /* rebuild: deletes spec's window counts starting in [from, to) and
         * its late records of calls in [from, to). */
        int (*clear_windows)(struct cs_sink *s, const char *spec, int64_t from,
                             int64_t to, char *errstr, size_t errstr_size);
        /* rebuild: inserts late records of spec. */
        int (*write_stored_late)(struct cs_sink *s, const char *spec,
                                 const struct cs_stored_late *recs, size_t n,
                                 char *errstr, size_t errstr_size);
        /* rebuild: the window specs that have counts (normalised names,
         * each at most CS_WINDOW_NAME_MAX bytes), at most max of them. */
        int (*window_specs)(struct cs_sink *s, char (*names)[32], int max,
                            int *n, char *errstr, size_t errstr_size);

        int (*commit)(struct cs_sink *s, char *errstr, size_t errstr_size);
        void (*rollback)(struct cs_sink *s);

        /* Optional (NULL: the backend takes any number of writers).
         * ingest: makes this process the database's only ingest for as
         * long as the sink stays open, or fails (-1) naming the one that
         * is; NULL when the backend takes any number of writers. */
        int (*claim)(struct cs_sink *s, char *errstr, size_t errstr_size);

        /* Makes sure the connection works, reconnecting if it broke. */
        int (*reconnect)(struct cs_sink *s, char *errstr, size_t errstr_size);

        /* Closes the connection and frees the sink. */
        void (*close)(struct cs_sink *s);

        /* Runs the statement called name in the dialect's statements.sql
         * with n text parameters (NULL binds SQL NULL; borrowed), in the
         * open transaction if there is one. cb (may be NULL) gets each row;
         * *changed (may be NULL) the number of rows it inserted, updated or
         * deleted. For the bookkeeping that is not on the batch path:
         * replay sources, window specs, `callstream offsets`. */
        int (*query)(struct cs_sink *s, const char *name,
                     const char *const *params, int n, cs_sink_row_cb *cb,
                     void *opaque, long *changed, char *errstr,
                     size_t errstr_size);

        /* Records offsets of topic lost to Kafka's retention (kafka_gaps),
         * in the open transaction: the batch that moves past them. */
        int (*write_gaps)(struct cs_sink *s, const char *topic,
                          const struct cs_offset_gap *gaps, size_t n,
                          char *errstr, size_t errstr_size);

        /* In the open transaction: sets the high watermark of each of
         * offs[0..n) (partition, high_watermark) that has a stored offset,
         * and when it was read. */
        int (*store_high_watermarks)(struct cs_sink *s, const char *topic,
                                     const struct cs_partition_offset *offs,
                                     size_t n, char *errstr,
                                     size_t errstr_size);

        /* Optional (NULL: the server decides): --durability, how much of
         * what is committed survives a power failure (CS_DURABILITY_...). */
        int (*set_durability)(struct cs_sink *s, int durability, char *errstr,
                              size_t errstr_size);
};

/* --durability: a committed batch survives a crash of the process either
 * way; with FULL it survives a power failure too, else the last batches
 * may be undone (whole, with their offsets, so they are read again). */
enum {
        CS_DURABILITY_NORMAL = 0,
        CS_DURABILITY_FULL = 1,
};

/* Implementations embed this as their first member. */
struct cs_sink {
        const struct cs_sink_ops *ops;
        /* For messages: a path, or "PostgreSQL at host H port P database
         * D"; never a password. */
        char name[256];
        /* Optional, set by the caller after open (PostgreSQL uses them):
         * a stop request (a signal handler's flag, borrowed) that cuts a
         * wait on the server short, and the longest a statement may run,
         * in ms (0: no limit), before it is cancelled and the connection
         * given up as an outage. */
        volatile sig_atomic_t *stop;
        int64_t timeout_ms;
};

/* A kind of database, as the registry knows it: how a --db value names it
 * and how it opens. */
struct cs_sink_type {
        const char *name; /* "sqlite", "postgresql": for messages */
        /* Prefixes that name this kind whatever follows ("postgresql://"),
         * NULL-terminated; may be NULL. */
        const char *const *schemes;
        /* Optional: whether db, which starts with no known scheme, is of
         * this kind (PostgreSQL: key=value conninfo). */
        int (*claims)(const char *db);
        /* Opens db (the whole --db value); as cs_sink_open(). */
        int (*open)(const char *db, const char *schema, struct cs_sink **out,
                    char *errstr, size_t errstr_size);
        /* Optional: as cs_sink_require_existing() (NULL: nothing to
         * check). */
        int (*require_existing)(const char *db, char *errstr,
                                size_t errstr_size);
};

#define CS_SINK_TYPES_MAX 8

/* Adds a kind of database, asked before those registered earlier and the
 * built-in PostgreSQL and SQLite. For start-up, before any sink is opened
 * (not thread-safe). type is borrowed: it must stay valid. Returns 0, or -1
 * when CS_SINK_TYPES_MAX are registered. */
int cs_sink_register(const struct cs_sink_type *type) CS_MUSTCHECK;

/* The kind db names: the first whose scheme db starts with, else the first
 * whose claims() takes it; a path (SQLite) when none does. */
const struct cs_sink_type *cs_sink_type_of(const char *db);

/* Opens the database named by db: a PostgreSQL URI ("postgresql://...") or
 * key=value conninfo ("host=... dbname=..."), else a SQLite path, or
 * "sqlite:PATH" for a path that looks like either. schema (PostgreSQL only,
 * may be NULL) keeps every table and view in that schema. Returns 0 and a
 * sink in *out (the caller owns it: cs_sink_close()), or -1 with the reason
 * in errstr, or CS_RETRY when the server is not there yet (refused,
 * starting up, too many connections): *out is NULL then. db and schema are
 * copied. The kind is cs_sink_type_of(db)'s; a backend without one of the
 * required operations is closed and refused (-1). */
int cs_sink_open(const char *db, const char *schema, struct cs_sink **out,
                 char *errstr, size_t errstr_size) CS_MUSTCHECK;

/* Whether db names a PostgreSQL database. */
int cs_sink_is_postgresql(const char *db);

/* For commands that only work on an existing database (rebuild): 0 when
 * db names PostgreSQL or an existing SQLite file, else -1 with a reason
 * that names the file, so a typo does not create a database. */
int cs_sink_require_existing(const char *db, char *errstr,
                             size_t errstr_size) CS_MUSTCHECK;

/* Sets the sink's durability (CS_DURABILITY_...); a backend without the
 * choice ignores it. Returns 0, or what the backend returned. */
int cs_sink_set_durability(struct cs_sink *s, int durability, char *errstr,
                           size_t errstr_size) CS_MUSTCHECK;

/* Closes the sink; NULL is accepted. */
void cs_sink_close(struct cs_sink *s);

/* The operations every sink has (struct cs_sink_ops says what each does). */
static inline int cs_sink_migrate(struct cs_sink *s, char *errstr,
                                  size_t errstr_size)
{
        return s->ops->migrate(s, errstr, errstr_size);
}

static inline int cs_sink_load_offsets(struct cs_sink *s, const char *topic,
                                       struct cs_partition_offset *offs,
                                       size_t n, char *errstr,
                                       size_t errstr_size)
{
        return s->ops->load_offsets(s, topic, offs, n, errstr, errstr_size);
}

static inline int cs_sink_begin(struct cs_sink *s, char *errstr,
                                size_t errstr_size)
{
        return s->ops->begin(s, errstr, errstr_size);
}

static inline int cs_sink_write_calls(struct cs_sink *s,
                                      const struct cs_batch *b,
                                      unsigned char *outcome,
                                      struct cs_old_call *old, char *errstr,
                                      size_t errstr_size)
{
        return s->ops->write_calls(s, b, outcome, old, errstr, errstr_size);
}

static inline int cs_sink_write_window_counts(
        struct cs_sink *s, const struct cs_window_count *rows, size_t n,
        const struct cs_window_spec *specs, char *errstr, size_t errstr_size)
{
        return s->ops->write_window_counts(s, rows, n, specs, errstr,
                                           errstr_size);
}

static inline int cs_sink_write_rejects(struct cs_sink *s,
                                        const struct cs_batch *b, char *errstr,
                                        size_t errstr_size)
{
        return s->ops->write_rejects(s, b, errstr, errstr_size);
}

static inline int cs_sink_write_late_records(struct cs_sink *s,
                                             const struct cs_batch *b,
                                             const struct cs_late_record *recs,
                                             size_t n,
                                             const struct cs_window_spec *specs,
                                             char *errstr, size_t errstr_size)
{
        return s->ops->write_late_records(s, b, recs, n, specs, errstr,
                                          errstr_size);
}

static inline int cs_sink_store_offsets(struct cs_sink *s,
                                        const struct cs_batch *b, char *errstr,
                                        size_t errstr_size)
{
        return s->ops->store_offsets(s, b, errstr, errstr_size);
}

static inline int cs_sink_commit(struct cs_sink *s, char *errstr,
                                 size_t errstr_size)
{
        return s->ops->commit(s, errstr, errstr_size);
}

static inline void cs_sink_rollback(struct cs_sink *s)
{
        s->ops->rollback(s);
}

static inline int cs_sink_reconnect(struct cs_sink *s, char *errstr,
                                    size_t errstr_size)
{
        return s->ops->reconnect(s, errstr, errstr_size);
}

static inline int cs_sink_query(struct cs_sink *s, const char *name,
                                const char *const *params, int n,
                                cs_sink_row_cb *cb, void *opaque, long *changed,
                                char *errstr, size_t errstr_size)
{
        return s->ops->query(s, name, params, n, cb, opaque, changed, errstr,
                             errstr_size);
}

static inline int cs_sink_write_gaps(struct cs_sink *s, const char *topic,
                                     const struct cs_offset_gap *gaps, size_t n,
                                     char *errstr, size_t errstr_size)
{
        return s->ops->write_gaps(s, topic, gaps, n, errstr, errstr_size);
}

static inline int
cs_sink_store_high_watermarks(struct cs_sink *s, const char *topic,
                              const struct cs_partition_offset *offs, size_t n,
                              char *errstr, size_t errstr_size)
{
        return s->ops->store_high_watermarks(s, topic, offs, n, errstr,
                                             errstr_size);
}

/* The optional operations: a backend without claim takes any number of
 * writers (0); one without retain or the rebuild operations fails them
 * with -1 and "DB: this database does not support --retention" (or
 * "rebuild") in errstr, *deleted and *n set to 0. */
int cs_sink_claim(struct cs_sink *s, char *errstr,
                  size_t errstr_size) CS_MUSTCHECK;
int cs_sink_retain(struct cs_sink *s, int64_t retention, int limit,
                   long *deleted, char *errstr,
                   size_t errstr_size) CS_MUSTCHECK;
int cs_sink_rebuild_begin(struct cs_sink *s, char *errstr,
                          size_t errstr_size) CS_MUSTCHECK;
int cs_sink_scan_calls(struct cs_sink *s, int64_t lo, int64_t hi,
                       cs_sink_call_cb *cb, void *opaque, char *errstr,
                       size_t errstr_size) CS_MUSTCHECK;
int cs_sink_clear_windows(struct cs_sink *s, const char *spec, int64_t from,
                          int64_t to, char *errstr,
                          size_t errstr_size) CS_MUSTCHECK;
int cs_sink_write_stored_late(struct cs_sink *s, const char *spec,
                              const struct cs_stored_late *recs, size_t n,
                              char *errstr, size_t errstr_size) CS_MUSTCHECK;
int cs_sink_window_specs(struct cs_sink *s, char (*names)[32], int max, int *n,
                         char *errstr, size_t errstr_size) CS_MUSTCHECK;

/* The SQLite backend (sink_sqlite.c). path is copied. */
int cs_sink_sqlite_open(const char *path, struct cs_sink **out, char *errstr,
                        size_t errstr_size) CS_MUSTCHECK;

/* What cs_sink_sqlite_open() checks first, so that a path error names its
 * cause rather than "unable to open database file": the folder exists and
 * takes new files (SQLite keeps PATH-wal and PATH-shm beside the database),
 * path is not a folder, and it and its -wal and -shm are writable when
 * they exist; a missing file is an error unless create. Returns 0 or -1
 * with the reason. Makes no file. */
int cs_sink_sqlite_check(const char *path, int create, char *errstr,
                         size_t errstr_size) CS_MUSTCHECK;

/* The PostgreSQL backend (sink_pg.c). conninfo and schema are copied; the
 * conninfo is never printed, since it may hold a password. */
int cs_sink_pg_open(const char *conninfo, const char *schema,
                    struct cs_sink **out, char *errstr,
                    size_t errstr_size) CS_MUSTCHECK;

#endif
