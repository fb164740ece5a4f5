/* kafka_source.c: the Kafka consumer behind cs_kafka.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_kafka.h"

struct assigned {
        int32_t partition;
        int at_end;
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
};

static struct assigned *find(struct cs_kafka_source *src, int32_t partition)
{
        size_t i;

        for (i = 0; i < src->nparts; i++)
                if (src->parts[i].partition == partition)
                        return &src->parts[i];
        return NULL;
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

        offs = calloc((size_t)n + 1, sizeof(*offs));
        if (!offs || src->nparts + (size_t)n > src->parts_cap) {
                size_t cap = src->nparts + (size_t)n + 16;
                struct assigned *p = realloc(src->parts, cap * sizeof(*p));

                if (!offs || !p) {
                        free(offs);
                        cs_log(CS_LOG_ERROR, "out of memory on assignment");
                        return -1;
                }
                src->parts = p;
                src->parts_cap = cap;
        }
        for (i = 0; i < n; i++)
                offs[i].partition = list->elems[i].partition;
        r = src->conf.on_assign(src->conf.opaque, offs, (size_t)n);
        if (r == -1) {
                free(offs);
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
                        src->parts[src->nparts].partition = offs[i].partition;
                        src->parts[src->nparts].at_end = 0;
                        src->nparts++;
                }
                if (r == 0 && offs[i].next_offset >= 0)
                        stored++;
        }
        free(offs);
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

/* Lets the owner commit its open batch, then gives the partitions up. */
static int revoke(struct cs_kafka_source *src,
                  rd_kafka_topic_partition_list_t *list, int incremental)
{
        int r = src->conf.on_revoke(src->conf.opaque);
        int i;

        for (i = 0; i < list->cnt; i++) {
                struct assigned *a = find(src, list->elems[i].partition);

                if (a)
                        *a = src->parts[--src->nparts];
        }
        if (incremental) {
                rd_kafka_error_t *error =
                        rd_kafka_incremental_unassign(src->rk, list);

                if (error)
                        rd_kafka_error_destroy(error);
        } else {
                rd_kafka_assign(src->rk, NULL);
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
                r = revoke(src, list, incremental);
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

/* Without a group, takes every partition of the topic, as kcat -C does. */
static int assign_all(struct cs_kafka_source *src, char *errstr,
                      size_t errstr_size)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *list;
        rd_kafka_resp_err_t err;
        rd_kafka_topic_t *rkt;
        int64_t deadline = cs_now_ms() + 10000;
        int i, r;

        rkt = rd_kafka_topic_new(src->rk, src->conf.topic, NULL);
        if (!rkt) {
                snprintf(errstr, errstr_size, "topic %s: %s", src->conf.topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
        }
        /* A new topic may still be electing leaders: retry for a while. */
        for (;;) {
                err = rd_kafka_metadata(src->rk, 0, rkt, &md, 5000);
                if (!err && md->topic_cnt == 1)
                        err = md->topics[0].err;
                if (!err || cs_now_ms() > deadline)
                        break;
                if (md)
                        rd_kafka_metadata_destroy(md);
                md = NULL;
                rd_kafka_poll(src->rk, 200);
        }
        rd_kafka_topic_destroy(rkt);
        if (err || md->topic_cnt != 1 || md->topics[0].partition_cnt == 0) {
                snprintf(errstr, errstr_size, "topic %s on %s: %s",
                         src->conf.topic, src->conf.brokers,
                         err ? rd_kafka_err2str(err) : "no partitions");
                if (md)
                        rd_kafka_metadata_destroy(md);
                return -1;
        }
        list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(
                        list, src->conf.topic, md->topics[0].partitions[i].id);
        rd_kafka_metadata_destroy(md);
        r = assign(src, list, 0);
        rd_kafka_topic_partition_list_destroy(list);
        if (r < 0)
                snprintf(errstr, errstr_size, "assigning %s failed",
                         src->conf.topic);
        return r;
}

struct cs_kafka_source *
cs_kafka_source_new(const struct cs_kafka_source_conf *conf, char *errstr,
                    size_t errstr_size)
{
        struct cs_kafka_source *src = calloc(1, sizeof(*src));
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_resp_err_t err;
        size_t i;

        if (!src || !kc) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        src->conf = *conf;
        /* Defaults first, so -X can override any of them. Offsets are kept
         * in the database; an offset that fell out of retention restarts at
         * the oldest message kept rather than skipping to the newest. */
        if (set(kc, "bootstrap.servers", conf->brokers, errstr, errstr_size) ||
            /* librdkafka wants a group.id even to assign by hand. */
            set(kc, "group.id", conf->group ? conf->group : "callstream",
                errstr, errstr_size) ||
            set(kc, "enable.auto.commit", "false", errstr, errstr_size) ||
            set(kc, "enable.auto.offset.store", "false", errstr, errstr_size) ||
            set(kc, "enable.partition.eof", "true", errstr, errstr_size) ||
            set(kc, "auto.offset.reset", "earliest", errstr, errstr_size))
                goto fail;
        for (i = 0; i < conf->nprops; i++) {
                char name[256];
                const char *eq = strchr(conf->props[i], '=');

                if (!eq || eq == conf->props[i] ||
                    (size_t)(eq - conf->props[i]) >= sizeof(name)) {
                        snprintf(errstr, errstr_size,
                                 "-X '%s': expected name=value",
                                 eq ? "..." : conf->props[i]);
                        goto fail;
                }
                memcpy(name, conf->props[i], (size_t)(eq - conf->props[i]));
                name[eq - conf->props[i]] = '\0';
                if (set(kc, name, eq + 1, errstr, errstr_size))
                        goto fail;
        }
        rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
        rd_kafka_conf_set_opaque(kc, src);

        src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size);
        if (!src->rk)
                goto fail;
        kc = NULL; /* now owned by rk */
        rd_kafka_poll_set_consumer(src->rk);

        if (!conf->group) {
                if (assign_all(src, errstr, errstr_size) < 0)
                        goto fail;
                return src;
        }
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
        return src;
fail:
        if (kc)
                rd_kafka_conf_destroy(kc);
        if (src && src->rk)
                rd_kafka_destroy(src->rk);
        free(src);
        return NULL;
}

rd_kafka_message_t *cs_kafka_source_poll(struct cs_kafka_source *src,
                                         int timeout_ms, int *failed)
{
        rd_kafka_message_t *m = rd_kafka_consumer_poll(src->rk, timeout_ms);
        struct assigned *a;

        if (src->failed)
                *failed = 1;
        if (!m)
                return NULL;
        if (!m->err) {
                a = find(src, m->partition);
                if (a)
                        a->at_end = 0;
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

        rd_kafka_pause_partitions(src->rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        src->paused = 1;
}

int cs_kafka_source_rewind(struct cs_kafka_source *src)
{
        rd_kafka_topic_partition_list_t *list = assignment(src);
        struct cs_partition_offset *offs;
        rd_kafka_error_t *error;
        size_t i;
        int r;

        offs = calloc(src->nparts + 1, sizeof(*offs));
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
        }
        free(offs);
        if (r == 0) {
                error = rd_kafka_seek_partitions(src->rk, list, 10000);
                if (error) {
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

        if (!b->noffsets || !src->conf.group)
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
        rd_kafka_consumer_close(src->rk);
        rd_kafka_destroy(src->rk);
        free(src->parts);
        free(src);
}
