/* produce.c: `callstream produce`, streams a JSON array or NDJSON file into a
 * Kafka topic, one call per message, keyed by crime_id. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cs_avro.h"
#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_common.h"
#include "cs_jsonsplit.h"
#include "cs_parse.h"
#include "cs_window.h"

#define CMD "produce"

/* Input is read in chunks of this size. */
#define READ_SIZE (256 * 1024)
/* Delivery and produce errors shown one by one; the rest are counted. */
#define MAX_SHOWN_ERRORS 5
/* Extra time for the final wait beyond message.timeout.ms. */
#define FLUSH_GRACE_MS 10000
/* How often a quiet input is checked for a stop signal. */
#define POLL_SLICE_MS 200
/* A wait for deliveries longer than this is announced. */
#define ANNOUNCE_WAIT_MS 2000
/* After an abort, how long purged messages may take to report back. */
#define ABORT_DRAIN_MS 1000
/* The progress line: drawn once a run has taken this long, then redrawn
 * at most this often. */
#define PROGRESS_AFTER_NS (1000 * 1000000LL)
#define PROGRESS_EVERY_NS (200 * 1000000LL)

struct producer {
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt;
        struct cs_parser *parser;
        const char *topic;
        int64_t interval_ns;        /* between messages under --rate, else 0 */
        int64_t next_due_ns;        /* when the next message may go */
        unsigned long long records; /* read from the input */
        unsigned long long queued;  /* accepted by librdkafka */
        unsigned long long delivered; /* acknowledged by the broker */
        unsigned long long failed;    /* not produced or not delivered */
        unsigned long long unkeyed;   /* not valid calls, sent without key */
        uint64_t last_offset;         /* input offset of the last one sent */
        long long max_msg;            /* message.max.bytes */
        int errors_shown;
        rd_kafka_resp_err_t last_err; /* last one shown, to skip repeats */
        int32_t last_partition;
        int broker_errors_shown;
        int fatal;

        /* --speedup: the event time of the first timed record, when it
         * went, and the latest event time sent; a record goes at
         * base_ns + (its time - base_us) / speedup. */
        double speedup;
        int timed;
        int64_t base_us, base_ns, latest_us;

        /* The progress line on a terminal. */
        int progress;
        long long total_bytes; /* of a regular file, else -1 */
        int64_t start_ns, drawn_ns;
        int drawn; /* a line is on the screen */

        /* --format avro: valid calls are encoded with enc; with
         * --input-framing length the input is Avro already and dec only
         * finds each message's key. */
        struct cs_avro_encoder *enc;
        struct cs_avro_decoder *dec;
};

/* interrupted: stop reading the input, deliver what is queued. aborted:
 * stop waiting for deliveries too (SIGTERM, a second Ctrl-C, or a first one
 * once the wait has been announced); abort_sig says which signal. */
static volatile sig_atomic_t interrupted, aborted, abort_sig, announced;

static void on_signal(int sig)
{
        if (sig == SIGTERM || interrupted || announced) {
                abort_sig = sig;
                aborted = 1;
        }
        interrupted = 1;
}

static void usage(void)
{
        printf("Usage: callstream produce --brokers HOST:PORT[,...] --topic "
               "TOPIC [OPTIONS] [FILE|-]\n"
               "\n"
               "Streams police calls into a Kafka topic, one record per "
               "message. FILE\n"
               "(default '-', standard input) is read incrementally. When "
               "its first\n"
               "non-blank byte is '[' it is a JSON array and each element "
               "is a message,\n"
               "compacted (white space outside strings dropped); otherwise "
               "it is NDJSON and\n"
               "each non-blank line is a message as is. A record that is a "
               "valid call is\n"
               "keyed by its crime_id, so all copies of a call go to the "
               "same partition;\n"
               "other records are sent without a key.\n"
               "\n"
               "Options:\n"
               "  -b, --brokers LIST      bootstrap servers, "
               "host:port[,...]\n"
               "  -t, --topic TOPIC       topic to produce to\n"
               "      --rate N            at most N messages per second, "
               "evenly spaced\n"
               "                          (default: as fast as possible)\n"
               "      --speedup X         replay by event time, X times "
               "faster than the\n"
               "                          calls happened: each call goes "
               "when its\n"
               "                          call_date_time, less the first "
               "one's, divided by\n"
               "                          X, has passed since the first "
               "went; a call older\n"
               "                          than one sent before, or a "
               "record that is not a\n"
               "                          call, goes at once (X > 0, "
               "e.g. 60 or 0.5)\n"
               "      --delivery-timeout D\n"
               "                          give up on a message not "
               "delivered within D (s, m,\n"
               "                          h; 0 never; default 5m); the "
               "same as -X\n"
               "                          message.timeout.ms, the later "
               "one wins\n"
               "      --format json|avro  send records as they are (json, the "
               "default), or\n"
               "                          encode each valid call as Avro; "
               "other records\n"
               "                          are sent as they are, unkeyed\n"
               "      --avro-schema FILE  the Avro schema (default: "
               "schemas/calls.avsc,\n"
               "                          built in)\n"
               "      --framing plain|confluent\n"
               "                          Avro: the datum alone (default), or "
               "byte 0 and\n"
               "                          a 4-byte schema id before it\n"
               "      --schema-id N       the id Confluent framing writes "
               "(default 0)\n"
               "      --input-framing lines|length\n"
               "                          length: FILE holds messages as "
               "`generate\n"
               "                          --format avro` writes them (4-byte "
               "big-endian\n"
               "                          length, message), sent as they are\n"
               "  -X PROP=VALUE           librdkafka configuration property "
               "(repeatable);\n"
               "                          the defaults "
               "enable.idempotence=true,\n"
               "                          compression.type=lz4, "
               "linger.ms=5 and\n"
               "                          batch.size=65536 can be "
               "overridden\n"
               "  -v, --verbose           log more; -q, --quiet: errors only\n"
               "  -h, --help              show this help\n"
               "      --version           show the versions of callstream and "
               "its libraries\n"
               "      --config FILE       read options from FILE (key = value "
               "lines,\n"
               "                          the long option names as keys)\n"
               "      --print-config      print the options in effect and "
               "where each\n"
               "                          comes from (secrets masked), and "
               "exit\n"
               "\n"
               "At the end of the input it waits for every delivery report "
               "(saying so\n"
               "after 2 s). The first Ctrl-C stops reading the input and "
               "waits for what\n"
               "was sent; a second one, or SIGTERM, aborts at once and says "
               "how many\n"
               "messages were not confirmed.\n"
               "\n"
               "On a terminal, a progress line (messages, rate, and for a "
               "file the share\n"
               "read and the time left) is shown on standard error after "
               "the first second.\n"
               "Prints a summary line to standard error (messages sent, "
               "delivered, failed,\n"
               "seconds, messages per second).\n"
               "Exits 1 when any message was not delivered, on an abort, "
               "when the input is\n"
               "a broken JSON array (after sending what came before the "
               "error), or it\n"
               "cannot be read; 2 on a wrong option.\n");
}

/* Values of these properties are never echoed. */
static int is_secret(const char *name)
{
        return strcasestr(name, "password") || strcasestr(name, "secret") ||
               strcasestr(name, "sasl");
}

/* Whether s[0..n) names a librdkafka property. Only used on the rare
 * lines that mention secrets, so a scratch conf per call is affordable,
 * and it keeps this safe on librdkafka's threads. */
static int is_property(const char *s, size_t n)
{
        char name[128], errstr[256];
        rd_kafka_conf_t *conf;
        int known;

        if (n == 0 || n >= sizeof(name))
                return 0;
        memcpy(name, s, n);
        name[n] = '\0';
        if (!(conf = rd_kafka_conf_new()))
                return 0;
        known = rd_kafka_conf_set(conf, name, "", errstr, sizeof(errstr)) !=
                RD_KAFKA_CONF_UNKNOWN;
        rd_kafka_conf_destroy(conf);
        return known;
}

/* Copies librdkafka's text msg to out. When it mentions a secret property,
 * every `quoted` or "quoted" part that is not a property name is replaced
 * by ***: librdkafka quotes configured values in its warnings. */
static void redact(const char *msg, char *out, size_t size)
{
        size_t o = 0;

        if (!is_secret(msg)) {
                snprintf(out, size, "%s", msg);
                return;
        }
        while (*msg && o + 8 < size) {
                const char *end;

                if (*msg != '`' && *msg != '"') {
                        out[o++] = *msg++;
                        continue;
                }
                end = strchr(msg + 1, *msg);
                if (end && is_property(msg + 1, (size_t)(end - msg - 1))) {
                        size_t n = (size_t)(end - msg) + 1;

                        if (o + n + 8 >= size)
                                break;
                        memcpy(out + o, msg, n);
                        o += n;
                        msg = end + 1;
                        continue;
                }
                out[o++] = *msg;
                memcpy(out + o, "***", 3);
                o += 3;
                if (!end)
                        break;
                out[o++] = *end;
                msg = end + 1;
        }
        out[o] = '\0';
}

/* Applies one PROP=VALUE to conf, printing a usage error on failure. */
static int set_property(rd_kafka_conf_t *conf, const char *arg)
{
        const char *eq = strchr(arg, '=');
        char name[256], errstr[512];
        size_t n;

        if (!eq || eq == arg) {
                cs_cli_usage_error(CMD,
                                   "invalid -X '%s': expected "
                                   "PROP=VALUE",
                                   is_secret(arg) ? "(hidden)" : arg);
                return -1;
        }
        n = (size_t)(eq - arg);
        if (n >= sizeof(name)) {
                cs_cli_usage_error(CMD, "unknown -X property '%.*s...'", 64,
                                   arg);
                return -1;
        }
        memcpy(name, arg, n);
        name[n] = '\0';

        switch (rd_kafka_conf_set(conf, name, eq + 1, errstr, sizeof(errstr))) {
        case RD_KAFKA_CONF_OK:
                return 0;
        case RD_KAFKA_CONF_INVALID:
                /* Some of librdkafka's messages end in a newline. */
                errstr[strcspn(errstr, "\n")] = '\0';
                break;
        case RD_KAFKA_CONF_UNKNOWN:
                cs_cli_usage_error(CMD, "unknown -X property '%s'", name);
                return -1;
        }
        /* librdkafka's message quotes the value. */
        if (is_secret(name))
                cs_cli_usage_error(CMD, "invalid value for -X %s", name);
        else
                cs_cli_usage_error(CMD, "invalid -X %s: %s", name, errstr);
        return -1;
}

/* Reads an integer property; def when it is not set or not a number. */
static long long conf_int(rd_kafka_conf_t *conf, const char *name,
                          long long def)
{
        char val[64], *end;
        size_t size = sizeof(val);
        long long v;

        if (rd_kafka_conf_get(conf, name, val, &size) != RD_KAFKA_CONF_OK)
                return def;
        v = strtoll(val, &end, 10);
        return end != val && *end == '\0' ? v : def;
}

static int64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* librdkafka's own logging, routed through cs_log. Connection failures
 * ("FAIL") also reach error_cb, so they are shown once, from there. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        int cs_level =
                level <= 4 && strcmp(fac, "FAIL") ? CS_LOG_WARN : CS_LOG_DEBUG;
        char line[1024];

        (void)rk;
        if (cs_level > cs_log_threshold)
                return;
        redact(buf, line, sizeof(line));
        cs_log(cs_level, "librdkafka: %s: %s", fac, line);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        struct producer *p = opaque;
        char fatal[512], line[1024];

        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
                redact(fatal, line, sizeof(line));
                cs_log(CS_LOG_ERROR, "fatal producer error: %s", line);
                p->fatal = 1;
                return;
        }
        /* Connection errors repeat on every retry; a few tell the story. */
        if (p->broker_errors_shown < MAX_SHOWN_ERRORS) {
                p->broker_errors_shown++;
                redact(reason, line, sizeof(line));
                cs_log(CS_LOG_WARN, "%s", line);
        }
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        struct producer *p = opaque;

        (void)rk;
        if (!m->err) {
                p->delivered++;
                return;
        }
        /* Messages purged on an abort are counted as not confirmed. */
        if (aborted && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                        m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
                return;
        p->failed++;
        /* When the broker is unreachable every message fails the same way:
         * show the first few distinct failures, count the rest. */
        if (p->errors_shown < MAX_SHOWN_ERRORS &&
            (m->err != p->last_err || m->partition != p->last_partition)) {
                p->errors_shown++;
                p->last_err = m->err;
                p->last_partition = m->partition;
                if (m->partition >= 0)
                        cs_log(CS_LOG_ERROR, "delivery to %s [%d] failed: %s",
                               rd_kafka_topic_name(m->rkt), (int)m->partition,
                               rd_kafka_err2str(m->err));
                else
                        cs_log(CS_LOG_ERROR,
                               "delivery to %s failed before a partition was "
                               "known: %s",
                               rd_kafka_topic_name(m->rkt),
                               rd_kafka_err2str(m->err));
        }
}

/* Waits until the next --rate slot. Sleeps only when ahead by 100 us or
 * more, so high rates are not capped by sleep overhead; the schedule still
 * holds the average exactly. */
static void pace(struct producer *p)
{
        int64_t now = now_ns();

        if (p->next_due_ns == 0 || now - p->next_due_ns > 1000000000) {
                /* First message, or far behind (a stall): start afresh
                 * rather than bursting to catch up. */
                p->next_due_ns = now;
        }
        while (p->next_due_ns - now >= 100000 && !interrupted) {
                int64_t wait = p->next_due_ns - now;

                if (wait >= 2000000) {
                        /* Serve delivery reports while waiting. */
                        rd_kafka_poll(p->rk, (int)(wait / 1000000) - 1);
                } else {
                        struct timespec ts = {0, (long)wait};

                        nanosleep(&ts, NULL);
                }
                now = now_ns();
        }
        p->next_due_ns += p->interval_ns;
}

/* Waits until the call of event time t_us is due under --speedup. Calls
 * behind the latest one sent are due at once: their place in the replay
 * has passed. */
static void speedup_wait(struct producer *p, int64_t t_us)
{
        int64_t due, now;

        if (!p->timed) {
                p->timed = 1;
                p->base_us = p->latest_us = t_us;
                p->base_ns = now_ns();
                return;
        }
        if (t_us <= p->latest_us)
                return;
        p->latest_us = t_us;
        due = p->base_ns +
              (int64_t)((double)(t_us - p->base_us) * 1000.0 / p->speedup);
        while (!interrupted && (now = now_ns()) < due) {
                int64_t wait_ms = (due - now) / 1000000;

                /* Serve delivery reports while waiting, in slices short
                 * enough for Ctrl-C. */
                if (wait_ms >= 1)
                        rd_kafka_poll(p->rk, (int)(wait_ms < POLL_SLICE_MS
                                                           ? wait_ms
                                                           : POLL_SLICE_MS));
                else {
                        struct timespec ts = {0, (long)(due - now)};

                        nanosleep(&ts, NULL);
                }
        }
}

/* "1h02m", "3m07s" or "12s". */
static void format_secs(double secs, char *out, size_t size)
{
        long long s = secs > 0 && secs < 1e9 ? (long long)(secs + 0.5) : 0;

        if (s >= 3600)
                snprintf(out, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
        else if (s >= 60)
                snprintf(out, size, "%lldm%02llds", s / 60, s % 60);
        else
                snprintf(out, size, "%llds", s);
}

/* Redraws the progress line: messages sent, the rate, and for a file of
 * known size the share read, a bar and the time left at that pace. */
static void draw_progress(struct producer *p, int64_t now)
{
        double secs = (double)(now - p->start_ns) / 1e9;
        double rate = secs > 0 ? (double)p->records / secs : 0;
        char eta[32];

        p->drawn_ns = now;
        p->drawn = 1;
        if (p->total_bytes > 0) {
                double done = (double)p->last_offset / (double)p->total_bytes;
                char bar[21];
                int i, fill;

                if (done > 1)
                        done = 1;
                fill = (int)(done * 20);
                for (i = 0; i < 20; i++)
                        bar[i] = i < fill ? '#' : '.';
                bar[20] = '\0';
                format_secs(done > 0 ? secs * (1 - done) / done : 0, eta,
                            sizeof(eta));
                fprintf(stderr,
                        "\r\033[K[%s] %3.0f%% %llu messages, %.0f msg/s, "
                        "ETA %s",
                        bar, done * 100, p->records, rate, eta);
        } else {
                fprintf(stderr, "\r\033[K%llu messages, %.0f msg/s", p->records,
                        rate);
        }
        fflush(stderr);
}

/* Takes the progress line off the screen, before any other line. */
static void clear_progress(struct producer *p)
{
        if (p->drawn) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
                p->drawn = 0;
        }
}

/* cs_jsonsplit callback: sends one message. */
static int send_message(void *opaque, const char *msg, size_t len,
                        uint64_t offset)
{
        struct producer *p = opaque;
        char reason[CS_PARSE_REASON_MAX];
        struct cs_call call;
        const char *key = NULL;
        size_t key_len = 0;

        p->records++;
        if (!msg) {
                if (p->errors_shown++ < MAX_SHOWN_ERRORS)
                        cs_log(CS_LOG_ERROR,
                               "record at byte %llu not sent: %zu bytes is "
                               "more than message.max.bytes (%lld)",
                               (unsigned long long)offset, len, p->max_msg);
                p->failed++;
                return 0;
        }
        if (p->interval_ns)
                pace(p);

        /* Every copy of a call must land in one partition, so the key is
         * the crime_id as the parser reads it (123 and "123" agree). */
        if ((p->dec ? cs_avro_decode(p->dec, msg, len, &call, reason,
                                     sizeof(reason))
                    : cs_parse_call(p->parser, msg, len, &call, reason,
                                    sizeof(reason))) == 0) {
                key = call.field[CS_F_CRIME_ID].ptr;
                key_len = call.field[CS_F_CRIME_ID].len;
                /* Waiting serves delivery reports only: the parsed call,
                 * which the key borrows from, stays as it is. */
                if (p->speedup > 0)
                        speedup_wait(p, call.ts * 1000000 + call.ts_usec);
                /* The key is copied by librdkafka; an encoded call's
                 * strings are not needed after cs_avro_encode(). */
                if (p->enc && cs_avro_encode(p->enc, &call, &msg, &len, reason,
                                             sizeof(reason)) < 0) {
                        cs_log(CS_LOG_DEBUG,
                               "record at byte %llu cannot be written as "
                               "Avro (%s): sent as it is",
                               (unsigned long long)offset, reason);
                }
        } else {
                p->unkeyed++;
                cs_log(CS_LOG_DEBUG,
                       "record at byte %llu is not a valid "
                       "call (%s): sent without a key",
                       (unsigned long long)offset, reason);
        }

        while (rd_kafka_produce(p->rkt, RD_KAFKA_PARTITION_UA,
                                RD_KAFKA_MSG_F_COPY, (void *)msg, len, key,
                                key_len, NULL) == -1) {
                rd_kafka_resp_err_t err = rd_kafka_last_error();

                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        /* Wait for deliveries to make room. */
                        rd_kafka_poll(p->rk, 100);
                        if (interrupted || p->fatal)
                                return -1;
                        continue;
                }
                if (err == RD_KAFKA_RESP_ERR__FATAL)
                        p->fatal = 1;
                if (p->errors_shown++ < MAX_SHOWN_ERRORS)
                        cs_log(CS_LOG_ERROR,
                               "record at byte %llu not sent to %s: %s",
                               (unsigned long long)offset, p->topic,
                               rd_kafka_err2str(err));
                p->failed++;
                return p->fatal ? -1 : 0;
        }
        p->queued++;
        p->last_offset = offset;
        /* Serve delivery reports now and then, cheaply. */
        if ((p->queued & 63) == 0)
                rd_kafka_poll(p->rk, 0);
        if (p->progress && ((p->queued & 63) == 0 || p->speedup > 0)) {
                int64_t now = now_ns();

                if (now - p->start_ns >= PROGRESS_AFTER_NS &&
                    now - p->drawn_ns >= PROGRESS_EVERY_NS)
                        draw_progress(p, now);
        }
        return interrupted || p->fatal;
}

int cs_cmd_produce(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"brokers", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"rate", required_argument, NULL, 'r'},
                {"delivery-timeout", required_argument, NULL, 'D'},
                {"speedup", required_argument, NULL, 'S'},
                {"format", required_argument, NULL, 'F'},
                {"avro-schema", required_argument, NULL, 'A'},
                {"framing", required_argument, NULL, 'J'},
                {"schema-id", required_argument, NULL, 'I'},
                {"input-framing", required_argument, NULL, 'L'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct producer p = {0};
        rd_kafka_conf_t *conf = NULL;
        struct cs_jsonsplit *js = NULL;
        struct cs_avro_frames *frames = NULL;
        const char *path = "-", *name, *avro_schema = NULL;
        char *avro_json = NULL;
        int avro = 0, framing = CS_AVRO_PLAIN, length_input = 0;
        long long schema_id = CS_AVRO_ANY_SCHEMA_ID;
        char errstr[512], *buf = NULL;
        long long rate = 0, timeout_ms;
        int64_t secs, deadline, wait_start;
        struct sigaction sa, old_int, old_term;
        int fd = -1, c, rc = 0, brokers_set = 0, flush_failed = 0;
        int signals_set = 0;
        int status = CS_EXIT_USAGE; /* until the arguments are read */
        ssize_t n;

        /* Our defaults go first so that -X can override them. */
        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "compression.type", "lz4", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr)) ||
            /* Kafka's own producer's order of size rather than
             * librdkafka's 1 MB: a consumer that merges partitions by
             * time (ingest) holds about one batch of each. */
            rd_kafka_conf_set(conf, "batch.size", "65536", errstr,
                              sizeof(errstr))) {
                cs_log(CS_LOG_ERROR, "librdkafka rejects a default: %s",
                       errstr);
                status = CS_EXIT_FAILURE;
                goto fail;
        }

        optind = 1;
        while ((c = cs_cli_getopt(CMD, argc, argv, "b:t:hX:", longopts)) !=
               -1) {
                switch (c) {
                case 'b':
                        if (rd_kafka_conf_set(conf, "bootstrap.servers", optarg,
                                              errstr, sizeof(errstr))) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --brokers: "
                                                   "%s",
                                                   errstr);
                                goto fail;
                        }
                        brokers_set = 1;
                        break;
                case 't':
                        if (!*optarg) {
                                cs_cli_usage_error(CMD, "empty --topic");
                                goto fail;
                        }
                        p.topic = optarg;
                        break;
                case 'r':
                        if (cs_cli_int(CMD, "--rate", optarg, 1, 1000000000,
                                       &rate))
                                goto fail;
                        break;
                case 'S': {
                        char *end;

                        errno = 0;
                        p.speedup = strtod(optarg, &end);
                        if (end == optarg || *end || errno == ERANGE ||
                            !isfinite(p.speedup) || !(p.speedup > 0)) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --speedup '%s': "
                                                   "expected a number above 0",
                                                   optarg);
                                goto fail;
                        }
                        break;
                }
                case 'D': {
                        char ms[32];

                        /* librdkafka's limit is INT32_MAX ms. */
                        if (cs_duration_parse(optarg, 0, INT32_MAX / 1000,
                                              &secs, errstr,
                                              sizeof(errstr)) < 0) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --delivery-timeout "
                                                   "'%s': %s",
                                                   optarg, errstr);
                                goto fail;
                        }
                        snprintf(ms, sizeof(ms), "%lld",
                                 (long long)secs * 1000);
                        if (rd_kafka_conf_set(conf, "message.timeout.ms", ms,
                                              errstr, sizeof(errstr))) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --delivery-timeout "
                                                   "'%s': %s",
                                                   optarg, errstr);
                                goto fail;
                        }
                        break;
                }
                case 'X':
                        if (set_property(conf, optarg))
                                goto fail;
                        if (!strncmp(optarg, "bootstrap.servers=", 18) ||
                            !strncmp(optarg, "metadata.broker.list=", 21))
                                brokers_set = 1;
                        break;
                case 'F':
                        if (strcmp(optarg, "json") && strcmp(optarg, "avro")) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --format '%s': "
                                                   "expected json or avro",
                                                   optarg);
                                goto fail;
                        }
                        avro = !strcmp(optarg, "avro");
                        break;
                case 'A':
                        avro_schema = optarg;
                        break;
                case 'J':
                        if (strcmp(optarg, "plain") &&
                            strcmp(optarg, "confluent")) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --framing '%s': "
                                                   "expected plain or "
                                                   "confluent",
                                                   optarg);
                                goto fail;
                        }
                        framing = !strcmp(optarg, "plain") ? CS_AVRO_PLAIN
                                                           : CS_AVRO_CONFLUENT;
                        break;
                case 'I':
                        if (cs_cli_int(CMD, "--schema-id", optarg, 0,
                                       UINT32_MAX, &schema_id))
                                goto fail;
                        break;
                case 'L':
                        if (strcmp(optarg, "lines") &&
                            strcmp(optarg, "length")) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --input-framing "
                                                   "'%s': expected lines or "
                                                   "length",
                                                   optarg);
                                goto fail;
                        }
                        length_input = !strcmp(optarg, "length");
                        break;
                case 'h':
                        usage();
                        status = CS_EXIT_OK;
                        goto fail;
                case CS_CLI_DONE:
                        status = CS_EXIT_OK;
                        goto fail;
                default:
                        goto fail;
                }
        }
        if (!brokers_set) {
                cs_cli_usage_error(CMD, "--brokers is required");
                goto fail;
        }
        if (!p.topic) {
                cs_cli_usage_error(CMD, "--topic is required");
                goto fail;
        }
        if (argc - optind > 1) {
                cs_cli_usage_error(CMD, "unexpected argument '%s'",
                                   argv[optind + 1]);
                goto fail;
        }
        if (optind < argc)
                path = argv[optind];
        if (!avro && (avro_schema || length_input || framing ||
                      schema_id != CS_AVRO_ANY_SCHEMA_ID)) {
                cs_cli_usage_error(CMD, "--avro-schema, --framing, "
                                        "--schema-id and --input-framing "
                                        "need --format avro");
                goto fail;
        }
        if (avro) {
                if (avro_schema &&
                    cs_avro_schema_load(avro_schema, &avro_json, errstr,
                                        sizeof(errstr)) < 0) {
                        cs_cli_usage_error(CMD, "--avro-schema %s", errstr);
                        goto fail;
                }
                if (length_input)
                        p.dec = cs_avro_decoder_new(
                                avro_json ? avro_json : cs_avro_calls_schema,
                                framing, CS_AVRO_ANY_SCHEMA_ID, errstr,
                                sizeof(errstr));
                else
                        p.enc = cs_avro_encoder_new(
                                avro_json ? avro_json : cs_avro_calls_schema,
                                framing, schema_id, errstr, sizeof(errstr));
                free(avro_json);
                if (!p.dec && !p.enc) {
                        cs_cli_usage_error(CMD, "%s: %s",
                                           avro_schema ? avro_schema
                                                       : "built-in schema",
                                           errstr);
                        goto fail;
                }
        }
        status = CS_EXIT_FAILURE;

        name = strcmp(path, "-") ? path : "standard input";
        if (!strcmp(path, "-")) {
                fd = STDIN_FILENO;
        } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
                cs_log(CS_LOG_ERROR, "cannot open %s: %s", path,
                       strerror(errno));
                goto fail;
        }
        {
                struct stat st;

                p.total_bytes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                                        ? (long long)st.st_size
                                        : -1;
        }
        /* The progress line is for a person watching: a terminal, and not
         * with -q. */
        p.progress = isatty(STDERR_FILENO) && cs_log_threshold >= CS_LOG_INFO;

        /* Records longer than librdkafka accepts are counted as failed
         * without being held in memory. */
        p.max_msg = conf_int(conf, "message.max.bytes", 1000000);
        timeout_ms = conf_int(conf, "message.timeout.ms", 300000);

        p.interval_ns = rate ? 1000000000 / rate : 0;
        if (!(p.parser = cs_parser_new()) || !(buf = malloc(READ_SIZE)) ||
            !(js = cs_jsonsplit_new((size_t)p.max_msg, send_message, &p)) ||
            (length_input && !(frames = cs_avro_frames_new(
                                       (size_t)p.max_msg, send_message, &p)))) {
                cs_log(CS_LOG_ERROR, "out of memory");
                goto fail;
        }

        rd_kafka_conf_set_opaque(conf, &p);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        rd_kafka_conf_set_error_cb(conf, error_cb);
        rd_kafka_conf_set_log_cb(conf, log_cb);
        p.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!p.rk) {
                char line[sizeof(errstr)];

                /* A conflict between properties, e.g. acks=1 with
                 * idempotence: still a wrong option. */
                redact(errstr, line, sizeof(line));
                line[strcspn(line, "\n")] = '\0';
                cs_cli_usage_error(CMD, "invalid configuration: %s", line);
                status = CS_EXIT_USAGE;
                goto fail;
        }
        conf = NULL; /* owned by p.rk now */
        p.rkt = rd_kafka_topic_new(p.rk, p.topic, NULL);
        if (!p.rkt) {
                cs_log(CS_LOG_ERROR, "cannot use topic %s: %s", p.topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
                goto fail;
        }

        p.start_ns = now_ns();
        /* The first Ctrl-C stops reading and delivers what is queued; a
         * second one or SIGTERM aborts (see on_signal). No SA_RESTART, so
         * a read() of a quiet stdin returns EINTR. */
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        signals_set = 1;

        while (!interrupted) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int ready;

                /* A signal that lands just before a read() of a quiet
                 * pipe would not interrupt it: wait in short slices, and
                 * serve delivery reports meanwhile. */
                ready = poll(&pfd, 1, POLL_SLICE_MS);
                if (ready == 0 || (ready < 0 && errno == EINTR)) {
                        rd_kafka_poll(p.rk, 0);
                        continue;
                }
                n = read(fd, buf, READ_SIZE);
                if (n == -1 && errno == EINTR)
                        continue;
                if (n == -1) {
                        cs_log(CS_LOG_ERROR, "cannot read %s: %s", name,
                               strerror(errno));
                        rc = -1;
                        break;
                }
                if (n == 0 && frames) {
                        rc = cs_avro_frames_end(frames);
                        if (rc == -1)
                                cs_log(CS_LOG_ERROR, "%s: %s", name,
                                       cs_avro_frames_error(frames));
                        break;
                }
                if (n == 0) {
                        rc = cs_jsonsplit_end(js);
                        if (rc == -1)
                                cs_log(CS_LOG_ERROR, "%s: %s", name,
                                       cs_jsonsplit_error(js));
                        break;
                }
                if (frames) {
                        rc = cs_avro_frames_feed(frames, buf, (size_t)n);
                        if (rc == -1)
                                cs_log(CS_LOG_ERROR, "%s: out of memory", name);
                        if (rc)
                                break;
                        continue;
                }
                rc = cs_jsonsplit_feed(js, buf, (size_t)n);
                if (rc == -1)
                        cs_log(CS_LOG_ERROR, "%s: %s", name,
                               cs_jsonsplit_error(js));
                if (rc)
                        break;
        }
        clear_progress(&p);
        if (interrupted && p.queued)
                cs_log(CS_LOG_WARN,
                       "interrupted: stopped reading %s after %llu records, "
                       "the last sent starts at byte %llu",
                       name, p.queued, (unsigned long long)p.last_offset);
        else if (interrupted)
                cs_log(CS_LOG_WARN, "interrupted before any record was sent");

        /* Wait for every delivery report; librdkafka fails each message by
         * message.timeout.ms (0: never), so the wait is bounded unless
         * that is 0. Short flushes keep the signals heard. */
        wait_start = cs_now_ms();
        deadline = timeout_ms <= 0 ? INT64_MAX
                                   : wait_start + timeout_ms + FLUSH_GRACE_MS;
        while (!p.fatal && !aborted && rd_kafka_outq_len(p.rk) > 0) {
                int64_t now = cs_now_ms();

                if (now >= deadline) {
                        cs_log(CS_LOG_ERROR,
                               "timed out waiting for delivery of %d "
                               "messages",
                               rd_kafka_outq_len(p.rk));
                        flush_failed = 1;
                        break;
                }
                if (!announced &&
                    (interrupted || now - wait_start >= ANNOUNCE_WAIT_MS)) {
                        unsigned long long left =
                                p.records - p.delivered - p.failed;

                        if (interrupted)
                                cs_log(CS_LOG_WARN,
                                       "waiting for %llu deliveries (Ctrl-C "
                                       "again to abort)",
                                       left);
                        else if (timeout_ms > 0)
                                cs_log(CS_LOG_WARN,
                                       "waiting for %llu deliveries (each "
                                       "given up after --delivery-timeout, "
                                       "%lld ms; Ctrl-C to abort)",
                                       left, timeout_ms);
                        else
                                cs_log(CS_LOG_WARN,
                                       "waiting for %llu deliveries (no "
                                       "--delivery-timeout; Ctrl-C to "
                                       "abort)",
                                       left);
                        announced = 1;
                }
                rd_kafka_flush(p.rk, 100);
        }
        if (aborted)
                cs_log(CS_LOG_ERROR,
                       "aborted by %s: %llu messages not confirmed (they "
                       "may or may not have been delivered)",
                       abort_sig == SIGTERM ? "SIGTERM" : "Ctrl-C",
                       p.records - p.delivered - p.failed);
        if (rd_kafka_outq_len(p.rk) > 0) {
                /* Fail what is left so that it is counted below (or, on
                 * an abort, dropped); purged in-flight requests report
                 * back asynchronously. */
                rd_kafka_purge(p.rk, RD_KAFKA_PURGE_F_QUEUE |
                                             RD_KAFKA_PURGE_F_INFLIGHT);
                rd_kafka_flush(p.rk, aborted ? ABORT_DRAIN_MS : 5000);
        }

        {
                unsigned long long unconfirmed =
                        p.records - p.delivered - p.failed;
                char extra[96] = "";
                double run_secs =
                        p.start_ns ? (double)(now_ns() - p.start_ns) / 1e9 : 0;

                if (unconfirmed && p.unkeyed)
                        snprintf(extra, sizeof(extra),
                                 ", %llu not confirmed, %llu without a key "
                                 "(not valid calls)",
                                 unconfirmed, p.unkeyed);
                else if (unconfirmed)
                        snprintf(extra, sizeof(extra), ", %llu not confirmed",
                                 unconfirmed);
                else if (p.unkeyed)
                        snprintf(extra, sizeof(extra),
                                 ", %llu without a key (not valid calls)",
                                 p.unkeyed);
                cs_log(p.failed || unconfirmed ? CS_LOG_ERROR : CS_LOG_INFO,
                       "sent %llu messages to %s: %llu delivered, %llu "
                       "failed%s, in %.2f s, %.0f messages/s",
                       p.records, p.topic, p.delivered, p.failed, extra,
                       run_secs,
                       run_secs > 0 ? (double)p.records / run_secs : 0.0);
                if (rc == 0 && !p.failed && !unconfirmed && !flush_failed &&
                    !p.fatal && !interrupted)
                        status = CS_EXIT_OK;
        }

fail:
        if (signals_set) {
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
        }
        if (p.rkt)
                rd_kafka_topic_destroy(p.rkt);
        if (p.rk)
                rd_kafka_destroy(p.rk);
        if (conf)
                rd_kafka_conf_destroy(conf);
        cs_jsonsplit_destroy(js);
        cs_avro_frames_destroy(frames);
        cs_avro_encoder_destroy(p.enc);
        cs_avro_decoder_destroy(p.dec);
        cs_parser_destroy(p.parser);
        free(buf);
        if (fd > STDIN_FILENO)
                close(fd);
        return status;
}
