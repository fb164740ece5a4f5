/* cmd_ingest.c: `callstream ingest` and `callstream migrate`, the thin
 * front-ends of the pipeline and of the sinks' migrations. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs_avro.h"
#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_http.h"
#include "cs_kafka.h"
#include "cs_pipeline.h"
#include "cs_progress.h"
#include "cs_sink.h"
#include "cs_stats.h"
#include "cs_topics.h"

#define MAX_SPECS 16
#define MAX_PROPS 128

/* Long options without a short one. */
enum {
        OPT_PROGRESS = 0x200,
        OPT_PROGRESS_FILE,
        OPT_PROGRESS_INTERVAL,
        OPT_HEALTH_TIMEOUT,
        OPT_FORMAT,
        OPT_AVRO_SCHEMA,
        OPT_FRAMING,
        OPT_SCHEMA_ID,
        OPT_PARTITION_ORDER,
};

#define HEALTH_TIMEOUT_S 30

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static const char ingest_help[] =
        "Usage: callstream ingest --brokers B --topic T --db DB [OPTIONS]\n"
        "       callstream ingest --file FILE --db DB [OPTIONS]\n"
        "\n"
        "Consumes a topic of police calls into the database, exactly once:\n"
        "the calls, their window counts and the next Kafka offset of each\n"
        "partition are written in one transaction per batch, and partitions\n"
        "resume from the offsets stored in the database. Migrates the\n"
        "database first if needed.\n"
        "\n"
        "Options:\n"
        "  -b, --brokers B           Kafka bootstrap servers (host:port,...)\n"
        "  -t, --topic T             topic to consume\n"
        "  -f, --file FILE           replay FILE (NDJSON or a JSON array, - "
        "for\n"
        "                            stdin) instead of Kafka: same "
        "validation,\n"
        "                            dedup and windows; its calls are stored\n"
        "                            under --topic (default: FILE's real "
        "path;\n"
        "                            stdin needs --topic), partition 0, "
        "offset\n"
        "                            = line (or element) number; it resumes\n"
        "                            only over the same input (its first 64 "
        "KiB)\n"
        "  -d, --db DB               SQLite file path (or sqlite:PATH), or a\n"
        "                            PostgreSQL URI (postgresql://...) or\n"
        "                            key=value conninfo\n"
        "      --schema NAME         PostgreSQL: keep everything in schema "
        "NAME\n"
        "  -g, --group G             join consumer group G to share the\n"
        "                            partitions with other ingest processes\n"
        "                            (default: no group; read them all)\n"
        "  -w, --window SPEC         count calls in event-time windows: SIZE\n"
        "                            (tumbling) or SIZE/SLIDE (hopping), "
        "units\n"
        "                            s, m, h, d; repeatable (default: 1h)\n"
        "      --from-beginning      partitions with no stored offset start "
        "at\n"
        "                            their earliest message (default: latest)\n"
        "  -e, --exit-at-end         exit once every assigned partition is\n"
        "                            consumed to its end and committed\n"
        "      --allowed-lateness D  the watermark trails the highest event "
        "time\n"
        "                            seen by D (s, m, h, d, or 0; default "
        "1h);\n"
        "                            a window is final once it passes its end\n"
        "      --late-policy P       count: count late calls in final windows\n"
        "                            too (default); drop: leave those windows\n"
        "                            alone, record the call in late_records\n"
        "      --on-duplicate P      ignore: the first valid copy of a call\n"
        "                            wins (default); update: a later copy\n"
        "                            with other fields replaces it, and its\n"
        "                            counts move\n"
        "      --retention D         delete calls, window counts and late\n"
        "                            records older than the watermark less D,\n"
        "                            and rejects older than D, a few thousand\n"
        "                            rows at a time (default: keep all); "
        "dedup\n"
        "                            only holds within D\n"
        "      --max-future D        reject a call more than D past the wall\n"
        "                            clock plus 14h (the largest time zone\n"
        "                            offset), so that one bad date cannot\n"
        "                            hold the watermark ahead for good\n"
        "                            (default: no check)\n"
        "      --batch-max-records N close a batch at N messages (default "
        "10000);\n"
        "                            each goes as soon as the one before\n"
        "                            is committed\n"
        "      --batch-max-ms N      accepted for compatibility (no timer)\n"
        "      --max-rate-per-partition N\n"
        "                            read at most N messages a second from\n"
        "                            each partition (Spark's\n"
        "                            maxRatePerPartition; --batch-max-records\n"
        "                            is its maxOffsetsPerTrigger); default:\n"
        "                            no limit\n"
        "      --partition-order time|fetch\n"
        "                            Kafka: merge the partitions by message\n"
        "                            timestamp, each read from a queue of\n"
        "                            its own (time, the default), or take\n"
        "                            them as fetched, through one queue\n"
        "                            (fetch: memory bounded by the batch\n"
        "                            whatever the producers' batch size)\n"
        "      --durability normal|full\n"
        "                            SQLite: whether a committed batch also\n"
        "                            survives a power failure (full: one\n"
        "                            fsync per batch; normal, the default,\n"
        "                            may undo the last batches, which are\n"
        "                            read again); a crash of the process\n"
        "                            loses nothing either way\n"
        "      --startup-timeout D   give up when the database, then the\n"
        "                            Kafka brokers, are still out of reach D\n"
        "                            after start (each; default: wait until\n"
        "                            stopped; 30s with --exit-at-end or\n"
        "                            --file; 0: no limit)\n"
        "      --broker-timeout D    after the start, give up when the Kafka\n"
        "                            brokers have been unreachable for D\n"
        "                            (default: retry until stopped; 30s with\n"
        "                            --exit-at-end; 0: no limit)\n"
        "      --http [HOST]:PORT    serve the report while ingesting: / (a\n"
        "                            page that refreshes itself), "
        "/report.csv,\n"
        "                            /report.json... with the parameters of\n"
        "                            `callstream report` (default host\n"
        "                            127.0.0.1; 0.0.0.0 for every interface),\n"
        "                            and /metrics (Prometheus) and /healthz\n"
        "      --health-timeout D    /healthz answers 503 once the database\n"
        "                            or the Kafka brokers have been out of\n"
        "                            reach for D (default 30s)\n"
        "      --progress json|human|off\n"
        "                            after each batch, a progress report on\n"
        "                            stderr: a JSON line (Spark's\n"
        "                            StreamingQueryProgress), or a line\n"
        "                            redrawn in place (default: human on a\n"
        "                            terminal, else off; json with\n"
        "                            --progress-file)\n"
        "      --progress-file FILE  append the progress reports to FILE\n"
        "      --progress-interval D at most one report per D, adding up\n"
        "                            the batches between (default 0: each)\n"
        "      --format json|avro|auto\n"
        "                            message format (default json); auto:\n"
        "                            Confluent-framed Avro when a message\n"
        "                            starts with byte 0, JSON otherwise\n"
        "      --avro-schema FILE    the Avro writer's schema (a record; its\n"
        "                            fields are matched to the call's by "
        "name;\n"
        "                            default: schemas/calls.avsc, built in)\n"
        "      --framing plain|confluent\n"
        "                            Avro: one datum per message (default), "
        "or\n"
        "                            byte 0, a 4-byte schema id, the datum\n"
        "      --schema-id N         Confluent: reject other schema ids\n"
        "  -X name=value             librdkafka property, repeatable (not\n"
        "                            with --file); checked before anything\n"
        "                            is opened\n"
        "  -v, --verbose             log each batch\n"
        "  -q, --quiet               log errors only\n"
        "  -h, --help                show this help\n"
        "      --version             show the versions of callstream and its\n"
        "                            libraries\n"
        "      --config FILE         read options from FILE (key = value\n"
        "                            lines, the long option names as keys)\n"
        "      --print-config        print the options in effect and where\n"
        "                            each comes from (secrets masked), and "
        "exit\n"
        "\n"
        "Durations are N followed by s, m, h or d (90s, 15m, 1h, 30d), or 0.\n";

int cs_cmd_ingest(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"brokers", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"file", required_argument, NULL, 'f'},
                {"db", required_argument, NULL, 'd'},
                {"schema", required_argument, NULL, 'S'},
                {"group", required_argument, NULL, 'g'},
                {"window", required_argument, NULL, 'w'},
                {"from-beginning", no_argument, NULL, 'B'},
                {"exit-at-end", no_argument, NULL, 'e'},
                {"batch-max-records", required_argument, NULL, 'R'},
                {"allowed-lateness", required_argument, NULL, 'L'},
                {"late-policy", required_argument, NULL, 'P'},
                {"on-duplicate", required_argument, NULL, 'U'},
                {"retention", required_argument, NULL, 'T'},
                {"batch-max-ms", required_argument, NULL, 'M'},
                {"max-rate-per-partition", required_argument, NULL, 'Q'},
                {"startup-timeout", required_argument, NULL, 'O'},
                {"max-future", required_argument, NULL, 'F'},
                {"broker-timeout", required_argument, NULL, 'K'},
                {"durability", required_argument, NULL, 'D'},
                {"http", required_argument, NULL, 'H'},
                {"progress", required_argument, NULL, OPT_PROGRESS},
                {"progress-file", required_argument, NULL, OPT_PROGRESS_FILE},
                {"progress-interval", required_argument, NULL,
                 OPT_PROGRESS_INTERVAL},
                {"health-timeout", required_argument, NULL, OPT_HEALTH_TIMEOUT},
                {"partition-order", required_argument, NULL,
                 OPT_PARTITION_ORDER},
                {"format", required_argument, NULL, OPT_FORMAT},
                {"avro-schema", required_argument, NULL, OPT_AVRO_SCHEMA},
                {"framing", required_argument, NULL, OPT_FRAMING},
                {"schema-id", required_argument, NULL, OPT_SCHEMA_ID},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct cs_window_spec specs[MAX_SPECS];
        const char *props[MAX_PROPS];
        struct cs_pipeline_conf conf = {
                .specs = specs,
                .batch_max_records = 10000,
                .allowed_lateness = 3600,
                .batch_max_ms = 1000,
                .max_future = -1,
                .props = props,
        };
        char errstr[256], *real = NULL;
        const char *http_addr = NULL, *avro_schema = NULL;
        struct cs_http *http = NULL;
        struct cs_stats *stats = NULL;
        struct cs_progress *progress = NULL;
        struct cs_progress_conf pconf = {0};
        int progress_mode = -1; /* -1: not given */
        int64_t health_timeout = HEALTH_TIMEOUT_S;
        char *avro_json = NULL;
        int framing = -1;
        long long schema_id = CS_AVRO_ANY_SCHEMA_ID;
        long long v;
        int64_t d;
        int c, r, startup_timeout_set = 0, broker_timeout_set = 0;

        while ((c = cs_cli_getopt("ingest", argc, argv, "b:t:f:d:g:w:eX:h",
                                  longopts)) != -1) {
                switch (c) {
                case 'b':
                        conf.brokers = optarg;
                        break;
                case 't':
                        conf.topic = optarg;
                        break;
                case 'f':
                        conf.file = optarg;
                        break;
                case 'd':
                        conf.db = optarg;
                        break;
                case 'S':
                        conf.schema = optarg;
                        break;
                case 'g':
                        conf.group = optarg;
                        break;
                case 'w':
                        if (cs_cli_window("ingest", optarg, specs, &conf.nspecs,
                                          MAX_SPECS) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'B':
                        conf.from_beginning = 1;
                        break;
                case 'e':
                        conf.exit_at_end = 1;
                        break;
                case 'R':
                        if (cs_cli_int("ingest", "--batch-max-records", optarg,
                                       1, 10000000, &v) < 0)
                                return CS_EXIT_USAGE;
                        conf.batch_max_records = (size_t)v;
                        break;
                case 'M':
                        if (cs_cli_int("ingest", "--batch-max-ms", optarg, 1,
                                       3600000, &v) < 0)
                                return CS_EXIT_USAGE;
                        conf.batch_max_ms = (int)v;
                        break;
                case 'Q':
                        if (cs_cli_int("ingest", "--max-rate-per-partition",
                                       optarg, 1, 100000000, &v) < 0)
                                return CS_EXIT_USAGE;
                        conf.max_rate_per_partition = (double)v;
                        break;
                case 'L':
                        if (cs_cli_duration("ingest", "--allowed-lateness",
                                            optarg, 0, CS_CLI_DURATION_MAX,
                                            &conf.allowed_lateness) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'F':
                        if (cs_cli_duration("ingest", "--max-future", optarg, 0,
                                            CS_CLI_DURATION_MAX,
                                            &conf.max_future) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'O':
                        if (cs_cli_duration("ingest", "--startup-timeout",
                                            optarg, 0, CS_CLI_DURATION_MAX,
                                            &d) < 0)
                                return CS_EXIT_USAGE;
                        conf.startup_timeout_ms = d * 1000;
                        startup_timeout_set = 1;
                        break;
                case 'K':
                        if (cs_duration_parse(optarg, 0, 366LL * 86400, &d,
                                              errstr, sizeof(errstr)) < 0) {
                                cs_cli_usage_error("ingest",
                                                   "invalid --broker-timeout "
                                                   "'%s': %s",
                                                   optarg, errstr);
                                return CS_EXIT_USAGE;
                        }
                        conf.broker_timeout_ms = d * 1000;
                        broker_timeout_set = 1;
                        break;
                case 'D':
                        if (strcmp(optarg, "normal") &&
                            strcmp(optarg, "full")) {
                                cs_cli_usage_error("ingest",
                                                   "invalid --durability '%s':"
                                                   " expected normal or full",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        conf.durability = !strcmp(optarg, "full")
                                                  ? CS_DURABILITY_FULL
                                                  : CS_DURABILITY_NORMAL;
                        break;
                case 'P':
                        if (strcmp(optarg, "count") && strcmp(optarg, "drop")) {
                                cs_cli_usage_error("ingest",
                                                   "invalid --late-policy '%s':"
                                                   " expected count or drop",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        conf.late_drop = !strcmp(optarg, "drop");
                        break;
                case 'T':
                        if (cs_cli_duration("ingest", "--retention", optarg, 1,
                                            CS_CLI_DURATION_MAX,
                                            &conf.retention) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'U':
                        if (strcmp(optarg, "ignore") &&
                            strcmp(optarg, "update")) {
                                cs_cli_usage_error("ingest",
                                                   "invalid --on-duplicate "
                                                   "'%s': expected ignore or "
                                                   "update",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        conf.update = !strcmp(optarg, "update");
                        break;
                case 'H':
                        if (cs_http_addr_check(optarg, errstr, sizeof(errstr)) <
                            0) {
                                cs_cli_usage_error("ingest", "--http: %s",
                                                   errstr);
                                return CS_EXIT_USAGE;
                        }
                        http_addr = optarg;
                        break;
                case OPT_PROGRESS:
                        if (!strcmp(optarg, "json"))
                                progress_mode = CS_PROGRESS_JSON;
                        else if (!strcmp(optarg, "human"))
                                progress_mode = CS_PROGRESS_HUMAN;
                        else if (!strcmp(optarg, "off"))
                                progress_mode = CS_PROGRESS_OFF;
                        else {
                                cs_cli_usage_error("ingest",
                                                   "invalid --progress '%s':"
                                                   " expected json, human or "
                                                   "off",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        break;
                case OPT_PROGRESS_FILE:
                        pconf.file = optarg;
                        break;
                case OPT_PROGRESS_INTERVAL:
                        if (cs_cli_duration("ingest", "--progress-interval",
                                            optarg, 0, CS_CLI_DURATION_MAX,
                                            &d) < 0)
                                return CS_EXIT_USAGE;
                        pconf.interval_ms = d * 1000;
                        break;
                case OPT_PARTITION_ORDER:
                        if (strcmp(optarg, "time") && strcmp(optarg, "fetch")) {
                                cs_cli_usage_error(
                                        "ingest",
                                        "--partition-order: expected time or "
                                        "fetch, not '%s'",
                                        optarg);
                                return CS_EXIT_USAGE;
                        }
                        conf.fetch_order = !strcmp(optarg, "fetch");
                        break;
                case OPT_HEALTH_TIMEOUT:
                        if (cs_cli_duration("ingest", "--health-timeout",
                                            optarg, 1, CS_CLI_DURATION_MAX,
                                            &health_timeout) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'X':
                        if (conf.nprops == MAX_PROPS) {
                                cs_cli_usage_error("ingest", "too many -X");
                                return CS_EXIT_USAGE;
                        }
                        if (!strchr(optarg, '=')) {
                                cs_cli_usage_error("ingest",
                                                   "invalid -X '%s':"
                                                   " expected name=value",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        props[conf.nprops++] = optarg;
                        break;
                case OPT_FORMAT:
                        if (!strcmp(optarg, "json")) {
                                conf.format = CS_FORMAT_JSON;
                        } else if (!strcmp(optarg, "avro")) {
                                conf.format = CS_FORMAT_AVRO;
                        } else if (!strcmp(optarg, "auto")) {
                                conf.format = CS_FORMAT_AUTO;
                        } else {
                                cs_cli_usage_error("ingest",
                                                   "invalid --format '%s': "
                                                   "expected json, avro or "
                                                   "auto",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        break;
                case OPT_AVRO_SCHEMA:
                        avro_schema = optarg;
                        break;
                case OPT_FRAMING:
                        if (strcmp(optarg, "plain") &&
                            strcmp(optarg, "confluent")) {
                                cs_cli_usage_error("ingest",
                                                   "invalid --framing '%s': "
                                                   "expected plain or "
                                                   "confluent",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        framing = !strcmp(optarg, "plain") ? CS_AVRO_PLAIN
                                                           : CS_AVRO_CONFLUENT;
                        break;
                case OPT_SCHEMA_ID:
                        if (cs_cli_int("ingest", "--schema-id", optarg, 0,
                                       UINT32_MAX, &schema_id) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'h':
                        fputs(ingest_help, stdout);
                        return CS_EXIT_OK;
                case CS_CLI_DONE:
                        return CS_EXIT_OK;
                default:
                        return CS_EXIT_USAGE;
                }
        }
        if (cs_cli_no_operands("ingest", argc, argv) < 0)
                return CS_EXIT_USAGE;
        if (conf.file &&
            (conf.brokers || conf.group || conf.nprops || broker_timeout_set)) {
                cs_cli_usage_error("ingest", "--file replaces --brokers, "
                                             "--group, -X and "
                                             "--broker-timeout");
                return CS_EXIT_USAGE;
        }
        if (conf.file && !conf.topic && !strcmp(conf.file, "-")) {
                cs_cli_usage_error("ingest", "--file - needs --topic NAME: "
                                             "standard input has no name to "
                                             "resume by");
                return CS_EXIT_USAGE;
        }
        /* The real path: the same file by any path is one topic. */
        if (conf.file && !conf.topic &&
            !(conf.topic = real = realpath(conf.file, NULL))) {
                cs_log(CS_LOG_ERROR, "%s: %s", conf.file, strerror(errno));
                return CS_EXIT_FAILURE;
        }
        if ((!conf.file && !conf.brokers) || !conf.topic || !conf.db) {
                cs_cli_usage_error("ingest", "missing %s",
                                   !conf.db      ? "--db"
                                   : !conf.topic ? "--topic"
                                                 : "--brokers (or --file)");
                return CS_EXIT_USAGE;
        }
        /* A service waits for its database; a run that is to end does not
         * wait for ever. */
        if (!startup_timeout_set && (conf.exit_at_end || conf.file))
                conf.startup_timeout_ms = 30 * 1000;
        if (!broker_timeout_set && conf.exit_at_end)
                conf.broker_timeout_ms = 30 * 1000;
        /* A mistyped property is a usage error, found before the database
         * is created or migrated. */
        if (conf.nprops &&
            cs_kafka_check_props(props, conf.nprops, conf.batch_max_records,
                                 errstr, sizeof(errstr)) < 0) {
                cs_cli_usage_error("ingest", "%s", errstr);
                return CS_EXIT_USAGE;
        }
        /* Avro: every option checked and the schema resolved before
         * anything is opened. */
        if (conf.format == CS_FORMAT_JSON &&
            (avro_schema || framing >= 0 ||
             schema_id != CS_AVRO_ANY_SCHEMA_ID)) {
                cs_cli_usage_error("ingest", "--avro-schema, --framing and "
                                             "--schema-id need --format avro "
                                             "or auto");
                free(real);
                return CS_EXIT_USAGE;
        }
        if (conf.format != CS_FORMAT_JSON) {
                if (conf.file) {
                        cs_cli_usage_error("ingest",
                                           "--file replays JSON: --format "
                                           "avro and auto read Kafka only");
                        free(real);
                        return CS_EXIT_USAGE;
                }
                if (conf.format == CS_FORMAT_AUTO && framing == CS_AVRO_PLAIN) {
                        cs_cli_usage_error("ingest",
                                           "--format auto tells Avro by the "
                                           "Confluent magic byte: "
                                           "--framing plain cannot be told "
                                           "from JSON");
                        free(real);
                        return CS_EXIT_USAGE;
                }
                if (framing < 0)
                        framing = conf.format == CS_FORMAT_AUTO
                                          ? CS_AVRO_CONFLUENT
                                          : CS_AVRO_PLAIN;
                if (framing == CS_AVRO_PLAIN &&
                    schema_id != CS_AVRO_ANY_SCHEMA_ID) {
                        cs_cli_usage_error("ingest", "--schema-id needs "
                                                     "--framing confluent");
                        free(real);
                        return CS_EXIT_USAGE;
                }
                if (avro_schema &&
                    cs_avro_schema_load(avro_schema, &avro_json, errstr,
                                        sizeof(errstr)) < 0) {
                        cs_cli_usage_error("ingest", "--avro-schema %s",
                                           errstr);
                        free(real);
                        return CS_EXIT_USAGE;
                }
                /* Without --avro-schema: schemas/calls.avsc, built in. */
                conf.avro = cs_avro_decoder_new(
                        avro_json ? avro_json : cs_avro_calls_schema, framing,
                        schema_id, errstr, sizeof(errstr));
                free(avro_json);
                if (!conf.avro) {
                        cs_cli_usage_error("ingest", "%s: %s",
                                           avro_schema ? avro_schema
                                                       : "built-in schema",
                                           errstr);
                        free(real);
                        return CS_EXIT_USAGE;
                }
        }
        if (conf.nspecs == 0) {
                if (cs_window_spec_parse("1h", &specs[0], errstr,
                                         sizeof(errstr)) < 0)
                        return CS_EXIT_FAILURE;
                conf.nspecs = 1;
        }
        /* Progress: asked for, else to a file as JSON, else drawn on a
         * terminal unless --quiet; never unasked into a pipe or a log. */
        if (progress_mode >= 0)
                pconf.mode = progress_mode;
        else if (pconf.file)
                pconf.mode = CS_PROGRESS_JSON;
        else if (isatty(STDERR_FILENO) && cs_log_threshold >= CS_LOG_INFO)
                pconf.mode = CS_PROGRESS_HUMAN;
        else
                pconf.mode = CS_PROGRESS_OFF;
        if (pconf.file && pconf.mode == CS_PROGRESS_HUMAN) {
                cs_cli_usage_error("ingest", "--progress human draws on the "
                                             "terminal: not with "
                                             "--progress-file");
                free(real);
                return CS_EXIT_USAGE;
        }

        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGPIPE, SIG_IGN);
        /* The page reads through its own connections: it can start before
         * the database exists (503 until then). */
        if (http_addr &&
            (r = cs_http_start(http_addr, conf.db, conf.schema, &http, errstr,
                               sizeof(errstr))) < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                free(real);
                cs_avro_decoder_destroy(conf.avro);
                return r == CS_REFUSED ? CS_EXIT_USAGE : CS_EXIT_FAILURE;
        }
        if (http) {
                if (!(stats = cs_stats_new(conf.topic))) {
                        cs_log(CS_LOG_ERROR, "out of memory");
                        r = -1;
                        goto done;
                }
                cs_http_set_stats(http, stats, health_timeout * 1000);
        }
        if (pconf.mode != CS_PROGRESS_OFF) {
                pconf.db = conf.db;
                pconf.schema = conf.schema;
                pconf.topic = conf.topic;
                pconf.group = conf.group;
                pconf.source = conf.file ? "file" : "kafka";
                if (!(progress = cs_progress_new(&pconf, errstr,
                                                 sizeof(errstr)))) {
                        cs_log(CS_LOG_ERROR, "%s", errstr);
                        r = -1;
                        goto done;
                }
        }
        conf.stats = stats;
        conf.progress = progress;
        r = cs_pipeline_run(&conf, &stop);
done:
        cs_http_stop(http);
        cs_progress_destroy(progress);
        cs_stats_destroy(stats);
        free(real);
        cs_avro_decoder_destroy(conf.avro);
        return r == 0            ? CS_EXIT_OK
               : r == CS_REFUSED ? CS_EXIT_USAGE
                                 : CS_EXIT_FAILURE;
}

static const char migrate_help[] =
        "Usage: callstream migrate --db DB [--schema NAME]\n"
        "\n"
        "Creates or upgrades the schema (numbered migrations, each applied\n"
        "once in its own transaction and recorded with a checksum in\n"
        "schema_migrations) and recreates the views. Idempotent. A\n"
        "migration changed since it was applied is never re-run: migrate,\n"
        "ingest and rebuild stop with exit status 1 naming it.\n"
        "\n"
        "Options:\n"
        "  -d, --db DB         SQLite file path (or sqlite:PATH), or a\n"
        "                      PostgreSQL URI (postgresql://...) or key=value\n"
        "                      conninfo\n"
        "      --schema NAME   PostgreSQL: keep everything in schema NAME\n"
        "  -v, --verbose       log more\n"
        "  -q, --quiet         log errors only\n"
        "  -h, --help          show this help\n"
        "      --version       show the versions of callstream and its\n"
        "                      libraries\n"
        "      --config FILE   read options from FILE (key = value\n"
        "                      lines, the long option names as keys)\n"
        "      --print-config  print the options in effect and where\n"
        "                      each comes from (secrets masked), and exit\n";

int cs_cmd_migrate(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"db", required_argument, NULL, 'd'},
                {"schema", required_argument, NULL, 'S'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *db = NULL, *schema = NULL;
        struct cs_sink *sink;
        char errstr[512];
        int c, r;

        while ((c = cs_cli_getopt("migrate", argc, argv, "d:h", longopts)) !=
               -1) {
                switch (c) {
                case 'd':
                        db = optarg;
                        break;
                case 'S':
                        schema = optarg;
                        break;
                case 'h':
                        fputs(migrate_help, stdout);
                        return CS_EXIT_OK;
                case CS_CLI_DONE:
                        return CS_EXIT_OK;
                default:
                        return CS_EXIT_USAGE;
                }
        }
        if (cs_cli_no_operands("migrate", argc, argv) < 0)
                return CS_EXIT_USAGE;
        if (!db) {
                cs_cli_usage_error("migrate", "missing --db");
                return CS_EXIT_USAGE;
        }
        if (cs_sink_open(db, schema, &sink, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                return CS_EXIT_FAILURE;
        }
        r = cs_sink_migrate(sink, errstr, sizeof(errstr));
        if (r < 0)
                cs_log(CS_LOG_ERROR, "%s", errstr);
        cs_sink_close(sink);
        return r < 0 ? CS_EXIT_FAILURE : CS_EXIT_OK;
}
