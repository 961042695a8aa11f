/* vmguard: the admin's command line. Subcommands look (top), check policies (policy) and
 * ask the running daemon (status, explain). */
#include <stdio.h>
#include <string.h>

#include "controller/cli/commands.h"

#ifndef VMG_VERSION
#define VMG_VERSION "0.1"
#endif

static void usage(FILE *out) {
        fprintf(out,
                "Usage: vmguard COMMAND [OPTIONS]\n"
                "\n"
                "Commands:\n"
                "  top [--once] [--json] [--interval SEC] [--connect URI]\n"
                "                     per-VM CPU, disk, network and host services, live\n"
                "  status [--json] [--socket PATH]\n"
                "                     guests, limits in force, contention and services\n"
                "  explain VM [--json] [--socket PATH]\n"
                "                     why a guest is (or is not) throttled, and when it is released\n"
                "  policy check [--host FILE] [--tenants DIR] [FILES...]\n"
                "                     validate policy files and print the effective policy\n"
                "  version            print the version\n");
}

int main(int argc, char **argv) {
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        const char *cmd = argv[1];
        if (strcmp(cmd, "top") == 0)
                return cmd_top(argc - 1, argv + 1);
        if (strcmp(cmd, "status") == 0)
                return cmd_status(argc - 1, argv + 1);
        if (strcmp(cmd, "explain") == 0)
                return cmd_explain(argc - 1, argv + 1);
        if (strcmp(cmd, "policy") == 0)
                return cmd_policy(argc - 1, argv + 1);
        if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
                printf("vmguard %s\n", VMG_VERSION);
                return 0;
        }
        if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
                usage(stdout);
                return 0;
        }
        fprintf(stderr, "vmguard: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
