/* cs_cli.h: option parsing helpers shared by the subcommand front-ends.
 *
 * Every helper prints a one-line error naming the subcommand and the flag
 * ("callstream ingest: invalid --batch-max-ms 'x': ...") and returns -1, so
 * the caller only has to return CS_EXIT_USAGE. */
#ifndef CS_CLI_H
#define CS_CLI_H

#include <getopt.h>

#include "cs_common.h"
#include "cs_window.h"

/* Parses a decimal integer in [min, max] given to flag. */
int cs_cli_int(const char *cmd, const char *flag, const char *val,
               long long min, long long max, long long *out) CS_MUSTCHECK;

/* Parses a decimal fraction in [0, 1] (a rate such as --duplicates 0.05). */
int cs_cli_rate(const char *cmd, const char *flag, const char *val,
                double *out) CS_MUSTCHECK;

/* Parses a --window value into specs[*n] and counts it, refusing a spec
 * given twice (its calls would be counted twice) and more than max. */
int cs_cli_window(const char *cmd, const char *val,
                  struct cs_window_spec *specs, int *n, int max) CS_MUSTCHECK;

/* Runs getopt_long with our error messages: returns the option character,
 * -1 at the end of options, or '?' after printing "unknown option" or
 * "missing value" for the offending flag. opterr is disabled. */
int cs_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts);

/* Prints "callstream CMD: MESSAGE (see 'callstream CMD --help')". */
void cs_cli_usage_error(const char *cmd, const char *fmt, ...) CS_PRINTF(2, 3);

#endif
