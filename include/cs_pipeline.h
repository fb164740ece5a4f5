/* cs_pipeline.h: the ingest pipeline, source (Kafka or a file) -> parse ->
 * dedup -> window -> sink, one database transaction per batch: a consumer
 * thread fills the next batch while the caller's thread commits the last
 * (pipeline.c says who owns what). */
#ifndef CS_PIPELINE_H
#define CS_PIPELINE_H

#include <signal.h>

#include "cs_window.h"

struct cs_sink;
struct cs_stats;
struct cs_progress;

/* Event times are naive local times: the most any time zone is ahead of
 * UTC (UTC+14, Line Islands), so a call "now" is never rejected. */
#define CS_MAX_LOCAL_OFFSET (14 * 3600)

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
        /* How long to wait for the database (and the broker) at start,
         * in ms; 0 waits until stopped. */
        int64_t startup_timeout_ms;
        /* --max-future: a call whose event time is more than this many
         * seconds past the wall clock plus CS_MAX_LOCAL_OFFSET is rejected
         * (it would hold the watermark far ahead for good); < 0: no check. */
        int64_t max_future;
        /* After the start: give up once the Kafka brokers have been
         * unreachable this long, in ms; 0 retries until stopped. */
        int64_t broker_timeout_ms;
        size_t batch_max_records;
        int batch_max_ms; /* accepted, unused: batches wait for no timer */
        /* --max-rate-per-partition: messages a second per partition (the
         * source pauses a partition over it); 0: no limit. */
        double max_rate_per_partition;
        /* --partition-order fetch: Kafka's partitions as fetched, not
         * merged by timestamp (cs_kafka_source_conf.fetch_order). */
        int fetch_order;
        int durability; /* --durability: CS_DURABILITY_... (cs_sink.h) */
        const char *const *props; /* -X name=value */
        size_t nprops;
        /* Optional (NULL: none), borrowed for the run: the stats the run
         * keeps up to date (cs_stats.h) and the progress reporter its
         * writer feeds each committed batch (cs_progress.h). */
        struct cs_stats *stats;
        struct cs_progress *progress;
        /* --format: CS_FORMAT_JSON (0), _AVRO or _AUTO (cs_avro.h); avro
         * decodes the Avro messages, borrowed, used by the consumer thread
         * alone. */
        int format;
        struct cs_avro_decoder *avro;
};

/* Waits for the database to come up (cs_sink_open() or migrate returning
 * CS_RETRY), with backoff and a warning per attempt, up to
 * conf->startup_timeout_ms; *stop ends the wait at once. Returns 0 with the
 * migrated sink in *out (the caller closes it), 1 when stopped, or -1 after
 * logging why. */
int cs_pipeline_open_sink(const struct cs_pipeline_conf *conf,
                          volatile sig_atomic_t *stop, struct cs_sink **out);

/* Fault injection for tests: hook gets each sink cs_pipeline_run() opens,
 * before the run uses it, and may replace its ops (a table that fails or
 * slows some calls and passes the rest on). NULL: none. Set it only while
 * no pipeline runs. */
void cs_pipeline_set_sink_hook(void (*hook)(struct cs_sink *s));

/* The checks the ingest makes of a parsed call beyond cs_parse_call(),
 * under conf's specs and max_future: every window within years 0001-9999,
 * the event time not too far in the future. Returns 0, or -1 with the
 * reason a rejected_records row would get (`callstream tail --check`). */
int cs_pipeline_check_call(const struct cs_pipeline_conf *conf, int64_t ts,
                           char *reason, size_t reason_size);

/* Runs until *stop is set (by a signal handler), or with exit_at_end until
 * every assigned partition is consumed to its end and committed. With a
 * file, replays it (from where an earlier replay of it stopped) and returns
 * at its end. Returns 0, CS_REFUSED (cs_topics.h: the stored position does
 * not fit the input, a usage error) or -1, after logging why. Whatever was
 * consumed is committed before return, or rolled back whole. */
int cs_pipeline_run(const struct cs_pipeline_conf *conf,
                    volatile sig_atomic_t *stop);

#endif
