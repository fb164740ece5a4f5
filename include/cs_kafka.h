/* cs_kafka.h: the Kafka source, a consumer-group member on one topic.
 *
 * With a group, partitions are shared with the group's other members;
 * without one, the source reads every partition of the topic, like kcat -C.
 * Offsets live in the database, not in Kafka: when partitions are assigned,
 * the source asks its owner where each one stands (on_assign) and starts
 * there; before partitions are taken away it lets the owner commit what it
 * holds (on_revoke). Offsets are also committed to Kafka after each database
 * commit, with or without a group (group.id "callstream" then), but only so
 * that Kafka's lag tools see progress.
 *
 * librdkafka's log lines and errors go through cs_log: one warning when the
 * brokers become unreachable (naming the cause), a reminder every 30 s while
 * they stay so, and one line when they are back. */
#ifndef CS_KAFKA_H
#define CS_KAFKA_H

#include <signal.h>

#include <librdkafka/rdkafka.h>

#include "cs_batch.h"

struct cs_kafka_source_conf {
        const char *brokers; /* borrowed, like every pointer here */
        const char *topic;
        const char *group;        /* NULL: no group, read every partition */
        int from_beginning;       /* no stored offset: earliest, not latest */
        int exit_at_end;          /* report the end of every partition */
        const char *const *props; /* "name=value" librdkafka properties */
        size_t nprops;
        volatile sig_atomic_t *stop; /* set: end any wait at once */
        /* How long to wait at start for the brokers and the topic's
         * metadata, in ms; 0 waits until stopped. */
        int64_t startup_timeout_ms;
        /* After the start: fail once the brokers have been unreachable
         * this long, in ms; 0 retries for ever. */
        int64_t broker_timeout_ms;
        /* --batch-max-records: librdkafka's prefetch (queued.min.messages,
         * queued.max.messages.kbytes, fetch.max.bytes) is sized from it
         * unless -X sets them; 0 keeps librdkafka's defaults. */
        size_t batch_max_records;
        /* --max-rate-per-partition: at most this many messages a second
         * from each partition (cs_rate.h), by pausing a partition whose
         * bucket is empty until it is full again; 0: no limit. */
        double max_rate_per_partition;
        /* With more than one partition, messages go out merged by their
         * timestamps: how long to wait for a partition whose next messages
         * are at the broker but not fetched yet before going on without
         * it, in ms; 0: 50 (tests set it long to make the order certain). */
        int merge_wait_ms;
        /* --partition-order fetch: no merge; the partitions come as
         * librdkafka fetches them, through one queue the batch bounds. */
        int fetch_order;

        /* Sets offs[i].next_offset to the stored offset of each newly
         * assigned partition, or -1 when none is stored. Returns 0, -1 on
         * a fatal error, or CS_RETRY when the database is out of
         * reach: the partitions are then assigned paused, to be rewound. */
        int (*on_assign)(void *opaque, struct cs_partition_offset *offs,
                         size_t n);
        /* Commits everything consumed so far; called before partitions are
         * revoked. Returns 0 or -1. */
        int (*on_revoke)(void *opaque);
        /* Offsets first..last of partition were deleted by the topic's
         * retention before they were read (the stored offset had fallen
         * out of it); the next message comes from after last. The source
         * has logged a warning. Returns 0, or -1 (the poll fails). */
        int (*on_gap)(void *opaque, int32_t partition, int64_t first,
                      int64_t last);
        void *opaque;
};

struct cs_kafka_source;

/* Checks "name=value" librdkafka properties as the consumer would take them,
 * with the prefetch sized for batch_max_records (0: librdkafka's), without
 * connecting anywhere. Returns 0, or -1 with the property named in
 * errstr. */
int cs_kafka_check_props(const char *const *props, size_t nprops,
                         size_t batch_max_records, char *errstr,
                         size_t errstr_size);

/* Writes to value the value librdkafka would be given for property name
 * by a source made from conf reading a topic of partitions (0: as before
 * it knows how many): callstream's settings, then conf->props. For tests
 * and the -v log. Returns 0, or -1 with the reason in errstr. */
int cs_kafka_effective_prop(const struct cs_kafka_source_conf *conf,
                            int partitions, const char *name, char *value,
                            size_t value_size, char *errstr,
                            size_t errstr_size);

/* Fault injection for tests: the source's own arrays (not librdkafka's)
 * are allocated with fn, which has realloc()'s contract except that
 * fn(ptr, 0) frees ptr; NULL restores the C library's. Set it only while
 * no source exists. */
void cs_kafka_set_allocator(void *(*fn)(void *ptr, size_t size));

/* Creates the consumer, waits (up to conf->startup_timeout_ms, warning with
 * the cause while the brokers are unreachable) until the topic's metadata
 * comes, and subscribes to the topic or assigns all its partitions. A topic
 * that does not exist is an error: it is never created. Returns 0 with the
 * source in *out, 1 when *conf->stop ended the wait, or -1 with the reason
 * in errstr (a bad -X property is named). conf is copied. */
int cs_kafka_source_new(const struct cs_kafka_source_conf *conf,
                        struct cs_kafka_source **out, char *errstr,
                        size_t errstr_size);

/* Waits up to timeout_ms for the next message. Returns it (the caller frees
 * it with rd_kafka_message_destroy()), or NULL when there is none yet. Errors
 * that need no action are logged; a fatal one sets *failed. */
rd_kafka_message_t *cs_kafka_source_poll(struct cs_kafka_source *src,
                                         int timeout_ms, int *failed);

/* The end offset of partition last seen by the consumer (no broker round
 * trip), or -1 when not known yet. */
int64_t cs_kafka_source_high_watermark(struct cs_kafka_source *src,
                                       int32_t partition);

/* Housekeeping between polls: reminds that the brokers are still
 * unreachable, and fails (*failed) past conf->broker_timeout_ms; when idle
 * and they are, asks them for metadata every second (at most 500 ms) to see
 * them back. When idle and reachable, every 5 s, returns 1 with the high
 * watermarks librdkafka last got for the assigned partitions (fetches keep
 * them current): *highs (partition and high_watermark set; valid until the
 * next call) and *n; else returns 0. */
int cs_kafka_source_tick(struct cs_kafka_source *src, int idle,
                         const struct cs_partition_offset **highs, size_t *n,
                         int *failed);

/* True once partitions are assigned and every one has reached its end. */
int cs_kafka_source_at_end(const struct cs_kafka_source *src);

/* Stops fetching from every assigned partition, and from any assigned
 * later, until cs_kafka_source_rewind(). Messages already fetched may still
 * come out of poll; the caller drops them. */
void cs_kafka_source_pause(struct cs_kafka_source *src);

/* Asks on_assign for the stored offsets of every assigned partition, seeks
 * each there and resumes fetching. Returns 0, or what on_assign returned,
 * 1 when the seeks did not finish in time (still paused: call it again), or
 * -1 when the seek fails. */
int cs_kafka_source_rewind(struct cs_kafka_source *src);

/* Commits the batch's offsets to Kafka, asynchronously (informational). */
void cs_kafka_source_commit(struct cs_kafka_source *src,
                            const struct cs_batch *b);

/* cs_now_ms() when the brokers went out of reach, or 0 while they are
 * reachable (for /healthz and the metrics). */
int64_t cs_kafka_source_down_since(const struct cs_kafka_source *src);

/* Leaves the group (on_revoke runs) and frees the source; NULL accepted. */
void cs_kafka_source_destroy(struct cs_kafka_source *src);

#endif
