/* cmd_offsets.c: `callstream offsets list|reset|forget`, the stored
 * positions of the ingest's topics, seen and moved by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_sink.h"
#include "cs_time.h"
#include "cs_topics.h"

static const char offsets_help[] =
        "Usage: callstream offsets list --db DB [--schema NAME]\n"
        "       callstream offsets reset --db DB --topic T [--partition P]\n"
        "                (--to-offset N | --to-earliest | --to-timestamp T)\n"
        "       callstream offsets forget --db DB --topic T\n"
        "\n"
        "The positions the ingest resumes from, stored in the database per\n"
        "topic and partition (file replays: partition 0, offset = line or\n"
        "element number). Stop the ingest of a topic before you reset or\n"
        "forget it: a running ingest keeps its position in memory and\n"
        "stores it again with its next batch (on SQLite, reset and forget\n"
        "refuse while an ingest holds the database).\n"
        "\n"
        "  list     topic, partition, next offset, watermark, lag and, for\n"
        "           replays, the file, its fingerprint (FNV-1a of its first\n"
        "           bytes), how many bytes that covers and whether the last\n"
        "           replay read it to the end; tab-separated, '-' for none;\n"
        "           --topic and --partition narrow it\n"
        "  reset    sets the next offset, backwards too: --to-offset N;\n"
        "           --to-earliest (0: Kafka's oldest kept message, a file's\n"
        "           start); --to-timestamp T, the offset of the first stored\n"
        "           call of event time T or later (YYYY-MM-DD [HH:MM[:SS]]),\n"
        "           a partition with none keeps its offset. Calls read again\n"
        "           are duplicates and count nothing twice; the watermark\n"
        "           stays\n"
        "  forget   deletes the topic's offsets, watermarks and replay\n"
        "           fingerprint: the calls and counts stay; a replay of it\n"
        "           starts again from its start, and it stops holding\n"
        "           is_final back\n"
        "\n"
        "Options:\n"
        "  -d, --db DB          SQLite file path (or sqlite:PATH), or a\n"
        "                       PostgreSQL URI or key=value conninfo\n"
        "      --schema NAME    PostgreSQL: the schema callstream uses\n"
        "  -t, --topic T        the topic (as `offsets list` shows it)\n"
        "  -p, --partition P    list, reset: only this partition (default:\n"
        "                       all)\n"
        "      --to-offset N    reset: to offset N\n"
        "      --to-earliest    reset: to the earliest offset\n"
        "      --to-timestamp T reset: to the first stored call at or after "
        "T\n"
        "  -h, --help           show this help\n"
        "      --config FILE    read options from FILE (key = value\n"
        "                       lines, the long option names as keys)\n"
        "      --print-config   print the options in effect and where\n"
        "                       each comes from (secrets masked), and exit\n";

static const char *or_dash(const char *s)
{
        return s ? s : "-";
}

/* Watermarks as the ingest writes them, whatever the database's text. */
static const char *norm_time(const char *s, char *buf)
{
        int64_t sec;
        int32_t usec;

        if (!s || cs_time_parse(s, strlen(s), &sec, &usec) < 0)
                return or_dash(s);
        cs_time_format(sec, usec, buf);
        return buf;
}

/* What `list` shows: one topic, one partition, or all (NULL, -1). */
struct list_filter {
        const char *topic;
        int32_t partition;
};

static int print_row(void *opaque, const struct cs_topic_row *r)
{
        const struct list_filter *f = opaque;
        char wm[CS_TS_BUFSZ], at[CS_TS_BUFSZ];

        if ((f->topic && strcmp(f->topic, r->topic)) ||
            (f->partition >= 0 && atol(r->partition) != f->partition))
                return 0;
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r->topic,
               r->partition, r->next_offset, norm_time(r->watermark, wm),
               or_dash(r->lag), or_dash(r->path), or_dash(r->fingerprint),
               or_dash(r->fingerprint_bytes),
               r->at_end ? (atoi(r->at_end) ? "yes" : "no") : "-",
               norm_time(r->updated_at, at));
        return 0;
}

static const char *reset_when;

static void print_reset(const char *partition, const char *to)
{
        if (to)
                printf("partition %s: next offset %s\n", partition, to);
        else
                printf("partition %s: no stored call at or after %s, "
                       "offset kept\n",
                       partition, reset_when);
}

/* Reads --to-timestamp: a date, or a date and time. */
static int parse_when(const char *val, int64_t *out)
{
        char buf[32];
        int32_t usec;

        snprintf(buf, sizeof(buf), "%s%s", val,
                 strlen(val) == 10 ? " 00:00" : "");
        if (cs_time_parse(buf, strlen(buf), out, &usec) < 0) {
                cs_cli_usage_error("offsets",
                                   "invalid --to-timestamp '%s': expected "
                                   "YYYY-MM-DD [HH:MM[:SS]]",
                                   val);
                return -1;
        }
        return 0;
}

int cs_cmd_offsets(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"db", required_argument, NULL, 'd'},
                {"schema", required_argument, NULL, 'S'},
                {"topic", required_argument, NULL, 't'},
                {"partition", required_argument, NULL, 'p'},
                {"to-offset", required_argument, NULL, 'O'},
                {"to-earliest", no_argument, NULL, 'E'},
                {"to-timestamp", required_argument, NULL, 'T'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *db = NULL, *schema = NULL, *topic = NULL, *action;
        enum cs_topics_seek how = CS_SEEK_OFFSET;
        int64_t offset = 0, when = 0;
        int32_t partition = -1;
        struct cs_sink *sink = NULL;
        char errstr[512];
        long long v;
        long n = 0;
        int c, r, nseek = 0;

        /* Without an action, only what needs none: --help and --version
         * (with -q or -v, as every command takes them). */
        for (c = 1; c < argc && argv[1][0] == '-'; c++) {
                if (!strcmp(argv[c], "-h") || !strcmp(argv[c], "--help")) {
                        fputs(offsets_help, stdout);
                        return CS_EXIT_OK;
                }
                if (!strcmp(argv[c], "--version")) {
                        cs_cli_print_version(stdout);
                        return CS_EXIT_OK;
                }
        }
        if (argc < 2 || argv[1][0] == '-') {
                cs_cli_usage_error("offsets", "missing action: list, reset or "
                                              "forget");
                return CS_EXIT_USAGE;
        }
        action = argv[1];
        if (strcmp(action, "list") && strcmp(action, "reset") &&
            strcmp(action, "forget")) {
                cs_cli_usage_error("offsets",
                                   "unknown action '%s': expected list, "
                                   "reset or forget",
                                   action);
                return CS_EXIT_USAGE;
        }
        argc--;
        argv++;
        while ((c = cs_cli_getopt("offsets", argc, argv, "d:t:p:h",
                                  longopts)) != -1) {
                switch (c) {
                case 'd':
                        db = optarg;
                        break;
                case 'S':
                        schema = optarg;
                        break;
                case 't':
                        topic = optarg;
                        break;
                case 'p':
                        if (cs_cli_int("offsets", "--partition", optarg, 0,
                                       INT32_MAX, &v) < 0)
                                return CS_EXIT_USAGE;
                        partition = (int32_t)v;
                        break;
                case 'O':
                        if (cs_cli_int("offsets", "--to-offset", optarg, 0,
                                       INT64_MAX, &v) < 0)
                                return CS_EXIT_USAGE;
                        how = CS_SEEK_OFFSET;
                        offset = v;
                        nseek++;
                        break;
                case 'E':
                        how = CS_SEEK_EARLIEST;
                        nseek++;
                        break;
                case 'T':
                        if (parse_when(optarg, &when) < 0)
                                return CS_EXIT_USAGE;
                        how = CS_SEEK_TIME;
                        reset_when = optarg;
                        nseek++;
                        break;
                case 'h':
                        fputs(offsets_help, stdout);
                        return CS_EXIT_OK;
                case CS_CLI_DONE: /* --version, --print-config */
                        return CS_EXIT_OK;
                default:
                        return CS_EXIT_USAGE;
                }
        }
        if (cs_cli_no_operands("offsets", argc, argv) < 0)
                return CS_EXIT_USAGE;
        if (!db || (strcmp(action, "list") && !topic)) {
                cs_cli_usage_error("offsets", "%s: missing %s", action,
                                   !db ? "--db" : "--topic");
                return CS_EXIT_USAGE;
        }
        /* --topic and --partition narrow the list (a configuration file
         * shared with ingest names the topic). */
        if (!strcmp(action, "list") && nseek) {
                cs_cli_usage_error("offsets", "list takes no --to-*");
                return CS_EXIT_USAGE;
        }
        if (!strcmp(action, "forget") && (partition >= 0 || nseek)) {
                cs_cli_usage_error("offsets", "forget takes a whole --topic, "
                                              "no --partition nor --to-*");
                return CS_EXIT_USAGE;
        }
        if (!strcmp(action, "reset") && nseek != 1) {
                cs_cli_usage_error("offsets", "reset needs one of --to-offset, "
                                              "--to-earliest, --to-timestamp");
                return CS_EXIT_USAGE;
        }

        /* A mistyped path must not leave an empty database behind. */
        if (cs_sink_require_existing(db, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_ERROR, "offsets: %s", errstr);
                return CS_EXIT_FAILURE;
        }
        /* Migrated first: a database from before the replay fingerprints
         * gets their table. */
        if (cs_sink_open(db, schema, &sink, errstr, sizeof(errstr)) < 0 ||
            cs_sink_migrate(sink, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_ERROR, "%s", errstr);
                cs_sink_close(sink);
                return CS_EXIT_FAILURE;
        }
        /* reset and forget move what a running ingest resumes from: on
         * SQLite they take the lock an ingest holds for its lifetime. */
        if (strcmp(action, "list") &&
            cs_sink_claim(sink, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_ERROR, "offsets %s: stop the ingest first: %s",
                       action, errstr);
                cs_sink_close(sink);
                return CS_EXIT_FAILURE;
        }
        if (!strcmp(action, "list")) {
                struct list_filter f = {topic, partition};

                printf("topic\tpartition\tnext_offset\twatermark\tlag\tfile\t"
                       "fingerprint\tfingerprint_bytes\tat_end\tupdated_at\n");
                r = cs_topics_list(sink, print_row, &f, errstr, sizeof(errstr));
        } else if (!strcmp(action, "reset")) {
                r = cs_topics_reset(sink, topic, partition, how, offset, when,
                                    print_reset, &n, errstr, sizeof(errstr));
        } else {
                r = cs_topics_forget(sink, topic, &n, errstr, sizeof(errstr));
                if (r == 0)
                        printf("topic %s: %ld partition(s) forgotten\n", topic,
                               n);
        }
        cs_sink_close(sink);
        if (r < 0) {
                if (r == CS_REFUSED)
                        cs_cli_usage_error("offsets", "%s", errstr);
                else
                        cs_log(CS_LOG_ERROR, "%s", errstr);
                return r == CS_REFUSED ? CS_EXIT_USAGE : CS_EXIT_FAILURE;
        }
        return CS_EXIT_OK;
}
