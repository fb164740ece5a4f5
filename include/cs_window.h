/* cs_window.h: event-time window specs and window assignment.
 *
 * A spec is "SIZE" (tumbling) or "SIZE/SLIDE" (hopping), each a positive
 * integer with unit s, m, h or d. Windows are aligned to 1970-01-01 00:00:00:
 * an event at time t is in every window [start, start + size) whose start is
 * a multiple of the slide. No I/O, no global state. */
#ifndef CS_WINDOW_H
#define CS_WINDOW_H

#include "cs_arena.h"
#include "cs_common.h"

/* Most windows one event can fall into (size / slide is capped at this). */
#define CS_WINDOW_MAX_PER_EVENT 1024
/* Longest window size or slide: 366 days. */
#define CS_WINDOW_MAX_SECONDS (366LL * 86400)
#define CS_WINDOW_NAME_MAX    32

struct cs_window_spec {
        int64_t size;  /* seconds */
        int64_t slide; /* seconds; == size for a tumbling window */
        char name[CS_WINDOW_NAME_MAX]; /* normalised: "1h", "1h/15m", "90m" */
};

/* Parses spec (NUL-terminated) into *out. Returns 0, or -1 with a reason in
 * errstr ("unknown unit 'x'", "slide larger than size"...). */
int cs_window_spec_parse(const char *spec, struct cs_window_spec *out,
                         char *errstr, size_t errstr_size) CS_MUSTCHECK;

/* Parses a duration "N<unit>" (unit s, m, h or d; "0" alone for zero) into
 * seconds in [min, max]. Returns 0, or -1 with the reason in errstr. */
int cs_duration_parse(const char *s, int64_t min, int64_t max, int64_t *out,
                      char *errstr, size_t errstr_size) CS_MUSTCHECK;

/* Writes the start of every window of spec that contains t to starts[],
 * in ascending order, and returns how many (1 .. CS_WINDOW_MAX_PER_EVENT).
 * starts must have room for ceil(size / slide) entries. */
int cs_window_assign(const struct cs_window_spec *spec, int64_t t,
                     int64_t *starts);

/* One window count: calls of one crime type and disposition in one window. */
struct cs_window_count {
        int spec;      /* index into the caller's spec array */
        int64_t start; /* window start, seconds since 1970 */
        struct cs_str crime_type;
        struct cs_str disposition; /* ptr NULL when the call had none */
        int64_t calls;
        int64_t late_calls; /* of calls, those counted after it was final */
        uint64_t hash;
};

/* The window counts of one batch, summed by key. Strings are borrowed and
 * must outlive the next reset (they live in the batch arena). */
struct cs_window_agg;

/* Returns an empty aggregate, or NULL when out of memory. */
struct cs_window_agg *cs_window_agg_new(void);
/* Frees it; NULL is accepted. */
void cs_window_agg_destroy(struct cs_window_agg *agg);
/* Empties it, keeping its memory. */
void cs_window_agg_reset(struct cs_window_agg *agg);
/* Adds delta calls, late of them late, to the key. Returns 0, or -1 when
 * out of memory. */
int cs_window_agg_add(struct cs_window_agg *agg, int spec, int64_t start,
                      struct cs_str crime_type, struct cs_str disposition,
                      int64_t delta, int64_t late) CS_MUSTCHECK;
/* From now on, rows copy their strings into arena (borrowed) instead of
 * borrowing them: for callers whose strings do not last. NULL undoes it. */
void cs_window_agg_set_arena(struct cs_window_agg *agg, struct cs_arena *arena);

/* The summed counts, in first-seen order; *n gets their number. */
const struct cs_window_count *
cs_window_agg_rows(const struct cs_window_agg *agg, size_t *n);

#endif
