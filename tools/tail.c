/* tail.c: `callstream tail`, the console consumer: prints a topic's
 * messages (partition, offset, timestamp, key, value) as lines or JSON,
 * and with --check the ones the ingest would reject, with its reason. It
 * assigns partitions itself, like kcat -C: no consumer group, nothing
 * committed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <yajl/yajl_gen.h>

#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_common.h"
#include "cs_parse.h"
#include "cs_pipeline.h"
#include "cs_window.h"

#define CMD          "tail"
#define MAX_PARTS    1024 /* --partition given at most this often */
#define MAX_PROPS    64
#define MAX_SPECS    16
#define META_WAIT_MS 10000 /* metadata and watermarks, each */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static void usage(void)
{
        printf("Usage: callstream tail --brokers HOST:PORT[,...] --topic TOPIC "
               "[OPTIONS]\n"
               "\n"
               "Prints the messages of a topic, one per line: partition, "
               "offset, timestamp\n"
               "(the message's, UTC), key and value, tab-separated, with "
               "\\t, \\n, \\r, \\\\\n"
               "and other control bytes escaped (\\xHH), so that a message "
               "is one line.\n"
               "It reads every partition (or those of --partition) "
               "without a consumer\n"
               "group and commits nothing, like kcat -C.\n"
               "\n"
               "Options:\n"
               "  -b, --brokers LIST      bootstrap servers, "
               "host:port[,...]\n"
               "  -t, --topic TOPIC       the topic to read\n"
               "      --from-beginning    start at each partition's oldest "
               "message\n"
               "                          (default: its end, new messages "
               "only)\n"
               "  -o, --offset N          start at offset N of each "
               "partition (its oldest\n"
               "                          or its end when N is outside)\n"
               "      --last N            start N messages before each "
               "partition's end\n"
               "  -p, --partition P       read partition P only; "
               "repeatable\n"
               "  -c, --count N           exit after N messages (read, "
               "with --check)\n"
               "  -e, --exit-at-end       exit once every partition is "
               "read to its end\n"
               "      --format line|json  lines as above (default), or one "
               "JSON object per\n"
               "                          line: partition, offset, "
               "timestamp (ms since\n"
               "                          1970, or null), key and value "
               "(strings or null;\n"
               "                          key_hex, value_hex instead when "
               "not UTF-8)\n"
               "      --check             print only the messages the "
               "ingest would reject,\n"
               "                          with its reason (a column "
               "before the value; a\n"
               "                          \"reason\" member in JSON)\n"
               "  -w, --window SPEC       with --check: the ingest's "
               "windows (default 1h)\n"
               "      --max-future D      with --check: the ingest's "
               "--max-future\n"
               "  -X PROP=VALUE           librdkafka consumer property "
               "(repeatable)\n"
               "  -v, --verbose           log more; -q, --quiet: errors only\n"
               "  -h, --help              show this help\n"
               "      --version           show the versions of callstream and "
               "its libraries\n"
               "\n"
               "Ends at --count, at the end with --exit-at-end, or on "
               "SIGINT or SIGTERM,\n"
               "with a summary line on standard error. Exits 1 when the "
               "brokers or the\n"
               "topic cannot be reached, 2 on a wrong option or "
               "partition.\n");
}

struct part {
        int32_t id;
        int at_end;
};

struct tail {
        rd_kafka_t *rk;
        const char *topic;
        int json;
        int check;
        struct cs_parser *parser;
        struct cs_pipeline_conf pconf; /* the ingest's checks */
        yajl_gen gen;
        struct part *parts;
        int nparts;
        unsigned long long read, rejected;
};

/* Writes len bytes of s with \t \n \r \\ and other control bytes escaped,
 * so that a field never breaks its line. */
static void put_escaped(const unsigned char *s, size_t len)
{
        size_t i;

        for (i = 0; i < len; i++) {
                unsigned char c = s[i];

                if (c == '\t')
                        fputs("\\t", stdout);
                else if (c == '\n')
                        fputs("\\n", stdout);
                else if (c == '\r')
                        fputs("\\r", stdout);
                else if (c == '\\')
                        fputs("\\\\", stdout);
                else if (c < 0x20 || c == 0x7f)
                        printf("\\x%02x", c);
                else
                        putchar(c);
        }
}

/* "2026-12-01T18:20:00.123Z", or "-" when ms < 0. */
static void format_ts(int64_t ms, char *out, size_t size)
{
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        size_t n;

        if (ms < 0 || !gmtime_r(&secs, &tm)) {
                snprintf(out, size, "-");
                return;
        }
        n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out + n, size - n, ".%03dZ", (int)(ms % 1000));
}

/* A string member, or its hex (name_hex) when not UTF-8, or null. */
static void gen_bytes(yajl_gen g, const char *name, const void *p, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        char key[32];
        char *h;
        size_t i;

        yajl_gen_string(g, (const unsigned char *)name, strlen(name));
        if (!p) {
                yajl_gen_null(g);
                return;
        }
        /* Strict UTF-8, as the ingest's parser wants it (yajl's own check
         * lets overlong forms through); else hex under another name. */
        if (cs_parse_utf8_valid(p, len)) {
                yajl_gen_string(g, p, len);
                return;
        }
        yajl_gen_null(g);
        snprintf(key, sizeof(key), "%s_hex", name);
        yajl_gen_string(g, (const unsigned char *)key, strlen(key));
        if (!(h = malloc(2 * len + 1))) {
                yajl_gen_null(g);
                return;
        }
        for (i = 0; i < len; i++) {
                h[2 * i] = hex[((const unsigned char *)p)[i] >> 4];
                h[2 * i + 1] = hex[((const unsigned char *)p)[i] & 15];
        }
        yajl_gen_string(g, (const unsigned char *)h, 2 * len);
        free(h);
}

static void print_json(struct tail *t, const rd_kafka_message_t *m, int64_t ts,
                       const char *reason)
{
        yajl_gen g = t->gen;
        const unsigned char *buf;
        size_t len;

        yajl_gen_map_open(g);
        yajl_gen_string(g, (const unsigned char *)"partition", 9);
        yajl_gen_integer(g, m->partition);
        yajl_gen_string(g, (const unsigned char *)"offset", 6);
        yajl_gen_integer(g, m->offset);
        yajl_gen_string(g, (const unsigned char *)"timestamp", 9);
        if (ts >= 0)
                yajl_gen_integer(g, ts);
        else
                yajl_gen_null(g);
        gen_bytes(g, "key", m->key, m->key_len);
        if (reason) {
                yajl_gen_string(g, (const unsigned char *)"reason", 6);
                yajl_gen_string(g, (const unsigned char *)reason,
                                strlen(reason));
        }
        /* An empty payload is "" (librdkafka gives NULL for it). */
        gen_bytes(g, "value", m->payload ? m->payload : "", m->len);
        yajl_gen_map_close(g);
        yajl_gen_get_buf(g, &buf, &len);
        fwrite(buf, 1, len, stdout);
        putchar('\n');
        yajl_gen_clear(g);
        yajl_gen_reset(g, NULL);
}

/* Prints one message, or with --check only when the ingest would reject
 * it, saying why. */
static void show(struct tail *t, const rd_kafka_message_t *m)
{
        char reason[CS_PARSE_REASON_MAX], ts_text[40];
        const char *why = NULL;
        struct cs_call call;
        int64_t ts = rd_kafka_message_timestamp(m, NULL);

        t->read++;
        if (t->check) {
                /* The ingest's own checks, in the ingest's order. */
                if (cs_parse_call(t->parser, m->payload ? m->payload : "",
                                  m->len, &call, reason, sizeof(reason)) < 0 ||
                    cs_pipeline_check_call(&t->pconf, call.ts, reason,
                                           sizeof(reason)) < 0)
                        why = reason;
                if (!why)
                        return;
                t->rejected++;
        }
        if (t->json) {
                print_json(t, m, ts, why);
                return;
        }
        format_ts(ts, ts_text, sizeof(ts_text));
        printf("%d\t%lld\t%s\t", (int)m->partition, (long long)m->offset,
               ts_text);
        if (m->key)
                put_escaped(m->key, m->key_len);
        putchar('\t');
        if (why) {
                put_escaped((const unsigned char *)why, strlen(why));
                putchar('\t');
        }
        if (m->payload)
                put_escaped(m->payload, m->len);
        putchar('\n');
}

/* Applies one PROP=VALUE to conf, printing a usage error on failure. Values
 * are never echoed: they may be passwords. */
static int set_property(rd_kafka_conf_t *conf, const char *arg)
{
        const char *eq = strchr(arg, '=');
        char name[256], errstr[512];

        if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(name)) {
                cs_cli_usage_error(CMD, "invalid -X: expected PROP=VALUE");
                return -1;
        }
        memcpy(name, arg, (size_t)(eq - arg));
        name[eq - arg] = '\0';
        if (rd_kafka_conf_set(conf, name, eq + 1, errstr, sizeof(errstr)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        cs_cli_usage_error(CMD, "invalid -X %s", name);
        return -1;
}

/* librdkafka's log lines through cs_log, as warnings or debug lines. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        (void)rk;
        /* Old brokers (and the local one) cannot be told not to create
         * topics: the metadata check stands in for it. */
        if (!strcmp(fac, "AUTOCREATE"))
                level = 7;
        cs_log(level <= 4 ? CS_LOG_WARN : CS_LOG_DEBUG, "librdkafka: %s: %s",
               fac, buf);
}

/* Finds the topic in the full metadata list (asking for one topic would
 * create it on old brokers) and fills t->parts with the partitions to
 * read: want[0..nwant), or all. Returns 0, -1 (logged) or CS_EXIT_USAGE
 * for a partition the topic does not have. */
static int pick_parts(struct tail *t, const char *brokers, const int32_t *want,
                      int nwant)
{
        const struct rd_kafka_metadata *md = NULL;
        const struct rd_kafka_metadata_topic *mt = NULL;
        int64_t until = cs_now_ms() + META_WAIT_MS;
        rd_kafka_resp_err_t err;
        int i, j, r = -1;

        do {
                if (md)
                        rd_kafka_metadata_destroy(md);
                md = NULL;
                err = rd_kafka_metadata(t->rk, 1, NULL, &md, 2000);
                mt = NULL;
                for (i = 0; !err && i < md->topic_cnt; i++)
                        if (!strcmp(md->topics[i].topic, t->topic))
                                mt = &md->topics[i];
                if (!err && (!mt || (!mt->err && mt->partition_cnt > 0)))
                        break;
        } while (!stop && cs_now_ms() < until);
        if (err) {
                cs_log(CS_LOG_ERROR, "Kafka brokers %s unreachable: %s",
                       brokers, rd_kafka_err2str(err));
                goto done;
        }
        if (!mt) {
                cs_log(CS_LOG_ERROR,
                       "topic %s does not exist on %s (or this client may "
                       "not see it)",
                       t->topic, brokers);
                goto done;
        }
        if (mt->err || mt->partition_cnt == 0) {
                cs_log(CS_LOG_ERROR, "topic %s on %s: %s", t->topic, brokers,
                       mt->err ? rd_kafka_err2str(mt->err) : "no partitions");
                goto done;
        }
        if (!(t->parts = calloc((size_t)mt->partition_cnt, sizeof(*t->parts))))
                goto done;
        for (i = 0; i < mt->partition_cnt; i++) {
                int32_t id = mt->partitions[i].id;

                for (j = 0; j < nwant && want[j] != id; j++)
                        ;
                if (nwant && j == nwant)
                        continue;
                t->parts[t->nparts++].id = id;
        }
        for (j = 0; j < nwant; j++) {
                for (i = 0; i < t->nparts && t->parts[i].id != want[j]; i++)
                        ;
                if (i == t->nparts) {
                        cs_cli_usage_error(CMD,
                                           "topic %s has no partition %d "
                                           "(it has %d)",
                                           t->topic, (int)want[j],
                                           mt->partition_cnt);
                        r = CS_EXIT_USAGE;
                        goto done;
                }
        }
        r = 0;
done:
        if (md)
                rd_kafka_metadata_destroy(md);
        return r;
}

/* Where to start in each partition; -1 for start_at means the end, -2 the
 * beginning, last > 0 the last N, else the offset start_at. */
static int assign(struct tail *t, long long start_at, long long last)
{
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new(t->nparts);
        rd_kafka_resp_err_t err;
        int i, r = -1;

        for (i = 0; i < t->nparts; i++) {
                int64_t low = 0, high = 0, o;

                if (start_at == -1 && !last) {
                        o = RD_KAFKA_OFFSET_END;
                } else if (start_at == -2 && !last) {
                        o = RD_KAFKA_OFFSET_BEGINNING;
                } else {
                        /* Explicit: clamped to what the partition holds,
                         * so that an offset out of range is no surprise
                         * of auto.offset.reset. */
                        err = rd_kafka_query_watermark_offsets(
                                t->rk, t->topic, t->parts[i].id, &low, &high,
                                META_WAIT_MS);
                        if (err) {
                                cs_log(CS_LOG_ERROR,
                                       "cannot read the offsets of %s [%d]: "
                                       "%s",
                                       t->topic, (int)t->parts[i].id,
                                       rd_kafka_err2str(err));
                                goto done;
                        }
                        o = last ? high - last : start_at;
                        if (o < low)
                                o = low;
                        if (o > high)
                                o = high;
                }
                rd_kafka_topic_partition_list_add(list, t->topic,
                                                  t->parts[i].id)
                        ->offset = o;
        }
        if ((err = rd_kafka_assign(t->rk, list))) {
                cs_log(CS_LOG_ERROR, "assigning %s: %s", t->topic,
                       rd_kafka_err2str(err));
                goto done;
        }
        r = 0;
done:
        rd_kafka_topic_partition_list_destroy(list);
        return r;
}

static int all_at_end(const struct tail *t)
{
        int i;

        for (i = 0; i < t->nparts; i++)
                if (!t->parts[i].at_end)
                        return 0;
        return 1;
}

static struct part *part_of(struct tail *t, int32_t id)
{
        int i;

        for (i = 0; i < t->nparts; i++)
                if (t->parts[i].id == id)
                        return &t->parts[i];
        return NULL;
}

int cs_cmd_tail(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"brokers", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"from-beginning", no_argument, NULL, 'B'},
                {"offset", required_argument, NULL, 'o'},
                {"last", required_argument, NULL, 'L'},
                {"partition", required_argument, NULL, 'p'},
                {"count", required_argument, NULL, 'c'},
                {"exit-at-end", no_argument, NULL, 'e'},
                {"format", required_argument, NULL, 'f'},
                {"check", no_argument, NULL, 'C'},
                {"window", required_argument, NULL, 'w'},
                {"max-future", required_argument, NULL, 'F'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct tail t = {0};
        struct cs_window_spec specs[MAX_SPECS];
        int32_t want[MAX_PARTS];
        rd_kafka_conf_t *conf = NULL;
        struct sigaction sa, old_int, old_term;
        const char *brokers = NULL;
        char errstr[512];
        long long v, start_at = -1, last = 0, count = 0;
        int c, nwant = 0, starts_given = 0, exit_at_end = 0, signals_set = 0;
        int status = CS_EXIT_USAGE, r;

        t.pconf.specs = specs;
        t.pconf.max_future = -1;
        conf = rd_kafka_conf_new();
        /* No group: partitions are assigned, nothing is committed. */
        if (rd_kafka_conf_set(conf, "group.id", "callstream-tail", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "allow.auto.create.topics", "false", errstr,
                              sizeof(errstr))) {
                cs_log(CS_LOG_ERROR, "librdkafka rejects a default: %s",
                       errstr);
                status = CS_EXIT_FAILURE;
                goto done;
        }

        optind = 1;
        while ((c = cs_cli_getopt(CMD, argc, argv, "b:t:o:p:c:ew:X:h",
                                  longopts)) != -1) {
                switch (c) {
                case 'b':
                        brokers = optarg;
                        if (rd_kafka_conf_set(conf, "bootstrap.servers", optarg,
                                              errstr, sizeof(errstr))) {
                                cs_cli_usage_error(CMD, "invalid --brokers: %s",
                                                   errstr);
                                goto done;
                        }
                        break;
                case 't':
                        if (!*optarg) {
                                cs_cli_usage_error(CMD, "empty --topic");
                                goto done;
                        }
                        t.topic = optarg;
                        break;
                case 'B':
                        start_at = -2;
                        starts_given++;
                        break;
                case 'o':
                        if (cs_cli_int(CMD, "--offset", optarg, 0, INT64_MAX,
                                       &start_at))
                                goto done;
                        starts_given++;
                        break;
                case 'L':
                        if (cs_cli_int(CMD, "--last", optarg, 1, INT64_MAX / 2,
                                       &last))
                                goto done;
                        starts_given++;
                        break;
                case 'p':
                        if (cs_cli_int(CMD, "--partition", optarg, 0, INT32_MAX,
                                       &v))
                                goto done;
                        if (nwant == MAX_PARTS) {
                                cs_cli_usage_error(CMD, "too many --partition");
                                goto done;
                        }
                        want[nwant++] = (int32_t)v;
                        break;
                case 'c':
                        if (cs_cli_int(CMD, "--count", optarg, 1, INT64_MAX,
                                       &count))
                                goto done;
                        break;
                case 'e':
                        exit_at_end = 1;
                        break;
                case 'f':
                        if (strcmp(optarg, "line") && strcmp(optarg, "json")) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --format '%s': "
                                                   "expected line or json",
                                                   optarg);
                                goto done;
                        }
                        t.json = !strcmp(optarg, "json");
                        break;
                case 'C':
                        t.check = 1;
                        break;
                case 'w':
                        if (cs_cli_window(CMD, optarg, specs, &t.pconf.nspecs,
                                          MAX_SPECS) < 0)
                                goto done;
                        break;
                case 'F':
                        if (cs_cli_duration(CMD, "--max-future", optarg, 0,
                                            CS_CLI_DURATION_MAX,
                                            &t.pconf.max_future) < 0)
                                goto done;
                        break;
                case 'X':
                        if (set_property(conf, optarg))
                                goto done;
                        if (!strncmp(optarg, "bootstrap.servers=", 18))
                                brokers = optarg + 18;
                        break;
                case 'h':
                        usage();
                        status = CS_EXIT_OK;
                        goto done;
                case CS_CLI_DONE:
                        status = CS_EXIT_OK;
                        goto done;
                default:
                        goto done;
                }
        }
        if (cs_cli_no_operands(CMD, argc, argv) < 0)
                goto done;
        if (!brokers) {
                cs_cli_usage_error(CMD, "--brokers is required");
                goto done;
        }
        if (!t.topic) {
                cs_cli_usage_error(CMD, "--topic is required");
                goto done;
        }
        if (starts_given > 1) {
                cs_cli_usage_error(CMD, "--from-beginning, --offset and "
                                        "--last exclude each other");
                goto done;
        }
        if (!t.check && (t.pconf.nspecs || t.pconf.max_future >= 0)) {
                cs_cli_usage_error(CMD, "--window and --max-future go with "
                                        "--check");
                goto done;
        }
        /* The ingest's default window. */
        if (t.check && !t.pconf.nspecs &&
            cs_cli_window(CMD, "1h", specs, &t.pconf.nspecs, MAX_SPECS) < 0)
                goto done;
        status = CS_EXIT_FAILURE;

        if (!(t.parser = cs_parser_new()) || !(t.gen = yajl_gen_alloc(NULL))) {
                cs_log(CS_LOG_ERROR, "out of memory");
                goto done;
        }
        rd_kafka_conf_set_log_cb(conf, log_cb);
        t.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!t.rk) {
                errstr[strcspn(errstr, "\n")] = '\0';
                cs_cli_usage_error(CMD, "invalid configuration: %s", errstr);
                status = CS_EXIT_USAGE;
                goto done;
        }
        conf = NULL; /* owned by t.rk */
        rd_kafka_poll_set_consumer(t.rk);

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        signals_set = 1;

        if ((r = pick_parts(&t, brokers, want, nwant)) != 0) {
                if (r == CS_EXIT_USAGE)
                        status = CS_EXIT_USAGE;
                goto done;
        }
        if (assign(&t, start_at, last) < 0)
                goto done;

        while (!stop && !(count && t.read >= (unsigned long long)count)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(t.rk, 100);
                struct part *p;

                if (!m) {
                        /* Idle: what was printed reaches a pipe now. */
                        fflush(stdout);
                        continue;
                }
                p = part_of(&t, m->partition);
                if (!m->err) {
                        if (p)
                                p->at_end = 0;
                        show(&t, m);
                } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        if (p)
                                p->at_end = 1;
                        if (exit_at_end && all_at_end(&t)) {
                                rd_kafka_message_destroy(m);
                                break;
                        }
                } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                        cs_log(CS_LOG_ERROR, "Kafka: %s",
                               rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        goto done;
                } else {
                        cs_log(CS_LOG_WARN, "Kafka: %s",
                               rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
        }
        if (fflush(stdout) == EOF || ferror(stdout)) {
                cs_log(CS_LOG_ERROR, "cannot write the output: %s",
                       strerror(errno));
                goto done;
        }
        if (t.check)
                cs_log(CS_LOG_INFO,
                       "%llu messages read from %s, %llu would "
                       "be rejected",
                       t.read, t.topic, t.rejected);
        else
                cs_log(CS_LOG_INFO, "%llu messages read from %s", t.read,
                       t.topic);
        status = CS_EXIT_OK;
done:
        if (signals_set) {
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
        }
        if (t.rk) {
                rd_kafka_consumer_close(t.rk);
                rd_kafka_destroy(t.rk);
        }
        if (conf)
                rd_kafka_conf_destroy(conf);
        if (t.gen)
                yajl_gen_free(t.gen);
        cs_parser_destroy(t.parser);
        free(t.parts);
        return status;
}
