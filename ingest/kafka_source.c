/* kafka_source.c: the Kafka consumer behind cs_kafka.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_kafka.h"
#include "cs_rate.h"

#define REMIND_MS   30000 /* reminder while the brokers stay unreachable */
#define PROBE_MS    5000  /* high watermarks stored while idle */
#define PROBE_WAIT  500   /* ms a probe of the brokers may block the loop */
#define WAKE_MS     5     /* at most one wake-up of the fetcher this often */
#define WAKE_WAIT   100   /* ms a wake-up may block the loop */
#define MERGE_CHUNK 16    /* messages taken from a partition's queue at once */
#define MERGE_WAIT  50    /* ms the merge waits for a partition that lags */

/* The allocator of the source's own arrays: the C library's, or a test's
 * (cs_kafka_set_allocator). */
static void *(*test_alloc)(void *ptr, size_t size);

void cs_kafka_set_allocator(void *(*fn)(void *ptr, size_t size))
{
        test_alloc = fn;
}

/* realloc(ptr, size) for size > 0, through the test's allocator if set. */
static void *mem_realloc(void *ptr, size_t size)
{
        return test_alloc ? test_alloc(ptr, size) : realloc(ptr, size);
}

static void *mem_calloc(size_t n, size_t size)
{
        void *p;

        if (size && n > SIZE_MAX / size)
                return NULL;
        if ((p = mem_realloc(NULL, n * size)))
                memset(p, 0, n * size);
        return p;
}

static void mem_free(void *ptr)
{
        if (!test_alloc)
                free(ptr);
        else if (ptr)
                test_alloc(ptr, 0);
}

struct assigned {
        int32_t partition;
        int at_end;
        int64_t next;          /* offset expected next, -1 when not known */
        struct cs_rate bucket; /* --max-rate-per-partition */
        int rate_paused;       /* paused by it, until the bucket is full */

        /* Merging (src->merge, merge_next()): the partition's own queue,
         * and what was taken from it and not yet handed out, in order. */
        rd_kafka_queue_t *q;
        rd_kafka_message_t *buf[MERGE_CHUNK];
        int head, len;
        int64_t head_ts; /* the timestamp of buf[head] */
        int64_t dry_at;  /* ms its queue was last found empty */
        int waited_out;  /* lagged past MERGE_WAIT: not waited for again
                          * until it gives a message */
};

struct cs_kafka_source {
        rd_kafka_t *rk;
        struct cs_kafka_source_conf conf;
        struct assigned *parts; /* the current assignment */
        size_t nparts;
        size_t parts_cap;
        int failed; /* set in callbacks, reported by the next poll */
        int paused; /* every assigned partition is paused */
        rd_kafka_resp_err_t last_err; /* to log a repeated error once */

        /* Broker reachability, from librdkafka's errors and our requests:
         * down since when, why (librdkafka's last connection failure), and
         * when to say so again. */
        int down;
        int64_t down_since, remind_at;
        char cause[256];
        int64_t probe_at;
        struct cs_partition_offset *highs; /* the last probe */
        size_t nhighs;

        /* The fetcher's wake-up (wake_fetcher()): the consumer's queue, how
         * few messages in it call for one, when the last was, and which
         * partition the next asks about. */
        rd_kafka_queue_t *queue;
        size_t low_water;
        int backlog; /* the queue held low_water since the last one */
        int64_t woken_at;
        size_t wake_next;

        /* More than one partition: each is read from its own queue and the
         * heads are merged by timestamp (merge_next()). */
        int merge;
        unsigned polls;      /* merge_next() calls, to serve the consumer's
                              * queue every so often */
        int64_t stall_since; /* waiting for a lagging partition since */
};

static void mark_down(struct cs_kafka_source *src, const char *why)
{
        if (src->down)
                return;
        src->down = 1;
        src->down_since = cs_now_ms();
        src->remind_at = src->down_since + REMIND_MS;
        cs_log(CS_LOG_WARN, "Kafka brokers %s unreachable: %s; retrying",
               src->conf.brokers, src->cause[0] ? src->cause : why);
}

static void mark_up(struct cs_kafka_source *src)
{
        if (src->down)
                cs_log(CS_LOG_INFO,
                       "Kafka brokers %s reachable again after %.1f s",
                       src->conf.brokers,
                       (double)(cs_now_ms() - src->down_since) / 1000.0);
        src->down = 0;
        src->cause[0] = '\0';
}

/* True when librdkafka takes fetch.queue.backoff.ms (2.1.0 on), which
 * makes its fetcher look at a full prefetch queue again that soon. */
static int has_fetch_backoff(void)
{
        return rd_kafka_version() >= 0x020100ff;
}

/* The reminder while down, and the end of patience. Returns -1 when
 * limit_ms (0: none) has passed since the brokers went down. */
static int check_down(struct cs_kafka_source *src, int64_t limit_ms)
{
        int64_t now = cs_now_ms();

        if (!src->down)
                return 0;
        if (limit_ms && now - src->down_since >= limit_ms)
                return -1;
        if (now >= src->remind_at) {
                cs_log(CS_LOG_WARN,
                       "Kafka brokers %s still unreachable after %.0f s: %s",
                       src->conf.brokers,
                       (double)(now - src->down_since) / 1000.0,
                       src->cause[0] ? src->cause : "no answer");
                src->remind_at = now + REMIND_MS;
        }
        return 0;
}

/* librdkafka's log lines, served on the consumer's queue (log.queue) so
 * that they reach this thread. Connection failures are what error_cb
 * reports: kept as the cause, not printed twice. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        struct cs_kafka_source *src = rd_kafka_opaque(rk);

        if (!strcmp(fac, "FAIL")) {
                if (src && !src->cause[0])
                        snprintf(src->cause, sizeof(src->cause), "%s", buf);
                cs_log(CS_LOG_DEBUG, "librdkafka: %s: %s", fac, buf);
        } else if (!strcmp(fac, "COMMITFAIL")) {
                /* Kafka's copy of the offsets is informational (the
                 * database holds them): a commit refused while the group
                 * rebalances is no cause for alarm. */
                cs_log(CS_LOG_INFO, "librdkafka: %s: %s", fac, buf);
        } else if (!strcmp(fac, "AUTOCREATE")) {
                /* Old brokers cannot be told not to create topics: the
                 * metadata check at start stands in for it. */
                cs_log(CS_LOG_DEBUG, "librdkafka: %s: %s", fac, buf);
        } else if (level <= 4 && strcmp(fac, "OFFSET")) {
                cs_log(CS_LOG_WARN, "librdkafka: %s: %s", fac, buf);
        } else if (level <= 6) {
                cs_log(CS_LOG_INFO, "librdkafka: %s: %s", fac, buf);
        } else {
                cs_log(CS_LOG_DEBUG, "librdkafka: %s: %s", fac, buf);
        }
}

/* librdkafka's errors: most are transient and librdkafka retries them; of
 * those only "all brokers down" is worth a warning, with the cause the
 * connection errors gave. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        struct cs_kafka_source *src = opaque;

        (void)rk;
        switch (err) {
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__RESOLVE:
        case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        case RD_KAFKA_RESP_ERR__SSL:
                /* The latest says best why the brokers are down. */
                snprintf(src->cause, sizeof(src->cause), "%s", reason);
                cs_log(CS_LOG_DEBUG, "Kafka: %s", reason);
                if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
                    err == RD_KAFKA_RESP_ERR__SSL)
                        mark_down(src, reason);
                break;
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
                mark_down(src, reason);
                break;
        case RD_KAFKA_RESP_ERR__FATAL: {
                char why[256];

                rd_kafka_fatal_error(src->rk, why, sizeof(why));
                cs_log(CS_LOG_ERROR, "Kafka: fatal error: %s", why);
                src->failed = 1;
                break;
        }
        default:
                if (err != (int)src->last_err)
                        cs_log(CS_LOG_WARN, "Kafka: %s", reason);
                src->last_err = err;
        }
}

static struct assigned *find(struct cs_kafka_source *src, int32_t partition)
{
        size_t i;

        for (i = 0; i < src->nparts; i++)
                if (src->parts[i].partition == partition)
                        return &src->parts[i];
        return NULL;
}

/* Destroys what a partition's buffer holds (never handed out). */
static void drop_buffered(struct assigned *a)
{
        while (a->len > 0) {
                rd_kafka_message_destroy(a->buf[a->head++]);
                a->len--;
        }
        a->head = 0;
}

static void drop_queue(struct assigned *a)
{
        drop_buffered(a);
        if (a->q)
                rd_kafka_queue_destroy(a->q);
        a->q = NULL;
}

static void drop_queues(struct cs_kafka_source *src)
{
        size_t i;

        for (i = 0; i < src->nparts; i++)
                drop_queue(&src->parts[i]);
}

/* Merging: gives each partition of list not yet read from its own queue
 * one, no longer forwarded to the consumer's, before it is assigned (an
 * application's forwarding is one librdkafka keeps). */
static int own_queues(struct cs_kafka_source *src,
                      const rd_kafka_topic_partition_list_t *list)
{
        int i;

        for (i = 0; src->merge && i < list->cnt; i++) {
                struct assigned *a = find(src, list->elems[i].partition);

                if (!a || a->q)
                        continue;
                a->q = rd_kafka_queue_get_partition(src->rk, src->conf.topic,
                                                    a->partition);
                if (!a->q) {
                        cs_log(CS_LOG_ERROR, "%s [%d]: no queue of its own",
                               src->conf.topic, (int)a->partition);
                        return -1;
                }
                rd_kafka_queue_forward(a->q, NULL);
        }
        return 0;
}

/* Starts each new partition at its stored offset, else at the start or the
 * end of the log as --from-beginning says, and adds it to the assignment. */
static int assign(struct cs_kafka_source *src,
                  rd_kafka_topic_partition_list_t *list, int incremental)
{
        struct cs_partition_offset *offs;
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t err = 0;
        int i, r, n = list->cnt, stored = 0;

        /* One allocation at a time: src->parts must never be left
         * pointing at a block realloc() has freed. */
        if (src->nparts + (size_t)n > src->parts_cap) {
                size_t cap = src->nparts + (size_t)n + 16;
                struct assigned *p = mem_realloc(src->parts, cap * sizeof(*p));

                if (!p) {
                        cs_log(CS_LOG_ERROR, "out of memory on assignment");
                        return -1;
                }
                src->parts = p;
                src->parts_cap = cap;
        }
        if (!(offs = mem_calloc((size_t)n + 1, sizeof(*offs)))) {
                cs_log(CS_LOG_ERROR, "out of memory on assignment");
                return -1;
        }
        for (i = 0; i < n; i++)
                offs[i].partition = list->elems[i].partition;
        r = src->conf.on_assign(src->conf.opaque, offs, (size_t)n);
        if (r == CS_ERR) {
                mem_free(offs);
                return -1;
        }
        for (i = 0; i < n; i++) {
                int64_t o = offs[i].next_offset;

                /* Without the database (r < 0) the start is unknown: the
                 * partition stays paused until cs_kafka_source_rewind(). */
                if (r < 0 || o < 0)
                        o = src->conf.from_beginning ? RD_KAFKA_OFFSET_BEGINNING
                                                     : RD_KAFKA_OFFSET_END;
                list->elems[i].offset = o;
                if (!find(src, offs[i].partition)) {
                        memset(&src->parts[src->nparts], 0,
                               sizeof(src->parts[0]));
                        src->parts[src->nparts].partition = offs[i].partition;
                        cs_rate_init(&src->parts[src->nparts].bucket,
                                     src->conf.max_rate_per_partition,
                                     cs_now_ms());
                        src->nparts++;
                }
                /* Only a stored offset can fall out of retention. */
                find(src, offs[i].partition)->next =
                        r == 0 && offs[i].next_offset >= 0 ? offs[i].next_offset
                                                           : -1;
                if (r == 0 && offs[i].next_offset >= 0)
                        stored++;
        }
        mem_free(offs);
        if (r < 0)
                cs_log(CS_LOG_INFO,
                       "assigned %d partitions of %s, paused until the "
                       "database is back",
                       n, src->conf.topic);
        else
                cs_log(CS_LOG_INFO,
                       "assigned %d partitions of %s: %d from their stored "
                       "offsets, %d from the %s",
                       n, src->conf.topic, stored, n - stored,
                       src->conf.from_beginning ? "beginning" : "end");
        if (own_queues(src, list) < 0)
                return -1;
        if (incremental)
                error = rd_kafka_incremental_assign(src->rk, list);
        else
                err = rd_kafka_assign(src->rk, list);
        if (error || err) {
                cs_log(CS_LOG_ERROR, "assigning partitions: %s",
                       error ? rd_kafka_error_string(error)
                             : rd_kafka_err2str(err));
                if (error)
                        rd_kafka_error_destroy(error);
                return -1;
        }
        if (r < 0)
                src->paused = 1;
        if (src->paused)
                rd_kafka_pause_partitions(src->rk, list);
        return 0;
}

static void rate_pause(struct cs_kafka_source *src, struct assigned *a,
                       int pause);

/* Lets the owner commit its open batch, then gives the partitions up. */
static int revoke_parts(struct cs_kafka_source *src,
                        rd_kafka_topic_partition_list_t *list, int incremental)
{
        int r = src->conf.on_revoke(src->conf.opaque);
        int i;

        for (i = 0; i < list->cnt; i++) {
                struct assigned *a = find(src, list->elems[i].partition);

                /* Not left paused by its bucket, should it come back. */
                if (a && a->rate_paused)
                        rate_pause(src, a, 0);
                if (a) {
                        drop_queue(a);
                        *a = src->parts[--src->nparts];
                }
        }
        if (incremental) {
                rd_kafka_error_t *error =
                        rd_kafka_incremental_unassign(src->rk, list);

                if (error)
                        rd_kafka_error_destroy(error);
        } else {
                rd_kafka_assign(src->rk, NULL);
                drop_queues(src);
                src->nparts = 0;
        }
        return r;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
        struct cs_kafka_source *src = opaque;
        int incremental =
                !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        int r;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
                r = assign(src, list, incremental);
        else
                r = revoke_parts(src, list, incremental);
        if (r < 0)
                src->failed = 1;
}

/* Sets one librdkafka property, naming it (never its value) on error. */
static int set(rd_kafka_conf_t *kc, const char *name, const char *value,
               char *errstr, size_t errstr_size)
{
        char why[256];

        if (rd_kafka_conf_set(kc, name, value, why, sizeof(why)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        snprintf(errstr, errstr_size, "-X %s: %s", name, why);
        return -1;
}

/* Sleeps ms in short steps, serving librdkafka's callbacks; returns 1 once
 * *stop is set. */
static int nap(struct cs_kafka_source *src, int64_t ms)
{
        int64_t until = cs_now_ms() + ms;

        while (!*src->conf.stop && cs_now_ms() < until) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(src->rk, 50);

                if (m)
                        rd_kafka_message_destroy(m);
        }
        return *src->conf.stop != 0;
}

/* The topic's entry in md, or NULL. */
static const struct rd_kafka_metadata_topic *
topic_of(const struct rd_kafka_metadata *md, const char *topic)
{
        int i;

        for (i = 0; i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, topic))
                        return &md->topics[i];
        return NULL;
}

/* Waits until the brokers give the topic's metadata: like a database at
 * start, the brokers may come up after the service. Asks for every topic's,
 * since asking for one topic makes old brokers and the mock cluster create
 * it whatever allow.auto.create.topics says. Returns 0 with *out (the caller
 * destroys it) and *t in it, 1 when stopped, or -1 with errstr. */
static int wait_for_topic(struct cs_kafka_source *src,
                          const struct rd_kafka_metadata **out,
                          const struct rd_kafka_metadata_topic **t,
                          char *errstr, size_t errstr_size)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;
        int64_t started = cs_now_ms(), limit = src->conf.startup_timeout_ms;

        for (;;) {
                int64_t waited;

                if (*src->conf.stop)
                        return 1;
                /* Short: a stop must not wait long for the answer. */
                err = rd_kafka_metadata(src->rk, 1, NULL, &md, 1000);
                waited = cs_now_ms() - started;
                if (!err) {
                        mark_up(src);
                        *t = topic_of(md, src->conf.topic);
                        if (!*t) {
                                /* allow.auto.create.topics=false: a
                                 * mistyped topic is not created behind the
                                 * user's back. */
                                snprintf(errstr, errstr_size,
                                         "topic %s does not exist on %s "
                                         "(or this client may not see it)",
                                         src->conf.topic, src->conf.brokers);
                                rd_kafka_metadata_destroy(md);
                                return -1;
                        }
                        err = (*t)->err;
                        if (!err && (*t)->partition_cnt > 0) {
                                *out = md;
                                return 0;
                        }
                        rd_kafka_metadata_destroy(md);
                        md = NULL;
                        if (err &&
                            err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
                                snprintf(errstr, errstr_size,
                                         "topic %s on %s: %s", src->conf.topic,
                                         src->conf.brokers,
                                         rd_kafka_err2str(err));
                                return -1;
                        }
                        /* A new topic still electing its leaders. */
                        if (limit && waited >= limit) {
                                snprintf(errstr, errstr_size,
                                         "topic %s on %s: %s; gave up after "
                                         "%.1f s (--startup-timeout)",
                                         src->conf.topic, src->conf.brokers,
                                         err ? rd_kafka_err2str(err)
                                             : "no partitions",
                                         (double)waited / 1000.0);
                                return -1;
                        }
                } else {
                        if (src->cause[0] || waited > 5000)
                                mark_down(src, rd_kafka_err2str(err));
                        if (limit && waited >= limit) {
                                snprintf(errstr, errstr_size,
                                         "Kafka brokers %s unreachable: %s; "
                                         "gave up after %.1f s "
                                         "(--startup-timeout)",
                                         src->conf.brokers,
                                         src->cause[0] ? src->cause
                                                       : rd_kafka_err2str(err),
                                         (double)waited / 1000.0);
                                return -1;
                        }
                }
                check_down(src, 0);
                if (nap(src, 200))
                        return 1;
        }
}

/* Without a group, takes every partition of the topic, as kcat -C does. */
static int assign_all(struct cs_kafka_source *src,
                      const struct rd_kafka_metadata_topic *t, char *errstr,
                      size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *list;
        int i, r;

        list = rd_kafka_topic_partition_list_new(t->partition_cnt);
        for (i = 0; i < t->partition_cnt; i++)
                rd_kafka_topic_partition_list_add(list, src->conf.topic,
                                                  t->partitions[i].id);
        r = assign(src, list, 0);
        rd_kafka_topic_partition_list_destroy(list);
        if (r < 0)
                snprintf(errstr, errstr_size, "assigning %s failed",
                         src->conf.topic);
        return r;
}

/* Whether a -X property sets name. */
static int user_sets(const struct cs_kafka_source_conf *conf, const char *name)
{
        size_t len = strlen(name), i;

        for (i = 0; i < conf->nprops; i++)
                if (!strncmp(conf->props[i], name, len) &&
                    conf->props[i][len] == '=')
                        return 1;
        return 0;
}

/* librdkafka's prefetch sized from the batch rather than its defaults
 * (100,000 messages or 64 MB queued, 50 MB fetches), which are what bounds
 * an ingest's memory: 0.4 KB of queue per record of the batch (1 to 64 MB;
 * a call is 0.4 to 1 KB of JSON), fetches of a quarter of that (1 to 50
 * MB), and 4 batches of messages (1,000 to 100,000), so that normally the
 * byte limit binds. A queue that small runs dry between two looks of
 * librdkafka's fetcher at it unless wake_fetcher() calls it back (300k calls
 * from 64 partitions: 63 MB peak and as fast as with a 20 MB queue, which
 * took 95 to 120 MB). A fetch.max.bytes below message.max.bytes is refused,
 * so it is left alone when -X sets either; -X overrides every one of them
 * anyway.
 *
 * With partitions > 1 the partitions are merged (merge_next()), each from a
 * queue of its own, and librdkafka's queue limits apply to each: the same
 * total is shared out (at least 64 KB and 100 messages each), and a
 * partition's share is also what one fetch may bring of it, so that a fetch
 * tops up many partitions rather than filling one. */
static int set_prefetch(rd_kafka_conf_t *kc,
                        const struct cs_kafka_source_conf *conf, int partitions,
                        char *errstr, size_t errstr_size)
{
        size_t batch = conf->batch_max_records, kbytes, msgs, fetch;
        char v[32];

        if (!batch)
                return 0;
        kbytes = batch > 163840 ? 65536 : batch < 2560 ? 1024 : batch * 2 / 5;
        msgs = batch > 25000 ? 100000 : batch < 250 ? 1000 : 4 * batch;
        fetch = kbytes * 256;
        fetch = fetch < 1048576 ? 1048576 : fetch > 52428800 ? 52428800 : fetch;
        if (partitions > 1) {
                kbytes /= (size_t)partitions;
                kbytes = kbytes < 64 ? 64 : kbytes;
                msgs /= (size_t)partitions;
                msgs = msgs < 100 ? 100 : msgs;
        }
        snprintf(v, sizeof(v), "%zu", msgs);
        if (set(kc, "queued.min.messages", v, errstr, errstr_size))
                return -1;
        snprintf(v, sizeof(v), "%zu", kbytes);
        if (set(kc, "queued.max.messages.kbytes", v, errstr, errstr_size))
                return -1;
        if (partitions > 1 && !user_sets(conf, "fetch.message.max.bytes") &&
            !user_sets(conf, "max.partition.fetch.bytes")) {
                snprintf(v, sizeof(v), "%zu", kbytes * 1024);
                if (set(kc, "fetch.message.max.bytes", v, errstr, errstr_size))
                        return -1;
        }
        /* From 2.1.0 librdkafka looks at a full queue again after this
         * (default a second) rather than being woken (wake_fetcher()). */
        if (has_fetch_backoff() && !user_sets(conf, "fetch.queue.backoff.ms") &&
            set(kc, "fetch.queue.backoff.ms", "10", errstr, errstr_size))
                return -1;
        if (user_sets(conf, "message.max.bytes") ||
            user_sets(conf, "fetch.max.bytes"))
                return 0;
        snprintf(v, sizeof(v), "%zu", fetch);
        return set(kc, "fetch.max.bytes", v, errstr, errstr_size);
}

/* The defaults, then the -X properties, which can override any of them. */
static int configure(rd_kafka_conf_t *kc,
                     const struct cs_kafka_source_conf *conf, int partitions,
                     char *errstr, size_t errstr_size)
{
        const char *brokers = conf->brokers, *group = conf->group;
        const char *const *props = conf->props;
        size_t i, nprops = conf->nprops;

        /* Offsets are kept in the database; an offset that fell out of
         * retention restarts at the oldest message kept rather than
         * skipping to the newest (and is recorded as a gap). */
        if ((brokers &&
             set(kc, "bootstrap.servers", brokers, errstr, errstr_size)) ||
            /* librdkafka wants a group.id even to assign by hand; commits
             * go there for lag tools. */
            set(kc, "group.id", group ? group : "callstream", errstr,
                errstr_size) ||
            set(kc, "enable.auto.commit", "false", errstr, errstr_size) ||
            set(kc, "enable.auto.offset.store", "false", errstr, errstr_size) ||
            set(kc, "enable.partition.eof", "true", errstr, errstr_size) ||
            set(kc, "auto.offset.reset", "earliest", errstr, errstr_size) ||
            set(kc, "allow.auto.create.topics", "false", errstr, errstr_size) ||
            set(kc, "log.queue", "true", errstr, errstr_size) ||
            /* A broker that holds a fetch until data comes answers at once
             * anyway; one that answers an empty fetch only after this wait
             * (the local broker, `callstream broker`) would otherwise hold
             * calls produced meanwhile for up to librdkafka's 500 ms, and
             * the end of a topic for as long. */
            set(kc, "fetch.wait.max.ms", "100", errstr, errstr_size) ||
            set_prefetch(kc, conf, partitions, errstr, errstr_size))
                return -1;
        for (i = 0; i < nprops; i++) {
                char name[256];
                const char *eq = strchr(props[i], '=');

                if (!eq || eq == props[i] ||
                    (size_t)(eq - props[i]) >= sizeof(name)) {
                        snprintf(errstr, errstr_size,
                                 "-X '%s': expected name=value",
                                 eq ? "..." : props[i]);
                        return -1;
                }
                memcpy(name, props[i], (size_t)(eq - props[i]));
                name[eq - props[i]] = '\0';
                if (set(kc, name, eq + 1, errstr, errstr_size))
                        return -1;
        }
        return 0;
}

int cs_kafka_check_props(const char *const *props, size_t nprops,
                         size_t batch_max_records, char *errstr,
                         size_t errstr_size)
{
        struct cs_kafka_source_conf conf = {
                .props = props,
                .nprops = nprops,
                .batch_max_records = batch_max_records,
        };
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_t *rk;
        char why[256];

        if (configure(kc, &conf, 0, errstr, errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return -1;
        }
        /* Some mistakes only show when the client is made (a SASL
         * mechanism this build lacks); without bootstrap.servers it
         * connects nowhere. */
        rd_kafka_conf_set_log_cb(kc, log_cb);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                snprintf(errstr, errstr_size, "-X: %s", why);
                return -1;
        }
        rd_kafka_destroy(rk);
        return 0;
}

int cs_kafka_effective_prop(const struct cs_kafka_source_conf *conf,
                            int partitions, const char *name, char *value,
                            size_t value_size, char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        int r = -1;

        if (configure(kc, conf, partitions, errstr, errstr_size) == 0) {
                if (rd_kafka_conf_get(kc, name, value, &value_size) ==
                    RD_KAFKA_CONF_OK)
                        r = 0;
                else
                        snprintf(errstr, errstr_size, "%s: unknown", name);
        }
        rd_kafka_conf_destroy(kc);
        return r;
}

/* -v: the prefetch in effect, since it bounds the memory an ingest uses. */
static void log_prefetch(rd_kafka_t *rk, int merged)
{
        static const char *const names[] = {
                "queued.min.messages", "queued.max.messages.kbytes",
                "fetch.max.bytes", "fetch.message.max.bytes"};
        const rd_kafka_conf_t *kc = rd_kafka_conf(rk);
        char v[4][32], tail[128];
        size_t i, n;

        if (CS_LOG_DEBUG > cs_log_threshold)
                return;
        for (i = 0; i < 4; i++) {
                n = sizeof(v[i]);
                if (rd_kafka_conf_get(kc, names[i], v[i], &n) !=
                    RD_KAFKA_CONF_OK)
                        snprintf(v[i], sizeof(v[i]), "?");
        }
        tail[0] = '\0';
        if (merged)
                snprintf(tail, sizeof(tail),
                         " %s=%s for each of %d partitions, merged by "
                         "timestamp",
                         names[3], v[3], merged);
        cs_log(CS_LOG_DEBUG, "Kafka prefetch: %s=%s %s=%s %s=%s%s", names[0],
               v[0], names[1], v[1], names[2], v[2], tail);
}

/* How few messages in the queue call for wake_fetcher(): half of what the
 * queue holds when full of records of 2 KB, so that a full queue of calls
 * is always above it. */
static size_t queue_low_water(const rd_kafka_conf_t *kc)
{
        char v[32];
        size_t n = sizeof(v);
        long long kbytes;

        if (rd_kafka_conf_get(kc, "queued.max.messages.kbytes", v, &n) !=
                    RD_KAFKA_CONF_OK ||
            (kbytes = atoll(v)) <= 0)
                kbytes = 65536;
        return kbytes / 4 > 250 ? (size_t)kbytes / 4 : 250;
}

/* Makes src->rk (and src->queue) configured for a topic of partitions
 * (0: not known yet). Returns 0, or -1 with errstr. */
static int make_handle(struct cs_kafka_source *src, int partitions,
                       char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        size_t low_water;

        if (!kc) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (configure(kc, &src->conf, partitions, errstr, errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return -1;
        }
        low_water = queue_low_water(kc);
        rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
        rd_kafka_conf_set_log_cb(kc, log_cb);
        rd_kafka_conf_set_error_cb(kc, error_cb);
        rd_kafka_conf_set_opaque(kc, src);
        src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size);
        if (!src->rk) {
                rd_kafka_conf_destroy(kc);
                return -1;
        }
        /* Log lines to the main queue, which the consumer's serves. */
        rd_kafka_set_log_queue(src->rk, NULL);
        rd_kafka_poll_set_consumer(src->rk);
        if (!has_fetch_backoff()) {
                src->queue = rd_kafka_queue_get_consumer(src->rk);
                src->low_water = low_water;
        }
        return 0;
}

static void drop_handle(struct cs_kafka_source *src)
{
        if (src->queue)
                rd_kafka_queue_destroy(src->queue);
        src->queue = NULL;
        if (src->rk)
                rd_kafka_destroy(src->rk);
        src->rk = NULL;
}

int cs_kafka_source_new(const struct cs_kafka_source_conf *conf,
                        struct cs_kafka_source **out, char *errstr,
                        size_t errstr_size)
{
        static volatile sig_atomic_t never;
        struct cs_kafka_source *src = mem_calloc(1, sizeof(*src));
        const struct rd_kafka_metadata *md = NULL;
        const struct rd_kafka_metadata_topic *t = NULL;
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_resp_err_t err;
        int r = -1;

        *out = NULL;
        if (!src) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        src->conf = *conf;
        src->probe_at = cs_now_ms() + PROBE_MS;
        if (!src->conf.stop)
                src->conf.stop = &never;
        if (make_handle(src, 0, errstr, errstr_size))
                goto fail;
        if ((r = wait_for_topic(src, &md, &t, errstr, errstr_size)) != 0)
                goto fail;
        r = -1;
        /* librdkafka's queue limits are set when the client is made, and
         * merging makes them apply to each partition: a client made for
         * the topic's number of partitions takes over. */
        if (t->partition_cnt > 1 && conf->batch_max_records &&
            !conf->fetch_order) {
                int n = t->partition_cnt;

                rd_kafka_metadata_destroy(md);
                md = NULL;
                drop_handle(src);
                if (make_handle(src, n, errstr, errstr_size))
                        goto fail;
                src->merge = 1;
                /* Its own look at the topic, else its first fetch waits
                 * for a metadata refresh (0.5 s). */
                if ((r = wait_for_topic(src, &md, &t, errstr, errstr_size)))
                        goto fail;
                r = -1;
        }
        log_prefetch(src->rk, src->merge ? t->partition_cnt : 0);
        if (!conf->group) {
                int a = assign_all(src, t, errstr, errstr_size);

                rd_kafka_metadata_destroy(md);
                md = NULL;
                if (a < 0)
                        goto fail;
                *out = src;
                return 0;
        }
        rd_kafka_metadata_destroy(md);
        md = NULL;
        topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, conf->topic,
                                          RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(src->rk, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errstr, errstr_size, "subscribing to %s: %s",
                         conf->topic, rd_kafka_err2str(err));
                goto fail;
        }
        *out = src;
        return 0;
fail:
        if (md)
                rd_kafka_metadata_destroy(md);
        if (src) {
                drop_queues(src);
                drop_handle(src);
                /* assign() may have grown the assignment before failing. */
                mem_free(src->parts);
                mem_free(src->highs);
        }
        mem_free(src);
        return r;
}

/* A message (or the end) at offset past the one expected next: when the
 * expected one is below the partition's first kept offset, retention
 * deleted what lies between before it was read. A jump within what is kept
 * (transaction markers, compaction) is no loss, nor is one where the first
 * kept offset is unknown. */
static void check_gap(struct cs_kafka_source *src, struct assigned *a,
                      int64_t offset, int *failed)
{
        int64_t low = -1, high = -1, last;

        /* Fetch responses carry the log start offset (Kafka >= 0.11). */
        rd_kafka_get_watermark_offsets(src->rk, src->conf.topic, a->partition,
                                       &low, &high);
        if (low <= a->next) {
                if (low < 0)
                        cs_log(CS_LOG_DEBUG,
                               "%s [%d]: offsets %lld-%lld skipped, first "
                               "kept offset unknown",
                               src->conf.topic, (int)a->partition,
                               (long long)a->next, (long long)offset - 1);
                return;
        }
        last = low <= offset ? low - 1 : offset - 1;
        cs_log(CS_LOG_WARN,
               "%s [%d]: offsets %lld-%lld (%lld messages) were deleted by "
               "the topic's retention before they were read; going on from "
               "offset %lld",
               src->conf.topic, (int)a->partition, (long long)a->next,
               (long long)last, (long long)(last - a->next + 1),
               (long long)offset);
        if (src->conf.on_gap &&
            src->conf.on_gap(src->conf.opaque, a->partition, a->next, last) < 0)
                *failed = 1;
}

/* The small request that wakes the fetcher (see wake_fetcher()): the
 * offsets of partition, at most once every WAKE_MS. Returns 1 when sent,
 * 0 when too soon after the last. */
static int poke(struct cs_kafka_source *src, int32_t partition)
{
        int64_t now = cs_now_ms(), low, high;

        if (now - src->woken_at < WAKE_MS)
                return 0;
        src->woken_at = now;
        rd_kafka_query_watermark_offsets(src->rk, src->conf.topic, partition,
                                         &low, &high, WAKE_WAIT);
        return 1;
}

/* Before librdkafka 2.1.0 the fetcher of a broker, once the prefetch queue
 * has passed queued.max.messages.kbytes, looks at it again only when
 * something wakes its thread (a request to send, a reply) or after a
 * second: a queue sized to bound memory ran dry in a fraction of that and
 * the ingest waited out the rest (300k calls from 64 partitions: 15 s
 * instead of 5). So when a queue that was full falls below low_water, a
 * small request to the leader of one of the partitions (its offsets, round
 * the assignment, so that every broker is reached in turn) wakes it. */
static void wake_fetcher(struct cs_kafka_source *src)
{
        if (!src->queue)
                return;
        if (rd_kafka_queue_length(src->queue) >= src->low_water) {
                src->backlog = 1;
                return;
        }
        if (!src->backlog || !src->nparts || src->paused || src->down)
                return;
        if (poke(src, src->parts[src->wake_next % src->nparts].partition)) {
                src->backlog = 0;
                src->wake_next++;
        }
}

/* --- Merging the partitions by timestamp -----------------------------------
 *
 * Read side by side, partitions come in whole fetches of each in turn, and
 * drift apart: batches of a topic produced in time order spanned months of
 * it (the median batch of 10,000 from 64 partitions, 4 months of a year),
 * so every batch touched windows all over the stream, and a database wrote
 * the same window's count a dozen times. Kafka Streams picks, among its
 * partitions, the record with the lowest timestamp; so does this: each
 * partition is read from its own queue into a small buffer, the head with
 * the lowest timestamp goes out, and a partition with nothing buffered but
 * more at the broker (its high watermark is past what was read) is waited
 * for, up to MERGE_WAIT, before the others go on without it. Events (the
 * end of a partition, its errors) go out as soon as they reach a head. The
 * order within a partition is Kafka's; only the interleaving changes. */

/* The merge key of a message: events first, then Kafka's timestamp (-1,
 * none, before any). */
static int64_t merge_key(const rd_kafka_message_t *m)
{
        return m->err ? INT64_MIN : rd_kafka_message_timestamp(m, NULL);
}

/* Fills the empty buffer of a from its queue. */
static void refill(struct assigned *a, int64_t now)
{
        ssize_t n = rd_kafka_consume_batch_queue(a->q, 0, a->buf, MERGE_CHUNK);

        a->head = 0;
        a->len = n > 0 ? (int)n : 0;
        if (!a->len) {
                a->dry_at = now;
                return;
        }
        a->waited_out = 0;
        a->head_ts = merge_key(a->buf[0]);
}

/* Whether the broker holds messages of a that were not fetched yet. */
static int lagging(struct cs_kafka_source *src, const struct assigned *a)
{
        int64_t low, high;

        if (a->at_end || a->waited_out || src->paused)
                return 0;
        if (a->next < 0 ||
            rd_kafka_get_watermark_offsets(src->rk, src->conf.topic,
                                           a->partition, &low, &high) ||
            high < 0)
                return 1; /* nothing fetched yet */
        return a->next < high;
}

static rd_kafka_message_t *take(struct assigned *a)
{
        rd_kafka_message_t *m = a->buf[a->head++];

        if (--a->len)
                a->head_ts = merge_key(a->buf[a->head]);
        else
                a->head = 0;
        return m;
}

/* The next message or event of the merge, waiting up to timeout_ms. */
static rd_kafka_message_t *merge_next(struct cs_kafka_source *src,
                                      int timeout_ms)
{
        int64_t now = cs_now_ms(), deadline = now + timeout_ms;
        int merge_wait = src->conf.merge_wait_ms > 0 ? src->conf.merge_wait_ms
                                                     : MERGE_WAIT;
        rd_kafka_message_t *m;

        for (;;) {
                struct assigned *best = NULL, *wait_for = NULL;
                size_t i;

                /* The consumer's own queue (rebalances, errors, and any
                 * message of a partition not on a queue of its own). */
                if (!(src->polls++ & 63) &&
                    (m = rd_kafka_consumer_poll(src->rk, 0)))
                        return m;
                for (i = 0; i < src->nparts; i++) {
                        struct assigned *a = &src->parts[i];

                        /* A paused bucket keeps its buffer for later. */
                        if (a->rate_paused || !a->q)
                                continue;
                        if (!a->len && a->dry_at != now)
                                refill(a, now);
                        if (a->len) {
                                if (!best || a->head_ts < best->head_ts)
                                        best = a;
                        } else if (!wait_for && lagging(src, a)) {
                                wait_for = a;
                        }
                }
                if (!wait_for) {
                        src->stall_since = 0;
                } else if (best && !src->stall_since) {
                        src->stall_since = now;
                } else if (best && now - src->stall_since >= merge_wait) {
                        /* Not waited for again until it gives a message. */
                        for (i = 0; i < src->nparts; i++)
                                if (!src->parts[i].len &&
                                    lagging(src, &src->parts[i]))
                                        src->parts[i].waited_out = 1;
                        cs_log(CS_LOG_DEBUG,
                               "%s: gave up waiting %d ms for partition %d",
                               src->conf.topic, merge_wait,
                               (int)wait_for->partition);
                        src->stall_since = 0;
                        wait_for = NULL;
                }
                if (best && !wait_for)
                        return take(best);
                /* Before 2.1.0 the fetcher must be woken (wake_fetcher()). */
                if (wait_for && !has_fetch_backoff() && !src->down)
                        poke(src, wait_for->partition);
                if (now >= deadline)
                        return NULL;
                if ((m = rd_kafka_consumer_poll(src->rk, 1)))
                        return m;
                now = cs_now_ms();
        }
}

/* One partition paused or resumed by its rate bucket. */
static void rate_pause(struct cs_kafka_source *src, struct assigned *a,
                       int pause)
{
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new(1);

        rd_kafka_topic_partition_list_add(list, src->conf.topic, a->partition);
        if (pause)
                rd_kafka_pause_partitions(src->rk, list);
        else
                rd_kafka_resume_partitions(src->rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        a->rate_paused = pause;
}

/* Resumes the partitions whose bucket is full again; returns the ms until
 * the next one will be (INT32_MAX: none waits). While every partition is
 * paused for an outage, none is resumed. */
static int64_t rate_resume(struct cs_kafka_source *src)
{
        int64_t now = cs_now_ms(), next = INT32_MAX, w;
        size_t i;

        for (i = 0; i < src->nparts; i++) {
                struct assigned *a = &src->parts[i];

                if (!a->rate_paused)
                        continue;
                if ((w = cs_rate_wait_ms(&a->bucket, now)) == 0 && !src->paused)
                        rate_pause(src, a, 0);
                else if (w < next)
                        next = w;
        }
        return next;
}

rd_kafka_message_t *cs_kafka_source_poll(struct cs_kafka_source *src,
                                         int timeout_ms, int *failed)
{
        rd_kafka_message_t *m;
        struct assigned *a;

        if (src->conf.max_rate_per_partition > 0) {
                int64_t w = rate_resume(src);

                /* Back in time to resume the next partition. */
                if (w < timeout_ms)
                        timeout_ms = (int)w;
        }
        if (src->merge) {
                m = merge_next(src, timeout_ms);
        } else {
                wake_fetcher(src);
                m = rd_kafka_consumer_poll(src->rk, timeout_ms);
        }

        if (src->failed)
                *failed = 1;
        if (!m)
                return NULL;
        /* Under the rate limit, belt and braces: a message handed out
         * already is never handed out again (a rewind moves next back
         * first). */
        if (!m->err && src->conf.max_rate_per_partition > 0 &&
            (a = find(src, m->partition)) && a->next >= 0 &&
            m->offset < a->next) {
                cs_log(CS_LOG_DEBUG, "%s [%d]: offset %lld again, dropped",
                       src->conf.topic, (int)m->partition,
                       (long long)m->offset);
                rd_kafka_message_destroy(m);
                return NULL;
        }
        if (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* Only a broker can have sent it. */
                mark_up(src);
                a = find(src, m->partition);
                if (a && a->next >= 0 && m->offset > a->next && !src->paused)
                        check_gap(src, a, m->offset, failed);
                if (a && (!m->err || m->offset > a->next))
                        a->next = m->err ? m->offset : m->offset + 1;
        }
        if (!m->err) {
                a = find(src, m->partition);
                if (a)
                        a->at_end = 0;
                /* Out of tokens: paused now, so that librdkafka drops what
                 * it fetched beyond this message (a pause is a version
                 * barrier) and fetches again from the next offset on
                 * resume: nothing is lost or reordered. */
                if (a && src->conf.max_rate_per_partition > 0 &&
                    !cs_rate_take(&a->bucket, cs_now_ms()) && !a->rate_paused)
                        rate_pause(src, a, 1);
                return m;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                a = find(src, m->partition);
                if (a)
                        a->at_end = 1;
                cs_log(CS_LOG_DEBUG, "%s [%d] at end, offset %lld",
                       src->conf.topic, (int)m->partition,
                       (long long)m->offset);
        } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[256];

                rd_kafka_fatal_error(src->rk, why, sizeof(why));
                cs_log(CS_LOG_ERROR, "Kafka: fatal error: %s", why);
                *failed = 1;
        } else if ((m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) &&
                   src->conf.exit_at_end) {
                /* With nothing to wait for, --exit-at-end would hang. */
                cs_log(CS_LOG_ERROR, "Kafka: topic %s: %s", src->conf.topic,
                       rd_kafka_message_errstr(m));
                *failed = 1;
        } else if (m->err != src->last_err) {
                cs_log(CS_LOG_WARN, "Kafka: %s", rd_kafka_message_errstr(m));
        }
        src->last_err = m->err;
        rd_kafka_message_destroy(m);
        return NULL;
}

int cs_kafka_source_tick(struct cs_kafka_source *src, int idle,
                         const struct cs_partition_offset **highs, size_t *n,
                         int *failed)
{
        int64_t now = cs_now_ms(), low, high;
        size_t i;

        if (check_down(src, src->conf.broker_timeout_ms) < 0) {
                cs_log(CS_LOG_ERROR,
                       "Kafka brokers %s unreachable for %.0f s: %s; giving "
                       "up (--broker-timeout)",
                       src->conf.brokers,
                       (double)(now - src->down_since) / 1000.0,
                       src->cause[0] ? src->cause : "no answer");
                *failed = 1;
                return 0;
        }
        if (!idle || now < src->probe_at)
                return 0;
        src->probe_at = now + (src->down ? 1000 : PROBE_MS);
        if (src->down) {
                /* While down, a short metadata request every second tells
                 * when they are back (rd_kafka_query_watermark_offsets()
                 * would wait for the socket timeout). */
                const struct rd_kafka_metadata *md = NULL;

                if (rd_kafka_metadata(src->rk, 0, NULL, &md, PROBE_WAIT))
                        return 0;
                rd_kafka_metadata_destroy(md);
                mark_up(src);
        }
        if (!src->nparts)
                return 0;
        if (src->nhighs < src->nparts) {
                struct cs_partition_offset *p =
                        mem_realloc(src->highs, src->nparts * sizeof(*p));

                if (!p)
                        return 0;
                src->highs = p;
        }
        /* Fetch responses keep librdkafka's copy of the high watermarks
         * current, idle or not: no need to ask the brokers again. */
        src->nhighs = 0;
        for (i = 0; i < src->nparts; i++) {
                if (rd_kafka_get_watermark_offsets(src->rk, src->conf.topic,
                                                   src->parts[i].partition,
                                                   &low, &high) ||
                    high < 0)
                        continue;
                memset(&src->highs[src->nhighs], 0, sizeof(src->highs[0]));
                src->highs[src->nhighs].partition = src->parts[i].partition;
                src->highs[src->nhighs].high_watermark = high;
                src->nhighs++;
        }
        if (!src->nhighs)
                return 0;
        *highs = src->highs;
        *n = src->nhighs;
        return 1;
}

/* Returns the current assignment as a list (the caller destroys it). */
static rd_kafka_topic_partition_list_t *
assignment(const struct cs_kafka_source *src)
{
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new((int)src->nparts + 1);
        size_t i;

        for (i = 0; i < src->nparts; i++)
                rd_kafka_topic_partition_list_add(list, src->conf.topic,
                                                  src->parts[i].partition);
        return list;
}

void cs_kafka_source_pause(struct cs_kafka_source *src)
{
        rd_kafka_topic_partition_list_t *list = assignment(src);
        size_t i;

        rd_kafka_pause_partitions(src->rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        src->paused = 1;
        /* Read again from the stored offsets on rewind. */
        for (i = 0; i < src->nparts; i++)
                drop_buffered(&src->parts[i]);
}

int cs_kafka_source_rewind(struct cs_kafka_source *src)
{
        rd_kafka_topic_partition_list_t *list = assignment(src);
        struct cs_partition_offset *offs;
        rd_kafka_error_t *error;
        size_t i;
        int r;

        offs = mem_calloc(src->nparts + 1, sizeof(*offs));
        if (!offs) {
                rd_kafka_topic_partition_list_destroy(list);
                return -1;
        }
        for (i = 0; i < src->nparts; i++)
                offs[i].partition = src->parts[i].partition;
        r = src->conf.on_assign(src->conf.opaque, offs, src->nparts);
        for (i = 0; r == 0 && i < src->nparts; i++) {
                int64_t o = offs[i].next_offset;

                if (o < 0)
                        o = src->conf.from_beginning ? RD_KAFKA_OFFSET_BEGINNING
                                                     : RD_KAFKA_OFFSET_END;
                list->elems[i].offset = o;
                src->parts[i].at_end = 0;
                src->parts[i].next = offs[i].next_offset;
                src->parts[i].waited_out = 0;
                drop_buffered(&src->parts[i]);
        }
        mem_free(offs);
        if (r == 0) {
                error = rd_kafka_seek_partitions(src->rk, list, 10000);
                if (error && rd_kafka_error_code(error) ==
                                     RD_KAFKA_RESP_ERR__TIMED_OUT) {
                        /* Seen to come early, under load: the seeks stay
                         * queued, and the next try seeks again. */
                        cs_log(CS_LOG_WARN, "rewinding %s: %s; trying again",
                               src->conf.topic, rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                        r = 1;
                } else if (error) {
                        cs_log(CS_LOG_ERROR, "rewinding %s: %s",
                               src->conf.topic, rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                        r = -1;
                }
        }
        for (i = 0; r == 0 && i < (size_t)list->cnt; i++) {
                if (list->elems[i].err) {
                        cs_log(CS_LOG_ERROR, "rewinding %s [%d]: %s",
                               src->conf.topic, (int)list->elems[i].partition,
                               rd_kafka_err2str(list->elems[i].err));
                        r = -1;
                }
        }
        if (r == 0) {
                rd_kafka_resume_partitions(src->rk, list);
                src->paused = 0;
                /* Resumed whole: a bucket still empty pauses its
                 * partition again at the next message. */
                for (i = 0; i < src->nparts; i++)
                        src->parts[i].rate_paused = 0;
        }
        rd_kafka_topic_partition_list_destroy(list);
        return r;
}

int64_t cs_kafka_source_high_watermark(struct cs_kafka_source *src,
                                       int32_t partition)
{
        int64_t low, high;

        if (rd_kafka_get_watermark_offsets(src->rk, src->conf.topic, partition,
                                           &low, &high) ||
            high < 0)
                return -1;
        return high;
}

int cs_kafka_source_at_end(const struct cs_kafka_source *src)
{
        size_t i;

        for (i = 0; i < src->nparts; i++)
                if (!src->parts[i].at_end)
                        return 0;
        return src->nparts > 0;
}

void cs_kafka_source_commit(struct cs_kafka_source *src,
                            const struct cs_batch *b)
{
        rd_kafka_topic_partition_list_t *list;
        size_t i;

        if (!b->noffsets)
                return;
        list = rd_kafka_topic_partition_list_new((int)b->noffsets);
        for (i = 0; i < b->noffsets; i++)
                rd_kafka_topic_partition_list_add(list, b->topic,
                                                  b->offsets[i].partition)
                        ->offset = b->offsets[i].next_offset;
        /* Failures only delay what lag tools show; the database is the
         * source of truth. */
        rd_kafka_commit(src->rk, list, 1);
        rd_kafka_topic_partition_list_destroy(list);
}

void cs_kafka_source_destroy(struct cs_kafka_source *src)
{
        if (!src)
                return;
        /* Every queue handle before the close, as librdkafka asks. */
        drop_queues(src);
        if (src->queue)
                rd_kafka_queue_destroy(src->queue);
        rd_kafka_consumer_close(src->rk);
        rd_kafka_destroy(src->rk);
        mem_free(src->parts);
        mem_free(src->highs);
        mem_free(src);
}

int64_t cs_kafka_source_down_since(const struct cs_kafka_source *src)
{
        return src->down ? src->down_since : 0;
}
