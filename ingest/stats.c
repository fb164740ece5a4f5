/* stats.c: the ingest's counters, histograms and gauges (cs_stats.h), one
 * mutex, updated per batch. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_stats.h"

const double cs_stats_batch_bounds[CS_STATS_NBATCH_BOUNDS] = {
        CS_STATS_BATCH_BOUNDS};
const double cs_stats_fresh_bounds[CS_STATS_NFRESH_BOUNDS] = {
        CS_STATS_FRESH_BOUNDS};

struct cs_stats {
        pthread_mutex_t mu;
        struct cs_stats_snapshot v; /* v.parts sorted by partition */
        size_t parts_cap;
};

struct cs_stats *cs_stats_new(const char *topic)
{
        struct cs_stats *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        if (pthread_mutex_init(&s->mu, NULL) != 0) {
                free(s);
                return NULL;
        }
        snprintf(s->v.topic, sizeof(s->v.topic), "%s", topic ? topic : "");
        return s;
}

void cs_stats_destroy(struct cs_stats *s)
{
        if (!s)
                return;
        pthread_mutex_destroy(&s->mu);
        free(s->v.parts);
        free(s);
}

void cs_stats_hist_add(struct cs_stats_hist *h, const double *bounds,
                       int nbounds, double v)
{
        int i = 0;

        while (i < nbounds && v > bounds[i])
                i++;
        h->counts[i]++;
        h->sum += v;
        h->count++;
}

void cs_stats_reason_label(const char *reason, size_t len, char *out,
                           size_t out_size)
{
        const char *end = memchr(reason, ':', len), *at;
        size_t n = 0, i;
        int sep = 0;

        if (end)
                len = (size_t)(end - reason);
        for (i = 0; i + 8 <= len; i++) {
                at = reason + i;
                if (!memcmp(at, " at byte", 8)) {
                        len = i;
                        break;
                }
        }
        for (i = 0; i < len && n + 1 < out_size; i++) {
                unsigned char c = (unsigned char)reason[i];

                if (c >= 'A' && c <= 'Z')
                        c = (unsigned char)(c - 'A' + 'a');
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
                        if (sep && n)
                                out[n++] = '_';
                        sep = 0;
                        if (n + 1 < out_size)
                                out[n++] = (char)c;
                } else {
                        sep = 1;
                }
        }
        if (!n && out_size > 5)
                n = (size_t)snprintf(out, out_size, "other");
        out[n < out_size ? n : out_size - 1] = '\0';
}

/* Returns partition p's gauges (mu held), added when new, or NULL when out
 * of memory. */
static struct cs_stats_partition *part_of(struct cs_stats *s, int32_t p)
{
        struct cs_stats_snapshot *v = &s->v;
        size_t lo = 0, hi = v->nparts;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;

                if (v->parts[mid].partition < p)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < v->nparts && v->parts[lo].partition == p)
                return &v->parts[lo];
        if (v->nparts == s->parts_cap) {
                size_t cap = s->parts_cap ? s->parts_cap * 2 : 16;
                struct cs_stats_partition *np =
                        realloc(v->parts, cap * sizeof(*np));

                if (!np)
                        return NULL;
                v->parts = np;
                s->parts_cap = cap;
        }
        memmove(&v->parts[lo + 1], &v->parts[lo],
                (v->nparts - lo) * sizeof(*v->parts));
        v->nparts++;
        v->parts[lo] = (struct cs_stats_partition){
                .partition = p, .next_offset = -1, .high_watermark = -1};
        return &v->parts[lo];
}

/* Counts one rejected message under its reason's label (mu held). */
static void add_reason(struct cs_stats *s, const struct cs_str *reason)
{
        struct cs_stats_snapshot *v = &s->v;
        char label[CS_STATS_REASON_MAX];
        size_t i;

        cs_stats_reason_label(reason->ptr ? reason->ptr : "",
                              reason->ptr ? reason->len : 0, label,
                              sizeof(label));
        for (i = 0; i < v->nreasons; i++)
                if (!strcmp(v->reasons[i].name, label))
                        break;
        /* A bounded set of labels: reasons are the code's own strings, but
         * a new one past the limit goes to "other". */
        if (i == v->nreasons && v->nreasons == CS_STATS_MAX_REASONS) {
                for (i = 0; i < v->nreasons; i++)
                        if (!strcmp(v->reasons[i].name, "other"))
                                break;
                if (i == v->nreasons)
                        snprintf(label, sizeof(label), "other");
        }
        if (i == v->nreasons) {
                snprintf(v->reasons[i].name, sizeof(v->reasons[i].name), "%s",
                         label);
                v->reasons[i].count = 0;
                v->nreasons++;
        }
        v->reasons[i].count++;
}

void cs_stats_add_batch(struct cs_stats *s, const struct cs_stats_batch *sb)
{
        const struct cs_batch *b = sb->batch;
        struct cs_stats_hist fresh;
        struct timespec ts;
        double now_ms;
        size_t i;

        if (!s)
                return;
        /* The freshness of each message, bucketed before taking the lock. */
        memset(&fresh, 0, sizeof(fresh));
        clock_gettime(CLOCK_REALTIME, &ts);
        now_ms = (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
        for (i = 0; i < sb->ntimestamps; i++) {
                double age = (now_ms - (double)sb->timestamps[i]) / 1000.0;

                cs_stats_hist_add(&fresh, cs_stats_fresh_bounds,
                                  CS_STATS_NFRESH_BOUNDS, age < 0 ? 0 : age);
        }

        pthread_mutex_lock(&s->mu);
        s->v.messages += b->nmessages;
        s->v.calls += sb->calls;
        s->v.duplicates += sb->duplicates;
        s->v.rejected += b->nrejects;
        s->v.late += sb->late;
        s->v.updated += sb->updated;
        s->v.batches++;
        s->v.last_commit_ms = cs_now_ms();
        cs_stats_hist_add(&s->v.batch_seconds, cs_stats_batch_bounds,
                          CS_STATS_NBATCH_BOUNDS, sb->write_s + sb->commit_s);
        for (i = 0; i <= CS_STATS_NFRESH_BOUNDS; i++)
                s->v.freshness_seconds.counts[i] += fresh.counts[i];
        s->v.freshness_seconds.sum += fresh.sum;
        s->v.freshness_seconds.count += fresh.count;
        for (i = 0; i < b->nrejects; i++)
                add_reason(s, &b->rejects[i].reason);
        for (i = 0; i < b->noffsets; i++) {
                const struct cs_partition_offset *o = &b->offsets[i];
                struct cs_stats_partition *p = part_of(s, o->partition);

                if (!p)
                        continue; /* out of memory: a gauge goes stale */
                p->next_offset = o->next_offset;
                if (o->high_watermark >= 0)
                        p->high_watermark = o->high_watermark;
                if (o->watermark.valid) {
                        p->has_watermark = 1;
                        p->watermark = o->watermark.mark;
                }
        }
        pthread_mutex_unlock(&s->mu);
}

void cs_stats_in_flight(struct cs_stats *s, int delta)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->mu);
        s->v.in_flight += delta;
        if (s->v.in_flight < 0)
                s->v.in_flight = 0;
        pthread_mutex_unlock(&s->mu);
}

void cs_stats_db_down(struct cs_stats *s, int64_t now)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->mu);
        if (!s->v.db_down_since)
                s->v.db_down_since = now ? now : 1;
        pthread_mutex_unlock(&s->mu);
}

void cs_stats_db_up(struct cs_stats *s, int reconnected)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->mu);
        s->v.db_down_since = 0;
        s->v.reconnects += reconnected != 0;
        pthread_mutex_unlock(&s->mu);
}

void cs_stats_broker(struct cs_stats *s, int64_t down_since)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->mu);
        s->v.broker_down_since = down_since;
        pthread_mutex_unlock(&s->mu);
}

void cs_stats_highs(struct cs_stats *s, const struct cs_partition_offset *highs,
                    size_t n)
{
        size_t i;

        if (!s)
                return;
        pthread_mutex_lock(&s->mu);
        for (i = 0; i < n; i++) {
                struct cs_stats_partition *p = part_of(s, highs[i].partition);

                if (p && highs[i].high_watermark >= 0)
                        p->high_watermark = highs[i].high_watermark;
        }
        pthread_mutex_unlock(&s->mu);
}

int cs_stats_snapshot(struct cs_stats *s, struct cs_stats_snapshot *out)
{
        memset(out, 0, sizeof(*out));
        if (!s)
                return 0;
        pthread_mutex_lock(&s->mu);
        *out = s->v;
        out->parts = NULL;
        if (s->v.nparts &&
            !(out->parts = malloc(s->v.nparts * sizeof(*out->parts)))) {
                pthread_mutex_unlock(&s->mu);
                out->nparts = 0;
                return -1;
        }
        if (s->v.nparts)
                memcpy(out->parts, s->v.parts,
                       s->v.nparts * sizeof(*out->parts));
        pthread_mutex_unlock(&s->mu);
        return 0;
}

void cs_stats_snapshot_free(struct cs_stats_snapshot *snap)
{
        free(snap->parts);
        snap->parts = NULL;
        snap->nparts = 0;
}
