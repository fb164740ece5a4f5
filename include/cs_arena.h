/* cs_arena.h: a bump allocator for one batch's bytes.
 *
 * Memory comes in large blocks that never move, so pointers stay valid until
 * cs_arena_reset(); reset keeps the blocks for the next batch, so a batch in
 * steady state allocates nothing. */
#ifndef CS_ARENA_H
#define CS_ARENA_H

#include "cs_common.h"

struct cs_arena;

/* Returns a new arena, or NULL when out of memory. */
struct cs_arena *cs_arena_new(void);
/* Frees the arena and everything in it; NULL is accepted. */
void cs_arena_destroy(struct cs_arena *a);
/* Forgets every allocation; the memory is kept for reuse. */
void cs_arena_reset(struct cs_arena *a);
/* Returns len bytes of space (not aligned), or NULL when out of memory. */
char *cs_arena_alloc(struct cs_arena *a, size_t len);
/* Copies s into the arena; *out borrows from the arena. A NULL s stays NULL.
 * Returns 0, or -1 when out of memory. */
int cs_arena_copy(struct cs_arena *a, struct cs_str s,
                  struct cs_str *out) CS_MUSTCHECK;

/* Makes room for one more element in the growable array arr, which holds
 * n of cap allocated, doubling it when full. Evaluates to 0, or -1 when out
 * of memory (arr untouched). */
#define CS_RESERVE(arr, n, cap)                                                \
        ((n) < (cap) ? 0 : cs_reserve(&(arr), &(cap), sizeof(*(arr))))

/* CS_RESERVE's worker: arrp points to the array pointer. */
int cs_reserve(void *arrp, size_t *cap, size_t elem_size) CS_MUSTCHECK;

#endif
