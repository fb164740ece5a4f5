/* pipeline.c: the ingest (cs_pipeline.h): one source (cs_source.h) ->
 * parse -> dedup -> window -> sink, one database transaction per batch.
 *
 * Two threads, as librdkafka's mock cluster serves its op queue:
 * - the consumer thread owns the source, the parser, the partitions'
 *   watermarks and the batch being filled: it reads, parses, validates and
 *   fills batch N+1 while
 * - the writer thread (the caller's) owns the database connection, window
 *   aggregation, late records, per-call outcomes, retention and recovery:
 *   it commits batch N.
 * They share only struct chan, under one mutex: two batches in all, so at
 * most one is handed over while the other fills (memory stays bounded). A
 * batch goes over as soon as the writer is free and it holds anything, so
 * at low rates a call is one commit from visible and at high rates batches
 * grow, up to --batch-max-records, where the consumer waits.
 * What the consumer needs of the database are requests the writer serves
 * in turn: the stored offsets of partitions assigned to it (librdkafka's
 * rebalance callback runs on the consumer thread), and at the end of the
 * input the replay's end mark. Before partitions are revoked the consumer
 * hands over its batch and waits until the writer has committed it. When
 * the database goes away the writer bumps the epoch: the consumer drops
 * its batch and pauses, the writer drops any batch of an older epoch, and
 * once the database is back the consumer rewinds to the stored offsets. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_avro.h"
#include "cs_count.h"
#include "cs_file.h"
#include "cs_pipeline.h"
#include "cs_progress.h"
#include "cs_sink.h"
#include "cs_source.h"
#include "cs_stats.h"
#include "cs_topics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
/* The longest a statement of the ingest may take (README: PostgreSQL). */
#define STATEMENT_TIMEOUT_MS 60000

struct totals {
        uint64_t messages;
        uint64_t calls;      /* new calls stored */
        uint64_t duplicates; /* valid copies of a stored call */
        uint64_t rejected;
        uint64_t late;    /* calls counted in, or dropped from, final windows */
        uint64_t updated; /* stored calls replaced by a changed copy */
        uint64_t batches;
};

/* A batch in flight: the messages consumed, the offsets lost to Kafka's
 * retention it moves past, and the epoch it was filled in. */
struct slot {
        struct cs_batch *batch;
        struct cs_offset_gap *gaps;
        size_t ngaps, gaps_cap;
        int gap_lost; /* a gap could not be noted: never write it */
        unsigned epoch;
        /* For the stats and progress reports (cs_stats.h): the consumer's
         * time polling and parsing the batch's messages, the wall clock at
         * its first, each partition's first offset in it, and Kafka's
         * timestamps of its messages. */
        int64_t poll_ns, parse_ns;
        int64_t opened_wall_ms;
        struct cs_stats_start *starts;
        size_t nstarts, starts_cap;
        int64_t *stamps;
        size_t nstamps, stamps_cap;
};

enum request {
        REQ_NONE,
        REQ_ASSIGN, /* load the stored offsets of offs[0..noffs) */
        REQ_END,    /* the input is consumed and committed: finish it */
};

/* What the two threads share, under mu; cv is broadcast on every change. */
struct chan {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct slot *full;  /* handed to the writer, not taken yet */
        struct slot *spare; /* back from the writer, which is free */
        unsigned epoch;     /* bumped by the writer when it lost the db */
        int rewind;         /* the database is back: rewind the source */
        int writer_failed;
        int consumer_done, consumer_status;
        struct cs_source *src; /* for commit only, while it exists */
        int started;           /* the source was made */
        /* One request of the consumer at a time; it waits for served. */
        enum request req;
        int served, result;
        struct cs_partition_offset *offs; /* the consumer's */
        size_t noffs;
        /* Partitions' ends read while idle, for the writer to store. */
        struct cs_partition_offset *highs;
        size_t nhighs, highs_cap;
};

/* The consumer thread's. */
struct consumer {
        struct cs_source *src;
        struct cs_parser *parser;
        struct slot *fill;
        unsigned epoch;   /* the epoch fill belongs to */
        int paused;       /* the database is away: messages are dropped */
        int rewind_again; /* the last rewind did not finish in time */
        /* Each assigned partition's watermark, by partition number. */
        struct cs_watermark *marks;
        size_t nmarks;
        int64_t starts[CS_WINDOW_MAX_PER_EVENT];
        int64_t broker_down_since; /* as last told to the stats */
};

/* The writer thread's. */
struct writer {
        struct cs_sink *sink;
        struct cs_window_agg *agg;
        unsigned char *inserted;     /* per call of the batch: CS_CALL_... */
        struct cs_old_call *old;     /* per call: what it replaced */
        struct cs_late_record *late; /* calls dropped from final windows */
        size_t nlate, late_cap;
        size_t batch_late;    /* calls of the batch late for some window */
        size_t batch_updated; /* calls that replaced a changed copy */
        int64_t starts[CS_WINDOW_MAX_PER_EVENT];
        int64_t retain_at; /* when the next retention step is due */
        unsigned epoch;    /* batches of another epoch are dropped */
        int failed;
        /* Recovering from a database outage: the next reconnect attempt
         * is due at retry_at. */
        int recovering;
        int attempts;
        int64_t retry_at;
        struct cs_partition_offset *highs;
        size_t highs_cap;
        struct totals totals;
};

struct pipeline {
        const struct cs_pipeline_conf *conf;
        volatile sig_atomic_t *stop;
        struct cs_file_source *file;
        /* A file replay: its real path ("-": stdin) and first bytes,
         * stored with each batch so that it resumes only over the same
         * input. */
        const char *replay_path;
        const char *head;
        size_t nhead;
        struct slot slots[2];
        struct chan ch;
        struct consumer c;
        struct writer w;
};

static void lock(struct chan *ch)
{
        pthread_mutex_lock(&ch->mu);
}

static void unlock(struct chan *ch)
{
        pthread_mutex_unlock(&ch->mu);
}

/* Tells the other thread something changed, and unlocks. */
static void signal_unlock(struct chan *ch)
{
        pthread_cond_broadcast(&ch->cv);
        pthread_mutex_unlock(&ch->mu);
}

/* Waits (locked) for a change, at most ms. */
static void wait_ms(struct chan *ch, int64_t ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ch->cv, &ch->mu, &ts);
}

static int slot_has_data(const struct slot *s)
{
        return s->batch->nmessages || s->ngaps;
}

static void slot_reset(struct slot *s)
{
        cs_batch_reset(s->batch);
        s->ngaps = 0;
        s->gap_lost = 0;
        s->poll_ns = s->parse_ns = 0;
        s->opened_wall_ms = 0;
        s->nstarts = 0;
        s->nstamps = 0;
}

static int64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the writer thread ---------------------------------------------- */

/* Notes that call i was dropped from n final windows of spec s. */
static int add_late(struct writer *w, size_t i, int s, int n)
{
        if (CS_RESERVE(w->late, w->nlate, w->late_cap) < 0)
                return -1;
        w->late[w->nlate].call = i;
        w->late[w->nlate].spec = s;
        w->late[w->nlate].windows_dropped = n;
        w->nlate++;
        return 0;
}

/* Adds one call to the windows of every spec (sign 1), or takes it back
 * (sign -1, a replaced copy), by cs_count_call()'s rule; when adding, a
 * call left out of final windows is noted (call i) for late_records. *late
 * says whether it was late for any window. */
static int count_call(struct pipeline *pl, const struct cs_count_call *cc,
                      int sign, size_t i, int *late)
{
        struct writer *w = &pl->w;
        struct cs_count_result res;
        int s;

        *late = 0;
        for (s = 0; s < pl->conf->nspecs; s++) {
                if (cs_count_call(w->agg, s, &pl->conf->specs[s], cc, sign,
                                  INT64_MIN, INT64_MAX, w->starts, &res) < 0)
                        return -1;
                *late |= res.late;
                if (res.dropped && sign > 0 &&
                    add_late(w, i, s, res.dropped) < 0)
                        return -1;
        }
        return 0;
}

/* Counts the batch's new and replacing calls into their windows, and takes
 * replaced copies out of theirs. */
static int count_windows(struct pipeline *pl, struct cs_batch *b)
{
        struct writer *w = &pl->w;
        size_t i;
        int late;

        cs_window_agg_reset(w->agg);
        w->nlate = 0;
        w->batch_late = 0;
        w->batch_updated = 0;
        for (i = 0; i < b->ncalls; i++) {
                const struct cs_batch_call *c = &b->calls[i];
                const struct cs_old_call *old = &w->old[i];
                struct cs_partition_offset *o =
                        cs_batch_partition(b, c->partition);
                struct cs_count_call cc;

                if (!o)
                        return -1;
                if (w->inserted[i] == CS_CALL_KEPT) {
                        o->duplicates++;
                        continue;
                }
                if (w->inserted[i] == CS_CALL_REPLACED) {
                        o->duplicates++;
                        w->batch_updated++;
                        cc = (struct cs_count_call){
                                .crime_type = old->crime_type,
                                .disposition = old->disposition,
                                .ts = old->ts,
                                .has_mark = old->has_mark,
                                .mark = old->mark,
                                .drop = old->late_drop,
                        };
                        if (count_call(pl, &cc, -1, i, &late) < 0)
                                return -1;
                } else {
                        o->calls++;
                }
                cc = (struct cs_count_call){
                        .crime_type = c->field[CS_F_ORIGINAL_CRIME_TYPE_NAME],
                        .disposition = c->field[CS_F_DISPOSITION],
                        .ts = c->ts,
                        .has_mark = c->has_mark,
                        .mark = c->mark,
                        .drop = pl->conf->late_drop,
                };
                if (count_call(pl, &cc, 1, i, &late) < 0)
                        return -1;
                w->batch_late += late;
                o->late += late;
        }
        return 0;
}

/* Starts recovering from an outage: every batch consumed since the last
 * commit is dropped (the database has none of it) by a new epoch, and the
 * consumer pauses until the database is back. */
static void start_recovery(struct pipeline *pl, const char *why)
{
        struct writer *w = &pl->w;

        cs_log(CS_LOG_WARN, "database unavailable: %s; pausing consumption",
               why);
        w->recovering = 1;
        w->attempts = 0;
        w->retry_at = cs_now_ms() + BACKOFF_MIN_MS;
        cs_stats_db_down(pl->conf->stats, cs_now_ms());
        lock(&pl->ch);
        w->epoch = ++pl->ch.epoch;
        pl->ch.rewind = 0;
        signal_unlock(&pl->ch);
}

/* With --retention, when due, deletes a few thousand rows past the horizon
 * in a transaction of its own; due every few seconds, or at once after a
 * step that found some: old data goes steadily without holding the ingest
 * up. A failure only delays it. Returns how many rows went. */
static long retain(struct pipeline *pl)
{
        enum { LIMIT = 5000 };
        struct writer *w = &pl->w;
        char errstr[512];
        long deleted;

        if (!pl->conf->retention || cs_now_ms() < w->retain_at ||
            w->recovering || w->failed)
                return 0;
        if (w->sink->ops->retain(w->sink, pl->conf->retention, LIMIT, &deleted,
                                 errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_WARN, "retention: %s", errstr);
                deleted = 0;
        } else if (deleted) {
                cs_log(CS_LOG_DEBUG, "retention: %ld rows deleted", deleted);
        }
        w->retain_at = cs_now_ms() + (deleted ? 0 : 5000);
        return deleted;
}

/* Before exiting: every retention step, due or not (the batches before
 * may have been small and early), until none finds anything. */
static void retain_all(struct pipeline *pl)
{
        pl->w.retain_at = 0;
        while (retain(pl) > 0)
                ;
}

/* Tells the stats and the progress reporter what the committed batch
 * did; t0, t1, t2: mono_ns() at begin, before and after the commit. */
static void report_batch(struct pipeline *pl, const struct slot *job,
                         size_t fresh, int64_t t0, int64_t t1, int64_t t2)
{
        const struct cs_batch *b = job->batch;
        const struct writer *w = &pl->w;
        struct cs_stats_batch sb = {
                .batch = b,
                .calls = fresh,
                .duplicates = b->nduplicates + (b->ncalls - fresh),
                .late = w->batch_late,
                .updated = w->batch_updated,
                .poll_s = (double)job->poll_ns / 1e9,
                .parse_s = (double)job->parse_ns / 1e9,
                .write_s = (double)(t1 - t0) / 1e9,
                .commit_s = (double)(t2 - t1) / 1e9,
                .opened_wall_ms = job->opened_wall_ms,
                .committed_wall_ms = wall_ms(),
                .starts = job->starts,
                .nstarts = job->nstarts,
                .timestamps = job->stamps,
                .ntimestamps = job->nstamps,
        };
        size_t i;

        for (i = 0; i < b->ncalls; i++) {
                int64_t ts = b->calls[i].ts;

                if (!sb.has_event || ts < sb.event_min)
                        sb.event_min = ts;
                if (!sb.has_event || ts > sb.event_max)
                        sb.event_max = ts;
                sb.has_event = 1;
        }
        if (!sb.opened_wall_ms)
                sb.opened_wall_ms = sb.committed_wall_ms;
        sb.total_s = (double)(sb.committed_wall_ms - sb.opened_wall_ms) / 1e3;
        cs_stats_add_batch(pl->conf->stats, &sb);
        cs_progress_batch(pl->conf->progress, &sb);
}

/* Writes one batch in one transaction. Returns 0, -1 on an error, or
 * CS_RETRY after starting recovery. */
static int flush(struct pipeline *pl, struct slot *job, struct cs_source *src)
{
        struct writer *w = &pl->w;
        const struct cs_sink_ops *ops = w->sink->ops;
        struct cs_sink *sink = w->sink;
        struct cs_batch *b = job->batch;
        const struct cs_window_count *rows;
        char errstr[512];
        size_t i, nrows, fresh = 0;
        int64_t t0, t1, t2;
        int r;

        if (!slot_has_data(job) || w->recovering)
                return 0;
        if (job->gap_lost)
                return -1;
        t0 = mono_ns();
        if ((r = ops->begin(sink, errstr, sizeof(errstr))) < 0 ||
            (r = ops->write_calls(sink, b, w->inserted, w->old, errstr,
                                  sizeof(errstr))) < 0)
                goto fail;
        if ((r = count_windows(pl, b)) < 0) {
                snprintf(errstr, sizeof(errstr), "out of memory");
                goto fail;
        }
        rows = cs_window_agg_rows(w->agg, &nrows);
        if ((r = ops->write_window_counts(sink, rows, nrows, pl->conf->specs,
                                          errstr, sizeof(errstr))) < 0 ||
            (r = ops->write_late_records(sink, b, w->late, w->nlate,
                                         pl->conf->specs, errstr,
                                         sizeof(errstr))) < 0 ||
            (r = ops->write_rejects(sink, b, errstr, sizeof(errstr))) < 0 ||
            (r = ops->write_gaps(sink, b->topic, job->gaps, job->ngaps, errstr,
                                 sizeof(errstr))) < 0 ||
            (r = ops->store_offsets(sink, b, errstr, sizeof(errstr))) < 0 ||
            (pl->replay_path &&
             (r = cs_topics_store_replay(sink, pl->conf->topic, pl->replay_path,
                                         pl->head, pl->nhead, 0, errstr,
                                         sizeof(errstr))) < 0))
                goto fail;
        t1 = mono_ns();
        if ((r = ops->commit(sink, errstr, sizeof(errstr))) < 0)
                goto fail;
        t2 = mono_ns();

        for (i = 0; i < b->ncalls; i++)
                fresh += w->inserted[i] == CS_CALL_NEW;
        w->totals.messages += b->nmessages;
        w->totals.calls += fresh;
        w->totals.duplicates += b->nduplicates + (b->ncalls - fresh);
        w->totals.rejected += b->nrejects;
        w->totals.late += w->batch_late;
        w->totals.updated += w->batch_updated;
        w->totals.batches++;
        cs_log(CS_LOG_DEBUG,
               "batch: %zu messages, %zu new calls, %zu rejected, %zu window "
               "rows",
               b->nmessages, fresh, b->nrejects, nrows);
        if (pl->conf->stats || pl->conf->progress)
                report_batch(pl, job, fresh, t0, t1, t2);
        if (src)
                cs_source_commit(src, b);
        retain(pl);
        return 0;
fail:
        ops->rollback(sink);
        if (r == CS_RETRY) {
                start_recovery(pl, errstr);
                return r;
        }
        cs_log(CS_LOG_ERROR, "batch of %zu messages not written: %s",
               b->nmessages, errstr);
        return -1;
}

/* One step of recovery: when due, tries to reconnect; once connected the
 * consumer rewinds every partition to its stored offset (through
 * REQ_ASSIGN). Returns 0 (recovered or not yet), or -1 when the database
 * refuses for good. */
static int recover(struct pipeline *pl)
{
        struct writer *w = &pl->w;
        char errstr[512];
        int64_t wait;
        int r;

        if (cs_now_ms() < w->retry_at)
                return 0;
        w->attempts++;
        r = w->sink->ops->reconnect(w->sink, errstr, sizeof(errstr));
        if (r == 0) {
                w->recovering = 0;
                cs_stats_db_up(pl->conf->stats, 1);
                cs_log(CS_LOG_INFO,
                       "database back after %d attempts; resuming from the "
                       "stored offsets",
                       w->attempts);
                lock(&pl->ch);
                pl->ch.rewind = 1;
                signal_unlock(&pl->ch);
                return 0;
        }
        if (r == CS_ERR) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return -1;
        }
        /* Exponential backoff: one log line per attempt, not a flood. */
        wait = (int64_t)BACKOFF_MIN_MS << (w->attempts < 9 ? w->attempts : 9);
        if (wait > BACKOFF_MAX_MS)
                wait = BACKOFF_MAX_MS;
        w->retry_at = cs_now_ms() + wait;
        cs_log(CS_LOG_WARN, "reconnect attempt %d failed: %s; next in %.1f s",
               w->attempts, errstr, (double)wait / 1000.0);
        return 0;
}

/* While idle: the partitions' ends just read from Kafka, so that lag in
 * pipeline_progress is current without a batch. A failure only delays it. */
static void store_highs(struct pipeline *pl,
                        const struct cs_partition_offset *highs, size_t n)
{
        struct cs_sink *sink = pl->w.sink;
        const struct cs_sink_ops *ops = sink->ops;
        char errstr[512];

        if (ops->begin(sink, errstr, sizeof(errstr)) < 0)
                goto fail;
        if (ops->store_high_watermarks(sink, pl->conf->topic, highs, n, errstr,
                                       sizeof(errstr)) < 0 ||
            ops->commit(sink, errstr, sizeof(errstr)) < 0) {
                ops->rollback(sink);
                goto fail;
        }
        cs_stats_highs(pl->conf->stats, highs, n);
        return;
fail:
        cs_log(CS_LOG_DEBUG, "high watermarks not stored: %s", errstr);
}

/* Notes in its own transaction that the replay has read its input to the
 * end: it adds nothing more, so it stops holding finality back (see the
 * view final_watermark). */
static int replay_done(struct pipeline *pl)
{
        struct cs_sink *sink = pl->w.sink;
        const struct cs_sink_ops *ops = sink->ops;
        char errstr[512];
        int r;

        if ((r = ops->begin(sink, errstr, sizeof(errstr))) < 0 ||
            (r = cs_topics_store_replay(sink, pl->conf->topic, pl->replay_path,
                                        pl->head, pl->nhead, 1, errstr,
                                        sizeof(errstr))) < 0 ||
            (r = ops->commit(sink, errstr, sizeof(errstr))) < 0) {
                ops->rollback(sink);
                if (r == CS_RETRY) {
                        start_recovery(pl, errstr);
                        return r;
                }
                cs_log(CS_LOG_ERROR, "%s", errstr);
        }
        return r;
}

/* Serves the consumer's request; returns what to answer. */
static int serve(struct pipeline *pl, enum request req,
                 struct cs_partition_offset *offs, size_t n)
{
        struct writer *w = &pl->w;
        char errstr[512];
        int r;

        if (w->failed)
                return -1;
        if (w->recovering)
                return CS_RETRY;
        if (req == REQ_END) {
                /* Everything consumed is committed (the consumer waited
                 * for it): a replay is complete, old data may go. */
                if (pl->replay_path && (r = replay_done(pl)) < 0)
                        return r;
                retain_all(pl);
                return 0;
        }
        r = w->sink->ops->load_offsets(w->sink, pl->conf->topic, offs, n,
                                       errstr, sizeof(errstr));
        if (r == CS_RETRY)
                start_recovery(pl, errstr);
        else if (r < 0)
                cs_log(CS_LOG_ERROR, "%s", errstr);
        return r;
}

/* Writes one handed-over batch (unless of an older epoch, or after a
 * failure), and hands the slot back empty. */
static void write_job(struct pipeline *pl, struct slot *job,
                      struct cs_source *src)
{
        struct writer *w = &pl->w;

        if (job->epoch == w->epoch && !w->failed &&
            flush(pl, job, src) == CS_ERR)
                w->failed = 1;
        cs_stats_in_flight(pl->conf->stats, -1);
        slot_reset(job);
        lock(&pl->ch);
        pl->ch.spare = job;
        pl->ch.writer_failed = w->failed;
        signal_unlock(&pl->ch);
}

/* The writer's loop, on the caller's thread: serves the consumer until it
 * is done. */
static void writer_loop(struct pipeline *pl)
{
        struct chan *ch = &pl->ch;
        struct writer *w = &pl->w;

        for (;;) {
                struct slot *job = NULL;
                struct cs_source *src;
                enum request req = REQ_NONE;
                struct cs_partition_offset *offs = NULL;
                size_t noffs = 0, nhighs = 0;
                int done = 0;

                lock(ch);
                if (!ch->full && (ch->req == REQ_NONE || ch->served) &&
                    !ch->nhighs && !ch->consumer_done)
                        wait_ms(ch, 100);
                if (ch->full) {
                        job = ch->full;
                        ch->full = NULL;
                } else if (ch->req != REQ_NONE && !ch->served) {
                        req = ch->req;
                        offs = ch->offs;
                        noffs = ch->noffs;
                } else if (ch->nhighs) {
                        if (ch->nhighs > w->highs_cap) {
                                struct cs_partition_offset *p = realloc(
                                        w->highs, ch->nhighs * sizeof(*p));

                                if (p) {
                                        w->highs = p;
                                        w->highs_cap = ch->nhighs;
                                }
                        }
                        if (ch->nhighs <= w->highs_cap) {
                                memcpy(w->highs, ch->highs,
                                       ch->nhighs * sizeof(*w->highs));
                                nhighs = ch->nhighs;
                        }
                        ch->nhighs = 0;
                } else if (ch->consumer_done) {
                        done = 1;
                }
                src = ch->src;
                unlock(ch);

                if (job) {
                        write_job(pl, job, src);
                } else if (req != REQ_NONE) {
                        int r = serve(pl, req, offs, noffs);

                        lock(ch);
                        ch->result = r;
                        ch->served = 1;
                        signal_unlock(ch);
                } else if (nhighs) {
                        if (!w->recovering && !w->failed)
                                store_highs(pl, w->highs, nhighs);
                } else if (done) {
                        break;
                } else {
                        /* A quiet stream still has old data to let go. */
                        retain(pl);
                }
                if (w->recovering && !w->failed && !*pl->stop &&
                    recover(pl) < 0) {
                        w->failed = 1;
                        lock(ch);
                        ch->writer_failed = 1;
                        signal_unlock(ch);
                }
        }
}

/* ---- the consumer thread -------------------------------------------- */

/* Returns partition p's watermark slot, or NULL when out of memory. */
static struct cs_watermark *mark_of(struct consumer *c, int32_t p)
{
        if ((size_t)p >= c->nmarks) {
                size_t n = (size_t)p + 16;
                struct cs_watermark *m = realloc(c->marks, n * sizeof(*m));

                if (!m)
                        return NULL;
                memset(m + c->nmarks, 0, (n - c->nmarks) * sizeof(*m));
                c->marks = m;
                c->nmarks = n;
        }
        return &c->marks[p];
}

/* Asks the writer and waits for its answer. */
static int request(struct pipeline *pl, enum request req,
                   struct cs_partition_offset *offs, size_t n)
{
        struct chan *ch = &pl->ch;
        int r;

        lock(ch);
        ch->req = req;
        ch->offs = offs;
        ch->noffs = n;
        ch->served = 0;
        pthread_cond_broadcast(&ch->cv);
        while (!ch->served)
                pthread_cond_wait(&ch->cv, &ch->mu);
        r = ch->result;
        ch->req = REQ_NONE;
        unlock(ch);
        return r;
}

/* Hands the batch being filled to the writer, with its partitions' ends.
 * With wait, waits for the writer to be free; else hands it over only if
 * it is. A batch of an epoch gone (the writer lost the database) is
 * dropped. Returns 1 when handed over, else 0. */
static int hand_over(struct pipeline *pl, int wait)
{
        struct chan *ch = &pl->ch;
        struct consumer *c = &pl->c;
        struct cs_batch *b = c->fill->batch;
        size_t i;

        lock(ch);
        if (!ch->spare && !wait) {
                unlock(ch);
                return 0;
        }
        unlock(ch);
        for (i = 0; i < b->noffsets; i++)
                b->offsets[i].high_watermark = cs_source_high_watermark(
                        c->src, b->offsets[i].partition);
        lock(ch);
        while (!ch->spare && ch->epoch == c->epoch && !ch->writer_failed)
                pthread_cond_wait(&ch->cv, &ch->mu);
        if (ch->epoch != c->epoch || ch->writer_failed || !ch->spare) {
                unlock(ch);
                slot_reset(c->fill);
                return 0;
        }
        c->fill->epoch = c->epoch;
        ch->full = c->fill;
        c->fill = ch->spare;
        ch->spare = NULL;
        /* Before the writer can take it: its -1 comes after. */
        cs_stats_in_flight(pl->conf->stats, 1);
        signal_unlock(ch);
        return 1;
}

/* Hands over what is consumed and waits until the writer has committed
 * it. Returns 0, 1 when the writer lost the database meanwhile (nothing
 * since its last commit is stored), or -1 when it failed. */
static int drain(struct pipeline *pl)
{
        struct chan *ch = &pl->ch;
        int r;

        if (!pl->c.paused && slot_has_data(pl->c.fill))
                hand_over(pl, 1);
        lock(ch);
        while (!ch->spare && !ch->writer_failed)
                pthread_cond_wait(&ch->cv, &ch->mu);
        r = ch->writer_failed ? -1 : ch->epoch != pl->c.epoch ? 1 : 0;
        unlock(ch);
        return r;
}

/* While idle: gives the writer the partitions' ends to store. */
static void post_highs(struct pipeline *pl,
                       const struct cs_partition_offset *highs, size_t n)
{
        struct chan *ch = &pl->ch;

        lock(ch);
        if (n > ch->highs_cap) {
                struct cs_partition_offset *p =
                        realloc(ch->highs, n * sizeof(*p));

                if (!p) {
                        unlock(ch);
                        return;
                }
                ch->highs = p;
                ch->highs_cap = n;
        }
        memcpy(ch->highs, highs, n * sizeof(*highs));
        ch->nhighs = n;
        signal_unlock(ch);
}

/* The source's on_assign: the writer loads the stored offsets; each
 * partition goes on from its committed watermark, with this run's
 * lateness (the watermark never moves back). */
static int on_assign(void *opaque, struct cs_partition_offset *offs, size_t n)
{
        struct pipeline *pl = opaque;
        size_t i;
        int r = request(pl, REQ_ASSIGN, offs, n);

        if (r < 0)
                return r; /* CS_RETRY: the source stays paused */
        for (i = 0; i < n; i++) {
                struct cs_watermark *w = mark_of(&pl->c, offs[i].partition);

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

/* The source's on_revoke: commits everything consumed before the
 * partitions go to another process. When the database is away the batch
 * is dropped instead: the next owner starts from the stored offset. */
static int on_revoke(void *opaque)
{
        return drain(opaque) < 0 ? -1 : 0;
}

/* With stats or progress: notes offset as partition's first in the batch
 * being filled, unless it has one. Returns 0, or -1 when out of memory. */
static int note_start(struct pipeline *pl, int32_t partition, int64_t offset)
{
        struct slot *s = pl->c.fill;
        size_t i;

        if (!pl->conf->stats && !pl->conf->progress)
                return 0;
        /* A batch spans few partitions: the last one is the likely one. */
        for (i = s->nstarts; i-- > 0;)
                if (s->starts[i].partition == partition)
                        return 0;
        if (CS_RESERVE(s->starts, s->nstarts, s->starts_cap) < 0)
                return -1;
        s->starts[s->nstarts].partition = partition;
        s->starts[s->nstarts].offset = offset;
        s->nstarts++;
        return 0;
}

/* Notes a retention gap in the batch being filled, and moves the batch
 * past it: the gap row and the offset after it are committed together. */
static int on_gap(void *opaque, int32_t partition, int64_t first, int64_t last)
{
        struct pipeline *pl = opaque;
        struct consumer *c = &pl->c;
        struct slot *s = c->fill;
        struct cs_watermark *w = mark_of(c, partition);

        if (c->paused)
                return 0;
        if (!w || CS_RESERVE(s->gaps, s->ngaps, s->gaps_cap) < 0 ||
            note_start(pl, partition, first) < 0 ||
            cs_batch_advance(s->batch, partition, last + 1, w) < 0) {
                cs_log(CS_LOG_ERROR, "out of memory noting a gap in %s [%d]",
                       pl->conf->topic, (int)partition);
                s->gap_lost = 1;
                return -1;
        }
        s->gaps[s->ngaps].partition = partition;
        s->gaps[s->ngaps].first = first;
        s->gaps[s->ngaps].last = last;
        s->ngaps++;
        return 0;
}

/* Whether every window of a call at ts has bounds in years 0001-9999, which
 * both databases can hold. Only calls within a year of the ends need the
 * full check. */
static int windows_fit(const struct cs_pipeline_conf *conf, int64_t *starts,
                       int64_t ts, char *reason, size_t reason_size)
{
        const int64_t margin = CS_WINDOW_MAX_SECONDS + 86400;
        int s, n;

        if (ts >= CS_TS_MIN + margin && ts < CS_TS_END - margin)
                return 1;
        for (s = 0; s < conf->nspecs; s++) {
                const struct cs_window_spec *spec = &conf->specs[s];

                n = cs_window_assign(spec, ts, starts);
                if (starts[0] < CS_TS_MIN ||
                    starts[n - 1] + spec->size >= CS_TS_END) {
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
static int not_too_far(const struct cs_pipeline_conf *conf, int64_t ts,
                       char *reason, size_t reason_size)
{
        if (conf->max_future < 0 ||
            ts <= (int64_t)time(NULL) + CS_MAX_LOCAL_OFFSET + conf->max_future)
                return 1;
        snprintf(reason, reason_size, "event time too far in the future");
        return 0;
}

int cs_pipeline_check_call(const struct cs_pipeline_conf *conf, int64_t ts,
                           char *reason, size_t reason_size)
{
        int64_t starts[CS_WINDOW_MAX_PER_EVENT];

        return windows_fit(conf, starts, ts, reason, reason_size) &&
                               not_too_far(conf, ts, reason, reason_size)
                       ? 0
                       : -1;
}

/* With stats or progress: notes the message's time, partition start and
 * Kafka timestamp in the batch being filled. Returns 0, or -1 when out of
 * memory. */
static int note_message(struct pipeline *pl, const struct cs_source_msg *m)
{
        struct slot *s = pl->c.fill;

        if (!s->opened_wall_ms)
                s->opened_wall_ms = wall_ms();
        if ((s->nstarts == 0 ||
             s->starts[s->nstarts - 1].partition != m->partition) &&
            note_start(pl, m->partition, m->offset) < 0)
                return -1;
        if (m->timestamp >= 0) {
                if (CS_RESERVE(s->stamps, s->nstamps, s->stamps_cap) < 0)
                        return -1;
                s->stamps[s->nstamps++] = m->timestamp;
        }
        return 0;
}

/* Decodes a message as --format says: JSON, Avro, or (auto) Avro when it
 * starts with the Confluent magic byte 0, which no JSON text does. */
static int parse_message(struct pipeline *pl, const struct cs_source_msg *m,
                         struct cs_call *call, char *reason, size_t reason_size)
{
        if (pl->conf->format == CS_FORMAT_AVRO ||
            (pl->conf->format == CS_FORMAT_AUTO && m->len > 0 &&
             ((const char *)m->payload)[0] == 0))
                return cs_avro_decode(pl->conf->avro, m->payload, m->len, call,
                                      reason, reason_size);
        return cs_parse_call(pl->c.parser, m->payload, m->len, call, reason,
                             reason_size);
}

/* Parses one message into the batch: a call, or a rejected record. */
static int consume(struct pipeline *pl, const struct cs_source_msg *m)
{
        struct consumer *c = &pl->c;
        struct cs_batch *b = c->fill->batch;
        struct cs_watermark *w = mark_of(c, m->partition);
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX];
        int r = -1;

        if (!w)
                goto fail;
        if (m->reject) {
                r = cs_batch_add_reject(b, m->partition, m->offset, m->reject,
                                        m->payload, m->len);
        } else if (parse_message(pl, m, &call, reason, sizeof(reason)) == 0 &&
                   windows_fit(pl->conf, c->starts, call.ts, reason,
                               sizeof(reason)) &&
                   not_too_far(pl->conf, call.ts, reason, sizeof(reason))) {
                struct cs_time t = {call.ts, call.ts_usec};

                /* One copy of a call per batch under --on-duplicate
                 * update: each change is applied in order. */
                if (cs_batch_changes(b, &call)) {
                        hand_over(pl, 1);
                        b = c->fill->batch;
                }
                r = cs_batch_add_call(b, &call, m->partition, m->offset, w);
                /* Every valid call moves its partition's watermark,
                 * duplicates too: the order of a partition is fixed, so
                 * lateness is the same on every replay. */
                cs_watermark_advance(w, t);
        } else {
                r = cs_batch_add_reject(b, m->partition, m->offset, reason,
                                        m->payload, m->len);
        }
        if (r == 0 && (pl->conf->stats || pl->conf->progress))
                r = note_message(pl, m);
        if (r == 0)
                r = cs_batch_advance(b, m->partition, m->offset + 1, w);
fail:
        if (r < 0)
                cs_log(CS_LOG_ERROR, "out of memory at %s [%d] offset %lld",
                       pl->conf->topic, (int)m->partition,
                       (long long)m->offset);
        return r;
}

/* The consumer's loop: reads, parses and fills batches until stopped, at
 * the end of the input (--exit-at-end, a file), or failed. Returns 0 or
 * -1. */
static int consume_loop(struct pipeline *pl)
{
        const struct cs_pipeline_conf *conf = pl->conf;
        struct chan *ch = &pl->ch;
        struct consumer *c = &pl->c;
        int until_end = conf->exit_at_end || conf->file;
        int timed = conf->stats || conf->progress;
        /* The clock read after the last message was parsed: the next
         * poll's start, unless the loop waited meanwhile (two clock reads
         * a message, not three). 0: read it afresh. */
        int64_t parsed_at = 0;

        for (;;) {
                const struct cs_partition_offset *highs;
                struct cs_source_msg m;
                size_t nhighs;
                unsigned epoch;
                int64_t t0;
                int rewind, failed, r, t, idle;

                lock(ch);
                epoch = ch->epoch;
                failed = ch->writer_failed;
                rewind = ch->rewind;
                ch->rewind = 0;
                unlock(ch);
                if (failed)
                        return -1;
                if (epoch != c->epoch) {
                        /* The writer lost the database: what was consumed
                         * since its last commit is read again after the
                         * rewind. */
                        slot_reset(c->fill);
                        c->epoch = epoch;
                        if (!c->paused)
                                cs_source_pause(c->src);
                        c->paused = 1;
                }
                if (*pl->stop) {
                        /* A final batch lost to an outage stays unwritten:
                         * nothing is lost, the next run reads it again. */
                        return drain(pl) < 0 ? -1 : 0;
                }
                if ((rewind || c->rewind_again) && c->paused) {
                        parsed_at = 0;
                        c->rewind_again = 0;
                        r = cs_source_rewind(c->src);
                        if (r == CS_ERR)
                                return -1;
                        /* CS_RETRY: lost again, the epoch says so. */
                        if (r == 0)
                                c->paused = 0;
                        /* Not done in time: again, after a pause. */
                        if (r == 1) {
                                struct timespec ts = {0, 100 * 1000 * 1000};

                                nanosleep(&ts, NULL);
                                c->rewind_again = 1;
                        }
                        continue;
                }
                /* Freshness: the writer is free, so the batch goes now; at
                 * its size limit it waits for the writer. */
                if (!c->paused && slot_has_data(c->fill)) {
                        int full = c->fill->batch->nmessages >=
                                   conf->batch_max_records;

                        hand_over(pl, full);
                        if (full)
                                parsed_at = 0; /* it waited for the writer */
                }
                t0 = !timed ? 0 : parsed_at ? parsed_at : mono_ns();
                parsed_at = 0;
                r = cs_source_next(c->src, slot_has_data(c->fill) ? 10 : 100,
                                   &m);
                if (r < 0) {
                        /* What came before the error is committed. */
                        drain(pl);
                        return -1;
                }
                if (r > 0 && !c->paused) {
                        int64_t t1 = timed ? mono_ns() : 0;

                        if (consume(pl, &m) < 0)
                                return -1;
                        if (timed) {
                                parsed_at = mono_ns();
                                /* The batch the message went into. */
                                c->fill->poll_ns += t1 - t0;
                                c->fill->parse_ns += parsed_at - t1;
                        }
                }
                if (timed) {
                        int64_t down = cs_source_down_since(c->src);

                        if (down != c->broker_down_since) {
                                c->broker_down_since = down;
                                cs_stats_broker(conf->stats, down);
                        }
                }
                idle = r == 0 && !slot_has_data(c->fill);
                t = cs_source_tick(c->src, idle && !c->paused, &highs, &nhighs);
                if (t < 0) {
                        drain(pl);
                        return -1;
                }
                if (t > 0 && !c->paused)
                        post_highs(pl, highs, nhighs);
                if (c->fill->gap_lost)
                        return -1;
                if (until_end && !c->paused && cs_source_at_end(c->src)) {
                        r = drain(pl);
                        if (r < 0)
                                return -1;
                        if (r == 0) {
                                r = request(pl, REQ_END, NULL, 0);
                                if (r != CS_RETRY)
                                        return r < 0 ? -1 : 0;
                        }
                        /* The database went away: rewind when back. */
                }
        }
}

static void *consumer_main(void *arg)
{
        struct pipeline *pl = arg;
        const struct cs_pipeline_conf *conf = pl->conf;
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
                .stop = pl->stop,
                .startup_timeout_ms = conf->startup_timeout_ms,
                .broker_timeout_ms = conf->broker_timeout_ms,
                .batch_max_records = conf->batch_max_records,
                .max_rate_per_partition = conf->max_rate_per_partition,
                .fetch_order = conf->fetch_order,
                .opaque = pl,
        };
        struct cs_source_file_conf fconf = {
                .on_assign = on_assign,
                .opaque = pl,
                .once = conf->file && !strcmp(conf->file, "-"),
                .max_rate_per_partition = conf->max_rate_per_partition,
        };
        char errstr[512] = "";
        int r;

        if (conf->file) {
                r = cs_source_file_new(pl->file, &fconf, &pl->c.src, errstr,
                                       sizeof(errstr));
        } else {
                /* Out of reach until the topic's metadata came. */
                cs_stats_broker(conf->stats, cs_now_ms());
                r = cs_source_kafka_new(&kconf, &pl->c.src, errstr,
                                        sizeof(errstr));
                if (r == 0 || r == CS_RETRY)
                        cs_stats_broker(conf->stats, 0);
        }
        if (r == CS_RETRY)
                r = 0; /* paused until the database is back */
        if (r != 0) {
                /* Stopped while waiting for the brokers: nothing to do. */
                if (r < 0 && !conf->file)
                        cs_log(CS_LOG_ERROR, "%s", errstr);
                r = r > 0 ? 0 : -1;
                goto done;
        }
        lock(&pl->ch);
        pl->ch.src = pl->c.src;
        pl->ch.started = 1;
        unlock(&pl->ch);
        r = consume_loop(pl);
        /* Leaving a group revokes the partitions: on_revoke commits
         * anything still open. */
        cs_source_close(pl->c.src);
        lock(&pl->ch);
        pl->ch.src = NULL;
        unlock(&pl->ch);
done:
        lock(&pl->ch);
        pl->ch.consumer_status = r;
        pl->ch.consumer_done = 1;
        signal_unlock(&pl->ch);
        return NULL;
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
                if (r != CS_RETRY)
                        break;
                cs_stats_db_down(conf->stats, started);
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
        cs_stats_db_up(conf->stats, 0);
        if (attempts)
                cs_log(CS_LOG_INFO, "database available after %d attempts",
                       attempts + 1);
        /* Migrations may take long; a batch's statements should not: a
         * server silent past this is an outage. */
        (*out)->timeout_ms = STATEMENT_TIMEOUT_MS;
        return 0;
}

static void (*sink_hook)(struct cs_sink *s);

void cs_pipeline_set_sink_hook(void (*hook)(struct cs_sink *s))
{
        sink_hook = hook;
}

int cs_pipeline_run(const struct cs_pipeline_conf *conf,
                    volatile sig_atomic_t *stop)
{
        struct pipeline *pl = calloc(1, sizeof(*pl));
        struct writer *w;
        pthread_condattr_t ca;
        pthread_t consumer;
        sigset_t all, old;
        char errstr[512], *real = NULL;
        int64_t started = cs_now_ms();
        int i, r = -1, sync = 0, threads = 0;

        if (!pl) {
                cs_log(CS_LOG_ERROR, "out of memory");
                return -1;
        }
        pl->conf = conf;
        pl->stop = stop;
        w = &pl->w;
        /* A file that cannot be read creates no database. */
        if (conf->file && !(pl->file = cs_file_source_open(conf->file, errstr,
                                                           sizeof(errstr)))) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                goto freed;
        }
        if ((r = cs_pipeline_open_sink(conf, stop, &w->sink)) != 0) {
                /* Stopped while waiting for the database: nothing to do. */
                r = r > 0 ? 0 : -1;
                goto freed;
        }
        if (sink_hook)
                sink_hook(w->sink);
        r = -1;
        pl->c.parser = cs_parser_new();
        w->agg = cs_window_agg_new();
        w->inserted = malloc(conf->batch_max_records + 1);
        w->old = calloc(conf->batch_max_records + 1, sizeof(*w->old));
        if (!pl->c.parser || !w->agg || !w->inserted || !w->old)
                goto oom;
        for (i = 0; i < 2; i++) {
                struct cs_batch *b =
                        cs_batch_new(conf->topic, conf->batch_max_records);

                if (!b)
                        goto oom;
                b->late_policy = conf->late_drop ? "drop" : "count";
                b->update = conf->update;
                pl->slots[i].batch = b;
        }
        if (conf->file) {
                /* Resume only over the input the stored position was read
                 * from. */
                cs_file_source_head(pl->file, &pl->head, &pl->nhead);
                if (strcmp(conf->file, "-"))
                        real = realpath(conf->file, NULL);
                pl->replay_path = real ? real : conf->file;
                r = cs_topics_check_replay(w->sink, conf->topic, pl->head,
                                           pl->nhead, errstr, sizeof(errstr));
        } else {
                r = cs_topics_check_kafka(w->sink, conf->topic, errstr,
                                          sizeof(errstr));
        }
        if (r == 0)
                r = cs_topics_track_specs(w->sink, conf->specs, conf->nspecs,
                                          errstr, sizeof(errstr));
        if (r < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                if (r != CS_REFUSED)
                        r = -1;
                goto freed;
        }

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if (pthread_mutex_init(&pl->ch.mu, NULL) == 0) {
                if (pthread_cond_init(&pl->ch.cv, &ca) == 0)
                        sync = 1;
                else
                        pthread_mutex_destroy(&pl->ch.mu);
        }
        pthread_condattr_destroy(&ca);
        if (!sync)
                goto oom;
        pl->c.fill = &pl->slots[0];
        pl->ch.spare = &pl->slots[1];
        /* Signals are the writer's (the caller's) to take: the stop flag
         * reaches both threads. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        threads = pthread_create(&consumer, NULL, consumer_main, pl) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!threads) {
                cs_log(CS_LOG_ERROR, "cannot start the consumer thread");
                r = -1;
                goto freed;
        }
        writer_loop(pl);
        pthread_join(consumer, NULL);
        r = w->failed || pl->ch.writer_failed ? -1 : pl->ch.consumer_status;
        if (!pl->ch.started)
                goto freed; /* it never started: the error says it all */
        cs_log(CS_LOG_INFO,
               "%s: %llu messages from %s: %llu new calls, %llu duplicates, "
               "%llu rejected, %llu late, %llu updated, in %llu batches, "
               "%.1f s",
               w->sink->name, (unsigned long long)w->totals.messages,
               conf->topic, (unsigned long long)w->totals.calls,
               (unsigned long long)w->totals.duplicates,
               (unsigned long long)w->totals.rejected,
               (unsigned long long)w->totals.late,
               (unsigned long long)w->totals.updated,
               (unsigned long long)w->totals.batches,
               (double)(cs_now_ms() - started) / 1000.0);
        goto freed;
oom:
        cs_log(CS_LOG_ERROR, "out of memory");
        r = -1;
freed:
        if (sync) {
                pthread_cond_destroy(&pl->ch.cv);
                pthread_mutex_destroy(&pl->ch.mu);
        }
        for (i = 0; i < 2; i++) {
                cs_batch_destroy(pl->slots[i].batch);
                free(pl->slots[i].gaps);
                free(pl->slots[i].starts);
                free(pl->slots[i].stamps);
        }
        free(pl->ch.highs);
        free(w->highs);
        free(w->inserted);
        free(w->old);
        free(w->late);
        free(pl->c.marks);
        cs_window_agg_destroy(w->agg);
        cs_parser_destroy(pl->c.parser);
        cs_sink_close(w->sink);
        cs_file_source_close(pl->file);
        free(real);
        free(pl);
        return r;
}
