/* main.c: the callstream binary, a table of subcommands. */
#include <stdio.h>
#include <string.h>

#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_common.h"
#include "cs_config.h"

static const struct subcommand {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
} subcommands[] = {
        {"broker", cs_cmd_broker,
         "run a local in-memory Kafka broker for trials and tests"},
        {"produce", cs_cmd_produce,
         "stream a JSON array or NDJSON file of calls into a topic"},
        {"generate", cs_cmd_generate,
         "write realistic synthetic calls as NDJSON"},
        {"migrate", cs_cmd_migrate, "create or upgrade the database schema"},
        {"ingest", cs_cmd_ingest,
         "consume a topic into the database, exactly once"},
        {"rebuild", cs_cmd_rebuild,
         "recompute window counts from the stored calls"},
        {"offsets", cs_cmd_offsets,
         "list, reset or forget the stored positions of topics"},
        {"report", cs_cmd_report,
         "export a view or the standard report as CSV, JSON, HTML..."},
        {"tail", cs_cmd_tail,
         "print a topic's messages, or those the ingest would reject"},
};

static void usage(FILE *out)
{
        size_t i;

        fprintf(out, "Usage: callstream COMMAND [OPTIONS]\n\n"
                     "Police calls for service from Kafka into SQL.\n\n"
                     "Commands:\n");
        for (i = 0; i < CS_ARRAY_SIZE(subcommands); i++)
                fprintf(out, "  %-10s %s\n", subcommands[i].name,
                        subcommands[i].summary);
        fprintf(out, "\nEvery command takes -h/--help, --version, -v/--verbose "
                     "and -q/--quiet.\n"
                     "Run 'callstream COMMAND --help' for its options; "
                     "'callstream --version'\n"
                     "prints the versions of callstream and its "
                     "libraries.\n"
                     "\n"
                     "Every command but broker and generate also reads "
                     "--config FILE (key = value\n"
                     "lines, the long option names as keys) and "
                     "CALLSTREAM_<OPTION> environment\n"
                     "variables (CALLSTREAM_DB, CALLSTREAM_BATCH_MAX_RECORDS"
                     "...): flags win over\n"
                     "the environment, which wins over the file; "
                     "--print-config shows the result.\n");
}

int main(int argc, char **argv)
{
        static struct cs_config_cmd cmds[CS_ARRAY_SIZE(subcommands)];
        size_t i;

        /* So that a config file shared by several commands can hold keys
         * of another command (cs_config.h). */
        for (i = 0; i < CS_ARRAY_SIZE(subcommands); i++) {
                cmds[i].name = subcommands[i].name;
                cmds[i].run = subcommands[i].run;
        }
        cs_config_set_commands(cmds, CS_ARRAY_SIZE(cmds));

        if (argc < 2) {
                usage(stderr);
                return CS_EXIT_USAGE;
        }
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
            !strcmp(argv[1], "help")) {
                usage(stdout);
                return CS_EXIT_OK;
        }
        if (!strcmp(argv[1], "--version")) {
                cs_cli_print_version(stdout);
                return CS_EXIT_OK;
        }
        for (i = 0; i < CS_ARRAY_SIZE(subcommands); i++)
                if (!strcmp(argv[1], subcommands[i].name))
                        return subcommands[i].run(argc - 1, argv + 1);
        fprintf(stderr,
                "callstream: unknown command '%s' (see 'callstream "
                "--help')\n",
                argv[1]);
        return CS_EXIT_USAGE;
}
