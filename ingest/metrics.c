/* metrics.c: the stats as Prometheus text (cs_metrics.h), and /healthz's
 * verdict. */
#include <stdio.h>
#include <string.h>

#include "cs_metrics.h"

/* "# HELP" and "# TYPE" of one metric. */
static void head(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
        head(f, name, "counter", help);
        fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(FILE *f, const char *name, const char *help, long long v)
{
        head(f, name, "gauge", help);
        fprintf(f, "%s %lld\n", name, v);
}

/* A label value, escaped as the format asks: backslash, quote, newline. */
static void label_value(FILE *f, const char *s)
{
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fprintf(f, "\\%c", *s);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

static void histogram(FILE *f, const char *name, const char *help,
                      const struct cs_stats_hist *h, const double *bounds,
                      int nbounds)
{
        uint64_t cum = 0;
        int i;

        head(f, name, "histogram", help);
        for (i = 0; i < nbounds; i++) {
                cum += h->counts[i];
                fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                        (unsigned long long)cum);
        }
        fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                (unsigned long long)h->count);
        fprintf(f, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name,
                (unsigned long long)h->count);
}

/* One sample per partition of a per-partition gauge; which: 0 lag, 1 next
 * offset, 2 watermark. */
static void per_partition(FILE *f, const struct cs_stats_snapshot *snap,
                          const char *name, const char *help, int which)
{
        size_t i;

        head(f, name, "gauge", help);
        for (i = 0; i < snap->nparts; i++) {
                const struct cs_stats_partition *p = &snap->parts[i];

                if (which == 0 && (p->high_watermark < 0 || p->next_offset < 0))
                        continue;
                if (which == 1 && p->next_offset < 0)
                        continue;
                if (which == 2 && !p->has_watermark)
                        continue;
                fprintf(f, "%s{topic=\"", name);
                label_value(f, snap->topic);
                fprintf(f, "\",partition=\"%d\"} ", (int)p->partition);
                if (which == 0)
                        fprintf(f, "%lld\n",
                                (long long)(p->high_watermark > p->next_offset
                                                    ? p->high_watermark -
                                                              p->next_offset
                                                    : 0));
                else if (which == 1)
                        fprintf(f, "%lld\n", (long long)p->next_offset);
                else
                        fprintf(f, "%.6f\n",
                                (double)p->watermark.sec +
                                        (double)p->watermark.usec / 1e6);
        }
}

void cs_metrics_render(const struct cs_stats_snapshot *snap, int64_t now,
                       FILE *f)
{
        size_t i;

        (void)now;
        counter(f, "callstream_messages_consumed_total",
                "Messages consumed and committed to the database.",
                snap->messages);
        counter(f, "callstream_calls_stored_total",
                "New calls stored (first valid copy of a crime_id).",
                snap->calls);
        counter(f, "callstream_duplicates_total",
                "Valid copies of a call already stored or in the same batch.",
                snap->duplicates);
        head(f, "callstream_rejected_total", "counter",
             "Messages rejected (rejected_records rows), by reason.");
        for (i = 0; i < snap->nreasons; i++)
                fprintf(f, "callstream_rejected_total{reason=\"%s\"} %llu\n",
                        snap->reasons[i].name,
                        (unsigned long long)snap->reasons[i].count);
        counter(f, "callstream_late_total",
                "Calls counted in, or dropped from, final windows.",
                snap->late);
        counter(f, "callstream_updated_total",
                "Stored calls replaced by a changed copy (--on-duplicate "
                "update).",
                snap->updated);
        counter(f, "callstream_batches_total",
                "Batches committed, one database transaction each.",
                snap->batches);
        counter(f, "callstream_database_reconnects_total",
                "Reconnections to the database after an outage.",
                snap->reconnects);
        histogram(f, "callstream_batch_duration_seconds",
                  "Time to write and commit a batch.", &snap->batch_seconds,
                  cs_stats_batch_bounds, CS_STATS_NBATCH_BOUNDS);
        histogram(f, "callstream_freshness_seconds",
                  "Time from a message's Kafka timestamp to its commit.",
                  &snap->freshness_seconds, cs_stats_fresh_bounds,
                  CS_STATS_NFRESH_BOUNDS);
        per_partition(f, snap, "callstream_lag_messages",
                      "Messages in the partition not yet committed.", 0);
        per_partition(f, snap, "callstream_next_offset",
                      "The partition's next offset to consume, as committed.",
                      1);
        per_partition(f, snap, "callstream_watermark_seconds",
                      "The partition's event-time watermark, seconds since "
                      "1970 (naive local time read as UTC).",
                      2);
        gauge(f, "callstream_batches_in_flight",
              "Batches handed to the writer and not yet committed.",
              snap->in_flight);
        gauge(f, "callstream_database_up",
              "1 while the database is reachable, else 0.",
              snap->db_down_since == 0);
        gauge(f, "callstream_broker_up",
              "1 while the Kafka brokers are reachable, else 0.",
              snap->broker_down_since == 0);
}

int cs_metrics_health(const struct cs_stats_snapshot *snap, int64_t now,
                      int64_t timeout_ms, char *reason, size_t reason_size)
{
        if (snap->db_down_since && now - snap->db_down_since > timeout_ms) {
                snprintf(reason, reason_size, "database unreachable for %lld s",
                         (long long)((now - snap->db_down_since) / 1000));
                return 1;
        }
        if (snap->broker_down_since &&
            now - snap->broker_down_since > timeout_ms) {
                snprintf(reason, reason_size,
                         "Kafka brokers unreachable for %lld s",
                         (long long)((now - snap->broker_down_since) / 1000));
                return 1;
        }
        if (snap->last_commit_ms)
                snprintf(reason, reason_size,
                         "ok: %llu batches committed, the last %lld s ago",
                         (unsigned long long)snap->batches,
                         (long long)((now - snap->last_commit_ms) / 1000));
        else
                snprintf(reason, reason_size, "ok: no batch committed yet");
        return 0;
}
