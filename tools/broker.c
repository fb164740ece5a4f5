/* broker.c: `callstream broker`, a local in-memory Kafka-protocol broker
 * (librdkafka's mock cluster) for trials, demos and end-to-end tests. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_common.h"

#define CMD "broker"

/* The mock cluster gives topics it creates on first use this many
 * partitions; librdkafka 2.0.2 has no way to change it. */
#define AUTO_CREATE_PARTITIONS 4

static void usage(void)
{
        printf("Usage: callstream broker [--partitions N] [--topic TOPIC]... "
               "[--brokers N]\n"
               "\n"
               "Runs a local in-memory Kafka-protocol broker (librdkafka's "
               "mock cluster)\n"
               "for trials and tests. Prints its bootstrap address "
               "(host:port[,...]) as the\n"
               "first line of standard output, then serves until SIGINT or "
               "SIGTERM.\n"
               "\n"
               "NOT FOR PRODUCTION. It keeps nothing on disk: everything is "
               "gone when it\n"
               "stops. It keeps only about 5 MB or 100,000 message sets "
               "(producer batches)\n"
               "per partition; older data is deleted even if no one has "
               "read it yet. Size a\n"
               "stream with more partitions or with producer compression "
               "(callstream produce\n"
               "uses lz4), or consume while producing.\n"
               "\n"
               "Options:\n"
               "  --partitions N  partitions of each --topic, 1-10000 "
               "(default 4)\n"
               "  --topic TOPIC   create TOPIC at start (repeatable); "
               "topics first used\n"
               "                  without it are created with %d "
               "partitions\n"
               "  --brokers N     number of brokers, 1-16 (default 1)\n"
               "  -v, --verbose   log more; -q, --quiet: errors only\n"
               "  -h, --help      show this help\n"
               "      --version   show the versions of callstream and its "
               "libraries\n",
               AUTO_CREATE_PARTITIONS);
}

/* Never runs (the signals are blocked and taken by sigtimedwait()), but
 * installing it undoes an inherited SIG_IGN: a shell starts background
 * jobs with SIGINT ignored, and POSIX lets an ignored signal be discarded
 * even while it is blocked. */
static void on_stop_signal(int sig)
{
        (void)sig;
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

int cs_cmd_broker(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"partitions", required_argument, NULL, 'p'},
                {"topic", required_argument, NULL, 't'},
                {"brokers", required_argument, NULL, 'B'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char **topics = NULL;
        int topic_cnt = 0, i, c, rf, sig;
        long long partitions = 4, brokers = 1;
        rd_kafka_conf_t *conf = NULL;
        rd_kafka_t *rk = NULL;
        rd_kafka_mock_cluster_t *mcluster = NULL;
        char errstr[512];
        sigset_t sigs, old_sigs;
        struct sigaction sa, old_int, old_term;
        int masked = 0;
        int status = CS_EXIT_USAGE; /* until the arguments are read */

        /* At most one topic per argument, so argc bounds the list. */
        topics = calloc((size_t)argc + 1, sizeof(*topics));
        if (!topics) {
                cs_log(CS_LOG_ERROR, "out of memory");
                return CS_EXIT_FAILURE;
        }

        optind = 1;
        while ((c = cs_cli_getopt(CMD, argc, argv, "h", longopts)) != -1) {
                switch (c) {
                case 'p':
                        if (cs_cli_int(CMD, "--partitions", optarg, 1, 10000,
                                       &partitions))
                                goto fail;
                        break;
                case 'B':
                        if (cs_cli_int(CMD, "--brokers", optarg, 1, 16,
                                       &brokers))
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
                        for (i = 0; i < topic_cnt; i++)
                                if (!strcmp(topics[i], optarg))
                                        break;
                        if (i == topic_cnt)
                                topics[topic_cnt++] = optarg;
                        break;
                case 'h':
                        usage();
                        free(topics);
                        return CS_EXIT_OK;
                case CS_CLI_DONE:
                        free(topics);
                        return CS_EXIT_OK;
                default:
                        goto fail;
                }
        }
        if (optind < argc) {
                cs_cli_usage_error(CMD, "unexpected argument '%s'",
                                   argv[optind]);
                goto fail;
        }
        status = CS_EXIT_FAILURE;

        /* Block the stop signals before librdkafka starts its threads, so
         * they inherit the mask and only sigtimedwait() below sees them. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &sigs, &old_sigs);
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

        mcluster = rd_kafka_mock_cluster_new(rk, (int)brokers);
        if (!mcluster) {
                cs_log(CS_LOG_ERROR, "cannot start the mock cluster (see the "
                                     "librdkafka messages above)");
                goto fail;
        }

        rf = brokers < 3 ? (int)brokers : 3;
        for (i = 0; i < topic_cnt; i++) {
                rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
                        mcluster, topics[i], (int)partitions, rf);

                if (err) {
                        cs_log(CS_LOG_ERROR, "cannot create topic %s: %s",
                               topics[i], rd_kafka_err2str(err));
                        goto fail;
                }
        }

        printf("%s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
        if (fflush(stdout) != 0) {
                cs_log(CS_LOG_ERROR, "cannot write the bootstrap address to "
                                     "standard output");
                goto fail;
        }
        for (i = 0; i < topic_cnt; i++)
                cs_log(CS_LOG_INFO, "topic %s: %lld partitions", topics[i],
                       partitions);
        cs_log(CS_LOG_INFO,
               "broker ready on %s (%lld broker%s, in memory only); "
               "stop with Ctrl-C",
               rd_kafka_mock_cluster_bootstraps(mcluster), brokers,
               brokers == 1 ? "" : "s");

        for (;;) {
                const struct timespec tick = {1, 0};

                sig = sigtimedwait(&sigs, NULL, &tick);
                if (sig > 0)
                        break;
                /* Serve the idle client's queue so nothing piles up. */
                rd_kafka_poll(rk, 0);
        }
        cs_log(CS_LOG_INFO, "stopping the broker (%s)",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
        status = CS_EXIT_OK;

fail:
        if (mcluster)
                rd_kafka_mock_cluster_destroy(mcluster);
        if (rk)
                rd_kafka_destroy(rk);
        if (masked) {
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
                pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
        }
        free(topics);
        return status;
}
