/* cs_dedup.h: the crime_ids already seen in the current batch.
 *
 * The database decides whether a call is new across batches (its calls table
 * is keyed by crime_id); this set keeps the first copy within one batch, so a
 * batch hands the database at most one copy of each call. No I/O. */
#ifndef CS_DEDUP_H
#define CS_DEDUP_H

#include "cs_common.h"

struct cs_dedup;

/* Returns a set sized for about expected ids, or NULL when out of memory. */
struct cs_dedup *cs_dedup_new(size_t expected);
/* Frees the set; NULL is accepted. */
void cs_dedup_destroy(struct cs_dedup *d);
/* Empties the set, keeping its memory. */
void cs_dedup_reset(struct cs_dedup *d);
/* Adds id when absent. Returns 1 if it was added, 0 if it was already there,
 * -1 when out of memory. id is borrowed: it must stay valid until the next
 * reset (callers keep it in the batch arena). */
int cs_dedup_add(struct cs_dedup *d, struct cs_str id) CS_MUSTCHECK;
/* The order in which id was added (0 for the first), or (size_t)-1 when it
 * is not in the set. */
size_t cs_dedup_index(const struct cs_dedup *d, struct cs_str id);

/* Number of ids in the set. */
size_t cs_dedup_count(const struct cs_dedup *d);

#endif
