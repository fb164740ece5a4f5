/* cs_batch.h: the messages of one batch, copied out of Kafka's buffers.
 *
 * A batch owns copies of everything it holds (in its arena), so each Kafka
 * message can be freed as soon as it is parsed, and a full batch can be handed
 * to the pipeline's writer thread while the next one fills. Memory is
 * kept across batches: steady-state batching does not allocate. */
#ifndef CS_BATCH_H
#define CS_BATCH_H

#include "cs_common.h"
#include "cs_parse.h"

/* Rejected payloads are stored up to this many bytes. */
#define CS_REJECT_PAYLOAD_MAX 4096

/* An event time: seconds since 1970 and microseconds. */
struct cs_time {
        int64_t sec;
        int32_t usec;
};

/* A partition's watermark: the highest event time seen in it, less the
 * allowed lateness, never moving backwards. */
struct cs_watermark {
        int valid; /* 0 until the first valid call */
        struct cs_time max_event;
        int64_t lateness; /* seconds */
        struct cs_time mark;
};

struct cs_batch_call {
        struct cs_str field[CS_F_COUNT]; /* in the batch arena */
        int64_t ts;
        int32_t ts_usec;
        int32_t partition;
        int64_t offset;
        /* The watermark just before this call was consumed. */
        int has_mark;
        struct cs_time mark;
};

/* A call left out of final windows of one spec (--late-policy drop). */
struct cs_late_record {
        size_t call; /* index into the batch's calls */
        int spec;
        int windows_dropped;
        /* The watermark it missed is the call's mark. */
};

struct cs_batch_reject {
        int32_t partition;
        int64_t offset;
        struct cs_str reason;  /* in the batch arena */
        struct cs_str payload; /* first CS_REJECT_PAYLOAD_MAX bytes */
        size_t payload_size;   /* before truncation */
};

/* The next offset to consume in one partition, its watermark then, and what
 * the batch did there (for pipeline_progress). */
struct cs_partition_offset {
        int32_t partition;
        int64_t next_offset;
        struct cs_watermark watermark;
        int64_t high_watermark; /* the partition's end, -1 if unknown */
        int64_t calls;          /* new calls */
        int64_t duplicates;     /* copies of a stored or batched call */
        int64_t rejected;
        int64_t late; /* calls counted in, or dropped from, final windows */
};

/* Read-only for everyone but batch.c. */
struct cs_batch {
        const char *topic; /* borrowed from the caller of cs_batch_new() */
        struct cs_batch_call *calls;
        size_t ncalls;
        struct cs_batch_reject *rejects;
        size_t nrejects;
        struct cs_partition_offset *offsets; /* one per partition seen */
        size_t noffsets;
        const char *late_policy; /* "count" or "drop", borrowed */
        int update;         /* --on-duplicate update: a changed copy replaces */
        size_t nmessages;   /* messages consumed into this batch */
        size_t nduplicates; /* valid copies of an id already in the batch */
        int64_t opened_ms;  /* cs_now_ms() of the first message */

        /* private */
        size_t calls_cap, rejects_cap, offsets_cap;
        struct cs_arena *arena;
        struct cs_dedup *dedup;
};

/* Returns an empty batch for about max_records messages, or NULL when out of
 * memory. topic is borrowed and must outlive the batch. */
struct cs_batch *cs_batch_new(const char *topic, size_t max_records);
/* Frees the batch; NULL is accepted. */
void cs_batch_destroy(struct cs_batch *b);
/* Empties the batch, keeping its memory. */
void cs_batch_reset(struct cs_batch *b);

/* Adds a valid call consumed at partition/offset, copying its strings; it
 * is counted against watermark before (its partition's, just before it). A
 * crime_id already in the batch is counted as a duplicate and not added:
 * the first copy wins, unless b->update is set and the copy differs, in
 * which case it takes the earlier copy's place. Returns 0, or -1 when out of
 * memory. */
int cs_batch_add_call(struct cs_batch *b, const struct cs_call *call,
                      int32_t partition, int64_t offset,
                      const struct cs_watermark *before) CS_MUSTCHECK;

/* With b->update: whether the batch holds call's crime_id with other
 * fields, so that adding it would replace that copy within the batch. The
 * pipeline starts a new batch instead: a chain of changes inside one batch
 * would collapse to its last copy, and a last copy equal to the stored one
 * would then leave the stored row (its offset, its watermark) unchanged,
 * unlike the same copies in separate batches. */
int cs_batch_changes(const struct cs_batch *b, const struct cs_call *call);

/* Moves watermark w past event time t. */
void cs_watermark_advance(struct cs_watermark *w, struct cs_time t);

/* Whether two calls have the same fields (all of them, as given). */
int cs_batch_call_same(const struct cs_batch_call *a, const struct cs_str *f);

/* Whether event time t is past a: a later time, or the same. */
static inline int cs_time_ge(struct cs_time t, struct cs_time a)
{
        return t.sec > a.sec || (t.sec == a.sec && t.usec >= a.usec);
}

/* Adds a rejected message, copying reason and at most CS_REJECT_PAYLOAD_MAX
 * bytes of payload (NULL: none kept, len still its size). Returns 0, or -1
 * when out of memory. */
int cs_batch_add_reject(struct cs_batch *b, int32_t partition, int64_t offset,
                        const char *reason, const void *payload,
                        size_t len) CS_MUSTCHECK;

/* Returns the batch's entry for partition, adding it (next_offset -1, all
 * counts 0) if needed, or NULL when out of memory. */
struct cs_partition_offset *cs_batch_partition(struct cs_batch *b,
                                               int32_t partition);

/* Records that partition has been consumed up to next_offset (exclusive),
 * its watermark then being w (copied). Returns 0, or -1 when out of memory. */
int cs_batch_advance(struct cs_batch *b, int32_t partition, int64_t next_offset,
                     const struct cs_watermark *w) CS_MUSTCHECK;

#endif
