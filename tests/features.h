/* features.h: what the end-to-end tests of issue 4's features share
 * (test_update, test_retention, test_rebuild, test_file_replay, all with
 * the real binary, CALLSTREAM_BIN): the group fixture (a folder, a broker
 * with the topics below, PostgreSQL on request), databases of either
 * dialect read as rows of text, and the model of the contract (context.md,
 * "Event time") their expected rows come from: the input read with jansson
 * in partition order, validity checked by our own rules and calendar, each
 * crime_id's stored copy (the first valid one, or under update the last
 * copy whose fields differed from the stored one) judged against the
 * watermark just before it, windows from our own arithmetic. Test code
 * only: it links no project module. Helpers fail the running test when
 * something cannot be done. */
#ifndef FT_FEATURES_H
#define FT_FEATURES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "harness.h"
#include "pgutil.h"

#define FT_MAX_SHOWN    12 /* differences printed per comparison */
#define FT_SAMPLE_TOPIC "sample"
#define FT_UPD_TOPIC    "updates"
#define FT_USEC         INT64_C(1000000)
#define FT_HOUR_S       3600
#define FT_NFIELDS      14 /* the known fields, in the column order of calls */

struct ft {
        char dir[PATH_MAX]; /* everything of this run */
        char *bin;          /* callstream */
        char *sample;       /* the real sample, a JSON array */
        char *updates;      /* dir/updates.ndjson: the update stream */
        json_t *codes;      /* radio code -> description */
        struct th_broker broker;
        int produced_updates;
        int produced_sample;

        struct th_pg pg;
        int pg_state; /* 1 running, -1 failed to start */

        /* What SQLite showed, for PostgreSQL to match (n == 0: not run). */
        struct th_lines lite_update;
        struct th_lines lite_rebuild;
};

struct ft_db {
        const char *name; /* "sqlite" or "postgresql" */
        int pg;
        char *target; /* what --db gets */
        const char *schema;
        sqlite3 *lite;
        PGconn *conn;
};

#define FT_CALL_FIELDS                                                         \
        "crime_id, original_crime_type_name, report_date, call_date, "         \
        "offense_date, call_time, call_date_time, disposition, address, "      \
        "city, state, agency_id, address_type, common_location, "

#define FT_Q_WC                                                                \
        "SELECT window_spec, {window_start}, {window_end}, crime_type, "       \
        "disposition, calls, late_calls FROM window_counts"
#define FT_Q_CC                                                                \
        "SELECT window_spec, {window_start}, {window_end}, crime_type, "       \
        "calls, late_calls, [is_final] FROM call_counts"
#define FT_Q_DC                                                                \
        "SELECT window_spec, {window_start}, {window_end}, crime_type, "       \
        "disposition, disposition_description, calls, late_calls, "            \
        "[is_final] FROM disposition_counts"
#define FT_Q_CALLS                                                             \
        "SELECT " FT_CALL_FIELDS "{call_ts}, kafka_topic, kafka_partition, "   \
        "kafka_offset, {watermark_at_count}, late_policy FROM calls"
#define FT_Q_LATE                                                              \
        "SELECT crime_id, window_spec, {call_ts}, {watermark}, "               \
        "windows_dropped, kafka_topic, kafka_partition, kafka_offset FROM "    \
        "late_records"
#define FT_Q_PROGRESS                                                          \
        "SELECT topic, kafka_partition, stored_offset, {max_event_ts}, "       \
        "{watermark}, calls, duplicates, rejected FROM pipeline_progress"
#define FT_Q_REJECTED                                                          \
        "SELECT kafka_topic, kafka_partition, kafka_offset FROM "              \
        "rejected_records"

struct ft_msg {
        long long offset;
        int valid;
        char *f[FT_NFIELDS]; /* as stored: NULL when absent or null */
        int64_t t;           /* event time (valid messages) */
};

struct ft_input {
        struct ft_msg *v;
        size_t n;
        size_t cap;
        long long next_offset; /* what kafka_offsets must say at the end */
};

struct ft_spec {
        const char *name; /* normalised */
        int64_t size;     /* seconds */
        int64_t slide;
};

struct ft_mconf {
        const struct ft_spec *specs;
        size_t nspecs;
        int64_t lateness; /* seconds */
        int drop;
        int update;
        const char *topic;
};

/* The expected rows, rendered like the Q_* queries. */
struct ft_want {
        struct th_lines wc, cc, dc, calls, late, progress, rejected;
};

/* Command options as a NULL-terminated vector; the strings are borrowed. */
struct ft_opts {
        const char *v[32];
        int n;
};

/* Flags of ft_group_setup(). */
#define FT_PG 1 /* start a PostgreSQL server (st->pg) too */

/* cmocka group set-up: a folder, the broker with topics FT_UPD_TOPIC and
 * FT_SAMPLE_TOPIC (one partition each), the sample and radio codes found,
 * and with FT_PG a PostgreSQL server (without it, or when it fails to
 * start, ft_new_db() of a PostgreSQL database fails the test). name is
 * the test program's, for fatal signals. *state gets a struct ft. */
int ft_group_setup(void **state, const char *name, int flags);

/* cmocka group tear-down: stops what ft_group_setup() started and frees
 * the state. */
int ft_group_teardown(void **state);

char *ft_path_in(const struct ft *st, const char *name);

/* Appends every line of src, prefixed with "tag|", to dst. */
void ft_lines_tagged(struct th_lines *dst, const char *tag,
                     const struct th_lines *src);

/* The lines of a that b lacks (sorted multisets), copied into out. */
void ft_lines_minus(const struct th_lines *a, const struct th_lines *b,
                    struct th_lines *out);

/* Runs sql (statements, no rows wanted) or fails the test. */
void ft_db_exec(struct ft_db *d, const char *sql);

/* Appends the rows of sql as sorted "a|b|c" lines (NULL as "NULL"). */
void ft_db_lines(struct ft_db *d, const char *sql, struct th_lines *out);

/* The single value of a query, copied; the caller frees it. */
char *ft_db_value(struct ft_db *d, const char *sql);

void ft_db_close(struct ft_db *d);

/* Runs the query template q in d: its rows as sorted lines. */
void ft_db_q(struct ft_db *d, const char *q, struct th_lines *out);

void ft_input_free(struct ft_input *in);

/* NDJSON: one message per non-blank line. The file path numbers them by
 * line (from 1, blank lines counted), Kafka by message (from 0). */
void ft_input_ndjson(const char *path, int kafka, struct ft_input *in);

/* A JSON array: one message per element, numbered from 1 by the file path
 * and from 0 by Kafka. */
void ft_input_array(const char *path, int kafka, struct ft_input *in);

void ft_want_free(struct ft_want *w);

/* Works out w from the messages of in (one partition, in order) under c:
 * the watermark before each message, the copy of each call that stands and
 * the watermark it was counted against, then its windows, late or dropped.
 * Rows are rendered like the Q_* queries. */
void ft_model(const struct ft *st, const struct ft_input *in,
              const struct ft_mconf *c, struct ft_want *w);

/* Every table and view the model covers. Returns the number of tables
 * that differ. */
int ft_check_want(struct ft_db *d, const char *step, const struct ft_want *w,
                  struct th_lines *transcript);

/* Compares a PostgreSQL transcript with SQLite's. */
void ft_assert_same_as_sqlite(const char *what, struct th_lines *lite,
                              struct th_lines *pg);

void ft_add_opts(struct th_args *a, const char *const *opts);

/* Appends the arguments up to a NULL to o. */
void ft_opts_add(struct ft_opts *o, ...);

/* ingest --file FILE with opts (NULL-terminated), to its end. */
void ft_ingest_file(const struct ft *st, const struct ft_db *d,
                    const char *file, const char *const *opts);

/* ingest of a Kafka topic from its beginning to its end. */
void ft_ingest_kafka(struct ft *st, const struct ft_db *d, const char *topic,
                     const char *const *opts);

void ft_produce(struct ft *st, const char *topic, const char *file);

void ft_rebuild_ok(const struct ft *st, const struct ft_db *d,
                   const char *const *opts);

/* A fresh database: a SQLite file in the folder, or a PostgreSQL database
 * (names are unique per run). The ingest migrates it. */
void ft_new_db(struct ft *st, struct ft_db *d, int pg, const char *name,
               const char *schema);

void ft_write_text(const char *path, const char *text, size_t n);

size_t ft_compare_dumps(const char *what, const char *an,
                        const struct th_lines *a, const char *bn,
                        const struct th_lines *b);

void ft_dump_all(struct ft_db *d, struct th_lines *out);

#endif
