/* cs_progress.h: `callstream ingest --progress`: after each committed batch
 * (or at most every --progress-interval), one JSON line shaped like Spark's
 * StreamingQueryProgress, or on a terminal a line redrawn in place.
 *
 * id is the same for every run over the same database, schema, topic and
 * group (a hash of them, any password left out); runId is new for each
 * run. The reporter belongs to the pipeline's writer thread: every call
 * but new and destroy comes from there. */
#ifndef CS_PROGRESS_H
#define CS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "cs_stats.h"

enum cs_progress_mode {
        CS_PROGRESS_OFF = 0,
        CS_PROGRESS_JSON,
        CS_PROGRESS_HUMAN,
};

struct cs_progress_conf {
        enum cs_progress_mode mode;
        const char *file;    /* append the lines here; NULL: stderr */
        int64_t interval_ms; /* at most one report per interval; 0: each */
        /* What the query is, for id and sources (borrowed). */
        const char *db, *schema, *topic, *group;
        const char *source; /* "kafka" or "file" */
};

struct cs_progress;

/* Returns a reporter for conf (copied), or NULL with errstr (a file that
 * cannot be opened). A mode of CS_PROGRESS_OFF gives a reporter that
 * reports nothing. */
struct cs_progress *cs_progress_new(const struct cs_progress_conf *conf,
                                    char *errstr, size_t errstr_size);

/* Adds one committed batch; reports when due. Accepts a NULL p. */
void cs_progress_batch(struct cs_progress *p, const struct cs_stats_batch *b);

/* The query's id and this run's runId (36-character UUIDs). */
const char *cs_progress_id(const struct cs_progress *p);
const char *cs_progress_run_id(const struct cs_progress *p);

/* Reports what is still pending, ends a line drawn in place, closes the
 * file and frees p. Accepts NULL. */
void cs_progress_destroy(struct cs_progress *p);

#endif
