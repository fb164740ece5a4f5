/* test_http.c: `callstream ingest --http` (issue 10, the live page), end
 * to end with the real binary: the sample (and one call whose crime type
 * is HTML) is ingested into SQLite, then an ingest of an empty topic of
 * the local broker runs with --http :0 and the test talks HTTP/1.0 to it
 * over a plain socket:
 *
 *   test_loopback       :0 listens on 127.0.0.1 (logged), not on the
 *       host's other addresses;
 *   test_json           /report.json with parameters, parsed with jansson,
 *       equals `callstream report --format json` with the same options,
 *       and its rows number as SQL counts them;
 *   test_csv            /report.csv, byte for byte the command's CSV,
 *       a row per SQL row;
 *   test_page           / is HTML with a meta refresh, the HTML crime type
 *       escaped, no script element;
 *   test_errors         400 with one line for bad parameters, 404 for an
 *       unknown path;
 *   test_start_errors   a port in use: exit 1, one line; a malformed
 *       address: exit 2;
 *   test_unreachable    a PostgreSQL database out of reach: 503, one line;
 *   test_pg_schema      PostgreSQL with --schema: /report.json equals the
 *       command's (skipped without a PostgreSQL server);
 *   test_sigterm        SIGTERM ends ingest and server with status 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"

#define WATCHDOG_S 600
#define HTML_TYPE  "<script>alert(1)</script> & \"q\""

struct rt {
        char dir[PATH_MAX];
        char *bin, *data;
        char *db, *log;
        struct th_broker broker;
        pid_t ingest;
        int port;
};

static struct rt *g;

/* Connects to addr:port; returns the socket or -1 (errno set). */
static int connect_to(const char *addr, int port)
{
        struct sockaddr_in sin;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
                int e = errno;

                close(fd);
                errno = e;
                return -1;
        }
        return fd;
}

/* `callstream report --db DB ARGS...` (NULL-terminated): its stdout. */
static char *report(const char *first, ...)
{
        struct th_args a = {0};
        struct th_run r;
        const char *s;
        va_list ap;
        char *out;

        th_args_addv(&a, g->bin, "report", "--db", g->db, NULL);
        va_start(ap, first);
        for (s = first; s; s = va_arg(ap, const char *))
                th_args_add(&a, s);
        va_end(ap);
        th_run_ok(&a, &r);
        out = th_strndup(r.out.p ? r.out.p : "", r.out.len);
        th_run_free(&r);
        th_args_free(&a);
        return out;
}

/* Waits for "serving the report at http://HOST:PORT/" in the log at path
 * while pid runs; returns the port (host in host, size 64) or -1. */
static int wait_url(const char *path, pid_t pid, char *host)
{
        int64_t deadline = th_now_ms() + 60 * 1000;

        while (th_now_ms() < deadline) {
                struct th_buf b = {0};
                const char *p;
                int port = -1;

                if (th_read_file(path, &b) == 0 && b.len) {
                        th_buf_add(&b, "", 1);
                        p = strstr(b.p, "serving the report at http://");
                        if (p &&
                            sscanf(p,
                                   "serving the report at http://%63[^:/]:%d",
                                   host, &port) == 2) {
                                th_buf_free(&b);
                                return port;
                        }
                }
                th_buf_free(&b);
                if (th_exited(pid) >= 0)
                        return -1;
                th_sleep_ms(50);
        }
        return -1;
}

static void test_loopback(void **state)
{
        struct ifaddrs *ifs, *i;
        char host[64];
        int fd, others = 0;

        (void)state;
        assert_int_equal(wait_url(g->log, g->ingest, host), g->port);
        assert_string_equal(host, "127.0.0.1");
        /* Every other IPv4 address of the host refuses the port. */
        assert_int_equal(getifaddrs(&ifs), 0);
        for (i = ifs; i; i = i->ifa_next) {
                char a[INET_ADDRSTRLEN];

                if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
                        continue;
                inet_ntop(AF_INET,
                          &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a,
                          sizeof(a));
                if (!strncmp(a, "127.", 4))
                        continue;
                fd = connect_to(a, g->port);
                if (fd >= 0)
                        close(fd);
                assert_true(fd < 0);
                others++;
        }
        freeifaddrs(ifs);
        fprintf(stderr, "# %d other addresses refused the port\n", others);
}

static void test_json(void **state)
{
        static const char *const cases[][2] = {
                {"/report.json?view=call_counts&window=1h&top=3&final-only",
                 "--view call_counts --window 1h --top 3 --final-only"},
                {"/report.json?view=disposition_counts&from=2018-12-31%2012:00"
                 "&to=2018-12-31%2020:00",
                 "--view disposition_counts --from 2018-12-31 12:00 --to "
                 "2018-12-31 20:00"},
                {"/report.json?last=3h", "--last 3h"},
                {"/report.json", ""},
        };
        json_error_t jerr;
        struct th_http_resp r;
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *got, *want;
                char *out;

                th_http_get(g->port, cases[i][0], &r);
                assert_int_equal(r.status, 200);
                assert_string_equal(r.type, "application/json");
                got = json_loadb(r.body, r.len, 0, &jerr);
                assert_non_null(got);
                /* The same options as arguments of the command. */
                if (i == 0)
                        out = report("--view", "call_counts", "--window", "1h",
                                     "--top", "3", "--final-only", "--format",
                                     "json", NULL);
                else if (i == 1)
                        out = report("--view", "disposition_counts", "--from",
                                     "2018-12-31 12:00", "--to",
                                     "2018-12-31 20:00", "--format", "json",
                                     NULL);
                else if (i == 2)
                        out = report("--last", "3h", "--format", "json", NULL);
                else
                        out = report("--format", "json", NULL);
                want = json_loads(out, 0, &jerr);
                assert_non_null(want);
                if (!json_equal(got, want))
                        fail_msg("%s differs from report %s", cases[i][0],
                                 cases[i][1]);
                /* A view is an array; the standard report an object of
                 * its tables. Either way, not empty. */
                assert_true(json_array_size(got) > 0 ||
                            json_object_size(got) > 0);
                json_decref(got);
                json_decref(want);
                free(out);
                th_http_resp_free(&r);
        }
        /* And the whole view, as SQL counts it. */
        th_http_get(g->port, "/report.json?view=call_counts", &r);
        assert_int_equal(r.status, 200);
        {
                json_t *all = json_loadb(r.body, r.len, 0, &jerr);

                assert_non_null(all);
                assert_int_equal(
                        (long long)json_array_size(all),
                        th_sqlite_int(g->db,
                                      "SELECT count(*) FROM call_counts"));
                json_decref(all);
        }
        th_http_resp_free(&r);
}

static void test_csv(void **state)
{
        struct th_http_resp r;
        char *out;

        (void)state;
        th_http_get(g->port, "/report.csv?view=call_counts&window=1h", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.type, "text/csv; charset=utf-8");
        out = report("--view", "call_counts", "--window", "1h", NULL);
        assert_int_equal(r.len, strlen(out));
        assert_memory_equal(r.body, out, r.len);
        /* A header and a row per line (no newline inside this data). */
        assert_int_equal(th_count_lines(r.body, r.len),
                         1 + th_sqlite_int(g->db,
                                           "SELECT count(*) FROM call_counts "
                                           "WHERE window_spec = '1h'"));
        free(out);
        th_http_resp_free(&r);
}

static void test_page(void **state)
{
        struct th_http_resp r;

        (void)state;
        th_http_get(g->port, "/?from=2018-01-01", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.type, "text/html; charset=utf-8");
        assert_non_null(strstr(r.body, "<!DOCTYPE html>"));
        assert_non_null(strstr(r.body, "<meta http-equiv=\"refresh\""));
        assert_non_null(
                strstr(r.body, "&lt;script&gt;alert(1)&lt;/script&gt; &amp;"));
        assert_null(strstr(r.body, "<script"));
        th_http_resp_free(&r);
        /* The default page: the recent windows, refreshed too. */
        th_http_get(g->port, "/", &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "<meta http-equiv=\"refresh\""));
        th_http_resp_free(&r);
}

static void assert_one_line(const struct th_http_resp *r, int status,
                            const char *has)
{
        assert_int_equal(r->status, status);
        assert_string_equal(r->type, "text/plain; charset=utf-8");
        assert_true(r->len > 1);
        assert_int_equal(th_count_lines(r->body, r->len), 1);
        assert_int_equal(r->body[r->len - 1], '\n');
        if (!strstr(r->body, has))
                fail_msg("expected '%s' in: %s", has, r->body);
}

static void test_errors(void **state)
{
        static const char *const bad[][2] = {
                {"/report.json?view=nope", "unknown view"},
                {"/report.csv?view=nope%0Asecond", "unknown view"},
                {"/?top=0", "invalid top"},
                {"/report.csv?window=1x", "invalid window"},
                {"/report.csv?from=yesterday", "invalid from"},
                {"/report.csv?from=2019-01-01&to=2018-01-01", "before"},
                {"/report.csv?view=pipeline_progress&top=3", "top"},
                {"/report.csv?colour=red", "unknown parameter"},
        };
        struct th_http_resp r;
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                th_http_get(g->port, bad[i][0], &r);
                assert_one_line(&r, 400, bad[i][1]);
                th_http_resp_free(&r);
        }
        th_http_get(g->port, "/nothing-here", &r);
        assert_one_line(&r, 404, "not found");
        th_http_resp_free(&r);
        /* Still serving after all that. */
        th_http_get(g->port, "/report.csv", &r);
        assert_int_equal(r.status, 200);
        th_http_resp_free(&r);
}

static void test_start_errors(void **state)
{
        struct th_args a = {0};
        struct th_run r;
        char *addr = th_asprintf("127.0.0.1:%d", g->port);

        (void)state;
        th_args_addv(&a, g->bin, "ingest", "--brokers", g->broker.brokers,
                     "--topic", "live", "--db", g->db, "--http", addr, NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        assert_int_equal(r.status, 1);
        assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
        assert_non_null(strstr(r.err.p, "in use"));
        th_run_free(&r);
        th_args_free(&a);
        free(addr);

        th_args_addv(&a, g->bin, "ingest", "--brokers", g->broker.brokers,
                     "--topic", "live", "--db", g->db, "--http", "8080", NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        assert_int_equal(r.status, 2);
        assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
        th_run_free(&r);
        th_args_free(&a);
}

static void test_unreachable(void **state)
{
        struct th_args a = {0};
        char *log = th_asprintf("%s/unreachable.log", g->dir), host[64];
        struct th_http_resp r;
        int port = g->port;
        pid_t pid;

        (void)state;
        /* Nothing listens on port 1: the ingest waits, the page says so. */
        th_args_addv(&a, g->bin, "ingest", "--brokers", g->broker.brokers,
                     "--topic", "live", "--db",
                     "postgresql://callstream@127.0.0.1:1/none", "--http", ":0",
                     NULL);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        g->port = wait_url(log, pid, host);
        if (g->port < 0)
                th_show_file_tail("ingest", log);
        assert_true(g->port > 0);
        th_http_get(g->port, "/report.json", &r);
        assert_one_line(&r, 503, "127.0.0.1");
        th_http_resp_free(&r);
        g->port = port;
        kill(pid, SIGTERM);
        th_wait_until(pid, th_now_ms() + 60 * 1000);
        free(log);
}

static void test_pg_schema(void **state)
{
        struct th_pg pg;
        struct th_args a = {0};
        struct th_run run;
        json_error_t jerr;
        json_t *got, *want;
        char *sample, *conn, *log, host[64];
        struct th_http_resp r;
        int port = g->port, status;
        pid_t pid;

        (void)state;
        if (th_pg_start(&pg, g->dir, 0) || th_pg_createdb(&pg, "http", NULL)) {
                th_pg_stop(&pg);
                skip();
        }
        conn = th_pg_conninfo(&pg, "http");
        sample = th_asprintf("%s/police-department-calls-for-service.sample"
                             ".json",
                             g->data);
        th_args_addv(&a, g->bin, "ingest", "--file", sample, "--db", conn,
                     "--schema", "sfpd", "--quiet", NULL);
        th_run_ok_free(&a);
        memset(&a, 0, sizeof(a));
        log = th_asprintf("%s/pg.log", g->dir);
        th_args_addv(&a, g->bin, "ingest", "--brokers", g->broker.brokers,
                     "--topic", "live", "--db", conn, "--schema", "sfpd",
                     "--http", ":0", NULL);
        pid = th_spawn_logged(&a, log);
        th_args_free(&a);
        g->port = wait_url(log, pid, host);
        if (g->port < 0)
                th_show_file_tail("ingest", log);
        assert_true(g->port > 0);
        th_http_get(g->port, "/report.json?view=call_counts&window=1h&top=2",
                    &r);
        assert_int_equal(r.status, 200);
        got = json_loadb(r.body, r.len, 0, &jerr);
        assert_non_null(got);
        th_args_addv(&a, g->bin, "report", "--db", conn, "--schema", "sfpd",
                     "--view", "call_counts", "--window", "1h", "--top", "2",
                     "--format", "json", NULL);
        th_run_ok(&a, &run);
        want = json_loadb(run.out.p, run.out.len, 0, &jerr);
        assert_non_null(want);
        assert_true(json_array_size(want) > 0);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
        th_run_free(&run);
        th_args_free(&a);
        th_http_resp_free(&r);
        g->port = port;
        kill(pid, SIGTERM);
        status = th_wait_until(pid, th_now_ms() + 60 * 1000);
        assert_int_equal(status, 0);
        th_pg_stop(&pg);
        free(sample);
        free(conn);
        free(log);
}

static void test_sigterm(void **state)
{
        int status, fd;

        (void)state;
        assert_int_equal(kill(g->ingest, SIGTERM), 0);
        status = th_wait_until(g->ingest, th_now_ms() + 60 * 1000);
        g->ingest = 0;
        if (status)
                th_show_file_tail("ingest", g->log);
        assert_int_equal(status, 0);
        fd = connect_to("127.0.0.1", g->port);
        if (fd >= 0)
                close(fd);
        assert_true(fd < 0);
}

static int group_teardown(void **state)
{
        (void)state;
        if (!g)
                return 0;
        if (g->ingest > 0) {
                kill(g->ingest, SIGKILL);
                th_wait_until(g->ingest, th_now_ms() + 10 * 1000);
        }
        th_broker_stop(&g->broker);
        if (g->dir[0])
                th_tmpdir_remove(g->dir);
        th_fatal_dir(NULL);
        free(g->bin);
        free(g->data);
        free(g->db);
        free(g->log);
        free(g);
        g = NULL;
        return 0;
}

static int group_setup(void **state)
{
        static const char *const broker_args[] = {"--topic", "live", NULL};
        struct th_args a = {0};
        char *sample, *extra, *berr, host[64];

        (void)state;
        th_fatal_handlers("test_http", WATCHDOG_S);
        if (!(g = calloc(1, sizeof(*g))) || th_find_bin_data(&g->bin, &g->data))
                goto fail;
        if (th_tmpdir_make("callstream-http", g->dir, sizeof(g->dir)))
                goto fail;
        th_fatal_dir(g->dir);
        g->db = th_asprintf("%s/http.db", g->dir);
        g->log = th_asprintf("%s/ingest.log", g->dir);
        sample = th_asprintf("%s/police-department-calls-for-service.sample"
                             ".json",
                             g->data);
        extra = th_asprintf("%s/extra.ndjson", g->dir);
        th_write_file(extra,
                      "{\"crime_id\": \"999000001\", "
                      "\"original_crime_type_name\": "
                      "\"<script>alert(1)</script> & \\\"q\\\"\", "
                      "\"call_date_time\": \"2018-12-31T23:50:00.000\", "
                      "\"disposition\": \"ADV\", \"address\": \"x\", "
                      "\"city\": \"San Francisco\", \"state\": \"CA\", "
                      "\"agency_id\": \"1\", \"address_type\": \"x\", "
                      "\"common_location\": \"\"}\n",
                      0);
        th_args_addv(&a, g->bin, "ingest", "--file", sample, "--db", g->db,
                     "--quiet", NULL);
        th_run_ok_free(&a);
        memset(&a, 0, sizeof(a));
        th_args_addv(&a, g->bin, "ingest", "--file", extra, "--db", g->db,
                     "--quiet", NULL);
        th_run_ok_free(&a);
        free(sample);
        free(extra);
        berr = th_asprintf("%s/broker.err", g->dir);
        if (th_broker_start(&g->broker, g->bin, broker_args, berr)) {
                free(berr);
                goto fail;
        }
        free(berr);
        /* A live ingest of an empty topic, serving the database the two
         * runs above filled, which it then leaves as it is. */
        memset(&a, 0, sizeof(a));
        th_args_addv(&a, g->bin, "ingest", "--brokers", g->broker.brokers,
                     "--topic", "live", "--db", g->db, "--http", ":0", NULL);
        g->ingest = th_spawn_logged(&a, g->log);
        th_args_free(&a);
        g->port = wait_url(g->log, g->ingest, host);
        if (g->port <= 0) {
                th_show_file_tail("ingest", g->log);
                goto fail;
        }
        fprintf(stderr, "# serving on %s:%d\n", host, g->port);
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_loopback),
                cmocka_unit_test(test_json),
                cmocka_unit_test(test_csv),
                cmocka_unit_test(test_page),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_start_errors),
                cmocka_unit_test(test_unreachable),
                cmocka_unit_test(test_pg_schema),
                cmocka_unit_test(test_sigterm),
        };

        return cmocka_run_group_tests_name("http", tests, group_setup,
                                           group_teardown);
}
