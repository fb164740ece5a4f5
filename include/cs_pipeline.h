/* cs_pipeline.h: the ingest pipeline, kafka_source -> parse -> dedup ->
 * window -> sink, one database transaction per batch. */
#ifndef CS_PIPELINE_H
#define CS_PIPELINE_H

#include <signal.h>

#include "cs_window.h"

struct cs_pipeline_conf {
        const char *db;     /* every pointer is borrowed for the run */
        const char *schema; /* PostgreSQL schema, or NULL */
        const char *brokers;
        const char *topic; /* with file: the name its calls are stored under,
                              and its position with its input's identity */
        const char *file;  /* replay this file instead of consuming Kafka */
        const char *group;
        const struct cs_window_spec *specs;
        int nspecs;
        int from_beginning;
        int exit_at_end;
        int64_t allowed_lateness; /* seconds */
        int late_drop;            /* --late-policy drop */
        int update;               /* --on-duplicate update */
        int64_t retention;        /* seconds; 0 keeps everything */
        size_t batch_max_records;
        int batch_max_ms;
        const char *const *props; /* -X name=value */
        size_t nprops;
};

/* Runs until *stop is set (by a signal handler), or with exit_at_end until
 * every assigned partition is consumed to its end and committed. With a
 * file, replays it (from where an earlier replay of it stopped) and returns
 * at its end. Returns 0, CS_REFUSED (cs_topics.h: the stored position does
 * not fit the input, a usage error) or -1, after logging why. Whatever was
 * consumed is committed before return, or rolled back whole. */
int cs_pipeline_run(const struct cs_pipeline_conf *conf,
                    volatile sig_atomic_t *stop);

#endif
