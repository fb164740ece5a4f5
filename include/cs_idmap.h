/* cs_idmap.h: a map from text to integer id, for the sinks' dictionaries
 * (crime types, dispositions, window specs): open addressing with linear
 * probing, grown at half full. The map owns copies of its keys. */
#ifndef CS_IDMAP_H
#define CS_IDMAP_H

#include "cs_common.h"

struct cs_idmap_entry {
        char *key; /* NUL-terminated copy; NULL: a free slot */
        size_t len;
        uint64_t hash;
        int64_t id;
};

struct cs_idmap {
        struct cs_idmap_entry *slot;
        size_t cap, n; /* cap a power of two, or 0 */
};

/* The id of key (h = cs_hash(key, len, 0)), or -1 when it is not there. */
int64_t cs_idmap_find(const struct cs_idmap *m, const char *key, size_t len,
                      uint64_t h);

/* Adds key (h as above) with id unless it is there already. Returns 0, or
 * -1 when out of memory (the map is left as it was). */
int cs_idmap_add(struct cs_idmap *m, const char *key, size_t len, uint64_t h,
                 int64_t id);

/* Frees every key and the table, leaving an empty map. */
void cs_idmap_clear(struct cs_idmap *m);

#endif
