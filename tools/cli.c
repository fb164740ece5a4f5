/* cli.c: option parsing helpers with one-line errors (see cs_cli.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <sqlite3.h>

#include "cs_cli.h"
#include "cs_config.h"
#include "cs_version.h"

/* The parse under way: the command's argv and, while the options of the
 * file and the environment are read (before argv's, so that optind ends
 * on argv for the caller), their layers. */
static struct {
        char **argv;
        struct cs_config *cfg;
        int injected;
        const char *origin; /* of the option just returned, for errors */
} parse;

void cs_cli_usage_error(const char *cmd, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "callstream %s: ", cmd);
        if (parse.origin)
                fprintf(stderr, "%s: ", parse.origin);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, " (see 'callstream %s --help')\n", cmd);
}

int cs_cli_int(const char *cmd, const char *flag, const char *val,
               long long min, long long max, long long *out)
{
        char *end;
        long long v;

        errno = 0;
        v = strtoll(val, &end, 10);
        if (end == val || *end != '\0' || errno == ERANGE || v < min ||
            v > max) {
                cs_cli_usage_error(cmd,
                                   "invalid %s '%s': expected an integer "
                                   "from %lld to %lld",
                                   flag, val, min, max);
                return -1;
        }
        *out = v;
        return 0;
}

int cs_cli_rate(const char *cmd, const char *flag, const char *val, double *out)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(val, &end);
        if (end == val || *end != '\0' || errno == ERANGE || !(v >= 0.0) ||
            v > 1.0) {
                cs_cli_usage_error(cmd,
                                   "invalid %s '%s': expected a fraction "
                                   "from 0 to 1",
                                   flag, val);
                return -1;
        }
        *out = v;
        return 0;
}

int cs_cli_window(const char *cmd, const char *val,
                  struct cs_window_spec *specs, int *n, int max)
{
        char errstr[256];
        int i;

        if (*n == max) {
                cs_cli_usage_error(cmd, "too many --window (at most %d)", max);
                return -1;
        }
        if (cs_window_spec_parse(val, &specs[*n], errstr, sizeof(errstr)) < 0) {
                cs_cli_usage_error(cmd, "invalid --window '%s': %s", val,
                                   errstr);
                return -1;
        }
        for (i = 0; i < *n; i++) {
                if (!strcmp(specs[i].name, specs[*n].name)) {
                        cs_cli_usage_error(cmd, "--window %s given twice",
                                           specs[*n].name);
                        return -1;
                }
        }
        (*n)++;
        return 0;
}

int cs_cli_duration(const char *cmd, const char *flag, const char *val,
                    int64_t min, int64_t max, int64_t *out)
{
        char errstr[256];
        size_t n = strspn(val, "0123456789");
        int64_t v;

        /* A bare number gets its own hint: the one mistake worth naming. */
        if (n > 0 && val[n] == '\0' && !(min == 0 && !strcmp(val, "0"))) {
                cs_cli_usage_error(cmd,
                                   "invalid %s '%s': a duration needs a unit "
                                   "(s, m, h or d, e.g. '%ss')",
                                   flag, val, val);
                return -1;
        }
        /* Parsed against a minimum of 1 s, so that a short duration gets
         * the message below, which names the minimum. */
        if (cs_duration_parse(val, min > 0, max, &v, errstr, sizeof(errstr)) <
            0) {
                cs_cli_usage_error(cmd, "invalid %s '%s': %s", flag, val,
                                   errstr);
                return -1;
        }
        if (v < min) {
                cs_cli_usage_error(cmd,
                                   "invalid %s '%s': must be at least %llds",
                                   flag, val, (long long)min);
                return -1;
        }
        *out = v;
        return 0;
}

void cs_cli_print_version(FILE *out)
{
        int pq = PQlibVersion();

        fprintf(out, "callstream %s\n", CS_VERSION);
        fprintf(out, "librdkafka %s\n", rd_kafka_version_str());
        fprintf(out, "SQLite %s\n", sqlite3_libversion());
        /* From PostgreSQL 10 on, 150004 means 15.4. */
        if (pq >= 100000)
                fprintf(out, "libpq %d.%d\n", pq / 10000, pq % 10000);
        else
                fprintf(out, "libpq %d.%d.%d\n", pq / 10000, pq / 100 % 100,
                        pq % 100);
}

/* The options every subcommand takes; val is what getopt_long returns. */
enum { OPT_VERSION = CS_CLI_DONE + 1 };
static const struct option common_opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        /* Only for the commands that read the layers (cs_config.h). */
        {"config", required_argument, NULL, CS_CONFIG_OPT_FILE},
        {"print-config", no_argument, NULL, CS_CONFIG_OPT_PRINT},
};

/* Returns whether longopts already has an option called name. */
static int has_long(const struct option *longopts, const char *name)
{
        for (; longopts->name; longopts++)
                if (!strcmp(longopts->name, name))
                        return 1;
        return 0;
}

int cs_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts)
{
        static struct option merged[128];
        int plus = shortopts[0] == '+';
        const char *own = shortopts + plus;
        char opts[128];
        size_t n = 0, i, ncommon = CS_ARRAY_SIZE(common_opts);
        int c;

        if (cs_config_probing(shortopts, longopts))
                return CS_CLI_DONE;
        if (!cs_config_reads(cmd))
                ncommon -= 2;

        /* The command's options first, then the common ones it lacks. A
         * leading ':' makes getopt tell a missing value from a bad flag;
         * it goes after a leading '+' (stop at the first non-option). */
        own += own[0] == ':';
        snprintf(opts, sizeof(opts), "%s:%s", plus ? "+" : "", own);
        for (i = 0; i < 2; i++)
                if (!strchr(own, "vq"[i]))
                        strncat(opts, i ? "q" : "v",
                                sizeof(opts) - strlen(opts) - 1);
        if (!strchr(own, 'h'))
                strncat(opts, "h", sizeof(opts) - strlen(opts) - 1);
        for (; longopts[n].name && n < CS_ARRAY_SIZE(merged) - 7; n++)
                merged[n] = longopts[n];
        for (i = 0; i < ncommon; i++)
                if (!has_long(longopts, common_opts[i].name))
                        merged[n++] = common_opts[i];
        memset(&merged[n], 0, sizeof(merged[n]));

        /* A new parse: build the layers under the command line. */
        if (parse.argv != argv) {
                cs_config_destroy(parse.cfg);
                parse.cfg = NULL;
                parse.origin = NULL;
                parse.injected = 0;
                parse.argv = argv;
                if (cs_config_reads(cmd)) {
                        if (cs_config_build(cmd, argc, argv, opts, merged,
                                            &parse.cfg) < 0) {
                                parse.argv = NULL;
                                return '?';
                        }
                        parse.injected = cs_config_argc(parse.cfg) > 1;
                        optind = 0;
                }
        }

        opterr = 0;
again:
        if (parse.injected) {
                c = getopt_long(cs_config_argc(parse.cfg),
                                cs_config_argv(parse.cfg), opts, merged, NULL);
                if (c == -1) {
                        /* On to the command line, from its start. */
                        parse.injected = 0;
                        parse.origin = NULL;
                        optind = 0;
                        goto again;
                }
                parse.origin = cs_config_origin(parse.cfg, optind - 1);
        } else {
                parse.origin = NULL;
                c = getopt_long(argc, argv, opts, merged, NULL);
        }
        if (c == CS_CONFIG_OPT_FILE)
                goto again; /* read by cs_config_build */
        if (c == CS_CONFIG_OPT_PRINT)
                goto again;
        if (c == -1 && parse.cfg && cs_config_print_wanted(parse.cfg)) {
                cs_config_print(parse.cfg, stdout);
                c = CS_CLI_DONE;
        }
        if (c == -1 || c == CS_CLI_DONE || c == '?' || c == ':' ||
            c == OPT_VERSION || c == 'h')
                parse.argv = NULL; /* the next call starts a new parse */
        if (c == 'v' && !strchr(own, 'v')) {
                cs_log_threshold = CS_LOG_DEBUG;
                goto again;
        }
        if (c == 'q' && !strchr(own, 'q')) {
                cs_log_threshold = CS_LOG_ERROR;
                goto again;
        }
        if (c == OPT_VERSION) {
                cs_cli_print_version(stdout);
                return CS_CLI_DONE;
        }
        if (c == ':' || c == '?') {
                const char *arg =
                        parse.injected ? cs_config_argv(parse.cfg)[optind - 1]
                                       : argv[optind - 1];
                char flag[64];

                /* Name the flag as typed: "--window", or "-X". */
                if (!strncmp(arg, "--", 2))
                        snprintf(flag, sizeof(flag), "%.*s",
                                 (int)strcspn(arg, "="), arg);
                else
                        snprintf(flag, sizeof(flag), "-%c", optopt);
                if (c == ':')
                        cs_cli_usage_error(cmd, "option '%s' needs a value",
                                           flag);
                else if (strchr(arg, '=') && !strncmp(arg, "--", 2))
                        cs_cli_usage_error(cmd,
                                           "unknown option or unexpected "
                                           "value '%s'",
                                           arg);
                else
                        cs_cli_usage_error(cmd, "unknown option '%s'", flag);
                return '?';
        }
        return c;
}

int cs_cli_no_operands(const char *cmd, int argc, char **argv)
{
        if (optind >= argc)
                return 0;
        cs_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        return -1;
}
