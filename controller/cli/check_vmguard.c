/* check_vmguard: a Nagios/Icinga plugin (monitoring-plugins development guidelines) asking
 * vmguardd whether it is alive, whether the protected services are healthy and how many
 * guests it throttles. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one status line with
 * performance data, detail lines with -v. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/cli/ctlclient.h"
#include "common/paths.h"

#ifndef VMG_VERSION
#define VMG_VERSION "0.1"
#endif

static unsigned timeout_s = 10;

static void usage(FILE *out) {
        fprintf(out,
                "Usage: check_vmguard [-m daemon|services|throttled] [-w RANGE] [-c RANGE] [-t SEC]\n"
                "                     [-S PATH | -f FILE] [--tenant T] [-v]... [-h] [-V]\n"
                "\n"
                "Checks vmguardd, the noisy-neighbour guard of a KVM host.\n"
                "  -m, --mode MODE      daemon: alive and ticking; -w/-c on the last tick's age (s),\n"
                "                         default 3 and 10 ticks\n"
                "                       services: protected host services up and healthy (CRITICAL\n"
                "                         when one is down or unhealthy); -w/-c on run delay (ms)\n"
                "                       throttled: guests throttled now; -w/-c on their count\n"
                "  -w, --warning RANGE  warning threshold ([@]start:end, e.g. 10, 10:, ~:10, @10:20)\n"
                "  -c, --critical RANGE critical threshold\n"
                "  -t, --timeout SEC    give up after SEC seconds with UNKNOWN (default 10)\n"
                "  -S, --socket PATH    control socket (default " VMG_CONTROL_SOCKET ")\n"
                "  -f, --status-file F  judge the status file (e.g. /run/vmguard/status.json) instead\n"
                "                       of asking the root-only socket\n"
                "      --tenant T       throttled: count only tenant T's guests\n"
                "  -v, --verbose        a line per service or guest (repeatable)\n"
                "  -h, --help           this help\n"
                "  -V, --version        print the version\n"
                "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n");
}

static void on_alarm(int sig) {
        (void) sig;
        /* Only async-signal-safe calls here. */
        static const char msg[] = "VMGUARD UNKNOWN - plugin timed out\n";
        (void) !write(STDOUT_FILENO, msg, sizeof msg - 1);
        _exit(VMG_PLUGIN_UNKNOWN);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "mode", required_argument, NULL, 'm' },     { "warning", required_argument, NULL, 'w' },
                { "critical", required_argument, NULL, 'c' }, { "timeout", required_argument, NULL, 't' },
                { "socket", required_argument, NULL, 'S' },   { "status-file", required_argument, NULL, 'f' },
                { "tenant", required_argument, NULL, 'T' },   { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },           { "version", no_argument, NULL, 'V' },
                {},
        };
        struct vmg_check_opts o = { .mode = VMG_CHECK_DAEMON };
        const char *sock = VMG_CONTROL_SOCKET, *file = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "m:w:c:t:S:f:vhV", opts, NULL)) != -1) {
                switch (c) {
                case 'm':
                        if (vmg_check_mode_parse(optarg, &o.mode) < 0) {
                                printf("VMGUARD UNKNOWN - unknown mode '%s' (daemon, services, throttled)\n", optarg);
                                return VMG_PLUGIN_UNKNOWN;
                        }
                        break;
                case 'w':
                case 'c':
                        if (vmg_range_parse(optarg, c == 'w' ? &o.warn : &o.crit) < 0) {
                                printf("VMGUARD UNKNOWN - bad %s range '%s' (use [@]start:end, e.g. 10, 10:, ~:10, @10:20)\n",
                                       c == 'w' ? "warning" : "critical", optarg);
                                return VMG_PLUGIN_UNKNOWN;
                        }
                        break;
                case 't': {
                        char *end;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (*end || !*optarg || v == 0 || v > 3600) {
                                printf("VMGUARD UNKNOWN - bad timeout '%s' (1..3600 seconds)\n", optarg);
                                return VMG_PLUGIN_UNKNOWN;
                        }
                        timeout_s = (unsigned) v;
                        break;
                }
                case 'S': sock = optarg; break;
                case 'f': file = optarg; break;
                case 'T': o.tenant = optarg; break;
                case 'v': o.verbose++; break;
                case 'h': usage(stdout); return VMG_PLUGIN_OK;
                case 'V': printf("check_vmguard %s\n", VMG_VERSION); return VMG_PLUGIN_OK;
                default:
                        /* The guidelines: a usage error is UNKNOWN, not a shell-style 2. */
                        usage(stdout);
                        return VMG_PLUGIN_UNKNOWN;
                }
        }
        if (optind < argc) {
                printf("VMGUARD UNKNOWN - unexpected argument '%s'\n", argv[optind]);
                return VMG_PLUGIN_UNKNOWN;
        }
        if (o.tenant && o.mode != VMG_CHECK_THROTTLED) {
                printf("VMGUARD UNKNOWN - --tenant applies to --mode throttled only\n");
                return VMG_PLUGIN_UNKNOWN;
        }
        /* The socket exchange has its own deadline; the alarm also covers a hung stat() on
         * a dead NFS state dir or anything else we did not foresee. */
        signal(SIGALRM, on_alarm);
        alarm(timeout_s);
        if (o.verbose >= 2)
                fprintf(stderr, "check_vmguard: asking %s (timeout %u s)\n", file ? file : sock, timeout_s);

        static char out[32768];
        int st = vmg_check_run(&o, sock, file, timeout_s * 1000, out, sizeof out);
        alarm(0);
        fputs(out, stdout);
        return st;
}
