/* cs_cli.h: option parsing helpers shared by the subcommand front-ends.
 *
 * Every helper prints a one-line error naming the subcommand and the flag
 * ("callstream ingest: invalid --batch-max-ms 'x': ...") and returns -1, so
 * the caller only has to return CS_EXIT_USAGE. */
#ifndef CS_CLI_H
#define CS_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

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

/* Parses a duration given to flag: "N" followed by s, m, h or d, or "0"
 * alone (when min is 0), into seconds in [min, max]. Every duration option
 * of every subcommand goes through here, so they all take one syntax; a
 * bare number other than 0 is refused everywhere (is "90" seconds or
 * minutes?). */
int cs_cli_duration(const char *cmd, const char *flag, const char *val,
                    int64_t min, int64_t max, int64_t *out) CS_MUSTCHECK;

/* The longest duration any option takes: 100 years. */
#define CS_CLI_DURATION_MAX (100LL * 366 * 86400)

/* Returned by cs_cli_getopt once it has printed the version: the caller
 * exits with CS_EXIT_OK, as after --help. Outside any option character. */
#define CS_CLI_DONE 0x10000

/* Runs getopt_long with our error messages: returns the option character,
 * -1 at the end of options, or '?' after printing "unknown option" or
 * "missing value" for the offending flag. opterr is disabled.
 *
 * Every subcommand takes the same common options, handled here unless the
 * command lists them itself: -v/--verbose and -q/--quiet set the log
 * threshold (and are not returned), --version prints the versions and
 * returns CS_CLI_DONE, -h/--help is returned as 'h' for the command to print
 * its help.
 *
 * Commands that read configuration (cs_config.h: all but broker and
 * generate) also take --config FILE and --print-config: on the first call
 * of a parse the options of the file and of CALLSTREAM_<OPTION> variables
 * that the command line does not override are returned first, as if typed
 * before argv's (errors about them name their file and line); optind ends
 * on argv as usual. --print-config prints the result and returns
 * CS_CLI_DONE where -1 would end the options. */
int cs_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts);

/* Prints "callstream X.Y.Z" and the versions of librdkafka, SQLite and
 * libpq in use (the run-time libraries, not the headers) to out. */
void cs_cli_print_version(FILE *out);

/* After the options of a command that takes no operands: 0 when
 * argv[optind..argc) is empty, else -1 after "unexpected argument 'X'". */
int cs_cli_no_operands(const char *cmd, int argc, char **argv) CS_MUSTCHECK;

/* Prints "callstream CMD: MESSAGE (see 'callstream CMD --help')". */
void cs_cli_usage_error(const char *cmd, const char *fmt, ...) CS_PRINTF(2, 3);

#endif
