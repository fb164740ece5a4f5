/* test_kafka_ops.c: the ingest against Kafka trouble, as an operator meets
 * it: brokers unreachable at start (with and without a group), a stop
 * during that wait, brokers that come up after the ingest, brokers lost
 * mid-stream, a mistyped topic, mistaken -X properties, lag kept current
 * while idle, offsets committed to Kafka without a group, and messages
 * lost to retention (SQLite and PostgreSQL).
 *
 * "Unreachable" is a port where nothing listens; "comes up later" is a
 * forwarder on a fixed port that refuses connections until the broker
 * behind it is started. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "harness.h"
#include "pgutil.h"

#define CLI_TIMEOUT_MS (60 * 1000) /* hang guard of one command */
#define WATCHDOG_S     600

struct kops {
        char *bin, *data;
        char dir[512];
        struct th_broker broker; /* topics real and gap, 2 partitions */
        struct th_pg pg;         /* started by the first PostgreSQL test */
};

static char *path_in(const struct kops *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* A port on 127.0.0.1 where nothing listens (bound, then let go). */
static int free_port(void)
{
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0)
                port = ntohs(a.sin_port);
        if (fd >= 0)
                close(fd);
        return port;
}

/* Produces n messages of size bytes (not calls: they end up as rejected
 * records) to topic's partition. Returns how many were delivered. */
static int produce(const char *brokers, const char *topic, int32_t partition,
                   int n, size_t size)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[256], *payload = malloc(size + 1);
        rd_kafka_t *rk;
        int i, delivered = 0;

        assert_non_null(payload);
        memset(payload, 'x', size);
        rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          sizeof(errstr));
        /* One message per request: the broker's retention counts sets. */
        rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "message.max.bytes", "2000000", errstr,
                          sizeof(errstr));
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        assert_non_null(rk);
        for (i = 0; i < n; i++) {
                while (rd_kafka_producev(
                               rk, RD_KAFKA_V_TOPIC(topic),
                               RD_KAFKA_V_PARTITION(partition),
                               RD_KAFKA_V_VALUE(payload, size),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                               RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(rk, 100);
                rd_kafka_poll(rk, 0);
        }
        if (rd_kafka_flush(rk, 30000) == 0)
                delivered = n;
        rd_kafka_destroy(rk);
        free(payload);
        return delivered;
}

/* A consumer handle for metadata and offset queries (group.id given). */
static rd_kafka_t *client(const char *brokers, const char *group)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[256];
        rd_kafka_t *rk;

        rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        assert_non_null(rk);
        return rk;
}

/* Whether the cluster has topic, asking for every topic's metadata (which
 * creates none). */
static int topic_exists(const char *brokers, const char *topic)
{
        rd_kafka_t *rk = client(brokers, "kops-metadata");
        const struct rd_kafka_metadata *md;
        int i, found = 0;

        assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, 10000), 0);
        for (i = 0; i < md->topic_cnt; i++)
                found |= !strcmp(md->topics[i].topic, topic);
        rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        return found;
}

static void watermarks(const char *brokers, const char *topic,
                       int32_t partition, int64_t *low, int64_t *high)
{
        rd_kafka_t *rk = client(brokers, "kops-metadata");

        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, partition,
                                                          low, high, 10000),
                         0);
        rd_kafka_destroy(rk);
}

static int64_t pg_int(const char *conninfo, const char *sql)
{
        PGconn *c = PQconnectdb(conninfo);
        PGresult *res;
        int64_t v = -1;

        if (PQstatus(c) != CONNECTION_OK) {
                PQfinish(c);
                return -1;
        }
        res = PQexec(c, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
            !PQgetisnull(res, 0, 0))
                v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        else if (PQresultStatus(res) != PGRES_TUPLES_OK)
                v = -2; /* not migrated yet */
        PQclear(res);
        PQfinish(c);
        return v;
}

/* One integer from the database, SQLite or PostgreSQL ("host=..."): -1 for
 * NULL, no row, or no database yet; -2 before the ingest has created the
 * view. */
static int64_t sql_int(const char *db_path, const char *sql)
{
        sqlite3 *db;

        if (!strncmp(db_path, "host=", 5))
                return pg_int(db_path, sql);
        sqlite3_stmt *st;
        int64_t v = -1;

        if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) !=
            SQLITE_OK) {
                sqlite3_close(db);
                return -1;
        }
        sqlite3_busy_timeout(db, 10000);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK &&
            strstr(sqlite3_errmsg(db), "no such")) {
                sqlite3_close(db);
                return -2;
        } else if (!st) {
                fprintf(stderr, "# SQL error: %s\n#   in: %s\n",
                        sqlite3_errmsg(db), sql);
                sqlite3_close(db);
                fail();
        }
        if (sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_type(st, 0) != SQLITE_NULL)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

static struct th_args ingest_args(const struct kops *st, const char *brokers,
                                  const char *topic, const char *db)
{
        struct th_args a = {0};

        th_args_addv(&a, st->bin, "ingest", "--brokers", brokers, "--topic",
                     topic, "--db", db, NULL);
        return a;
}

/* Runs a, which must exit with status want; returns its stderr (the
 * caller frees it). */
static char *run_expect(struct th_args *a, int want)
{
        char *cmd = th_args_str(a), *err;
        struct th_run r;

        th_run_args(a, CLI_TIMEOUT_MS, &r);
        fprintf(stderr, "# $ %s  -> %d (%.1f s)\n", cmd, r.status,
                r.ms / 1000.0);
        if (r.status != want) {
                th_show_tail("stderr", r.err.p, r.err.len);
                fprintf(stderr, "#   expected exit status %d\n", want);
        }
        free(cmd);
        err = th_strdup(r.err.p ? r.err.p : "");
        assert_int_equal(r.status, want);
        th_run_free(&r);
        th_args_free(a);
        return err;
}

static void assert_has(const char *text, const char *what)
{
        if (!strstr(text, what)) {
                fprintf(stderr, "#   stderr lacks \"%s\"\n", what);
                th_show_tail("stderr", text, strlen(text));
                fail();
        }
}

/* Waits (hang guard: limit_ms) until the file at path contains what. */
static int wait_for_text(const char *path, const char *what, int64_t limit_ms)
{
        int64_t end = th_now_ms() + limit_ms;

        while (th_now_ms() < end) {
                struct th_buf b = {0};
                int found = th_read_file(path, &b) == 0 && b.p &&
                            strstr(b.p, what) != NULL;

                th_buf_free(&b);
                if (found)
                        return 1;
                th_sleep_ms(100);
        }
        th_show_file_tail("log", path);
        return 0;
}

/* Every callstream line of stderr starts with an ISO 8601 UTC time. */
static void assert_timestamped(const char *err)
{
        const char *p, *nl;

        for (p = err; *p; p = nl ? nl + 1 : p + strlen(p)) {
                const char *c = strstr(p, "callstream: ");

                nl = strchr(p, '\n');
                if (!c || (nl && c > nl) || c == p)
                        continue; /* usage errors have no time */
                if (c - p != 25 || p[4] != '-' || p[10] != 'T' ||
                    p[23] != 'Z') {
                        fprintf(stderr, "#   not timestamped: %.*s\n",
                                (int)(nl ? nl - p : (long)strlen(p)), p);
                        fail();
                }
        }
}

static void unreachable_at_start(void **state, const char *group)
{
        struct kops *st = *state;
        char *db = path_in(st, group ? "unreach-g.db" : "unreach.db");
        char *brokers = th_asprintf("127.0.0.1:%d", free_port());
        struct th_args a = ingest_args(st, brokers, "real", db);
        char *err;

        th_args_addv(&a, "--exit-at-end", "--startup-timeout", "2s", NULL);
        if (group)
                th_args_addv(&a, "--group", group, NULL);
        err = run_expect(&a, 1);
        /* The cause, in callstream's words and at once... */
        assert_has(err, "callstream: warning: Kafka brokers");
        assert_has(err, "Connection refused");
        /* ...and the give-up, naming the option. */
        assert_has(err, "--startup-timeout");
        assert_timestamped(err);
        /* librdkafka's own lines come through the logger only. */
        if (strstr(err, "%3|") || strstr(err, "%4|")) {
                th_show_tail("stderr", err, strlen(err));
                fail_msg("raw librdkafka log lines on stderr");
        }
        free(err);
        free(brokers);
        free(db);
}

static void test_unreachable_no_group(void **state)
{
        unreachable_at_start(state, NULL);
}

static void test_unreachable_group(void **state)
{
        unreachable_at_start(state, "kops");
}

/* A service (no --exit-at-end) waits for ever; SIGTERM ends the wait at
 * once, cleanly, with or without a group; -q keeps the warnings out. */
static void test_sigterm_during_wait(void **state)
{
        struct kops *st = *state;
        int g;

        for (g = 0; g < 2; g++) {
                char *db = path_in(st, "term.db");
                char *log = path_in(st, g ? "term-g.log" : "term.log");
                char *brokers = th_asprintf("127.0.0.1:%d", free_port());
                struct th_args a = ingest_args(st, brokers, "real", db);
                int64_t end;
                pid_t pid;
                int code;

                if (g)
                        th_args_addv(&a, "--group", "kops", NULL);
                pid = th_spawn_logged(&a, log);
                assert_true(pid > 0);
                assert_true(wait_for_text(log, "unreachable", 30000));
                kill(pid, SIGTERM);
                end = th_now_ms() + 10000; /* hang guard */
                code = th_wait_until(pid, end);
                if (code != 0)
                        th_show_file_tail("log", log);
                assert_int_equal(code, 0);
                th_args_free(&a);
                free(brokers);
                free(log);
                free(db);
        }
        {
                char *db = path_in(st, "quiet.db");
                char *brokers = th_asprintf("127.0.0.1:%d", free_port());
                struct th_args a = ingest_args(st, brokers, "real", db);
                char *err;

                th_args_addv(&a, "-q", "--exit-at-end", "--startup-timeout",
                             "2s", NULL);
                err = run_expect(&a, 1);
                /* Only the error that ends it. */
                assert_int_equal(th_count_lines(err, strlen(err)), 1);
                assert_has(err, "callstream: error:");
                free(err);
                free(brokers);
                free(db);
        }
}

static void test_missing_topic(void **state)
{
        struct kops *st = *state;
        const char *groups[] = {NULL, "kops-typo"};
        int g;

        for (g = 0; g < 2; g++) {
                char *db = path_in(st, "typo.db");
                struct th_args a =
                        ingest_args(st, st->broker.brokers, "reall", db);
                char *err;

                th_args_add(&a, "--exit-at-end");
                if (groups[g])
                        th_args_addv(&a, "--group", groups[g], NULL);
                err = run_expect(&a, 1);
                assert_has(err, "topic reall does not exist");
                free(err);
                free(db);
        }
        /* The broker auto-creates topics it is asked about: it was not. */
        assert_false(topic_exists(st->broker.brokers, "reall"));
        assert_true(topic_exists(st->broker.brokers, "real"));
}

static void test_bad_properties(void **state)
{
        struct kops *st = *state;
        char *db = path_in(st, "props.db");
        struct th_args a = ingest_args(st, st->broker.brokers, "real", db);
        struct stat sb;
        char *err;

        th_args_addv(&a, "-X", "no.such=1", NULL);
        err = run_expect(&a, 2);
        assert_has(err, "no.such");
        free(err);
        /* Found before the database was created. */
        assert_int_not_equal(stat(db, &sb), 0);

        /* A SASL mechanism this librdkafka lacks (GSSAPI, the default). */
        a = ingest_args(st, st->broker.brokers, "real", db);
        th_args_addv(&a, "-X", "security.protocol=SASL_SSL", NULL);
        free(run_expect(&a, 2));
        assert_int_not_equal(stat(db, &sb), 0);

        /* --file reads no Kafka: -X is a mistake there. */
        memset(&a, 0, sizeof(a));
        th_args_addv(&a, st->bin, "ingest", "--file", "/dev/null", "--db", db,
                     "-X", "a=b", NULL);
        free(run_expect(&a, 2));
        assert_int_not_equal(stat(db, &sb), 0);
        free(db);
}

/* Without --group: offsets go to Kafka under group.id callstream, and
 * while idle the stored high watermark is refreshed (high_watermark_at
 * moves past the last batch). */
static void idle_lag_and_commits(struct kops *st, const char *topic,
                                 const char *db, const char *log)
{
        struct th_args a = ingest_args(st, st->broker.brokers, topic, db);
        rd_kafka_topic_partition_list_t *parts;
        int64_t low, high[2], end;
        char *q;
        rd_kafka_t *rk;
        pid_t pid;
        int p;

        assert_int_equal(produce(st->broker.brokers, topic, 0, 30, 10), 30);
        assert_int_equal(produce(st->broker.brokers, topic, 1, 20, 10), 20);
        for (p = 0; p < 2; p++)
                watermarks(st->broker.brokers, topic, p, &low, &high[p]);
        th_args_addv(&a, "--from-beginning", "--batch-max-ms", "100", NULL);
        pid = th_spawn_logged(&a, log);
        assert_true(pid > 0);
        /* Consumed... */
        end = th_now_ms() + 30000;
        q = th_asprintf("SELECT SUM(stored_offset) FROM pipeline_progress "
                        "WHERE topic = '%s'",
                        topic);
        while (th_now_ms() < end && sql_int(db, q) != high[0] + high[1])
                th_sleep_ms(200);
        free(q);
        /* ...then idle: the refresh comes within seconds. */
        q = th_asprintf("SELECT COUNT(*) FROM pipeline_progress WHERE topic "
                        "= '%s' AND high_watermark_at > last_batch_at",
                        topic);
        while (th_now_ms() < end && sql_int(db, q) != 2)
                th_sleep_ms(200);
        free(q);
        if (th_now_ms() >= end)
                th_show_file_tail("log", log);
        for (p = 0; p < 2; p++) {
                q = th_asprintf("SELECT high_watermark FROM "
                                "pipeline_progress WHERE topic = '%s' "
                                "AND kafka_partition = %d AND "
                                "high_watermark_at > last_batch_at",
                                topic, p);

                assert_int_equal(sql_int(db, q), high[p]);
                free(q);
        }
        kill(pid, SIGTERM);
        assert_int_equal(th_wait_until(pid, th_now_ms() + 30000), 0);

        /* What lag tools see: the committed offsets of group callstream. */
        rk = client(st->broker.brokers, "callstream");
        parts = rd_kafka_topic_partition_list_new(2);
        rd_kafka_topic_partition_list_add(parts, topic, 0);
        rd_kafka_topic_partition_list_add(parts, topic, 1);
        assert_int_equal(rd_kafka_committed(rk, parts, 10000), 0);
        for (p = 0; p < 2; p++)
                assert_int_equal(parts->elems[p].offset, high[p]);
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_destroy(rk);
        th_args_free(&a);
}

static void test_idle_lag_and_commits(void **state)
{
        struct kops *st = *state;
        char *db = path_in(st, "lag.db");
        char *log = path_in(st, "lag.log");

        idle_lag_and_commits(st, "real", db, log);
        free(log);
        free(db);
}

/* A stored offset that retention deleted: one kafka_gaps row with the
 * lost offsets, counted in pipeline_progress, a warning; a rerun adds
 * nothing. */
static void retention_gap(struct kops *st, const char *topic, const char *db)
{
        struct th_args a = ingest_args(st, st->broker.brokers, topic, db);
        int64_t low, high;
        char *err, *q;

        assert_int_equal(produce(st->broker.brokers, topic, 0, 10, 10), 10);
        th_args_addv(&a, "--from-beginning", "--exit-at-end", NULL);
        free(run_expect(&a, 0));
        assert_int_equal(sql_int(db, "SELECT stored_offset FROM "
                                     "pipeline_progress"),
                         10);
        /* The broker keeps about 5 MB a partition: 8 MB pushes the first
         * messages out, then a few more come after. */
        assert_int_equal(produce(st->broker.brokers, topic, 0, 80, 100000), 80);
        assert_int_equal(produce(st->broker.brokers, topic, 0, 5, 10), 5);
        watermarks(st->broker.brokers, topic, 0, &low, &high);
        fprintf(stderr, "# gap: low %lld, high %lld\n", (long long)low,
                (long long)high);
        assert_true(low > 10);

        a = ingest_args(st, st->broker.brokers, topic, db);
        th_args_add(&a, "--exit-at-end");
        err = run_expect(&a, 0);
        q = th_asprintf("offsets 10-%lld", (long long)low - 1);
        assert_has(err, q);
        assert_has(err, "retention");
        free(q);
        free(err);
        assert_int_equal(sql_int(db, "SELECT COUNT(*) FROM kafka_gaps"), 1);
        q = th_asprintf("SELECT first_offset FROM kafka_gaps WHERE topic = "
                        "'%s' AND kafka_partition = 0",
                        topic);
        assert_int_equal(sql_int(db, q), 10);
        free(q);
        assert_int_equal(sql_int(db, "SELECT last_offset FROM kafka_gaps"),
                         low - 1);
        assert_int_equal(sql_int(db, "SELECT retention_gaps FROM "
                                     "pipeline_progress"),
                         1);
        assert_int_equal(sql_int(db, "SELECT lost_offsets FROM "
                                     "pipeline_progress"),
                         low - 10);
        assert_int_equal(sql_int(db, "SELECT stored_offset FROM "
                                     "pipeline_progress"),
                         high);
        /* Everything kept was read: messages low..high-1 and the first 10. */
        assert_int_equal(sql_int(db, "SELECT COUNT(*) FROM rejected_records"),
                         10 + high - low);

        a = ingest_args(st, st->broker.brokers, topic, db);
        th_args_add(&a, "--exit-at-end");
        err = run_expect(&a, 0);
        if (strstr(err, "retention"))
                fail_msg("a second run found a gap again");
        free(err);
        assert_int_equal(sql_int(db, "SELECT COUNT(*) FROM kafka_gaps"), 1);
}

static void test_retention_gap(void **state)
{
        struct kops *st = *state;
        char *db = path_in(st, "gap.db");

        retention_gap(st, "gap", db);
        free(db);
}

/* The same two against PostgreSQL: its statements and its view. */
static void test_postgresql(void **state)
{
        struct kops *st = *state;
        char *log = path_in(st, "lag-pg.log");
        char *db;

        assert_int_equal(th_pg_start(&st->pg, st->dir, 0), 0);
        assert_int_equal(th_pg_createdb(&st->pg, "kops", NULL), 0);
        db = th_pg_conninfo(&st->pg, "kops");
        retention_gap(st, "gap-pg", db);
        idle_lag_and_commits(st, "real-pg", db, log);
        free(db);
        free(log);
}

/*
 * A forwarder on a fixed port: refuses (accepts and closes) until a
 * target is set, then relays each connection to it. The client learns the
 * broker's own address from the metadata and goes there after bootstrap.
 */
struct relay {
        int fd_a, fd_b;
};

struct forwarder {
        int listen_fd;
        int port;
        volatile int target; /* broker port, 0: refuse */
        volatile int stop;
        pthread_t thread;
};

static void *relay_run(void *arg)
{
        struct relay *r = arg;
        char buf[65536];

        for (;;) {
                struct pollfd p[2] = {{r->fd_a, POLLIN, 0},
                                      {r->fd_b, POLLIN, 0}};
                int i;

                if (poll(p, 2, 1000) < 0 && errno != EINTR)
                        break;
                for (i = 0; i < 2; i++) {
                        ssize_t n;

                        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        n = read(p[i].fd, buf, sizeof(buf));
                        if (n <= 0 || write(p[1 - i].fd, buf, (size_t)n) != n)
                                goto done;
                }
        }
done:
        close(r->fd_a);
        close(r->fd_b);
        free(r);
        return NULL;
}

static void *forwarder_run(void *arg)
{
        struct forwarder *f = arg;

        while (!f->stop) {
                struct pollfd p = {f->listen_fd, POLLIN, 0};
                struct sockaddr_in a = {.sin_family = AF_INET};
                struct relay *r;
                pthread_t t;
                int c;

                if (poll(&p, 1, 100) <= 0)
                        continue;
                c = accept(f->listen_fd, NULL, NULL);
                if (c < 0)
                        continue;
                if (!f->target) {
                        close(c);
                        continue;
                }
                r = malloc(sizeof(*r));
                r->fd_a = c;
                r->fd_b = socket(AF_INET, SOCK_STREAM, 0);
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                a.sin_port = htons((uint16_t)f->target);
                if (connect(r->fd_b, (struct sockaddr *)&a, sizeof(a)) < 0 ||
                    pthread_create(&t, NULL, relay_run, r)) {
                        close(r->fd_a);
                        close(r->fd_b);
                        free(r);
                        continue;
                }
                pthread_detach(t);
        }
        return NULL;
}

static void test_broker_comes_up_later(void **state)
{
        struct kops *st = *state;
        struct forwarder f = {0};
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof(a);
        struct th_broker late = {0};
        static const char *const late_args[] = {"--topic", "late",
                                                "--partitions", "1", NULL};
        char *db = path_in(st, "late.db"), *log = path_in(st, "late.log");
        char *err_path = path_in(st, "late-broker.err"), *brokers, *colon;
        struct th_args args;
        struct th_buf out = {0};
        pid_t pid;
        int code;

        f.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(f.listen_fd, (struct sockaddr *)&a, sizeof(a)),
                         0);
        assert_int_equal(listen(f.listen_fd, 16), 0);
        getsockname(f.listen_fd, (struct sockaddr *)&a, &len);
        f.port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&f.thread, NULL, forwarder_run, &f), 0);

        brokers = th_asprintf("127.0.0.1:%d", f.port);
        args = ingest_args(st, brokers, "late", db);
        th_args_addv(&args, "--exit-at-end", "--from-beginning",
                     "--startup-timeout", "50s", NULL);
        pid = th_spawn_logged(&args, log);
        assert_true(pid > 0);
        /* It waits, and says why. */
        assert_true(wait_for_text(log, "unreachable", 30000));

        assert_int_equal(th_broker_start(&late, st->bin, late_args, err_path),
                         0);
        th_fatal_broker(1, late.pid);
        assert_int_equal(produce(late.brokers, "late", 0, 7, 10), 7);
        colon = strrchr(late.brokers, ':');
        assert_non_null(colon);
        f.target = atoi(colon + 1);

        code = th_wait_until(pid, th_now_ms() + 55000);
        th_read_file(log, &out);
        if (code != 0)
                th_show_tail("log", out.p, out.len);
        assert_int_equal(code, 0);
        assert_non_null(strstr(out.p, "reachable again"));
        assert_int_equal(sql_int(db, "SELECT COUNT(*) FROM rejected_records"),
                         7);
        th_buf_free(&out);

        f.stop = 1;
        pthread_join(f.thread, NULL);
        close(f.listen_fd);
        th_broker_stop(&late);
        th_fatal_broker(1, 0);
        th_args_free(&args);
        free(brokers);
        free(err_path);
        free(log);
        free(db);
}

/* Brokers lost after the start: a warning naming the cause, then, past
 * --broker-timeout, exit 1 with what was consumed committed. */
static void test_broker_lost_midstream(void **state)
{
        struct kops *st = *state;
        struct th_broker lost = {0};
        static const char *const lost_args[] = {"--topic", "lost", NULL};
        char *db = path_in(st, "lost.db"), *log = path_in(st, "lost.log");
        char *err_path = path_in(st, "lost-broker.err");
        struct th_args args;
        struct th_buf out = {0};
        int64_t end;
        pid_t pid;
        int code;

        assert_int_equal(th_broker_start(&lost, st->bin, lost_args, err_path),
                         0);
        th_fatal_broker(2, lost.pid);
        assert_int_equal(produce(lost.brokers, "lost", 0, 5, 10), 5);
        args = ingest_args(st, lost.brokers, "lost", db);
        th_args_addv(&args, "--from-beginning", "--broker-timeout", "3s", NULL);
        pid = th_spawn_logged(&args, log);
        assert_true(pid > 0);
        end = th_now_ms() + 30000;
        while (th_now_ms() < end &&
               sql_int(db, "SELECT SUM(stored_offset) FROM "
                           "pipeline_progress") != 5)
                th_sleep_ms(200);
        assert_int_equal(th_broker_stop(&lost), 0);
        th_fatal_broker(2, 0);

        code = th_wait_until(pid, th_now_ms() + 40000);
        th_read_file(log, &out);
        if (code != 1)
                th_show_tail("log", out.p, out.len);
        assert_int_equal(code, 1);
        assert_non_null(strstr(out.p, "warning: Kafka brokers"));
        assert_non_null(strstr(out.p, "--broker-timeout"));
        assert_int_equal(sql_int(db, "SELECT COUNT(*) FROM rejected_records"),
                         5);
        th_buf_free(&out);
        th_args_free(&args);
        free(err_path);
        free(log);
        free(db);
}

static int group_teardown(void **state)
{
        struct kops *st = *state;
        int failed = 0;

        if (!st)
                return 0;
        if (th_broker_stop(&st->broker) < 0)
                failed = 1;
        th_pg_stop(&st->pg);
        th_fatal_broker(0, 0);
        th_children_kill_all();
        th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->data);
        free(st);
        *state = NULL;
        return failed ? -1 : 0;
}

static int group_setup(void **state)
{
        struct kops *st = calloc(1, sizeof(*st));
        static const char *const broker_args[] = {
                "--topic",      "real",    "--topic", "gap",
                "--topic",      "real-pg", "--topic", "gap-pg",
                "--partitions", "2",       NULL};
        char *err_path;
        int r;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_kafka_ops", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data))
                goto fail;
        if (th_tmpdir_make("callstream-kops", st->dir, sizeof(st->dir)))
                goto fail;
        th_fatal_dir(st->dir);
        err_path = path_in(st, "broker.err");
        r = th_broker_start(&st->broker, st->bin, broker_args, err_path);
        free(err_path);
        if (r < 0)
                goto fail;
        th_fatal_broker(0, st->broker.pid);
        return 0;
fail:
        group_teardown(state);
        return -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_unreachable_no_group,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_unreachable_group,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_sigterm_during_wait,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_missing_topic, th_test_teardown),
                cmocka_unit_test_teardown(test_bad_properties,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_idle_lag_and_commits,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_retention_gap, th_test_teardown),
                cmocka_unit_test_teardown(test_broker_comes_up_later,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_broker_lost_midstream,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_postgresql, th_test_teardown),
        };

        return cmocka_run_group_tests_name("kafka_ops", tests, group_setup,
                                           group_teardown);
}
