/* source.c: the Kafka consumer and a replayed file behind one table of
 * operations (cs_source.h). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cs_rate.h"
#include "cs_sink.h"
#include "cs_source.h"

/* Kafka: cs_kafka_source with the message it last handed out. */
struct kafka {
        struct cs_source base;
        struct cs_kafka_source *src;
        rd_kafka_message_t *m; /* freed by the next call of next */
};

static int kafka_next(struct cs_source *s, int timeout_ms,
                      struct cs_source_msg *out)
{
        struct kafka *k = (struct kafka *)s;
        int failed = 0;

        if (k->m) {
                rd_kafka_message_destroy(k->m);
                k->m = NULL;
        }
        k->m = cs_kafka_source_poll(k->src, timeout_ms, &failed);
        if (failed)
                return -1;
        if (!k->m)
                return 0;
        out->payload = k->m->payload;
        out->len = k->m->len;
        out->key = k->m->key;
        out->key_len = k->m->key_len;
        out->partition = k->m->partition;
        out->offset = k->m->offset;
        out->timestamp = rd_kafka_message_timestamp(k->m, NULL);
        out->reject = NULL;
        return 1;
}

static int kafka_tick(struct cs_source *s, int idle,
                      const struct cs_partition_offset **highs, size_t *n)
{
        int failed = 0;
        int r = cs_kafka_source_tick(((struct kafka *)s)->src, idle, highs, n,
                                     &failed);

        return failed ? -1 : r;
}

static void kafka_pause(struct cs_source *s)
{
        cs_kafka_source_pause(((struct kafka *)s)->src);
}

static int kafka_rewind(struct cs_source *s)
{
        return cs_kafka_source_rewind(((struct kafka *)s)->src);
}

static int64_t kafka_high_watermark(struct cs_source *s, int32_t partition)
{
        return cs_kafka_source_high_watermark(((struct kafka *)s)->src,
                                              partition);
}

static int kafka_at_end(const struct cs_source *s)
{
        return cs_kafka_source_at_end(((const struct kafka *)s)->src);
}

static void kafka_commit(struct cs_source *s, const struct cs_batch *b)
{
        cs_kafka_source_commit(((struct kafka *)s)->src, b);
}

static void kafka_close(struct cs_source *s)
{
        struct kafka *k = (struct kafka *)s;

        if (k->m)
                rd_kafka_message_destroy(k->m);
        cs_kafka_source_destroy(k->src);
        free(k);
}

static int64_t kafka_down_since(const struct cs_source *s)
{
        return cs_kafka_source_down_since(((const struct kafka *)s)->src);
}

static const struct cs_source_ops kafka_ops = {
        .kind = "kafka",
        .next = kafka_next,
        .tick = kafka_tick,
        .pause = kafka_pause,
        .rewind = kafka_rewind,
        .high_watermark = kafka_high_watermark,
        .at_end = kafka_at_end,
        .commit = kafka_commit,
        .close = kafka_close,
        .down_since = kafka_down_since,
};

int cs_source_kafka_new(const struct cs_kafka_source_conf *conf,
                        struct cs_source **out, char *errstr,
                        size_t errstr_size)
{
        struct kafka *k = calloc(1, sizeof(*k));
        int r;

        *out = NULL;
        if (!k) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        k->base.ops = &kafka_ops;
        if ((r = cs_kafka_source_new(conf, &k->src, errstr, errstr_size))) {
                free(k);
                return r;
        }
        *out = &k->base;
        return 0;
}

/* A file: partition 0, numbered from 1, read from the stored offset on. */
struct file {
        struct cs_source base;
        struct cs_file_source *f; /* borrowed */
        struct cs_source_file_conf conf;
        int64_t from; /* the first message number to hand out */
        int paused, eof;
        int started; /* read once already */
        char reject[64];
        struct cs_rate bucket; /* --max-rate-per-partition */
        int empty;             /* the bucket ran out: wait until full */
};

/* Loads partition 0's offset and starts reading the file again there. */
static int file_rewind(struct cs_source *s)
{
        struct file *fs = (struct file *)s;
        struct cs_partition_offset off = {0};
        char errstr[512];
        int r;

        if (fs->started && fs->conf.once) {
                cs_log(CS_LOG_ERROR, "standard input cannot be read again "
                                     "after an outage");
                return -1;
        }
        if ((r = fs->conf.on_assign(fs->conf.opaque, &off, 1)) < 0)
                return r;
        if (cs_file_source_restart(fs->f, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return -1;
        }
        fs->from = off.next_offset;
        fs->paused = fs->eof = 0;
        fs->started = 1;
        return 0;
}

static int file_next(struct cs_source *s, int timeout_ms,
                     struct cs_source_msg *out)
{
        struct file *fs = (struct file *)s;
        struct cs_file_msg m;
        char errstr[512];
        int r;

        if (fs->empty && !fs->paused && !fs->eof) {
                int64_t w = cs_rate_wait_ms(&fs->bucket, cs_now_ms());
                struct timespec ts = {0, 0};

                if (w > 0) {
                        /* Partition 0 paused by its bucket. */
                        ts.tv_nsec =
                                (w < timeout_ms ? w : timeout_ms) * 1000000L;
                        nanosleep(&ts, NULL);
                        return 0;
                }
                fs->empty = 0;
        }
        if (fs->paused || fs->eof) {
                /* Nothing comes: wait as a broker would, briefly. */
                struct timespec ts = {0, (timeout_ms < 10 ? timeout_ms : 10) *
                                                 1000000L};

                nanosleep(&ts, NULL);
                return 0;
        }
        r = cs_file_source_next(fs->f, fs->from, &m, errstr, sizeof(errstr));
        if (r < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return -1;
        }
        if (r == 0) {
                fs->eof = 1;
                return 0;
        }
        if (!cs_rate_take(&fs->bucket, cs_now_ms()))
                fs->empty = 1;
        out->payload = m.payload;
        out->len = m.len;
        out->key = NULL;
        out->key_len = 0;
        out->partition = 0;
        out->offset = m.number;
        out->timestamp = -1;
        out->reject = NULL;
        if (!m.payload) {
                snprintf(fs->reject, sizeof(fs->reject),
                         "message longer than %d bytes", CS_FILE_MSG_MAX);
                out->reject = fs->reject;
        }
        return 1;
}

static int file_tick(struct cs_source *s, int idle,
                     const struct cs_partition_offset **highs, size_t *n)
{
        (void)s;
        (void)idle;
        (void)highs;
        (void)n;
        return 0;
}

static void file_pause(struct cs_source *s)
{
        ((struct file *)s)->paused = 1;
}

static int64_t file_high_watermark(struct cs_source *s, int32_t partition)
{
        (void)s;
        (void)partition;
        return -1;
}

static int file_at_end(const struct cs_source *s)
{
        const struct file *fs = (const struct file *)s;

        return fs->eof && !fs->paused;
}

static void file_commit(struct cs_source *s, const struct cs_batch *b)
{
        (void)s;
        (void)b;
}

static void file_close(struct cs_source *s)
{
        free(s);
}

static const struct cs_source_ops file_ops = {
        .kind = "file",
        .next = file_next,
        .tick = file_tick,
        .pause = file_pause,
        .rewind = file_rewind,
        .high_watermark = file_high_watermark,
        .at_end = file_at_end,
        .commit = file_commit,
        .close = file_close,
};

int cs_source_file_new(struct cs_file_source *file,
                       const struct cs_source_file_conf *conf,
                       struct cs_source **out, char *errstr, size_t errstr_size)
{
        struct file *fs = calloc(1, sizeof(*fs));
        int r;

        *out = NULL;
        if (!fs) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        fs->base.ops = &file_ops;
        fs->f = file;
        fs->conf = *conf;
        cs_rate_init(&fs->bucket, conf->max_rate_per_partition, cs_now_ms());
        r = file_rewind(&fs->base);
        if (r == CS_ERR) {
                snprintf(errstr, errstr_size, "replay not started");
                free(fs);
                return -1;
        }
        /* Without the database, paused until rewound. */
        fs->paused = r < 0;
        *out = &fs->base;
        return r;
}
