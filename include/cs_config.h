/* cs_config.h: the layers under the command line, a --config file and
 * CALLSTREAM_<OPTION> environment variables, turned into options that a
 * subcommand's own getopt loop reads as if they had been typed.
 *
 * Nothing here knows a key: the keys of a command are the long names of its
 * getopt table (and the letter of an option that has no long name, X for
 * -X), so an option added to a command is a key at once. For each key the
 * highest layer that sets it wins outright (command line > environment >
 * file): its values, all of them for a repeatable option, replace those of
 * the layers below, which are dropped. cs_cli_getopt() (cli.c) calls this
 * module; commands do not. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <getopt.h>
#include <stdio.h>

#include "cs_cli.h"

/* getopt values of the two options every configurable command takes. */
#define CS_CONFIG_OPT_FILE  (CS_CLI_DONE + 2) /* --config FILE */
#define CS_CONFIG_OPT_PRINT (CS_CLI_DONE + 3) /* --print-config */

struct cs_config;

/* A subcommand: main's table, so that a key or a [section] of a shared file
 * can be told to belong to another command rather than be a typo. */
struct cs_config_cmd {
        const char *name;
        int (*run)(int argc, char **argv);
};

/* Registers the subcommands (borrowed: main's static table). Without it,
 * as in the tests that link the library, a key the command lacks is always
 * an error and sections are not checked. */
void cs_config_set_commands(const struct cs_config_cmd *cmds, size_t n);

/* Whether command cmd reads --config and the environment (broker and
 * generate do not: broker's --brokers is a count, and generated data must
 * not depend on the environment). */
int cs_config_reads(const char *cmd);

/* Called first by cs_cli_getopt: while another command's table is being
 * probed, records shortopts and longopts (static tables) and returns 1, and
 * the caller returns CS_CLI_DONE at once. Returns 0 otherwise. */
int cs_config_probing(const char *shortopts, const struct option *longopts);

/* Builds the layers for one parse of argv by command cmd, whose getopt
 * string and table are opts and longopts (borrowed; they must outlive the
 * result). Reads the command line (not consumed: optind is left to the
 * caller to reset), CALLSTREAM_CONFIG or --config FILE and the environment.
 * Returns 0 and sets *cfgp, or -1 after printing a one-line usage error
 * naming the file and line. */
int cs_config_build(const char *cmd, int argc, char **argv, const char *opts,
                    const struct option *longopts,
                    struct cs_config **cfgp) CS_MUSTCHECK;

/* The options taken from the environment and the file, as an argv whose
 * element 0 is the command name (owned by cfg; they stay valid, and so do
 * the optarg pointers into them, until cs_config_destroy). */
int cs_config_argc(const struct cs_config *cfg);
char **cs_config_argv(const struct cs_config *cfg);

/* Where element i of that argv came from: "FILE:LINE" or "CALLSTREAM_X". */
const char *cs_config_origin(const struct cs_config *cfg, int i);

/* Whether --print-config was given. */
int cs_config_print_wanted(const struct cs_config *cfg);

/* Prints the effective configuration: a "key = value  # origin" line per
 * value (a value may itself hold " # "), secrets masked (cs_config_mask),
 * then the unset keys and the ignored environment variables as comments. */
void cs_config_print(const struct cs_config *cfg, FILE *out);

/* Copies value to out with secrets replaced by "****": the whole value if
 * key names a password or secret; otherwise the password of a URI
 * (scheme://user:PASSWORD@host), and the value of any name=value pair whose
 * name contains "password" or "secret" (libpq conninfo, a -X property, a
 * URI parameter, sasl.jaas.config). out is always terminated. */
void cs_config_mask(const char *key, const char *value, char *out,
                    size_t out_size);

void cs_config_destroy(struct cs_config *cfg);

#endif
