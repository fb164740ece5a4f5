/* cs_rebuild.h: recomputes window counts from the stored calls, e.g. after
 * adding a window spec, with the same rules as the ingest: each call is
 * counted against the watermark stored with it, under the late policy it was
 * stored with. Idempotent; safe while an ingest runs (its window writes wait
 * for the rebuild's transaction). */
#ifndef CS_REBUILD_H
#define CS_REBUILD_H

#include "cs_window.h"

struct cs_rebuild_conf {
        const char *db; /* borrowed, like every pointer here */
        const char *schema;
        const struct cs_window_spec *specs; /* none: those in the database */
        int nspecs;
        int64_t from, to; /* windows starting in [from, to), in seconds */
};

/* Returns 0, or -1 after logging why; nothing changes on failure. */
int cs_rebuild_run(const struct cs_rebuild_conf *conf);

#endif
