/* cmd_rebuild.c: `callstream rebuild`, window counts again from the calls. */
#include <stdio.h>
#include <string.h>

#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_rebuild.h"
#include "cs_sink.h"
#include "cs_time.h"

#define MAX_SPECS 16

static const char rebuild_help[] =
        "Usage: callstream rebuild --db DB [--from T] [--to T] [--window "
        "SPEC]...\n"
        "\n"
        "Recomputes window counts (and late records) from the stored calls,\n"
        "for instance after adding a window spec: each call is counted\n"
        "against the watermark stored with it, under the late policy it was\n"
        "stored with, exactly as the ingest counted it. Idempotent, and safe\n"
        "while an ingest runs: its window writes wait for the rebuild.\n"
        "\n"
        "Options:\n"
        "  -d, --db DB          SQLite file path (or sqlite:PATH), or a\n"
        "                       PostgreSQL URI or key=value conninfo\n"
        "      --schema NAME    PostgreSQL: the schema callstream uses\n"
        "      --from T         only windows starting at or after T\n"
        "                       (YYYY-MM-DD[ HH:MM[:SS]]; default: all)\n"
        "      --to T           only windows starting before T\n"
        "  -w, --window SPEC    the spec to rebuild, repeatable (default: "
        "every\n"
        "                       spec that has counts)\n"
        "  -v, --verbose        log more\n"
        "  -q, --quiet          log errors only\n"
        "  -h, --help           show this help\n"
        "      --version        show the versions of callstream and its\n"
        "                       libraries\n"
        "      --config FILE    read options from FILE (key = value\n"
        "                       lines, the long option names as keys)\n"
        "      --print-config   print the options in effect and where\n"
        "                       each comes from (secrets masked), and exit\n";

/* Reads --from/--to: a date, or a date and time. */
static int parse_bound(const char *flag, const char *val, int64_t *out)
{
        char buf[32];
        int32_t usec;

        snprintf(buf, sizeof(buf), "%s%s", val,
                 strlen(val) == 10 ? " 00:00" : "");
        if (cs_time_parse(buf, strlen(buf), out, &usec) < 0) {
                cs_cli_usage_error("rebuild",
                                   "invalid %s '%s': expected YYYY-MM-DD "
                                   "[HH:MM[:SS]]",
                                   flag, val);
                return -1;
        }
        return 0;
}

int cs_cmd_rebuild(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"db", required_argument, NULL, 'd'},
                {"schema", required_argument, NULL, 'S'},
                {"from", required_argument, NULL, 'F'},
                {"to", required_argument, NULL, 'T'},
                {"window", required_argument, NULL, 'w'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct cs_window_spec specs[MAX_SPECS];
        struct cs_rebuild_conf conf = {
                .specs = specs,
                .from = CS_TS_MIN,
                .to = CS_TS_END,
        };
        char errstr[512];
        int c;

        while ((c = cs_cli_getopt("rebuild", argc, argv, "d:w:h", longopts)) !=
               -1) {
                switch (c) {
                case 'd':
                        conf.db = optarg;
                        break;
                case 'S':
                        conf.schema = optarg;
                        break;
                case 'F':
                        if (parse_bound("--from", optarg, &conf.from) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'T':
                        if (parse_bound("--to", optarg, &conf.to) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'w':
                        if (cs_cli_window("rebuild", optarg, specs,
                                          &conf.nspecs, MAX_SPECS) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'h':
                        fputs(rebuild_help, stdout);
                        return CS_EXIT_OK;
                case CS_CLI_DONE:
                        return CS_EXIT_OK;
                default:
                        return CS_EXIT_USAGE;
                }
        }
        if (cs_cli_no_operands("rebuild", argc, argv) < 0)
                return CS_EXIT_USAGE;
        if (!conf.db) {
                cs_cli_usage_error("rebuild", "missing --db");
                return CS_EXIT_USAGE;
        }
        if (conf.from >= conf.to) {
                cs_cli_usage_error("rebuild", "--from must come before --to");
                return CS_EXIT_USAGE;
        }
        /* It rebuilds what is there: a typo must not create a database. */
        if (cs_sink_require_existing(conf.db, errstr, sizeof(errstr)) < 0) {
                cs_log(CS_LOG_ERROR, "rebuild: %s", errstr);
                return CS_EXIT_FAILURE;
        }
        return cs_rebuild_run(&conf) == 0 ? CS_EXIT_OK : CS_EXIT_FAILURE;
}
