/* http.c: the live report page of `callstream ingest --http`, served by
 * libmicrohttpd on its own threads; every page is cs_report_render()'s. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sqlite3.h>

#include "cs_cli.h"
#include "cs_http.h"
#include "cs_metrics.h"
#include "cs_report.h"
#include "cs_sink.h"
#include "cs_time.h"
#include "cs_window.h"

#define HOST_MAX 256

struct cs_http {
        struct MHD_Daemon *mhd;
        char *db, *schema;
        int port;
        /* Set once by cs_http_set_stats() while the server runs: read
         * with atomics by the request threads. */
        struct cs_stats *stats;
        int64_t health_timeout_ms;
};

/* Splits addr into host and port ("" host: loopback). Returns 0, or -1
 * with the reason in errstr. */
static int split_addr(const char *addr, char *host, size_t host_size,
                      char *port, size_t port_size, char *errstr,
                      size_t errstr_size)
{
        const char *colon, *h = addr, *hend;
        char *end;
        long p;

        if (addr[0] == '[') {
                h = addr + 1;
                hend = strchr(h, ']');
                if (!hend || hend[1] != ':') {
                        snprintf(errstr, errstr_size,
                                 "invalid address '%s': expected [IPV6]:PORT",
                                 addr);
                        return -1;
                }
                colon = hend + 1;
        } else {
                colon = strrchr(addr, ':');
                if (!colon) {
                        snprintf(errstr, errstr_size,
                                 "invalid address '%s': expected HOST:PORT "
                                 "or :PORT",
                                 addr);
                        return -1;
                }
                hend = colon;
        }
        errno = 0;
        p = strtol(colon + 1, &end, 10);
        if (colon[1] < '0' || colon[1] > '9' || *end || errno || p > 65535) {
                snprintf(errstr, errstr_size,
                         "invalid address '%s': the port must be 0 to 65535",
                         addr);
                return -1;
        }
        if ((size_t)(hend - h) >= host_size) {
                snprintf(errstr, errstr_size,
                         "invalid address '%s': host name too long", addr);
                return -1;
        }
        if (hend == h)
                snprintf(host, host_size, "127.0.0.1");
        else
                snprintf(host, host_size, "%.*s", (int)(hend - h), h);
        snprintf(port, port_size, "%ld", p);
        return 0;
}

int cs_http_addr_check(const char *addr, char *errstr, size_t errstr_size)
{
        char host[HOST_MAX], port[24];

        return split_addr(addr, host, sizeof(host), port, sizeof(port), errstr,
                          errstr_size);
}

/*
 * Requests.
 */

/* What the query parameters asked for, or the first thing wrong with them. */
struct query {
        struct cs_report_opts o;
        struct cs_window_spec specs[CS_REPORT_MAX_WINDOWS];
        char err[512];
};

/* Reads from/to as `callstream report` does: a date, or date and time. */
static int parse_bound(const char *val, int64_t *out)
{
        char buf[40];
        int32_t usec;

        if (strlen(val) > 26)
                return -1;
        snprintf(buf, sizeof(buf), "%s%s", val,
                 strlen(val) == 10 ? " 00:00" : "");
        return cs_time_parse(buf, strlen(buf), out, &usec) ? -1 : 0;
}

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind,
                              const char *key, const char *val)
{
        struct query *q = cls;
        struct cs_report_opts *o = &q->o;
        char why[256];
        long long n;
        char *end;
        int i;

        (void)kind;
        if (!strcmp(key, "final-only")) {
                /* "?final-only" alone, as the flag; or a yes/no value. */
                if (!val || !*val || !strcmp(val, "1") ||
                    !strcmp(val, "true") || !strcmp(val, "yes"))
                        o->final_only = 1;
                else if (!strcmp(val, "0") || !strcmp(val, "false") ||
                         !strcmp(val, "no"))
                        o->final_only = 0;
                else
                        goto bad;
                return MHD_YES;
        }
        if (!val)
                val = "";
        if (!strcmp(key, "view")) {
                if (cs_report_view_takes(val) < 0) {
                        snprintf(q->err, sizeof(q->err),
                                 "unknown view '%.64s': expected one of %s",
                                 val, cs_report_views());
                        return MHD_NO;
                }
                o->view = val; /* the connection's, valid for the request */
        } else if (!strcmp(key, "window")) {
                if (o->nwindows == CS_REPORT_MAX_WINDOWS) {
                        snprintf(q->err, sizeof(q->err), "more than %d windows",
                                 CS_REPORT_MAX_WINDOWS);
                        return MHD_NO;
                }
                if (cs_window_spec_parse(val, &q->specs[o->nwindows], why,
                                         sizeof(why)) < 0) {
                        snprintf(q->err, sizeof(q->err),
                                 "invalid window '%.64s': %s", val, why);
                        return MHD_NO;
                }
                for (i = 0; i < o->nwindows; i++)
                        if (!strcmp(q->specs[i].name,
                                    q->specs[o->nwindows].name)) {
                                snprintf(q->err, sizeof(q->err),
                                         "window %s given twice",
                                         q->specs[i].name);
                                return MHD_NO;
                        }
                o->windows[o->nwindows] = q->specs[o->nwindows].name;
                o->nwindows++;
        } else if (!strcmp(key, "from")) {
                if (parse_bound(val, &o->from) < 0)
                        goto bad_time;
                o->has_from = 1;
        } else if (!strcmp(key, "to")) {
                if (parse_bound(val, &o->to) < 0)
                        goto bad_time;
                o->has_to = 1;
        } else if (!strcmp(key, "last")) {
                if (cs_duration_parse(val, 1, CS_CLI_DURATION_MAX, &o->last,
                                      why, sizeof(why)) < 0) {
                        snprintf(q->err, sizeof(q->err),
                                 "invalid last '%.64s': %s", val, why);
                        return MHD_NO;
                }
        } else if (!strcmp(key, "top")) {
                errno = 0;
                n = strtoll(val, &end, 10);
                if (!*val || *end || errno || n < 1 || n > 1000000) {
                        snprintf(q->err, sizeof(q->err),
                                 "invalid top '%.64s': expected 1 to 1000000",
                                 val);
                        return MHD_NO;
                }
                o->top = (int)n;
        } else {
                snprintf(q->err, sizeof(q->err),
                         "unknown parameter '%.64s': expected view, window, "
                         "from, to, last, final-only or top",
                         key);
                return MHD_NO;
        }
        return MHD_YES;
bad_time:
        snprintf(q->err, sizeof(q->err),
                 "invalid %s '%.64s': expected YYYY-MM-DD [HH:MM[:SS]]", key,
                 val);
        return MHD_NO;
bad:
        snprintf(q->err, sizeof(q->err), "invalid %s '%.64s'", key, val);
        return MHD_NO;
}

/* The checks of `callstream report` across options. Returns 0, or -1 with
 * q->err. */
static int check_query(struct query *q)
{
        const struct cs_report_opts *o = &q->o;
        int takes = cs_report_view_takes(o->view);

        if (o->has_from && o->has_to && o->from >= o->to) {
                snprintf(q->err, sizeof(q->err), "from must come before to");
                return -1;
        }
        if (!(takes & CS_REPORT_TAKES_WINDOWS) &&
            (o->nwindows || o->has_from || o->has_to || o->last)) {
                snprintf(q->err, sizeof(q->err),
                         "view %s has no windows: window, from, to and last "
                         "do not apply",
                         o->view);
                return -1;
        }
        if (!(takes & CS_REPORT_TAKES_FINAL) && o->final_only) {
                snprintf(q->err, sizeof(q->err),
                         "final-only does not apply to view %s", o->view);
                return -1;
        }
        if (!(takes & CS_REPORT_TAKES_TOP) && o->top) {
                snprintf(q->err, sizeof(q->err),
                         "top does not apply to view %s", o->view);
                return -1;
        }
        return 0;
}

/* Answers status with msg as one line of text; control bytes (a decoded
 * parameter may hold any) become '?'. */
static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status,
                                  const char *msg)
{
        struct MHD_Response *resp;
        enum MHD_Result ret;
        char line[640];
        size_t i;

        snprintf(line, sizeof(line), "%s", msg);
        for (i = 0; line[i]; i++)
                if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
                        line[i] = '?';
        line[i] = '\n';
        resp = MHD_create_response_from_buffer(i + 1, line,
                                               MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; charset=utf-8");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                "no-store");
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* The page of "/": the HTML report, with a meta refresh after <head>.
 * Takes buf (malloc'd, len bytes); returns a new malloc'd page, or NULL. */
static char *add_refresh(char *buf, size_t *len)
{
        static const char meta[] = "\n<meta http-equiv=\"refresh\" content=\"";
        char extra[sizeof(meta) + 16], *head, *page;
        size_t at, n;

        n = (size_t)snprintf(extra, sizeof(extra), "%s%d\">", meta,
                             CS_HTTP_REFRESH_S);
        head = strstr(buf, "<head>");
        at = head ? (size_t)(head - buf) + strlen("<head>") : 0;
        if (!(page = malloc(*len + n))) {
                free(buf);
                return NULL;
        }
        memcpy(page, buf, at);
        memcpy(page + at, extra, n);
        memcpy(page + at + n, buf + at, *len - at);
        *len += n;
        free(buf);
        return page;
}

static const struct {
        const char *path;
        enum cs_report_format format;
        const char *type;
} routes[] = {
        {"/", CS_REPORT_HTML, "text/html; charset=utf-8"},
        {"/report.csv", CS_REPORT_CSV, "text/csv; charset=utf-8"},
        {"/report.json", CS_REPORT_JSON, "application/json"},
        {"/report.ndjson", CS_REPORT_NDJSON, "application/x-ndjson"},
        {"/report.md", CS_REPORT_MARKDOWN, "text/markdown; charset=utf-8"},
        {"/report.html", CS_REPORT_HTML, "text/html; charset=utf-8"},
};

/* /metrics and /healthz, from a snapshot of the ingest's stats. */
static enum MHD_Result reply_stats(struct cs_http *h,
                                   struct MHD_Connection *conn, int metrics)
{
        struct cs_stats *stats = __atomic_load_n(&h->stats, __ATOMIC_ACQUIRE);
        int64_t timeout =
                __atomic_load_n(&h->health_timeout_ms, __ATOMIC_RELAXED);
        struct cs_stats_snapshot snap;
        struct MHD_Response *resp;
        enum MHD_Result ret;
        char reason[256], *buf = NULL;
        size_t len = 0;
        FILE *f;
        int bad;

        if (!stats)
                return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "starting: no stats yet");
        if (cs_stats_snapshot(stats, &snap) < 0)
                return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "out of memory");
        if (!metrics) {
                bad = cs_metrics_health(&snap, cs_now_ms(), timeout, reason,
                                        sizeof(reason));
                cs_stats_snapshot_free(&snap);
                return reply_text(
                        conn, bad ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
                        reason);
        }
        if (!(f = open_memstream(&buf, &len))) {
                cs_stats_snapshot_free(&snap);
                return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "out of memory");
        }
        cs_metrics_render(&snap, cs_now_ms(), f);
        cs_stats_snapshot_free(&snap);
        if (fclose(f) != 0) {
                free(buf);
                return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "out of memory");
        }
        resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(buf);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                CS_METRICS_TYPE);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                "no-store");
        ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
        struct cs_http *h = cls;
        struct MHD_Response *resp;
        struct query q;
        enum MHD_Result ret;
        char errstr[512], *buf = NULL;
        size_t len = 0, i;
        FILE *f;
        int r;

        (void)version, (void)upload, (void)upload_size, (void)con_cls;
        if (strcmp(method, MHD_HTTP_METHOD_GET) &&
            strcmp(method, MHD_HTTP_METHOD_HEAD))
                return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                  "only GET and HEAD");
        if (!strcmp(url, "/metrics") || !strcmp(url, "/healthz"))
                return reply_stats(h, conn, url[1] == 'm');
        for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
                if (!strcmp(url, routes[i].path))
                        break;
        if (i == sizeof(routes) / sizeof(routes[0]))
                return reply_text(conn, MHD_HTTP_NOT_FOUND,
                                  "not found: try /, /report.csv, "
                                  "/report.json, /report.ndjson, /report.md, "
                                  "/report.html, /metrics or /healthz");
        memset(&q, 0, sizeof(q));
        q.o.db = h->db;
        q.o.schema = h->schema;
        q.o.format = routes[i].format;
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, on_arg, &q);
        if (q.err[0] || check_query(&q) < 0)
                return reply_text(conn, MHD_HTTP_BAD_REQUEST, q.err);
        /* The page on a wall screen: the recent windows unless asked. */
        if (i == 0 &&
            (cs_report_view_takes(q.o.view) & CS_REPORT_TAKES_WINDOWS) &&
            !q.o.has_from && !q.o.has_to && !q.o.last)
                q.o.last = CS_HTTP_DEFAULT_LAST_S;

        if (!(f = open_memstream(&buf, &len)))
                return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "out of memory");
        r = cs_report_render(&q.o, f, errstr, sizeof(errstr));
        if (fclose(f) != 0 && r == 0) {
                snprintf(errstr, sizeof(errstr), "out of memory");
                r = -1;
        }
        if (r < 0) {
                free(buf);
                cs_log(CS_LOG_WARN, "http: %s: %s", url, errstr);
                return reply_text(conn,
                                  r == CS_RETRY
                                          ? MHD_HTTP_SERVICE_UNAVAILABLE
                                          : MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  errstr);
        }
        if (i == 0 && !(buf = add_refresh(buf, &len)))
                return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "out of memory");
        resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(buf);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                routes[i].type);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                "no-store");
        ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];
        size_t n;

        (void)cls;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        cs_log(CS_LOG_DEBUG, "http: %s", msg);
}

/*
 * The server.
 */

int cs_http_start(const char *addr, const char *db, const char *schema,
                  struct cs_http **out, char *errstr, size_t errstr_size)
{
        struct addrinfo hints, *ai = NULL;
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        struct cs_http *h = NULL;
        sigset_t block, old;
        char host[HOST_MAX], port[24];
        int fd = -1, one = 1, rc, r = -1;

        *out = NULL;
        if (split_addr(addr, host, sizeof(host), port, sizeof(port), errstr,
                       errstr_size) < 0)
                return CS_REFUSED;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
                snprintf(errstr, errstr_size, "http: invalid address '%s': %s",
                         addr, gai_strerror(rc));
                return CS_REFUSED;
        }
        /* Our own socket rather than MHD's: a port in use is then said as
         * such, and port 0 tells which port it got. */
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0 ||
            getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
                snprintf(errstr, errstr_size, "http: cannot listen on %s: %s",
                         addr, strerror(errno));
                goto fail;
        }
        if (!(h = calloc(1, sizeof(*h))) || !(h->db = strdup(db)) ||
            (schema && !(h->schema = strdup(schema)))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        h->port = ntohs(ss.ss_family == AF_INET6
                                ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                : ((struct sockaddr_in *)&ss)->sin_port);
        /* SQLite is configured once, before any thread of ours uses it
         * (sqlite3_config() is not thread-safe); the ingest's own later
         * call is then refused, harmlessly. */
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        sqlite3_initialize();
        /* The server's threads leave SIGINT and SIGTERM to the main
         * thread, whose loop watches for them. */
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        sigaddset(&block, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        h->mhd = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD |
                        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO |
                        MHD_USE_ERROR_LOG |
                        (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
                MHD_OPTION_CONNECTION_LIMIT, 64U, MHD_OPTION_CONNECTION_TIMEOUT,
                30U, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                MHD_OPTION_END);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!h->mhd) {
                snprintf(errstr, errstr_size,
                         "http: cannot start the server on %s", addr);
                goto fail;
        }
        fd = -1; /* the server's now: MHD_stop_daemon() closes it */
        cs_log(CS_LOG_INFO, "http: serving the report at http://%s%s%s:%d/",
               strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
               h->port);
        *out = h;
        h = NULL;
        r = 0;
fail:
        if (fd >= 0)
                close(fd);
        if (ai)
                freeaddrinfo(ai);
        cs_http_stop(h);
        return r;
}

void cs_http_set_stats(struct cs_http *h, struct cs_stats *stats,
                       int64_t health_timeout_ms)
{
        __atomic_store_n(&h->health_timeout_ms, health_timeout_ms,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&h->stats, stats, __ATOMIC_RELEASE);
}

int cs_http_port(const struct cs_http *h)
{
        return h->port;
}

void cs_http_stop(struct cs_http *h)
{
        if (!h)
                return;
        if (h->mhd)
                MHD_stop_daemon(h->mhd);
        free(h->db);
        free(h->schema);
        free(h);
}
