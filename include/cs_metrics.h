/* cs_metrics.h: the ingest's stats (cs_stats.h) as the Prometheus text
 * exposition format (version 0.0.4), for `callstream ingest --http`'s
 * /metrics, and the verdict of its /healthz. */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "cs_stats.h"

/* The Content-Type of the page. */
#define CS_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Writes every metric of snap to f (README: "Progress and metrics" lists
 * them). now is cs_now_ms(). */
void cs_metrics_render(const struct cs_stats_snapshot *snap, int64_t now,
                       FILE *f);

/* Returns 0 while the ingest can make progress, with a one-line summary in
 * reason, or 1 with the reason when the database or the Kafka brokers have
 * been out of reach for longer than timeout_ms (> 0) at now. */
int cs_metrics_health(const struct cs_stats_snapshot *snap, int64_t now,
                      int64_t timeout_ms, char *reason, size_t reason_size);

#endif
