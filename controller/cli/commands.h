/* Subcommands of the `vmguard` CLI. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns a process exit status. */
#pragma once

int cmd_top(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_explain(int argc, char **argv);
