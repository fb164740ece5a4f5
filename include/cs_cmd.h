/* cs_cmd.h: the subcommands of the callstream binary.
 *
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns an exit status: CS_EXIT_OK, CS_EXIT_FAILURE, or
 * CS_EXIT_USAGE for a wrong flag or value. */
#ifndef CS_CMD_H
#define CS_CMD_H

int cs_cmd_broker(int argc, char **argv);
int cs_cmd_produce(int argc, char **argv);
int cs_cmd_generate(int argc, char **argv);
int cs_cmd_migrate(int argc, char **argv);
int cs_cmd_ingest(int argc, char **argv);
int cs_cmd_rebuild(int argc, char **argv);
int cs_cmd_offsets(int argc, char **argv);
int cs_cmd_report(int argc, char **argv);
int cs_cmd_tail(int argc, char **argv);

#endif
