/* cs_stats.h: what the ingest has done so far, for the metrics page
 * (cs_metrics.h) and the progress reporter (cs_progress.h): counters,
 * histograms and per-partition gauges, updated once per batch (never per
 * record) under one mutex, read as a snapshot copied out.
 *
 * Threads: the pipeline's writer adds each committed batch and the
 * database's state, its consumer the brokers' state and batches handed
 * over; the HTTP server's threads take snapshots. Every function is
 * thread-safe, and each accepts a NULL stats (then does nothing), so that
 * the pipeline runs the same without them. */
#ifndef CS_STATS_H
#define CS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "cs_batch.h"

/* Upper bounds of the histograms' buckets, in seconds (+Inf implied). */
#define CS_STATS_BATCH_BOUNDS                                                  \
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,    \
                10, 30, 60
#define CS_STATS_NBATCH_BOUNDS 15
#define CS_STATS_FRESH_BOUNDS                                                  \
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600
#define CS_STATS_NFRESH_BOUNDS 15

/* Distinct reject reasons kept apart; the rest count as "other". */
#define CS_STATS_MAX_REASONS 32
#define CS_STATS_REASON_MAX  48

/* The first offset of a partition in a batch (its start in a progress
 * report). */
struct cs_stats_start {
        int32_t partition;
        int64_t offset;
};

/* What one committed batch did, as the writer hands it over. Every pointer
 * is borrowed for the call. */
struct cs_stats_batch {
        const struct cs_batch *batch; /* offsets, rejects, counts */
        size_t calls;                 /* new calls stored */
        size_t duplicates;            /* in the batch and of stored calls */
        size_t late, updated;
        /* Seconds spent, by stage: the consumer's polls and parsing of the
         * batch's messages, the writer's statements before the commit, the
         * commit, and from the batch's first message to its commit. */
        double poll_s, parse_s, write_s, commit_s, total_s;
        int64_t opened_wall_ms; /* wall clock of the first message, ms */
        int64_t committed_wall_ms;
        /* Event times of the batch's calls (naive, read as UTC), when
         * has_event. */
        int has_event;
        int64_t event_min, event_max;
        const struct cs_stats_start *starts;
        size_t nstarts;
        /* Kafka's timestamps of the batch's messages, ms since 1970. */
        const int64_t *timestamps;
        size_t ntimestamps;
};

/* A histogram: counts[i] observations in bucket i alone (not cumulative),
 * counts[nbounds] past the last bound. */
struct cs_stats_hist {
        uint64_t counts[16];
        double sum;
        uint64_t count;
};

struct cs_stats_partition {
        int32_t partition;
        int64_t next_offset;    /* -1 until a batch is committed */
        int64_t high_watermark; /* -1 unknown */
        int has_watermark;
        struct cs_time watermark; /* event time, naive */
};

struct cs_stats_reason {
        char name[CS_STATS_REASON_MAX]; /* [a-z0-9_]+ */
        uint64_t count;
};

/* A copy of everything at one moment; free with cs_stats_snapshot_free(). */
struct cs_stats_snapshot {
        char topic[256];
        uint64_t messages, calls, duplicates, rejected, late, updated;
        uint64_t batches, reconnects;
        struct cs_stats_reason reasons[CS_STATS_MAX_REASONS + 1];
        size_t nreasons;
        struct cs_stats_hist batch_seconds, freshness_seconds;
        int in_flight;
        /* cs_now_ms() when the database or the brokers went out of reach,
         * 0 while reachable. */
        int64_t db_down_since, broker_down_since;
        int64_t last_commit_ms; /* cs_now_ms() of the last commit, or 0 */
        struct cs_stats_partition *parts; /* malloc'd, by partition */
        size_t nparts;
};

extern const double cs_stats_batch_bounds[CS_STATS_NBATCH_BOUNDS];
extern const double cs_stats_fresh_bounds[CS_STATS_NFRESH_BOUNDS];

struct cs_stats;

/* Returns new, empty stats for topic (copied), or NULL when out of memory.
 */
struct cs_stats *cs_stats_new(const char *topic);
/* Accepts NULL. */
void cs_stats_destroy(struct cs_stats *s);

/* Adds a committed batch. */
void cs_stats_add_batch(struct cs_stats *s, const struct cs_stats_batch *b);

/* A batch handed to the writer (delta 1), written or dropped (-1). */
void cs_stats_in_flight(struct cs_stats *s, int delta);

/* The database went out of reach at cs_now_ms() now (an outage already
 * noted keeps its start), or (cs_stats_db_up) is back; reconnected counts
 * a reconnect. */
void cs_stats_db_down(struct cs_stats *s, int64_t now);
void cs_stats_db_up(struct cs_stats *s, int reconnected);

/* The brokers out of reach since cs_now_ms() down_since, or 0: reachable.
 */
void cs_stats_broker(struct cs_stats *s, int64_t down_since);

/* Partitions' ends read while idle (partition and high_watermark). */
void cs_stats_highs(struct cs_stats *s, const struct cs_partition_offset *highs,
                    size_t n);

/* Copies the stats into *out. Returns 0, or -1 when out of memory. */
int cs_stats_snapshot(struct cs_stats *s,
                      struct cs_stats_snapshot *out) CS_MUSTCHECK;
/* Frees what a snapshot holds; accepts one zeroed or taken from NULL. */
void cs_stats_snapshot_free(struct cs_stats_snapshot *snap);

/* Writes the label of a reject reason into out: the reason up to its
 * first ':' or " at byte", lower case, runs of other characters as '_'
 * ("invalid JSON at byte 3: ..." -> "invalid_json"). */
void cs_stats_reason_label(const char *reason, size_t len, char *out,
                           size_t out_size);

/* Adds seconds v to h, whose bounds are bounds[0..nbounds). */
void cs_stats_hist_add(struct cs_stats_hist *h, const double *bounds,
                       int nbounds, double v);

#endif
