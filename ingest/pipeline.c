/* pipeline.c: the ingest loop (cs_pipeline.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_file.h"
#include "cs_kafka.h"
#include "cs_pipeline.h"
#include "cs_sink.h"
#include "cs_topics.h"

struct totals {
        uint64_t messages;
        uint64_t calls;      /* new calls stored */
        uint64_t duplicates; /* valid copies of a stored call */
        uint64_t rejected;
        uint64_t late;    /* calls counted in, or dropped from, final windows */
        uint64_t updated; /* stored calls replaced by a changed copy */
        uint64_t batches;
};

struct pipeline {
        const struct cs_pipeline_conf *conf;
        struct cs_sink *sink;
        struct cs_kafka_source *src;
        struct cs_parser *parser;
        struct cs_batch *batch;
        struct cs_window_agg *agg;
        unsigned char *inserted;     /* per call of the batch: CS_CALL_... */
        struct cs_old_call *old;     /* per call: what it replaced */
        struct cs_late_record *late; /* calls dropped from final windows */
        size_t nlate, late_cap;
        size_t batch_late;    /* calls of the batch late for some window */
        size_t batch_updated; /* calls that replaced a changed copy */

        int64_t retain_at; /* when the next retention step is due */

        /* A file replay: its real path ("-": stdin) and first bytes, stored
         * with each batch so that it resumes only over the same input. */
        const char *replay_path;
        const char *head;
        size_t nhead;

        /* Each assigned partition's watermark, by partition number. */
        struct cs_watermark *marks;
        size_t nmarks;
        int64_t starts[CS_WINDOW_MAX_PER_EVENT];
        struct totals totals;

        /* Offsets lost to Kafka's retention, for the open batch; a gap
         * that could not be noted keeps any batch from being written. */
        struct cs_offset_gap *gaps;
        size_t ngaps, gaps_cap;
        int gap_lost;

        /* Recovering from a database outage: consuming is paused, and the
         * next reconnect attempt is due at retry_at. */
        int recovering;
        int attempts;
        int64_t retry_at;
};

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
/* The longest a statement of the ingest may take (README: PostgreSQL). */
#define STATEMENT_TIMEOUT_MS 60000

/* Notes that call i was dropped from n final windows of spec s. */
static int add_late(struct pipeline *pl, size_t i, int s, int n)
{
        if (CS_RESERVE(pl->late, pl->nlate, pl->late_cap) < 0)
                return -1;
        pl->late[pl->nlate].call = i;
        pl->late[pl->nlate].spec = s;
        pl->late[pl->nlate].windows_dropped = n;
        pl->nlate++;
        return 0;
}

/* Adds one call to the windows of every spec (sign 1), or takes it back
 * (sign -1, a replaced copy). A window is final for the call when the
 * watermark it was counted against had passed the window's end: under the
 * count policy it is counted there as late, under drop it is left out, and
 * when adding, call i is noted for late_records. *late says whether it was
 * late for any window. */
static int count_call(struct pipeline *pl, struct cs_str crime_type,
                      struct cs_str disp, int64_t ts, int has_mark,
                      struct cs_time mark, int drop, int sign, size_t i,
                      int *late)
{
        int s, j, n;

        /* No disposition and an empty one are one key: ''. */
        if (!disp.len)
                disp.ptr = NULL;
        *late = 0;
        for (s = 0; s < pl->conf->nspecs; s++) {
                const struct cs_window_spec *spec = &pl->conf->specs[s];
                int dropped = 0;

                n = cs_window_assign(spec, ts, pl->starts);
                for (j = 0; j < n; j++) {
                        int final = has_mark &&
                                    pl->starts[j] + spec->size <= mark.sec;

                        *late |= final;
                        if (final && drop) {
                                dropped++;
                                continue;
                        }
                        if (cs_window_agg_add(pl->agg, s, pl->starts[j],
                                              crime_type, disp, sign,
                                              sign * final) < 0)
                                return -1;
                }
                if (dropped && sign > 0 && add_late(pl, i, s, dropped) < 0)
                        return -1;
        }
        return 0;
}

/* Counts the batch's new and replacing calls into their windows, and takes
 * replaced copies out of theirs. */
static int count_windows(struct pipeline *pl)
{
        struct cs_batch *b = pl->batch;
        size_t i;
        int late;

        cs_window_agg_reset(pl->agg);
        pl->nlate = 0;
        pl->batch_late = 0;
        pl->batch_updated = 0;
        for (i = 0; i < b->ncalls; i++) {
                const struct cs_batch_call *c = &b->calls[i];
                const struct cs_old_call *old = &pl->old[i];
                struct cs_partition_offset *o =
                        cs_batch_partition(b, c->partition);

                if (!o)
                        return -1;
                if (pl->inserted[i] == CS_CALL_KEPT) {
                        o->duplicates++;
                        continue;
                }
                if (pl->inserted[i] == CS_CALL_REPLACED) {
                        o->duplicates++;
                        pl->batch_updated++;
                        if (count_call(pl, old->crime_type, old->disposition,
                                       old->ts, old->has_mark, old->mark,
                                       old->late_drop, -1, i, &late) < 0)
                                return -1;
                } else {
                        o->calls++;
                }
                if (count_call(pl, c->field[CS_F_ORIGINAL_CRIME_TYPE_NAME],
                               c->field[CS_F_DISPOSITION], c->ts, c->has_mark,
                               c->mark, pl->conf->late_drop, 1, i, &late) < 0)
                        return -1;
                pl->batch_late += late;
                o->late += late;
        }
        for (i = 0; i < b->noffsets; i++)
                b->offsets[i].high_watermark =
                        pl->src ? cs_kafka_source_high_watermark(
                                          pl->src, b->offsets[i].partition)
                                : -1;
        return 0;
}

/* Returns partition p's watermark slot, or NULL when out of memory. */
static struct cs_watermark *mark_of(struct pipeline *pl, int32_t p)
{
        if ((size_t)p >= pl->nmarks) {
                size_t n = (size_t)p + 16;
                struct cs_watermark *m = realloc(pl->marks, n * sizeof(*m));

                if (!m)
                        return NULL;
                memset(m + pl->nmarks, 0, (n - pl->nmarks) * sizeof(*m));
                pl->marks = m;
                pl->nmarks = n;
        }
        return &pl->marks[p];
}
/* Starts recovering from an outage: the open batch is dropped (the database
 * has none of it) and consuming pauses until the database is back. */
static void start_recovery(struct pipeline *pl, const char *why)
{
        cs_log(CS_LOG_WARN, "database unavailable: %s; pausing consumption",
               why);
        cs_batch_reset(pl->batch);
        pl->ngaps = 0; /* found again from the stored offsets */
        if (pl->src)
                cs_kafka_source_pause(pl->src);
        pl->recovering = 1;
        pl->attempts = 0;
        pl->retry_at = cs_now_ms() + BACKOFF_MIN_MS;
}

/* With --retention, when due, deletes a few thousand rows past the horizon
 * in a transaction of its own; due every few seconds, or at once after a
 * step that found some: old data goes steadily without holding the ingest
 * up. A failure only delays it. Returns how many rows went. */
static long retain(struct pipeline *pl)
{
        enum { LIMIT = 5000 };
        char errstr[512];
        long deleted;

        if (!pl->conf->retention || cs_now_ms() < pl->retain_at ||
            pl->recovering)
                return 0;
        if (pl->sink->ops->retain(pl->sink, pl->conf->retention, LIMIT,
                                  &deleted, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_WARN, "retention: %s", errstr);
                deleted = 0;
        } else if (deleted) {
                cs_log(CS_LOG_DEBUG, "retention: %ld rows deleted", deleted);
        }
        pl->retain_at = cs_now_ms() + (deleted ? 0 : 5000);
        return deleted;
}

/* Before exiting: the retention steps still due, until none is left. */
static void retain_all(struct pipeline *pl)
{
        while (retain(pl) > 0)
                ;
}

/* Writes the open batch in one transaction and starts a new one. Returns 0,
 * -1 on an error, or CS_SINK_RETRY after starting recovery. */
static int flush(struct pipeline *pl)
{
        const struct cs_sink_ops *ops = pl->sink->ops;
        struct cs_batch *b = pl->batch;
        const struct cs_window_count *rows;
        char errstr[512];
        size_t i, nrows, fresh = 0;
        int r;

        if ((!b->nmessages && !pl->ngaps) || pl->recovering)
                return 0;
        if (pl->gap_lost)
                return -1;
        if ((r = ops->begin(pl->sink, errstr, sizeof(errstr))) < 0 ||
            (r = ops->write_calls(pl->sink, b, pl->inserted, pl->old, errstr,
                                  sizeof(errstr))) < 0)
                goto fail;
        if ((r = count_windows(pl)) < 0) {
                snprintf(errstr, sizeof(errstr), "out of memory");
                goto fail;
        }
        rows = cs_window_agg_rows(pl->agg, &nrows);
        if ((r = ops->write_window_counts(pl->sink, rows, nrows,
                                          pl->conf->specs, errstr,
                                          sizeof(errstr))) < 0 ||
            (r = ops->write_late_records(pl->sink, b, pl->late, pl->nlate,
                                         pl->conf->specs, errstr,
                                         sizeof(errstr))) < 0 ||
            (r = ops->write_rejects(pl->sink, b, errstr, sizeof(errstr))) < 0 ||
            (r = ops->write_gaps(pl->sink, b->topic, pl->gaps, pl->ngaps,
                                 errstr, sizeof(errstr))) < 0 ||
            (r = ops->store_offsets(pl->sink, b, errstr, sizeof(errstr))) < 0 ||
            (pl->replay_path &&
             (r = cs_topics_store_replay(pl->sink, pl->conf->topic,
                                         pl->replay_path, pl->head, pl->nhead,
                                         0, errstr, sizeof(errstr))) < 0) ||
            (r = ops->commit(pl->sink, errstr, sizeof(errstr))) < 0)
                goto fail;

        for (i = 0; i < b->ncalls; i++)
                fresh += pl->inserted[i] == CS_CALL_NEW;
        pl->totals.messages += b->nmessages;
        pl->totals.calls += fresh;
        pl->totals.duplicates += b->nduplicates + (b->ncalls - fresh);
        pl->totals.rejected += b->nrejects;
        pl->totals.late += pl->batch_late;
        pl->totals.updated += pl->batch_updated;
        pl->totals.batches++;
        cs_log(CS_LOG_DEBUG,
               "batch: %zu messages, %zu new calls, %zu rejected, %zu window "
               "rows",
               b->nmessages, fresh, b->nrejects, nrows);
        if (pl->src)
                cs_kafka_source_commit(pl->src, b);
        cs_batch_reset(b);
        pl->ngaps = 0;
        retain(pl);
        return 0;
fail:
        ops->rollback(pl->sink);
        if (r == CS_SINK_RETRY) {
                start_recovery(pl, errstr);
                return r;
        }
        cs_log(CS_LOG_ERROR, "batch of %zu messages not written: %s",
               b->nmessages, errstr);
        return -1;
}

/* One step of recovery: when due, tries to reconnect and rewind every
 * partition to its stored offset. Returns 0 (recovered or not yet), or -1
 * when the database refuses for good. */
static int recover(struct pipeline *pl)
{
        char errstr[512];
        int64_t wait;
        int r;

        if (cs_now_ms() < pl->retry_at)
                return 0;
        pl->attempts++;
        r = pl->sink->ops->reconnect(pl->sink, errstr, sizeof(errstr));
        if (r == 0) {
                pl->recovering = 0;
                /* A file replay reloads its offset itself. */
                r = pl->src ? cs_kafka_source_rewind(pl->src) : 0;
                if (r == 0) {
                        cs_log(CS_LOG_INFO,
                               "database back after %d attempts; resuming "
                               "from the stored offsets",
                               pl->attempts);
                        return 0;
                }
                pl->recovering = 1;
                snprintf(errstr, sizeof(errstr), "reading stored offsets");
        }
        if (r == -1) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return -1;
        }
        /* Exponential backoff: one log line per attempt, not a flood. */
        wait = (int64_t)BACKOFF_MIN_MS << (pl->attempts < 9 ? pl->attempts : 9);
        if (wait > BACKOFF_MAX_MS)
                wait = BACKOFF_MAX_MS;
        pl->retry_at = cs_now_ms() + wait;
        cs_log(CS_LOG_WARN, "reconnect attempt %d failed: %s; next in %.1f s",
               pl->attempts, errstr, (double)wait / 1000.0);
        return 0;
}

/* Whether every window of a call at ts has bounds in years 0001-9999, which
 * both databases can hold. Only calls within a year of the ends need the
 * full check. */
static int windows_fit(struct pipeline *pl, int64_t ts, char *reason,
                       size_t reason_size)
{
        const int64_t margin = CS_WINDOW_MAX_SECONDS + 86400;
        int s, n;

        if (ts >= CS_TS_MIN + margin && ts < CS_TS_END - margin)
                return 1;
        for (s = 0; s < pl->conf->nspecs; s++) {
                const struct cs_window_spec *spec = &pl->conf->specs[s];

                n = cs_window_assign(spec, ts, pl->starts);
                if (pl->starts[0] < CS_TS_MIN ||
                    pl->starts[n - 1] + spec->size >= CS_TS_END) {
                        snprintf(reason, reason_size,
                                 "call_date_time out of range: a %s window "
                                 "would reach outside years 0001-9999",
                                 spec->name);
                        return 0;
                }
        }
        return 1;
}

/* Returns 1 unless --max-future is set and the event time is further past
 * the wall clock than it allows. The wall clock, not the watermark: a
 * partition's first call may be the bad one, and real time never jumps. */
static int not_too_far(const struct pipeline *pl, int64_t ts, char *reason,
                       size_t reason_size)
{
        if (pl->conf->max_future < 0 || ts <= (int64_t)time(NULL) +
                                                        CS_MAX_LOCAL_OFFSET +
                                                        pl->conf->max_future)
                return 1;
        snprintf(reason, reason_size, "event time too far in the future");
        return 0;
}

/* A file message too long to keep: rejected, with its size. */
static int reject_too_long(struct pipeline *pl, const struct cs_file_msg *m)
{
        char reason[CS_PARSE_REASON_MAX];
        struct cs_watermark *w = mark_of(pl, 0);

        snprintf(reason, sizeof(reason), "message longer than %d bytes",
                 CS_FILE_MSG_MAX);
        if (!w ||
            cs_batch_add_reject(pl->batch, 0, m->number, reason, NULL, m->len) <
                    0 ||
            cs_batch_advance(pl->batch, 0, m->number + 1, w) < 0)
                return -1;
        return 0;
}

/* Parses one message into the batch: a call, or a rejected record. */
static int consume(struct pipeline *pl, const void *payload, size_t len,
                   int32_t partition, int64_t offset)
{
        struct cs_watermark *w = mark_of(pl, partition);
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX];
        int r = -1;

        if (!w)
                goto fail;
        if (cs_parse_call(pl->parser, payload, len, &call, reason,
                          sizeof(reason)) == 0 &&
            windows_fit(pl, call.ts, reason, sizeof(reason)) &&
            not_too_far(pl, call.ts, reason, sizeof(reason))) {
                struct cs_time t = {call.ts, call.ts_usec};

                r = cs_batch_add_call(pl->batch, &call, partition, offset, w);
                /* Every valid call moves its partition's watermark,
                 * duplicates too: the order of a partition is fixed, so
                 * lateness is the same on every replay. */
                cs_watermark_advance(w, t);
        } else {
                r = cs_batch_add_reject(pl->batch, partition, offset, reason,
                                        payload, len);
        }
        if (r == 0)
                r = cs_batch_advance(pl->batch, partition, offset + 1, w);
fail:
        if (r < 0)
                cs_log(CS_LOG_ERROR, "out of memory at %s [%d] offset %lld",
                       pl->conf->topic, (int)partition, (long long)offset);
        return r;
}

static int on_assign(void *opaque, struct cs_partition_offset *offs, size_t n)
{
        struct pipeline *pl = opaque;
        char errstr[512];
        size_t i;
        int r;

        if (pl->recovering)
                return CS_SINK_RETRY;
        r = pl->sink->ops->load_offsets(pl->sink, pl->conf->topic, offs, n,
                                        errstr, sizeof(errstr));
        if (r == CS_SINK_RETRY) {
                /* The source pauses these partitions itself. */
                start_recovery(pl, errstr);
                return r;
        }
        if (r < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return r;
        }
        /* Each partition goes on from its committed watermark, with this
         * run's lateness; the watermark never moves back. */
        for (i = 0; i < n; i++) {
                struct cs_watermark *w = mark_of(pl, offs[i].partition);

                if (!w)
                        return -1;
                *w = offs[i].watermark;
                w->lateness = pl->conf->allowed_lateness;
                if (w->valid) {
                        struct cs_time mark = {w->max_event.sec - w->lateness,
                                               w->max_event.usec};

                        if (!cs_time_ge(w->mark, mark))
                                w->mark = mark;
                }
        }
        return 0;
}

/* Notes a retention gap for the open batch, and moves the batch past it:
 * the gap row and the offset after it are committed together. */
static int on_gap(void *opaque, int32_t partition, int64_t first, int64_t last)
{
        struct pipeline *pl = opaque;
        struct cs_watermark *w = mark_of(pl, partition);

        if (pl->recovering)
                return 0;
        if (!w || CS_RESERVE(pl->gaps, pl->ngaps, pl->gaps_cap) < 0 ||
            cs_batch_advance(pl->batch, partition, last + 1, w) < 0) {
                cs_log(CS_LOG_ERROR, "out of memory noting a gap in %s [%d]",
                       pl->conf->topic, (int)partition);
                pl->gap_lost = 1;
                return -1;
        }
        pl->gaps[pl->ngaps].partition = partition;
        pl->gaps[pl->ngaps].first = first;
        pl->gaps[pl->ngaps].last = last;
        pl->ngaps++;
        return 0;
}

/* While idle: the partitions' ends just read from Kafka, so that lag in
 * pipeline_progress is current without a batch. A failure only delays it. */
static void store_highs(struct pipeline *pl,
                        const struct cs_partition_offset *highs, size_t n)
{
        const struct cs_sink_ops *ops = pl->sink->ops;
        char errstr[512];

        if (ops->begin(pl->sink, errstr, sizeof(errstr)) < 0)
                goto fail;
        if (ops->store_high_watermarks(pl->sink, pl->conf->topic, highs, n,
                                       errstr, sizeof(errstr)) < 0 ||
            ops->commit(pl->sink, errstr, sizeof(errstr)) < 0) {
                ops->rollback(pl->sink);
                goto fail;
        }
        return;
fail:
        cs_log(CS_LOG_DEBUG, "high watermarks not stored: %s", errstr);
}

/* Commits what was consumed before partitions go to another process. When
 * the database is down, the batch is dropped instead: the next owner starts
 * from the stored offset. */
static int on_revoke(void *opaque)
{
        return flush(opaque) == -1 ? -1 : 0;
}

/* Notes in its own transaction that the replay has read its input to the
 * end: it adds nothing more, so it stops holding finality back (see the
 * view final_watermark). */
static int replay_done(struct pipeline *pl)
{
        const struct cs_sink_ops *ops = pl->sink->ops;
        char errstr[512];
        int r;

        if ((r = ops->begin(pl->sink, errstr, sizeof(errstr))) < 0 ||
            (r = cs_topics_store_replay(pl->sink, pl->conf->topic,
                                        pl->replay_path, pl->head, pl->nhead, 1,
                                        errstr, sizeof(errstr))) < 0 ||
            (r = ops->commit(pl->sink, errstr, sizeof(errstr))) < 0) {
                ops->rollback(pl->sink);
                if (r == CS_SINK_RETRY) {
                        start_recovery(pl, errstr);
                        return r;
                }
                cs_log(CS_LOG_ERROR, "%s", errstr);
        }
        return r;
}

/* Replays the file once, from the stored offset of its partition 0.
 * Returns 0 at its end, CS_SINK_RETRY after an outage, or -1. */
static int replay(struct pipeline *pl, struct cs_file_source *src,
                  volatile sig_atomic_t *stop)
{
        const struct cs_pipeline_conf *conf = pl->conf;
        struct cs_partition_offset off = {0};
        struct cs_file_msg m;
        char errstr[512];
        int r;

        if ((r = on_assign(pl, &off, 1)) < 0)
                return r;
        if (cs_file_source_restart(src, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return -1;
        }
        while (!*stop) {
                r = cs_file_source_next(src, off.next_offset, &m, errstr,
                                        sizeof(errstr));
                if (r < 0) {
                        /* What came before the error is committed. */
                        cs_log(CS_LOG_ERROR, "%s", errstr);
                        r = flush(pl);
                        return r == CS_SINK_RETRY ? r : -1;
                }
                if (r == 0)
                        break;
                if (m.payload)
                        r = consume(pl, m.payload, m.len, 0, m.number);
                else
                        r = reject_too_long(pl, &m);
                if (r < 0)
                        return -1;
                if (pl->batch->nmessages >= conf->batch_max_records &&
                    (r = flush(pl)) < 0)
                        return r;
        }
        if ((r = flush(pl)) == 0 && !*stop)
                r = replay_done(pl);
        if (r == 0)
                retain_all(pl);
        return r;
}

/* The file path of cs_pipeline_run(): replays, and after an outage waits
 * for the database and replays again from what it committed. */
static int run_file(struct pipeline *pl, struct cs_file_source *src,
                    volatile sig_atomic_t *stop)
{
        char errstr[512], *real = NULL;
        int r;

        /* Resume only over the input the stored position was read from. */
        cs_file_source_head(src, &pl->head, &pl->nhead);
        if (strcmp(pl->conf->file, "-"))
                real = realpath(pl->conf->file, NULL);
        pl->replay_path = real ? real : pl->conf->file;
        if ((r = cs_topics_check_replay(pl->sink, pl->conf->topic, pl->head,
                                        pl->nhead, errstr, sizeof(errstr))) <
                    0 ||
            (r = cs_topics_track_specs(pl->sink, pl->conf->specs,
                                       pl->conf->nspecs, errstr,
                                       sizeof(errstr))) < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                goto done;
        }
        while ((r = replay(pl, src, stop)) == CS_SINK_RETRY) {
                if (!strcmp(pl->conf->file, "-")) {
                        cs_log(CS_LOG_ERROR, "standard input cannot be "
                                             "read again after an outage");
                        break;
                }
                while (!*stop && pl->recovering) {
                        struct timespec ts = {0, 100 * 1000 * 1000};

                        nanosleep(&ts, NULL);
                        if (recover(pl) < 0)
                                break;
                }
                if (*stop || pl->recovering)
                        break;
        }
done:
        pl->replay_path = NULL;
        free(real);
        return r;
}

/* Sleeps ms in short steps, returning early (1) once *stop is set. */
static int nap(int64_t ms, volatile sig_atomic_t *stop)
{
        int64_t until = cs_now_ms() + ms;

        while (!*stop && cs_now_ms() < until) {
                struct timespec ts = {0, 50 * 1000 * 1000};

                nanosleep(&ts, NULL);
        }
        return *stop != 0;
}

int cs_pipeline_open_sink(const struct cs_pipeline_conf *conf,
                          volatile sig_atomic_t *stop, struct cs_sink **out)
{
        int64_t started = cs_now_ms(), wait;
        char errstr[512];
        int attempts = 0, r;

        for (;;) {
                r = cs_sink_open(conf->db, conf->schema, out, errstr,
                                 sizeof(errstr));
                if (r == 0) {
                        (*out)->stop = stop;
                        r = cs_sink_set_durability(*out, conf->durability,
                                                   errstr, sizeof(errstr));
                }
                if (r == 0) {
                        /* One ingest per SQLite file: a second is refused
                         * before it migrates or writes anything. */
                        if ((*out)->ops->claim)
                                r = (*out)->ops->claim(*out, errstr,
                                                       sizeof(errstr));
                }
                if (r == 0)
                        r = (*out)->ops->migrate(*out, errstr, sizeof(errstr));
                if (r < 0 && *out) {
                        cs_sink_close(*out);
                        *out = NULL;
                }
                if (r != CS_SINK_RETRY)
                        break;
                if (*stop)
                        return 1;
                /* A service may start before its database: wait for it as
                 * for an outage mid-stream, with the same backoff. */
                attempts++;
                wait = (int64_t)BACKOFF_MIN_MS << (attempts < 9 ? attempts : 9);
                if (wait > BACKOFF_MAX_MS)
                        wait = BACKOFF_MAX_MS;
                if (conf->startup_timeout_ms &&
                    cs_now_ms() + wait - started > conf->startup_timeout_ms) {
                        cs_log(CS_LOG_ERROR,
                               "%s; gave up after %.1f s (--startup-timeout)",
                               errstr,
                               (double)(cs_now_ms() - started) / 1000.0);
                        return -1;
                }
                cs_log(CS_LOG_WARN,
                       "database not available at start (attempt %d): %s; "
                       "next attempt in %.1f s",
                       attempts, errstr, (double)wait / 1000.0);
                if (nap(wait, stop))
                        return 1;
        }
        if (r < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return -1;
        }
        if (attempts)
                cs_log(CS_LOG_INFO, "database available after %d attempts",
                       attempts + 1);
        /* Migrations may take long; a batch's statements should not: a
         * server silent past this is an outage. */
        (*out)->timeout_ms = STATEMENT_TIMEOUT_MS;
        return 0;
}

int cs_pipeline_run(const struct cs_pipeline_conf *conf,
                    volatile sig_atomic_t *stop)
{
        struct pipeline pl = {.conf = conf};
        struct cs_kafka_source_conf kconf = {
                .brokers = conf->brokers,
                .topic = conf->topic,
                .group = conf->group,
                .from_beginning = conf->from_beginning,
                .exit_at_end = conf->exit_at_end,
                .props = conf->props,
                .nprops = conf->nprops,
                .on_assign = on_assign,
                .on_revoke = on_revoke,
                .on_gap = on_gap,
                .stop = stop,
                .startup_timeout_ms = conf->startup_timeout_ms,
                .broker_timeout_ms = conf->broker_timeout_ms,
                .batch_max_records = conf->batch_max_records,
                .opaque = &pl,
        };
        struct cs_file_source *file = NULL;
        char errstr[512];
        int64_t started = cs_now_ms();
        int failed = 0, r = -1;

        /* A file that cannot be read creates no database. */
        if (conf->file &&
            !(file = cs_file_source_open(conf->file, errstr, sizeof(errstr)))) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return -1;
        }
        if ((r = cs_pipeline_open_sink(conf, stop, &pl.sink)) != 0) {
                /* Stopped while waiting for the database: nothing to do. */
                r = r > 0 ? 0 : -1;
                goto freed;
        }
        r = -1;
        pl.parser = cs_parser_new();
        pl.batch = cs_batch_new(conf->topic, conf->batch_max_records);
        pl.agg = cs_window_agg_new();
        pl.inserted = malloc(conf->batch_max_records + 1);
        pl.old = calloc(conf->batch_max_records + 1, sizeof(*pl.old));
        if (!pl.parser || !pl.batch || !pl.agg || !pl.inserted || !pl.old) {
                cs_log(CS_LOG_ERROR, "out of memory");
                goto done;
        }
        pl.batch->late_policy = conf->late_drop ? "drop" : "count";
        pl.batch->update = conf->update;
        if (conf->file) {
                r = run_file(&pl, file, stop);
                if (r == CS_REFUSED)
                        goto done; /* the one line said it all */
                r = r == 0 ? 0 : -1;
                goto report;
        }
        if ((r = cs_topics_check_kafka(pl.sink, conf->topic, errstr,
                                       sizeof(errstr))) < 0 ||
            (r = cs_topics_track_specs(pl.sink, conf->specs, conf->nspecs,
                                       errstr, sizeof(errstr))) < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                if (r != CS_REFUSED)
                        r = -1;
                goto done;
        }
        r = cs_kafka_source_new(&kconf, &pl.src, errstr, sizeof(errstr));
        if (r != 0) {
                /* Stopped while waiting for the brokers: nothing to do. */
                if (r < 0)
                        cs_log(CS_LOG_ERROR, "%s", errstr);
                r = r > 0 ? 0 : -1;
                goto done;
        }
        r = -1;

        while (!failed) {
                const struct cs_batch *b = pl.batch;
                const struct cs_partition_offset *highs;
                int timeout = 100, due, idle;
                rd_kafka_message_t *m;
                size_t nhighs;

                if (*stop) {
                        /* A final batch lost to an outage stays unwritten:
                         * nothing is lost, the next run reads it again. */
                        r = flush(&pl) == -1 ? -1 : 0;
                        break;
                }
                if (pl.recovering && recover(&pl) < 0)
                        break;
                if (b->nmessages) {
                        int64_t left =
                                b->opened_ms + conf->batch_max_ms - cs_now_ms();

                        timeout = left < 0 ? 0 : left < 100 ? (int)left : 100;
                }
                m = cs_kafka_source_poll(pl.src, timeout, &failed);
                idle = !m && !b->nmessages;
                if (m) {
                        /* While recovering, fetched messages are dropped:
                         * the rewind reads them again. */
                        if (!pl.recovering &&
                            consume(&pl, m->payload, m->len, m->partition,
                                    m->offset) < 0)
                                failed = 1;
                        rd_kafka_message_destroy(m);
                }
                if (cs_kafka_source_tick(pl.src, idle && !pl.recovering, &highs,
                                         &nhighs, &failed) &&
                    !pl.recovering)
                        store_highs(&pl, highs, nhighs);
                if (failed || pl.recovering)
                        continue;
                /* A quiet stream still has old data to let go. */
                if (idle)
                        retain(&pl);
                /* A gap at a partition's end moves its offset alone. */
                due = pl.ngaps > 0 || b->nmessages >= conf->batch_max_records ||
                      (b->nmessages &&
                       cs_now_ms() - b->opened_ms >= conf->batch_max_ms);
                if (conf->exit_at_end && cs_kafka_source_at_end(pl.src)) {
                        int f = flush(&pl);

                        if (f == 0 && !pl.recovering) {
                                retain_all(&pl);
                                r = 0;
                                break;
                        }
                        failed = f == -1;
                } else if (due && flush(&pl) == -1) {
                        failed = 1;
                }
        }
done:
        /* Leaving the group revokes the partitions: on_revoke commits any
         * batch still open, or rolls it back whole on error. */
        if (!pl.src)
                goto freed; /* it never started: the error says it all */
        cs_kafka_source_destroy(pl.src);
        if (pl.batch && pl.batch->nmessages)
                r = -1;
report:
        cs_log(CS_LOG_INFO,
               "%s: %llu messages from %s: %llu new calls, %llu duplicates, "
               "%llu rejected, %llu late, %llu updated, in %llu batches, "
               "%.1f s",
               pl.sink ? pl.sink->name : "database",
               (unsigned long long)pl.totals.messages, conf->topic,
               (unsigned long long)pl.totals.calls,
               (unsigned long long)pl.totals.duplicates,
               (unsigned long long)pl.totals.rejected,
               (unsigned long long)pl.totals.late,
               (unsigned long long)pl.totals.updated,
               (unsigned long long)pl.totals.batches,
               (double)(cs_now_ms() - started) / 1000.0);
freed:
        free(pl.inserted);
        free(pl.old);
        free(pl.late);
        free(pl.marks);
        free(pl.gaps);
        cs_window_agg_destroy(pl.agg);
        cs_batch_destroy(pl.batch);
        cs_parser_destroy(pl.parser);
        cs_sink_close(pl.sink);
        cs_file_source_close(file);
        return r;
}
