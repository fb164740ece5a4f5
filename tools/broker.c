/* broker.c: `callstream broker`, a local in-memory Kafka-protocol broker
 * (librdkafka's mock cluster) for trials, demos and end-to-end tests, with
 * a control channel that injects the mock cluster's faults from outside. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_common.h"

#define CMD "broker"

/* The mock cluster gives topics it creates on first use this many
 * partitions; librdkafka 2.0.2 has no way to change it. */
#define AUTO_CREATE_PARTITIONS 4
/* Control connections served at once, and the longest command line. */
#define MAX_CONNS    8
#define LINE_MAX_LEN 512
/* How long `--control PATH COMMAND` waits for the answer. */
#define CONTROL_REPLY_TIMEOUT_S 30

static const char broker_help[] =
        "Usage: callstream broker [OPTIONS]\n"
        "       callstream broker --control PATH COMMAND [ARG]...\n"
        "\n"
        "Runs a local in-memory Kafka-protocol broker (librdkafka's mock "
        "cluster)\n"
        "for trials and tests. Prints its bootstrap address "
        "(host:port[,...]) as the\n"
        "first line of standard output, then serves until SIGINT or "
        "SIGTERM.\n"
        "\n"
        "NOT FOR PRODUCTION. It keeps nothing on disk: everything is gone "
        "when it\n"
        "stops. It keeps only about 5 MB or 100,000 message sets (producer "
        "batches)\n"
        "per partition; older data is deleted even if no one has read it "
        "yet. Size a\n"
        "stream with more partitions or with producer compression "
        "(callstream produce\n"
        "uses lz4), or consume while producing.\n"
        "\n"
        "Options:\n"
        "  --partitions N       partitions of each --topic, 1-10000 "
        "(default 4)\n"
        "  --topic TOPIC        create TOPIC at start (repeatable); topics "
        "first used\n"
        "                       without it are created with 4 partitions\n"
        "  --brokers N          number of brokers, ids 1 to N, 1-16 "
        "(default 1);\n"
        "                       also spelt --brokers-count\n"
        "  --daemon             run in the background: print the address, "
        "exit 0 once\n"
        "                       it listens (1 and the reason when it cannot "
        "start)\n"
        "  --pid-file FILE      write the broker's pid to FILE; removed on "
        "a clean exit\n"
        "  --address-file FILE  write the address to FILE once listening; "
        "removed on\n"
        "                       a clean exit\n"
        "  --log-file FILE      once listening, append log lines to FILE "
        "instead of\n"
        "                       standard error (with --daemon they are "
        "otherwise lost)\n"
        "  --control -|PATH     take fault-injection commands, one a line, "
        "from\n"
        "                       standard input (answers on standard output "
        "after\n"
        "                       the address) or from clients of a Unix "
        "socket at PATH\n"
        "  -v, --verbose        log more; -q, --quiet: errors only\n"
        "  -h, --help           show this help\n"
        "      --version        show the versions of callstream and its "
        "libraries\n"
        "\n"
        "Files are written whole (a temporary file renamed), so a reader "
        "never sees\n"
        "half an address. With COMMAND, sends it to the broker whose "
        "--control is\n"
        "PATH, prints the answer, and exits 0 when it is \"ok\", else 1.\n"
        "\n"
        "Control commands (each answers \"ok\" or \"error: WHY\"; ID is a "
        "broker, -1 all):\n"
        "  down ID                       close its connections, refuse new "
        "ones\n"
        "  up ID                         accept connections again\n"
        "  rtt ID MS                     delay its responses by MS "
        "milliseconds\n"
        "  error APIKEY ERRCODE [COUNT]  fail the next COUNT (default 1) "
        "requests of\n"
        "                                APIKEY (Produce, Fetch, Metadata, "
        "... or a\n"
        "                                number) with ERRCODE (a name such "
        "as\n"
        "                                NOT_LEADER_FOR_PARTITION or "
        "_TRANSPORT, or a\n"
        "                                number)\n"
        "  clear APIKEY                  drop the errors still queued for "
        "APIKEY\n"
        "  leader [TOPIC] PART ID        make broker ID (-1: none) lead "
        "partition PART\n"
        "                                of TOPIC (default: the only "
        "--topic)\n"
        "  help                          list the commands\n";

/* What a clean exit undoes, and what commands need to know. */
struct broker {
        rd_kafka_mock_cluster_t *mcluster;
        long long brokers;
        long long partitions;
        const char **topics;
        int topic_cnt;
        const char *pid_file;     /* borrowed from argv; NULL: none */
        const char *address_file; /* same */
        const char *control;      /* "-", a socket path, or NULL */
        int pid_written, address_written, control_bound;
        int listen_fd;
};

/* One control client: standard input/output or a socket connection. */
struct conn {
        int in, out; /* -1: slot free */
        size_t len;
        char buf[LINE_MAX_LEN];
};

static volatile sig_atomic_t stop_sig;

/* Runs only inside ppoll(), where the stop signals are unblocked. Being
 * installed also undoes an inherited SIG_IGN: a shell starts background
 * jobs with SIGINT ignored. */
static void on_stop_signal(int sig)
{
        stop_sig = sig;
}

/* Kafka's rule: 1-249 of [a-zA-Z0-9._-], and not "." or "..". */
static int valid_topic(const char *t)
{
        size_t n = strspn(t, "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789._-");

        return n > 0 && n <= 249 && t[n] == '\0' && strcmp(t, ".") &&
               strcmp(t, "..");
}

/* librdkafka's own logging, routed through cs_log. Its warnings and
 * errors are of interest; the rest is debug. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        (void)rk;
        if (level <= 4)
                cs_log(CS_LOG_WARN, "librdkafka: %s: %s", fac, buf);
        else
                cs_log(CS_LOG_DEBUG, "librdkafka: %s: %s", fac, buf);
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -1;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Writes text to path whole: a temporary file in the same folder, renamed
 * over path, so a reader sees the old file, no file, or all of text. */
static int write_file_atomic(const char *path, const char *text, char *errstr,
                             size_t errstr_size)
{
        size_t n = strlen(path) + 8;
        char *tmp = malloc(n);
        int fd = -1, rc = -1;

        if (!tmp) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        snprintf(tmp, n, "%s.XXXXXX", path);
        if ((fd = mkstemp(tmp)) < 0) {
                snprintf(errstr, errstr_size, "cannot create %s: %s", path,
                         strerror(errno));
                goto done;
        }
        if (fchmod(fd, 0644) || write_all(fd, text, strlen(text)) ||
            close(fd)) {
                fd = -1;
                snprintf(errstr, errstr_size, "cannot write %s: %s", path,
                         strerror(errno));
                unlink(tmp);
                goto done;
        }
        fd = -1;
        if (rename(tmp, path)) {
                snprintf(errstr, errstr_size, "cannot rename %s to %s: %s", tmp,
                         path, strerror(errno));
                unlink(tmp);
                goto done;
        }
        rc = 0;
done:
        if (fd >= 0)
                close(fd);
        free(tmp);
        return rc;
}

/* Removes path when it still holds text: another broker may have taken
 * the pid file over since. */
static void remove_if_ours(const char *path, const char *text)
{
        char buf[256];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n >= 0 && (buf[n] = '\0', !strcmp(buf, text)))
                unlink(path);
}

static int unix_addr(const char *path, struct sockaddr_un *sa, char *errstr,
                     size_t errstr_size)
{
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sa->sun_path)) {
                snprintf(errstr, errstr_size,
                         "control socket path %s is longer than %zu bytes",
                         path, sizeof(sa->sun_path) - 1);
                return -1;
        }
        strcpy(sa->sun_path, path);
        return 0;
}

/* Listens on a Unix socket at path. A socket file left by a broker that
 * died is replaced; one that a live broker answers on is not. */
static int control_listen(const char *path, char *errstr, size_t errstr_size)
{
        struct sockaddr_un sa;
        struct stat st;
        int fd;

        if (unix_addr(path, &sa, errstr, errstr_size))
                return -1;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        snprintf(errstr, errstr_size,
                                 "control socket %s: exists and is not a "
                                 "socket",
                                 path);
                        return -1;
                }
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd >= 0 &&
                    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        close(fd);
                        snprintf(errstr, errstr_size,
                                 "control socket %s: another broker is "
                                 "listening there",
                                 path);
                        return -1;
                }
                if (fd >= 0)
                        close(fd);
                unlink(path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
            listen(fd, MAX_CONNS)) {
                snprintf(errstr, errstr_size, "control socket %s: %s", path,
                         strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

/* `callstream broker --control PATH COMMAND...`: one command, one answer
 * on stdout. */
static int control_send(const char *path, int argc, char **argv)
{
        struct sockaddr_un sa;
        struct timeval tv = {CONTROL_REPLY_TIMEOUT_S, 0};
        char errstr[512], line[LINE_MAX_LEN], answer[LINE_MAX_LEN];
        size_t len = 0, got = 0;
        int fd, i;

        for (i = 0; i < argc; i++) {
                int n = snprintf(line + len, sizeof(line) - len, "%s%s",
                                 i ? " " : "", argv[i]);

                if (n < 0 || (size_t)n + 1 >= sizeof(line) - len) {
                        cs_cli_usage_error(CMD, "control command too long");
                        return CS_EXIT_USAGE;
                }
                len += (size_t)n;
        }
        line[len++] = '\n';
        if (unix_addr(path, &sa, errstr, sizeof(errstr))) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return CS_EXIT_FAILURE;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
                cs_log(CS_LOG_ERROR,
                       "cannot reach the broker's control socket %s: %s", path,
                       strerror(errno));
                if (fd >= 0)
                        close(fd);
                return CS_EXIT_FAILURE;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        signal(SIGPIPE, SIG_IGN);
        if (write_all(fd, line, len)) {
                cs_log(CS_LOG_ERROR, "control socket %s: %s", path,
                       strerror(errno));
                close(fd);
                return CS_EXIT_FAILURE;
        }
        shutdown(fd, SHUT_WR);
        while (got < sizeof(answer) - 1 && !memchr(answer, '\n', got)) {
                ssize_t n = read(fd, answer + got, sizeof(answer) - 1 - got);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        answer[got] = '\0';
        answer[strcspn(answer, "\n")] = '\0';
        if (!*answer) {
                cs_log(CS_LOG_ERROR,
                       "control socket %s: no answer from the broker", path);
                return CS_EXIT_FAILURE;
        }
        printf("%s\n", answer);
        return strncmp(answer, "ok", 2) ? CS_EXIT_FAILURE : CS_EXIT_OK;
}

/*
 * Control commands.
 */

/* Kafka protocol request types by name (KIP-482 names, as librdkafka
 * logs them); others are given as numbers. */
static const struct {
        const char *name;
        int16_t key;
} api_keys[] = {
        {"Produce", 0},
        {"Fetch", 1},
        {"ListOffsets", 2},
        {"Metadata", 3},
        {"OffsetCommit", 8},
        {"OffsetFetch", 9},
        {"FindCoordinator", 10},
        {"JoinGroup", 11},
        {"Heartbeat", 12},
        {"LeaveGroup", 13},
        {"SyncGroup", 14},
        {"DescribeGroups", 15},
        {"ListGroups", 16},
        {"SaslHandshake", 17},
        {"ApiVersions", 18},
        {"CreateTopics", 19},
        {"DeleteTopics", 20},
        {"DeleteRecords", 21},
        {"InitProducerId", 22},
        {"OffsetForLeaderEpoch", 23},
        {"AddPartitionsToTxn", 24},
        {"AddOffsetsToTxn", 25},
        {"EndTxn", 26},
        {"TxnOffsetCommit", 28},
};

static int parse_long(const char *s, long min, long max, long *out)
{
        char *end;
        long v;

        if (!s)
                return -1;
        errno = 0;
        v = strtol(s, &end, 10);
        if (end == s || *end || errno || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

static int parse_api_key(const char *s, int16_t *out)
{
        size_t i;
        long v;

        for (i = 0; i < CS_ARRAY_SIZE(api_keys); i++) {
                if (!strcasecmp(s, api_keys[i].name)) {
                        *out = api_keys[i].key;
                        return 0;
                }
        }
        if (parse_long(s, 0, INT16_MAX, &v))
                return -1;
        *out = (int16_t)v;
        return 0;
}

/* An error code by librdkafka's name (NOT_LEADER_FOR_PARTITION,
 * _TRANSPORT, with or without RD_KAFKA_RESP_ERR_) or number. */
static int parse_err(const char *s, rd_kafka_resp_err_t *out)
{
        const struct rd_kafka_err_desc *descs;
        size_t cnt, i;
        long v;

        if (!strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18))
                s += 18;
        rd_kafka_get_err_descs(&descs, &cnt);
        for (i = 0; i < cnt; i++) {
                if (descs[i].name && !strcasecmp(s, descs[i].name)) {
                        *out = descs[i].code;
                        return 0;
                }
        }
        if (parse_long(s, -200, 1000, &v))
                return -1;
        for (i = 0; i < cnt; i++) {
                if (descs[i].name && descs[i].code == v) {
                        *out = descs[i].code;
                        return 0;
                }
        }
        return -1;
}

/* A broker id of this cluster (1..N), or -1 for all of them. */
static int parse_broker(const struct broker *b, const char *s, int32_t *out,
                        char *ans, size_t size)
{
        long v;

        if (!s || parse_long(s, -1, b->brokers, &v) || v == 0) {
                snprintf(ans, size,
                         "error: broker '%s': expected 1 to %lld, or -1 for "
                         "all",
                         s ? s : "", b->brokers);
                return -1;
        }
        *out = (int32_t)v;
        return 0;
}

/* Runs one command line, writing "ok" or "error: WHY" to ans. */
static void run_command(struct broker *b, char *line, char *ans, size_t size)
{
        char *tok[6], *save = NULL, *w;
        int n = 0;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        int32_t id;
        long v;

        for (w = strtok_r(line, " \t\r", &save); w && n < 6;
             w = strtok_r(NULL, " \t\r", &save))
                tok[n++] = w;
        for (; n < 6; n++)
                tok[n] = NULL;

        snprintf(ans, size, "ok");
        if (!strcmp(tok[0], "down") || !strcmp(tok[0], "up")) {
                if (parse_broker(b, tok[1], &id, ans, size))
                        return;
                if (tok[2])
                        goto usage;
                err = tok[0][0] == 'd'
                              ? rd_kafka_mock_broker_set_down(b->mcluster, id)
                              : rd_kafka_mock_broker_set_up(b->mcluster, id);
        } else if (!strcmp(tok[0], "rtt")) {
                if (parse_broker(b, tok[1], &id, ans, size))
                        return;
                if (tok[3] || parse_long(tok[2], 0, 3600000, &v)) {
                        snprintf(ans, size,
                                 "error: rtt ID MS: MS from 0 to 3600000");
                        return;
                }
                err = rd_kafka_mock_broker_set_rtt(b->mcluster, id, (int)v);
        } else if (!strcmp(tok[0], "error")) {
                rd_kafka_resp_err_t code, *codes;
                int16_t key;
                long i, cnt = 1;

                if (!tok[1] || !tok[2] || tok[4])
                        goto usage;
                if (parse_api_key(tok[1], &key)) {
                        snprintf(ans, size, "error: unknown API key '%s'",
                                 tok[1]);
                        return;
                }
                if (parse_err(tok[2], &code)) {
                        snprintf(ans, size, "error: unknown error code '%s'",
                                 tok[2]);
                        return;
                }
                if (tok[3] && parse_long(tok[3], 1, 100000, &cnt)) {
                        snprintf(ans, size,
                                 "error: COUNT '%s': expected 1 to 100000",
                                 tok[3]);
                        return;
                }
                if (!(codes = malloc((size_t)cnt * sizeof(*codes)))) {
                        snprintf(ans, size, "error: out of memory");
                        return;
                }
                for (i = 0; i < cnt; i++)
                        codes[i] = code;
                rd_kafka_mock_push_request_errors_array(b->mcluster, key,
                                                        (size_t)cnt, codes);
                free(codes);
        } else if (!strcmp(tok[0], "clear")) {
                int16_t key;

                if (!tok[1] || tok[2])
                        goto usage;
                if (parse_api_key(tok[1], &key)) {
                        snprintf(ans, size, "error: unknown API key '%s'",
                                 tok[1]);
                        return;
                }
                rd_kafka_mock_clear_request_errors(b->mcluster, key);
        } else if (!strcmp(tok[0], "leader")) {
                const char *topic, *part_s, *id_s;

                if (tok[3] && !tok[4]) {
                        topic = tok[1];
                        part_s = tok[2];
                        id_s = tok[3];
                } else if (tok[2] && !tok[3]) {
                        if (b->topic_cnt != 1) {
                                snprintf(ans, size,
                                         "error: leader PART ID needs "
                                         "exactly one --topic; name the "
                                         "topic: leader TOPIC PART ID");
                                return;
                        }
                        topic = b->topics[0];
                        part_s = tok[1];
                        id_s = tok[2];
                } else {
                        goto usage;
                }
                if (!valid_topic(topic)) {
                        snprintf(ans, size, "error: invalid topic '%s'", topic);
                        return;
                }
                if (parse_long(part_s, 0, INT32_MAX, &v)) {
                        snprintf(ans, size, "error: invalid partition '%s'",
                                 part_s);
                        return;
                }
                if (parse_broker(b, id_s, &id, ans, size))
                        return;
                err = rd_kafka_mock_partition_set_leader(b->mcluster, topic,
                                                         (int32_t)v, id);
        } else if (!strcmp(tok[0], "help")) {
                snprintf(ans, size,
                         "ok: down ID | up ID | rtt ID MS | error APIKEY "
                         "ERRCODE [COUNT] | clear APIKEY | leader [TOPIC] "
                         "PART ID");
        } else {
                snprintf(ans, size, "error: unknown command '%s' (try 'help')",
                         tok[0]);
        }
        if (err)
                snprintf(ans, size, "error: %s", rd_kafka_err2str(err));
        return;
usage:
        snprintf(ans, size, "error: wrong arguments for '%s' (try 'help')",
                 tok[0]);
}

/* Runs every complete line in c's buffer; answers go to c->out. Returns -1
 * when the client can no longer be answered. */
static int serve_lines(struct broker *b, struct conn *c)
{
        char *nl, ans[LINE_MAX_LEN + 64], cmd[LINE_MAX_LEN];

        while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
                size_t n = (size_t)(nl - c->buf);

                memcpy(cmd, c->buf, n);
                cmd[n] = '\0';
                c->len -= n + 1;
                memmove(c->buf, nl + 1, c->len);
                /* Blank lines and # comments let a script annotate. */
                if (cmd[strspn(cmd, " \t\r")] == '\0' ||
                    cmd[strspn(cmd, " \t\r")] == '#')
                        continue;
                cs_log(CS_LOG_INFO, "control: %s", cmd);
                run_command(b, cmd, ans, sizeof(ans) - 1);
                if (strncmp(ans, "ok", 2))
                        cs_log(CS_LOG_WARN, "control: %s", ans);
                strcat(ans, "\n");
                if (write_all(c->out, ans, strlen(ans)))
                        return -1;
        }
        if (c->len == sizeof(c->buf)) {
                static const char too_long[] = "error: command too long\n";

                c->len = 0;
                if (write_all(c->out, too_long, sizeof(too_long) - 1))
                        return -1;
        }
        return 0;
}

static void conn_close(struct conn *c)
{
        if (c->in > STDIN_FILENO)
                close(c->in);
        c->in = c->out = -1;
        c->len = 0;
}

/* Serves the control clients until a stop signal; wait_mask is the signal
 * mask to wait with (the stop signals unblocked). */
static int serve(struct broker *b, rd_kafka_t *rk, const sigset_t *wait_mask)
{
        struct conn conns[MAX_CONNS];
        struct pollfd pfd[MAX_CONNS + 1];
        int i, k;

        for (i = 0; i < MAX_CONNS; i++)
                conns[i].in = conns[i].out = -1;
        if (b->control && !strcmp(b->control, "-")) {
                conns[0].in = STDIN_FILENO;
                conns[0].out = STDOUT_FILENO;
                conns[0].len = 0;
        }
        while (!stop_sig) {
                const struct timespec tick = {1, 0};
                int nfds = 0, r;

                if (b->listen_fd >= 0) {
                        pfd[nfds].fd = b->listen_fd;
                        pfd[nfds++].events = POLLIN;
                }
                for (i = 0; i < MAX_CONNS; i++) {
                        if (conns[i].in < 0)
                                continue;
                        pfd[nfds].fd = conns[i].in;
                        pfd[nfds++].events = POLLIN;
                }
                r = ppoll(pfd, (nfds_t)nfds, &tick, wait_mask);
                /* Serve the idle client's queue so nothing piles up. */
                rd_kafka_poll(rk, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        cs_log(CS_LOG_ERROR, "poll: %s", strerror(errno));
                        return -1;
                }
                k = 0;
                if (b->listen_fd >= 0 && (pfd[k++].revents & POLLIN)) {
                        int fd =
                                accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);

                        for (i = 0; fd >= 0 && i < MAX_CONNS; i++) {
                                if (conns[i].in < 0) {
                                        conns[i].in = conns[i].out = fd;
                                        conns[i].len = 0;
                                        fd = -1;
                                }
                        }
                        if (fd >= 0) {
                                static const char busy[] =
                                        "error: too many control clients\n";

                                (void)!write(fd, busy, sizeof(busy) - 1);
                                close(fd);
                        }
                }
                for (i = 0; i < MAX_CONNS; i++) {
                        struct conn *c = &conns[i];
                        ssize_t n;

                        if (c->in < 0)
                                continue;
                        /* A slot filled by this round's accept has no
                         * entry in pfd yet. */
                        if (k >= nfds || pfd[k].fd != c->in)
                                continue;
                        if (!(pfd[k++].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        n = read(c->in, c->buf + c->len,
                                 sizeof(c->buf) - c->len);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                /* Standard input at its end: the broker
                                 * keeps serving, without commands. */
                                conn_close(c);
                                continue;
                        }
                        c->len += (size_t)n;
                        if (serve_lines(b, c))
                                conn_close(c);
                }
        }
        for (i = 0; i < MAX_CONNS; i++)
                conn_close(&conns[i]);
        return 0;
}

/* --daemon, in the parent: waits for the child to say it listens ("ok
 * ADDRESS") and prints the address, or for it to fail (it says why on
 * the standard error it still shares with us). */
static int await_daemon(pid_t pid, int ready_fd)
{
        char buf[1024];
        size_t got = 0;
        int ws;

        for (;;) {
                ssize_t n = read(ready_fd, buf + got, sizeof(buf) - 1 - got);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || (got += (size_t)n) == sizeof(buf) - 1)
                        break;
        }
        close(ready_fd);
        buf[got] = '\0';
        if (!strncmp(buf, "ok ", 3) && strchr(buf, '\n')) {
                fputs(buf + 3, stdout);
                return fflush(stdout) ? CS_EXIT_FAILURE : CS_EXIT_OK;
        }
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) == 0)
                cs_log(CS_LOG_ERROR,
                       "the broker ended before it was ready "
                       "(%s %d)",
                       WIFSIGNALED(ws) ? "signal" : "status",
                       WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
        return CS_EXIT_FAILURE;
}

/* Points fd at /dev/null. */
static int to_dev_null(int fd)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        int rc;

        if (null < 0)
                return -1;
        rc = dup2(null, fd) < 0 ? -1 : 0;
        close(null);
        return rc;
}

int cs_cmd_broker(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"partitions", required_argument, NULL, 'p'},
                {"topic", required_argument, NULL, 't'},
                {"brokers", required_argument, NULL, 'B'},
                {"brokers-count", required_argument, NULL, 'B'},
                {"daemon", no_argument, NULL, 'D'},
                {"pid-file", required_argument, NULL, 'P'},
                {"address-file", required_argument, NULL, 'A'},
                {"log-file", required_argument, NULL, 'L'},
                {"control", required_argument, NULL, 'C'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct broker b = {.partitions = 4, .brokers = 1, .listen_fd = -1};
        const char *log_file = NULL;
        int i, c, rf, daemonize = 0, log_fd = -1, ready_fd = -1;
        rd_kafka_conf_t *conf = NULL;
        rd_kafka_t *rk = NULL;
        char errstr[512], pid_text[32] = "", addr_text[1024];
        sigset_t sigs, old_sigs, wait_mask;
        struct sigaction sa, old_int, old_term;
        int masked = 0;
        int status = CS_EXIT_USAGE; /* until the arguments are read */

        /* At most one topic per argument, so argc bounds the list. */
        b.topics = calloc((size_t)argc + 1, sizeof(*b.topics));
        if (!b.topics) {
                cs_log(CS_LOG_ERROR, "out of memory");
                return CS_EXIT_FAILURE;
        }

        optind = 1;
        /* '+': a control COMMAND's arguments, such as "-1", are not
         * options. */
        while ((c = cs_cli_getopt(CMD, argc, argv, "+h", longopts)) != -1) {
                switch (c) {
                case 'p':
                        if (cs_cli_int(CMD, "--partitions", optarg, 1, 10000,
                                       &b.partitions))
                                goto fail;
                        break;
                case 'B':
                        if (cs_cli_int(CMD, "--brokers", optarg, 1, 16,
                                       &b.brokers))
                                goto fail;
                        break;
                case 't':
                        if (!valid_topic(optarg)) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --topic '%s': "
                                                   "expected 1-249 of "
                                                   "a-z A-Z 0-9 . _ -",
                                                   optarg);
                                goto fail;
                        }
                        /* Creating a topic twice trips an assert in the
                         * mock cluster, so repeats are dropped here. */
                        for (i = 0; i < b.topic_cnt; i++)
                                if (!strcmp(b.topics[i], optarg))
                                        break;
                        if (i == b.topic_cnt)
                                b.topics[b.topic_cnt++] = optarg;
                        break;
                case 'D':
                        daemonize = 1;
                        break;
                case 'P':
                case 'A':
                case 'L':
                case 'C':
                        if (!*optarg) {
                                cs_cli_usage_error(CMD, "empty %s",
                                                   argv[optind - 1]);
                                goto fail;
                        }
                        *(c == 'P'   ? &b.pid_file
                          : c == 'A' ? &b.address_file
                          : c == 'L' ? &log_file
                                     : &b.control) = optarg;
                        break;
                case 'h':
                        fputs(broker_help, stdout);
                        free(b.topics);
                        return CS_EXIT_OK;
                case CS_CLI_DONE:
                        free(b.topics);
                        return CS_EXIT_OK;
                default:
                        goto fail;
                }
        }
        if (optind < argc) {
                if (!b.control || !strcmp(b.control, "-")) {
                        cs_cli_usage_error(CMD,
                                           "unexpected argument '%s' (a "
                                           "control command needs "
                                           "--control PATH)",
                                           argv[optind]);
                        goto fail;
                }
                free(b.topics);
                return control_send(b.control, argc - optind, argv + optind);
        }
        if (daemonize && b.control && !strcmp(b.control, "-")) {
                cs_cli_usage_error(CMD, "--control - needs standard input, "
                                        "which --daemon closes; use "
                                        "--control PATH");
                goto fail;
        }
        status = CS_EXIT_FAILURE;

        if (log_file) {
                log_fd = open(log_file,
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (log_fd < 0) {
                        cs_log(CS_LOG_ERROR, "cannot open --log-file %s: %s",
                               log_file, strerror(errno));
                        goto fail;
                }
        }

        /* Fork before librdkafka starts any thread. The child keeps our
         * standard error until it is ready, so a failure to start is said
         * where the caller looks. */
        if (daemonize) {
                int ready[2];
                pid_t pid;

                if (pipe2(ready, O_CLOEXEC) || (pid = fork()) < 0) {
                        cs_log(CS_LOG_ERROR, "cannot start the daemon: %s",
                               strerror(errno));
                        goto fail;
                }
                if (pid > 0) {
                        close(ready[1]);
                        if (log_fd >= 0)
                                close(log_fd);
                        free(b.topics);
                        return await_daemon(pid, ready[0]);
                }
                close(ready[0]);
                ready_fd = ready[1];
                setsid();
                if (to_dev_null(STDIN_FILENO) || to_dev_null(STDOUT_FILENO)) {
                        cs_log(CS_LOG_ERROR, "cannot open /dev/null: %s",
                               strerror(errno));
                        goto fail;
                }
        }

        /* Block the stop signals before librdkafka starts its threads, so
         * they inherit the mask and only ppoll() below takes them. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &sigs, &old_sigs);
        wait_mask = old_sigs;
        sigdelset(&wait_mask, SIGINT);
        sigdelset(&wait_mask, SIGTERM);
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        masked = 1;
        /* A reader of our stdout or a client may go away at any time. */
        signal(SIGPIPE, SIG_IGN);

        /* The mock cluster needs a client handle for its bookkeeping; this
         * producer never produces and has no bootstrap servers. */
        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, log_cb);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                cs_log(CS_LOG_ERROR, "cannot create the broker's client: %s",
                       errstr);
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        conf = NULL; /* owned by rk now */

        b.mcluster = rd_kafka_mock_cluster_new(rk, (int)b.brokers);
        if (!b.mcluster) {
                cs_log(CS_LOG_ERROR, "cannot start the mock cluster (see the "
                                     "librdkafka messages above)");
                goto fail;
        }

        rf = b.brokers < 3 ? (int)b.brokers : 3;
        for (i = 0; i < b.topic_cnt; i++) {
                rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
                        b.mcluster, b.topics[i], (int)b.partitions, rf);

                if (err) {
                        cs_log(CS_LOG_ERROR, "cannot create topic %s: %s",
                               b.topics[i], rd_kafka_err2str(err));
                        goto fail;
                }
        }

        if (b.control && strcmp(b.control, "-")) {
                if ((b.listen_fd = control_listen(b.control, errstr,
                                                  sizeof(errstr))) < 0) {
                        cs_log(CS_LOG_ERROR, "%s", errstr);
                        goto fail;
                }
                b.control_bound = 1;
        }
        snprintf(pid_text, sizeof(pid_text), "%ld\n", (long)getpid());
        if (b.pid_file) {
                if (write_file_atomic(b.pid_file, pid_text, errstr,
                                      sizeof(errstr))) {
                        cs_log(CS_LOG_ERROR, "--pid-file: %s", errstr);
                        goto fail;
                }
                b.pid_written = 1;
        }
        snprintf(addr_text, sizeof(addr_text), "%s\n",
                 rd_kafka_mock_cluster_bootstraps(b.mcluster));
        if (b.address_file) {
                if (write_file_atomic(b.address_file, addr_text, errstr,
                                      sizeof(errstr))) {
                        cs_log(CS_LOG_ERROR, "--address-file: %s", errstr);
                        goto fail;
                }
                b.address_written = 1;
        }

        if (ready_fd >= 0) {
                if (write_all(ready_fd, "ok ", 3) ||
                    write_all(ready_fd, addr_text, strlen(addr_text))) {
                        cs_log(CS_LOG_ERROR,
                               "cannot tell the parent the "
                               "address: %s",
                               strerror(errno));
                        goto fail;
                }
                close(ready_fd);
                ready_fd = -1;
        } else {
                fputs(addr_text, stdout);
                if (fflush(stdout) != 0) {
                        cs_log(CS_LOG_ERROR, "cannot write the bootstrap "
                                             "address to standard output");
                        goto fail;
                }
        }
        /* From now on the log goes where it was asked to; the daemon's
         * caller may be waiting for the end of our standard error. */
        if (log_fd >= 0) {
                dup2(log_fd, STDERR_FILENO);
                close(log_fd);
                log_fd = -1;
        } else if (daemonize) {
                to_dev_null(STDERR_FILENO);
        }

        for (i = 0; i < b.topic_cnt; i++)
                cs_log(CS_LOG_INFO, "topic %s: %lld partitions", b.topics[i],
                       b.partitions);
        cs_log(CS_LOG_INFO,
               "broker ready on %s (%lld broker%s, in memory only, pid %ld); "
               "stop with Ctrl-C or SIGTERM",
               rd_kafka_mock_cluster_bootstraps(b.mcluster), b.brokers,
               b.brokers == 1 ? "" : "s", (long)getpid());
        if (serve(&b, rk, &wait_mask) == 0) {
                cs_log(CS_LOG_INFO, "stopping the broker (%s)",
                       stop_sig == SIGINT ? "SIGINT" : "SIGTERM");
                status = CS_EXIT_OK;
        }

fail:
        if (b.mcluster)
                rd_kafka_mock_cluster_destroy(b.mcluster);
        if (rk)
                rd_kafka_destroy(rk);
        if (b.listen_fd >= 0)
                close(b.listen_fd);
        if (b.control_bound)
                unlink(b.control);
        if (b.address_written)
                remove_if_ours(b.address_file, addr_text);
        if (b.pid_written)
                remove_if_ours(b.pid_file, pid_text);
        if (masked) {
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
                pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
        }
        if (log_fd >= 0)
                close(log_fd);
        if (ready_fd >= 0)
                close(ready_fd);
        free(b.topics);
        return status;
}
