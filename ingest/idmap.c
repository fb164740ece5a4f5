/* idmap.c: text to id maps for the sinks' dictionaries (cs_idmap.h). */
#include <stdlib.h>
#include <string.h>

#include "cs_idmap.h"

int64_t cs_idmap_find(const struct cs_idmap *m, const char *key, size_t len,
                      uint64_t h)
{
        size_t i;

        if (!m->cap)
                return -1;
        for (i = h & (m->cap - 1); m->slot[i].key; i = (i + 1) & (m->cap - 1))
                if (m->slot[i].hash == h && m->slot[i].len == len &&
                    !memcmp(m->slot[i].key, key, len))
                        return m->slot[i].id;
        return -1;
}

/* Doubles the table (64 slots to start with). */
static int grow(struct cs_idmap *m)
{
        struct cs_idmap big = {0};
        size_t i, j;

        big.cap = m->cap ? m->cap * 2 : 64;
        if (!(big.slot = calloc(big.cap, sizeof(*big.slot))))
                return -1;
        big.n = m->n;
        for (i = 0; i < m->cap; i++) {
                if (!m->slot[i].key)
                        continue;
                for (j = m->slot[i].hash & (big.cap - 1); big.slot[j].key;
                     j = (j + 1) & (big.cap - 1))
                        ;
                big.slot[j] = m->slot[i];
        }
        free(m->slot);
        *m = big;
        return 0;
}

int cs_idmap_add(struct cs_idmap *m, const char *key, size_t len, uint64_t h,
                 int64_t id)
{
        struct cs_idmap_entry *e;
        size_t i;

        if (cs_idmap_find(m, key, len, h) >= 0)
                return 0;
        if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
                return -1;
        for (i = h & (m->cap - 1); m->slot[i].key; i = (i + 1) & (m->cap - 1))
                ;
        e = &m->slot[i];
        if (!(e->key = malloc(len + 1)))
                return -1;
        memcpy(e->key, key, len);
        e->key[len] = '\0';
        e->len = len;
        e->hash = h;
        e->id = id;
        m->n++;
        return 0;
}

void cs_idmap_clear(struct cs_idmap *m)
{
        size_t i;

        for (i = 0; i < m->cap; i++)
                free(m->slot[i].key);
        free(m->slot);
        memset(m, 0, sizeof(*m));
}
