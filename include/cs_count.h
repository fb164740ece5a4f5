/* cs_count.h: the one rule for counting a call into its windows, used by
 * the ingest (each new, replacing or replaced call of a batch) and by
 * rebuild (each stored call), so that a rebuild equals a fresh ingest. */
#ifndef CS_COUNT_H
#define CS_COUNT_H

#include "cs_batch.h"
#include "cs_window.h"

/* One call as the rule sees it; strings borrowed for the call. */
struct cs_count_call {
        struct cs_str crime_type;
        struct cs_str disposition; /* none and empty are one key: '' */
        int64_t ts;                /* event time, seconds */
        int has_mark;              /* it was counted against a watermark */
        struct cs_time mark;
        int drop; /* under --late-policy drop */
};

/* What counting one call of one spec did. */
struct cs_count_result {
        int late;    /* it was late for some window (final when counted) */
        int dropped; /* final windows it was left out of (drop) */
        int counted; /* windows in range it was added to */
};

/* Adds sign (1, or -1 to take a replaced copy back) to every window of
 * spec (index spec_index in agg) that holds c and starts in [from, to). A
 * window is final for the call when the watermark it was counted against
 * had passed the window's end: it is counted there as late, or under drop
 * left out (and counted in dropped, whatever its start). starts needs room
 * for CS_WINDOW_MAX_PER_EVENT. Returns 0, or -1 when out of memory. */
int cs_count_call(struct cs_window_agg *agg, int spec_index,
                  const struct cs_window_spec *spec,
                  const struct cs_count_call *c, int sign, int64_t from,
                  int64_t to, int64_t *starts,
                  struct cs_count_result *res) CS_MUSTCHECK;

#endif
