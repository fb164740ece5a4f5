/* dedup.c: an open-addressing hash set of borrowed crime_ids. */
#include <stdlib.h>
#include <string.h>

#include "cs_dedup.h"

struct slot {
        const char *ptr; /* NULL: empty */
        size_t len;
        size_t index; /* the order it was added in, from 0 */
        uint64_t hash;
};

struct cs_dedup {
        struct slot *slots;
        size_t mask; /* capacity - 1, capacity a power of two */
        size_t count;
};

static int resize(struct cs_dedup *d, size_t capacity)
{
        struct slot *slots = calloc(capacity, sizeof(*slots));
        size_t i;

        if (!slots)
                return -1;
        for (i = 0; d->slots && i <= d->mask; i++) {
                struct slot *s = &d->slots[i];
                size_t j;

                if (!s->ptr)
                        continue;
                for (j = s->hash & (capacity - 1); slots[j].ptr;
                     j = (j + 1) & (capacity - 1))
                        ;
                slots[j] = *s;
        }
        free(d->slots);
        d->slots = slots;
        d->mask = capacity - 1;
        return 0;
}

struct cs_dedup *cs_dedup_new(size_t expected)
{
        struct cs_dedup *d = calloc(1, sizeof(*d));
        size_t capacity = 64;

        if (!d)
                return NULL;
        while (capacity < expected * 2)
                capacity *= 2;
        if (resize(d, capacity) < 0) {
                free(d);
                return NULL;
        }
        return d;
}

void cs_dedup_destroy(struct cs_dedup *d)
{
        if (!d)
                return;
        free(d->slots);
        free(d);
}

void cs_dedup_reset(struct cs_dedup *d)
{
        if (d->count)
                memset(d->slots, 0, (d->mask + 1) * sizeof(*d->slots));
        d->count = 0;
}

/* Returns the slot of id, or the empty slot where it would go. */
static struct slot *lookup(const struct cs_dedup *d, struct cs_str id,
                           uint64_t h)
{
        size_t i;

        for (i = h & d->mask; d->slots[i].ptr; i = (i + 1) & d->mask) {
                const struct slot *s = &d->slots[i];

                if (s->hash == h && s->len == id.len &&
                    !memcmp(s->ptr, id.ptr, id.len))
                        break;
        }
        return &d->slots[i];
}

int cs_dedup_add(struct cs_dedup *d, struct cs_str id)
{
        uint64_t h = cs_hash(id.ptr, id.len, 0);
        struct slot *s;

        /* Keep the load under one half so probes stay short. */
        if ((d->count + 1) * 2 > d->mask + 1 &&
            resize(d, (d->mask + 1) * 2) < 0)
                return -1;
        s = lookup(d, id, h);
        if (s->ptr)
                return 0;
        s->ptr = id.ptr;
        s->len = id.len;
        s->hash = h;
        s->index = d->count++;
        return 1;
}

size_t cs_dedup_index(const struct cs_dedup *d, struct cs_str id)
{
        const struct slot *s = lookup(d, id, cs_hash(id.ptr, id.len, 0));

        return s->ptr ? s->index : (size_t)-1;
}

size_t cs_dedup_count(const struct cs_dedup *d)
{
        return d->count;
}
