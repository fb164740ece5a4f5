/* cs_source.h: where the pipeline's messages come from, one table of
 * operations over Kafka (cs_kafka.h) and a replayed file (cs_file.h), so
 * that cs_pipeline_run() has one loop for both (and an Avro decoder can sit
 * behind the same table later).
 *
 * Ownership and threads: a source belongs to the thread that made it (the
 * pipeline's consumer thread), and every operation but commit is called
 * from that thread only. Its callbacks (on_assign, on_revoke, on_gap) run
 * on that thread too, from inside new, next, rewind or close; the pipeline
 * turns them into requests its writer thread serves. commit may be called
 * from another thread (librdkafka's commit is thread-safe; the file's is a
 * no-op). */
#ifndef CS_SOURCE_H
#define CS_SOURCE_H

#include <signal.h>

#include "cs_file.h"
#include "cs_kafka.h"

/* One message, valid until the next cs_source_next() or cs_source_close().
 * The source owns every pointer. */
struct cs_source_msg {
        const void *payload; /* NULL when not kept (see reject) */
        size_t len;          /* full length */
        const void *key;     /* NULL: none */
        size_t key_len;
        int32_t partition;
        int64_t offset;
        int64_t timestamp; /* ms since 1970 (Kafka's), -1 when unknown */
        /* Not NULL: the source rejects the message with this reason (a
         * file line longer than CS_FILE_MSG_MAX) instead of it being
         * parsed. */
        const char *reject;
};

struct cs_source;

struct cs_source_ops {
        const char *kind; /* "kafka", "file" */
        /* Waits up to timeout_ms for the next message. Returns 1 with *m,
         * 0 when there is none yet, or -1 on a fatal error (logged). */
        int (*next)(struct cs_source *s, int timeout_ms,
                    struct cs_source_msg *m);
        /* Housekeeping between calls of next (see cs_kafka_source_tick):
         * returns 1 with the partitions' ends in *highs and *n (valid until the
         * next call) when idle and due, 0, or -1 on a fatal error. */
        int (*tick)(struct cs_source *s, int idle,
                    const struct cs_partition_offset **highs, size_t *n);
        /* Stops reading until rewind; messages already read may still come
         * out of next, and the caller drops them. */
        void (*pause)(struct cs_source *s);
        /* Asks on_assign for the stored offset of every assigned partition,
         * goes back there and resumes. Returns 0, 1 (not done in time:
         * still paused, call it again), CS_RETRY (the database is
         * away again: still paused) or -1. */
        int (*rewind)(struct cs_source *s);
        /* The end offset of partition last seen, or -1 when not known. */
        int64_t (*high_watermark)(struct cs_source *s, int32_t partition);
        /* True once every assigned partition is read to its end. */
        int (*at_end)(const struct cs_source *s);
        /* Informational: tells the source that the batch's offsets are
         * committed to the database (Kafka's lag tools). Thread-safe. */
        void (*commit)(struct cs_source *s, const struct cs_batch *b);
        /* Gives the partitions up (on_revoke runs) and frees the source. */
        void (*close)(struct cs_source *s);
        /* Optional (NULL: always reachable): cs_now_ms() when the brokers
         * went out of reach, or 0 while they are reachable. */
        int64_t (*down_since)(const struct cs_source *s);
};

/* Implementations embed this as their first member. */
struct cs_source {
        const struct cs_source_ops *ops;
};

/* Makes a Kafka source (cs_kafka_source_new()): returns 0 with *out, 1
 * when *conf->stop ended the wait for the brokers, or -1 with errstr.
 * conf is copied. */
int cs_source_kafka_new(const struct cs_kafka_source_conf *conf,
                        struct cs_source **out, char *errstr,
                        size_t errstr_size) CS_MUSTCHECK;

/* What a file source needs of its owner: the same callbacks as Kafka's,
 * for its one partition 0 (on_gap and on_revoke are never called). */
struct cs_source_file_conf {
        int (*on_assign)(void *opaque, struct cs_partition_offset *offs,
                         size_t n);
        void *opaque;
        int once; /* the input cannot be read again (stdin): no rewind */
        /* --max-rate-per-partition for partition 0 (cs_rate.h); 0: none */
        double max_rate_per_partition;
};

/* Makes a source of file (borrowed: it must outlive the source): assigns
 * partition 0 through on_assign and reads from the offset it gives (the
 * first message when -1). Returns 0 with *out, CS_RETRY (paused: the
 * database is away) or -1 with errstr. */
int cs_source_file_new(struct cs_file_source *file,
                       const struct cs_source_file_conf *conf,
                       struct cs_source **out, char *errstr,
                       size_t errstr_size) CS_MUSTCHECK;

static inline int cs_source_next(struct cs_source *s, int timeout_ms,
                                 struct cs_source_msg *m)
{
        return s->ops->next(s, timeout_ms, m);
}

static inline int cs_source_tick(struct cs_source *s, int idle,
                                 const struct cs_partition_offset **highs,
                                 size_t *n)
{
        return s->ops->tick(s, idle, highs, n);
}

static inline void cs_source_pause(struct cs_source *s)
{
        s->ops->pause(s);
}

static inline int cs_source_rewind(struct cs_source *s)
{
        return s->ops->rewind(s);
}

static inline int64_t cs_source_high_watermark(struct cs_source *s,
                                               int32_t partition)
{
        return s->ops->high_watermark(s, partition);
}

static inline int cs_source_at_end(const struct cs_source *s)
{
        return s->ops->at_end(s);
}

static inline void cs_source_commit(struct cs_source *s,
                                    const struct cs_batch *b)
{
        s->ops->commit(s, b);
}

static inline int64_t cs_source_down_since(const struct cs_source *s)
{
        return s->ops->down_since ? s->ops->down_since(s) : 0;
}

/* NULL is accepted. */
static inline void cs_source_close(struct cs_source *s)
{
        if (s)
                s->ops->close(s);
}

#endif
