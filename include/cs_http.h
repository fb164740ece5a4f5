/* cs_http.h: the live report page of `callstream ingest --http`: a small
 * libmicrohttpd server, on a thread of its own, that renders the report
 * (cs_report.h) for each request.
 *
 *   /                  the standard report as an HTML page the browser
 *                      reloads every CS_HTTP_REFRESH_S seconds (by default
 *                      the windows of the last CS_HTTP_DEFAULT_LAST_S)
 *   /report.csv .json .ndjson .md .html
 *                      the report in that format
 *   /metrics           the ingest's stats in Prometheus text format
 *                      (cs_metrics.h), once cs_http_set_stats() is called
 *   /healthz           200 and one line while the ingest can make
 *                      progress, 503 and the reason when the database or
 *                      the brokers have been out of reach too long
 *
 * Every path takes the options of `callstream report` as query parameters
 * (view, window (repeatable), from, to, last, final-only, top). A bad one
 * is answered 400, an unknown path 404, a database out of reach 503, each
 * with a one-line text message. Each request opens the report's own
 * read-only connection (cs_report_render()), so the server never touches
 * the ingest's writer connection. */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <stddef.h>

#include "cs_common.h"

#define CS_HTTP_REFRESH_S      5
#define CS_HTTP_DEFAULT_LAST_S (24 * 3600)

struct cs_http;

/* Checks an --http address: "HOST:PORT", "[V6]:PORT" or ":PORT" (host
 * 127.0.0.1), port 0 to 65535 (0: any free port). Returns 0, or -1 with
 * the reason in errstr. */
int cs_http_addr_check(const char *addr, char *errstr,
                       size_t errstr_size) CS_MUSTCHECK;

/* Listens on addr (as cs_http_addr_check()) and serves the reports of the
 * database db (schema: PostgreSQL schema or NULL) until cs_http_stop();
 * logs the URL it listens on. db and schema are copied. Returns 0 and sets
 * *out, CS_ERR with the reason in errstr (an address in use, say), or
 * CS_REFUSED when addr itself is malformed. */
int cs_http_start(const char *addr, const char *db, const char *schema,
                  struct cs_http **out, char *errstr,
                  size_t errstr_size) CS_MUSTCHECK;

struct cs_stats;

/* Serves /metrics and /healthz from stats (borrowed: it must outlive the
 * server), unhealthy after health_timeout_ms out of reach. Until called,
 * both answer 503. */
void cs_http_set_stats(struct cs_http *h, struct cs_stats *stats,
                       int64_t health_timeout_ms);

/* The port the server listens on (the one chosen when addr asked for 0). */
int cs_http_port(const struct cs_http *h);

/* Stops the server, waiting for requests in progress, and frees h.
 * Accepts NULL. */
void cs_http_stop(struct cs_http *h);

#endif
