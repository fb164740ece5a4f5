/* eventtime.h: what the end-to-end tests of event time share
 * (test_late_policy, test_watermark, test_partitions; issue 4): per-partition
 * watermarks, late calls counted or dropped, window finality, late_records,
 * calls.watermark_at_count and pipeline_progress, in SQLite and in a real
 * PostgreSQL that the fixture starts on first use.
 *
 * Expected rows come from an independent model of the contract (context.md,
 * "Event time"): the messages of each partition in offset order (the real
 * sample, one partition in file order, or a generated stream read back from
 * the broker with kcat), validated with jansson, first valid copy of a
 * crime_id kept, each new call judged against its partition's watermark
 * just before it (the highest valid event time before it in the partition,
 * less the allowed lateness), windows from our own calendar arithmetic.
 * Tables and views are rendered as typed text rows and compared as sorted
 * sets. Test code only: it links no project module; helpers fail the
 * running test when something cannot be done. */
#ifndef ET_EVENTTIME_H
#define ET_EVENTTIME_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "harness.h"
#include "pgutil.h"

/* A safety net only: nothing here asserts on speed. */
#define ET_KILL_WAIT_MS (60 * 1000)

#define ET_MAX_SHOWN 10 /* differences printed per table */
#define ET_MAX_PARTS 16

/* The real sample: one partition, lateness 0, small batches. */
#define ET_SAMPLE_BATCH    "25"
#define ET_SAMPLE_LATENESS "0"
/* The generated stream of test_partitions (seed fixed, so every run is the
 * same). */
#define ET_GEN_COUNT      "20000"
#define ET_GEN_SEED       "21"
#define ET_GEN_PARTS      4
#define ET_GEN_LATENESS   "30m"
#define ET_GEN_LATENESS_S 1800
#define ET_GEN_BATCH      "500"
#define ET_KILL_BATCH     "50" /* many commits: kills land between and in them */

/*
 * Messages: what a topic holds, by partition and offset.
 */

struct et_msg {
        int32_t part;
        int64_t off;
        char *p;
        size_t len;
};

struct et_msgs {
        struct et_msg *v;
        size_t n;
        size_t cap;
};

/*
 * The model of the contract.
 */

/* A call as the model keeps it. */
struct et_xcall {
        char *id;
        char *type;
        char *disp; /* NULL: no disposition or an empty one */
        int64_t t;  /* event time, microseconds */
        int32_t part;
        int64_t off;
        int has_mark;
        int64_t mark; /* its partition's watermark just before it */
        int late;     /* final for at least one of its windows */
};

/* One partition, as pipeline_progress should show it. */
struct et_xpart {
        int64_t next; /* the offset after its last message */
        long long calls, dups, rejected, late;
        int has_max;
        int64_t max; /* highest valid event time */
};

struct et_xreject {
        int32_t part;
        int64_t off;
};

struct et_model {
        int64_t lateness; /* microseconds */
        struct et_xcall *calls;
        size_t ncalls;
        size_t cap;
        struct et_xreject *rejects;
        size_t nrejects;
        size_t cap_rejects;
        struct et_xpart parts[ET_MAX_PARTS];
        int nparts;    /* highest partition seen + 1 */
        size_t *slots; /* crime_id index: calls[] position + 1, 0 empty */
        size_t nslots;
};

/* The tables and views compared, the same columns in both dialects; none
 * says when something happened. */
enum {
        ET_T_CALL_COUNTS,
        ET_T_DISPOSITION_COUNTS,
        ET_T_CALLS,
        ET_T_LATE_RECORDS,
        ET_T_REJECTED,
        ET_T_PROGRESS,
        ET_T_WATERMARKS,
        ET_NT
};

struct et_tables {
        struct th_lines t[ET_NT];
};

/* The SQLite baselines of et_baseline(), each made once per program: the
 * tests check them against the model, the PostgreSQL tests compare with
 * them. */
enum {
        ET_B_SAMPLE_COUNT,
        ET_B_SAMPLE_DROP,
        ET_B_GEN_COUNT,
        ET_B_GEN_DROP,
        ET_NBASE
};

struct et {
        char dir[PATH_MAX];
        char *bin;
        char *data;
        json_t *radio; /* disposition_code -> description */
        struct th_broker b1;
        struct th_broker b4;

        char *sample_path;
        struct et_msgs sample; /* the file, as partition 0 */
        int sample_state;      /* 0 not produced, 1 done, -1 failed */
        char *gen_path;
        struct et_msgs gen; /* read back from the broker */
        int gen_state;

        char *base[ET_NBASE];
        int base_state[ET_NBASE];
        struct th_pg pg;
        int pg_state; /* 0 not tried, 1 running, -1 failed */
};

/* cmocka group set-up: a folder and two brokers (one-partition topics
 * sample, halves and edge; the four-partition topic gen); name is the test
 * program's, for fatal signals. *state gets a struct et. */
int et_group_setup(void **state, const char *name);

/* cmocka group tear-down: stops what the fixture started (PostgreSQL too)
 * and frees the state. */
int et_group_teardown(void **state);

/* SQLite baseline which, made once by one uninterrupted ingest. */
const char *et_baseline(struct et *st, int which);

/* The integer a query gives on the database at path, compared with want. */
int et_check_int(const char *path, const char *what, const char *sql,
                 long long want);

/* Compares the SQLite database at path with model m under the policy;
 * returns the number of tables that differ. */
int et_check_sqlite(const struct et *st, const char *path,
                    const struct et_model *m, int drop, const char *topic);

/* The server, started on first use; fails the test when it cannot be. */
void et_ensure_pg(struct et *st);

/* The sample file in topic sample (one partition), produced once. */
void et_ensure_sample(struct et *st);

/* Runs the ingest of et_ingest_args() to its end. */
void et_ingest(const struct et *st, const struct th_broker *b,
               const char *topic, const char *db, int drop,
               const char *lateness, const char *batch);

/* The ingest command line of every test: windows 1h and 1h/15m from the
 * beginning, to the end of the topic. */
void et_ingest_args(const struct et *st, struct th_args *a,
                    const struct th_broker *b, const char *topic,
                    const char *db, int drop, const char *lateness,
                    const char *batch);

/* The model of a topic holding in (sorted by partition and offset) under
 * allowed lateness lateness_s. */
struct et_model *et_model_build(const struct et_msgs *in, int64_t lateness_s);

/* The rows model m should give in every table, under the late policy
 * (drop or count), for topic; radio maps disposition codes to their
 * descriptions. */
void et_model_expect(const struct et_model *m, int drop, const char *topic,
                     json_t *radio, struct et_tables *x);

void et_model_free(struct et_model *m);

long long et_model_late(const struct et_model *m);

/* What the model says about the stream, so that a reader sees that the
 * checks had something to check. */
void et_model_summary(const char *what, const struct et_model *m, int drop,
                      const struct et_tables *x);

void et_msgs_add(struct et_msgs *m, int32_t part, int64_t off, const char *p,
                 size_t len);

void et_msgs_free(struct et_msgs *m);

char *et_path_in(const struct et *st, const char *name);

/* The contract's PostgreSQL type of is_final: boolean (SQLite: 0/1, which
 * the row comparisons see as integers). Returns the number of views where
 * it is something else. */
int et_pg_check_types(const struct et *st, const char *db);

/* A fresh database named db; returns its conninfo (the caller frees it). */
char *et_pg_create_db(const struct et *st, const char *db);

void et_pg_tables(const struct et *st, const char *db, struct et_tables *x);

void et_produce(const struct et *st, const struct th_broker *b,
                const char *topic, const char *file);

/* SUM(next_offset) of the database at path; 0 while there is none. */
long long et_progress(const char *path);

/* Every row of every table and view of the database at path, each line
 * prefixed with its table's name, without dump_skip()'s columns. Not the
 * storage of window_counts (window_totals and its dictionaries): its ids
 * go by which text came first, which depends on how partitions
 * interleaved; the view window_counts has the same rows by their text. */
void et_sqlite_dump(const char *path, int skip_topic, struct th_lines *out);

/* Every table of queries[] from the SQLite database at path. */
void et_sqlite_tables(const char *path, int skip_topic, struct et_tables *x);

/* Compares every table of a and b; returns how many differ. */
int et_tables_compare(const char *what, const char *an,
                      const struct et_tables *a, const char *bn,
                      const struct et_tables *b);

void et_tables_free(struct et_tables *x);

/* 4. PostgreSQL: the same topic ingested into a fresh PostgreSQL database
 * gives SQLite's rows (and the model's) in every compared table. */
void et_pg_equivalence(struct et *st, int which);

#endif
