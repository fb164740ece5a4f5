/* batch.c: collects one batch of calls, rejects and offsets (cs_batch.h). */
#include <stdlib.h>
#include <string.h>

#include "cs_arena.h"
#include "cs_batch.h"
#include "cs_dedup.h"

struct cs_batch *cs_batch_new(const char *topic, size_t max_records)
{
        struct cs_batch *b = calloc(1, sizeof(*b));

        if (!b)
                return NULL;
        b->topic = topic;
        b->late_policy = "count";
        b->calls_cap = max_records ? max_records : 1;
        b->calls = malloc(b->calls_cap * sizeof(*b->calls));
        b->arena = cs_arena_new();
        b->dedup = cs_dedup_new(max_records);
        if (!b->calls || !b->arena || !b->dedup) {
                cs_batch_destroy(b);
                return NULL;
        }
        return b;
}

void cs_batch_destroy(struct cs_batch *b)
{
        if (!b)
                return;
        free(b->calls);
        free(b->rejects);
        free(b->offsets);
        cs_arena_destroy(b->arena);
        cs_dedup_destroy(b->dedup);
        free(b);
}

void cs_batch_reset(struct cs_batch *b)
{
        b->ncalls = 0;
        b->nrejects = 0;
        b->noffsets = 0;
        b->nmessages = 0;
        b->nduplicates = 0;
        b->opened_ms = 0;
        cs_arena_reset(b->arena);
        cs_dedup_reset(b->dedup);
}

static void opened(struct cs_batch *b)
{
        if (b->nmessages++ == 0)
                b->opened_ms = cs_now_ms();
}

void cs_watermark_advance(struct cs_watermark *w, struct cs_time t)
{
        struct cs_time mark = {t.sec - w->lateness, t.usec};

        if (!w->valid || !cs_time_ge(w->max_event, t))
                w->max_event = t;
        if (!w->valid || !cs_time_ge(w->mark, mark))
                w->mark = mark;
        w->valid = 1;
}

static int str_eq(struct cs_str a, struct cs_str b)
{
        if (!a.ptr || !b.ptr)
                return a.ptr == b.ptr;
        return a.len == b.len && !memcmp(a.ptr, b.ptr, a.len);
}

int cs_batch_call_same(const struct cs_batch_call *a, const struct cs_str *f)
{
        int i;

        for (i = 0; i < CS_F_COUNT; i++)
                if (!str_eq(a->field[i], f[i]))
                        return 0;
        return 1;
}

int cs_batch_changes(const struct cs_batch *b, const struct cs_call *call)
{
        size_t i;

        if (!b->update || !b->ncalls)
                return 0;
        i = cs_dedup_index(b->dedup, call->field[CS_F_CRIME_ID]);
        return i != (size_t)-1 &&
               !cs_batch_call_same(&b->calls[i], call->field);
}

int cs_batch_add_call(struct cs_batch *b, const struct cs_call *call,
                      int32_t partition, int64_t offset,
                      const struct cs_watermark *before)
{
        struct cs_batch_call *c;
        int i, r;

        opened(b);
        if (CS_RESERVE(b->calls, b->ncalls, b->calls_cap) < 0)
                return -1;
        c = &b->calls[b->ncalls];
        if (cs_arena_copy(b->arena, call->field[CS_F_CRIME_ID],
                          &c->field[CS_F_CRIME_ID]) < 0)
                return -1;
        r = cs_dedup_add(b->dedup, c->field[CS_F_CRIME_ID]);
        if (r < 0)
                return -1;
        if (r == 0) {
                struct cs_partition_offset *o =
                        cs_batch_partition(b, partition);
                size_t first = cs_dedup_index(b->dedup, c->field[0]);

                /* The id's bytes stay in the arena until reset; harmless. */
                if (!o)
                        return -1;
                o->duplicates++;
                b->nduplicates++;
                if (!b->update ||
                    cs_batch_call_same(&b->calls[first], call->field))
                        return 0;
                /* A changed copy: the latest one stands for the call. */
                c = &b->calls[first];
        }
        for (i = 1; i < CS_F_COUNT; i++)
                if (cs_arena_copy(b->arena, call->field[i], &c->field[i]) < 0)
                        return -1;
        c->ts = call->ts;
        c->ts_usec = call->ts_usec;
        c->has_mark = before && before->valid;
        if (c->has_mark)
                c->mark = before->mark;
        c->partition = partition;
        c->offset = offset;
        if (r == 0)
                return 0; /* replaced in place */
        b->ncalls++;
        return 0;
}

int cs_batch_add_reject(struct cs_batch *b, int32_t partition, int64_t offset,
                        const char *reason, const void *payload, size_t len)
{
        struct cs_batch_reject *r;
        struct cs_str s;

        opened(b);
        if (CS_RESERVE(b->rejects, b->nrejects, b->rejects_cap) < 0)
                return -1;
        r = &b->rejects[b->nrejects];
        r->partition = partition;
        r->offset = offset;
        r->payload_size = len;
        s.ptr = reason;
        s.len = strlen(reason);
        if (cs_arena_copy(b->arena, s, &r->reason) < 0)
                return -1;
        /* No payload (too long to keep): the size says what it was. */
        s.ptr = payload ? payload : "";
        s.len = !payload                      ? 0
                : len < CS_REJECT_PAYLOAD_MAX ? len
                                              : CS_REJECT_PAYLOAD_MAX;
        if (cs_arena_copy(b->arena, s, &r->payload) < 0)
                return -1;
        b->nrejects++;
        {
                struct cs_partition_offset *o =
                        cs_batch_partition(b, partition);

                if (!o)
                        return -1;
                o->rejected++;
        }
        return 0;
}

struct cs_partition_offset *cs_batch_partition(struct cs_batch *b,
                                               int32_t partition)
{
        struct cs_partition_offset *o;
        size_t i;

        for (i = 0; i < b->noffsets; i++)
                if (b->offsets[i].partition == partition)
                        return &b->offsets[i];
        if (CS_RESERVE(b->offsets, b->noffsets, b->offsets_cap) < 0)
                return NULL;
        o = &b->offsets[b->noffsets++];
        memset(o, 0, sizeof(*o));
        o->partition = partition;
        o->next_offset = -1;
        o->high_watermark = -1;
        return o;
}

int cs_batch_advance(struct cs_batch *b, int32_t partition, int64_t next_offset,
                     const struct cs_watermark *w)
{
        struct cs_partition_offset *o = cs_batch_partition(b, partition);

        if (!o)
                return -1;
        if (next_offset > o->next_offset) {
                o->next_offset = next_offset;
                o->watermark = *w;
        }
        return 0;
}
