/* cs_kafka.h: the Kafka source, a consumer-group member on one topic.
 *
 * With a group, partitions are shared with the group's other members;
 * without one, the source reads every partition of the topic, like kcat -C.
 * Offsets live in the database, not in Kafka: when partitions are assigned,
 * the source asks its owner where each one stands (on_assign) and starts
 * there; before partitions are taken away it lets the owner commit what it
 * holds (on_revoke). Offsets are also committed to Kafka after each database
 * commit, but only so that Kafka's lag tools see progress. */
#ifndef CS_KAFKA_H
#define CS_KAFKA_H

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

        /* Sets offs[i].next_offset to the stored offset of each newly
         * assigned partition, or -1 when none is stored. Returns 0, -1 on
         * a fatal error, or CS_SINK_RETRY when the database is out of
         * reach: the partitions are then assigned paused, to be rewound. */
        int (*on_assign)(void *opaque, struct cs_partition_offset *offs,
                         size_t n);
        /* Commits everything consumed so far; called before partitions are
         * revoked. Returns 0 or -1. */
        int (*on_revoke)(void *opaque);
        void *opaque;
};

struct cs_kafka_source;

/* Creates the consumer and subscribes to the topic. Returns NULL with the
 * reason in errstr (a bad -X property is named). conf is copied. */
struct cs_kafka_source *
cs_kafka_source_new(const struct cs_kafka_source_conf *conf, char *errstr,
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

/* True once partitions are assigned and every one has reached its end. */
int cs_kafka_source_at_end(const struct cs_kafka_source *src);

/* Stops fetching from every assigned partition, and from any assigned
 * later, until cs_kafka_source_rewind(). Messages already fetched may still
 * come out of poll; the caller drops them. */
void cs_kafka_source_pause(struct cs_kafka_source *src);

/* Asks on_assign for the stored offsets of every assigned partition, seeks
 * each there and resumes fetching. Returns 0, or what on_assign returned,
 * or -1 when the seek fails. */
int cs_kafka_source_rewind(struct cs_kafka_source *src);

/* Commits the batch's offsets to Kafka, asynchronously (informational). */
void cs_kafka_source_commit(struct cs_kafka_source *src,
                            const struct cs_batch *b);

/* Leaves the group (on_revoke runs) and frees the source; NULL accepted. */
void cs_kafka_source_destroy(struct cs_kafka_source *src);

#endif
