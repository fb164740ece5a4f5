/* cli.c: option parsing helpers with one-line errors (see cs_cli.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_cli.h"

void cs_cli_usage_error(const char *cmd, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "callstream %s: ", cmd);
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

int cs_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts)
{
        char opts[64];
        int c;

        /* A leading ':' makes getopt tell a missing value from a bad flag;
         * it goes after a leading '+' (stop at the first non-option). */
        if (shortopts[0] == '+')
                snprintf(opts, sizeof(opts), "+%s%s",
                         shortopts[1] == ':' ? "" : ":", shortopts + 1);
        else
                snprintf(opts, sizeof(opts), "%s%s",
                         shortopts[0] == ':' ? "" : ":", shortopts);
        opterr = 0;
        c = getopt_long(argc, argv, opts, longopts, NULL);
        if (c == ':' || c == '?') {
                const char *arg = argv[optind - 1];
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
