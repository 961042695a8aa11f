/* Drives the actuator, the journal and blkiotune from a shell, for
 * tests/integration/test_actuator_real.sh on real cgroups and a real libvirt.
 *
 *   act_tool [-s STATE] [-c CPU_ROOT] [-b BLKIO_ROOT] [-2] [-u URI] COMMAND ARGS
 *     cpu UUID NAME DIR CORES [hold]          set a CPU cap (0: none)
 *     io UUID NAME DIR MAJ:MIN RBPS WBPS RIOPS WIOPS [hold]
 *                                             limits; a value "keep" leaves that one alone
 *     get-cpu DIR                             prints the cap in cores
 *     restore [UUID]                          restore journaled cgroup values (all VMs or one)
 *     tune UUID NAME DISK PARAM VALUE [hold]   libvirt block I/O tune
 *     tune-restore [UUID]            restore journaled blkiotune values
 *
 * With "hold" the tool prints "holding" and waits: SIGTERM/SIGINT make it restore
 * everything and exit 0 (what vmguardd does at stop); SIGKILL leaves the journal for a
 * later "restore". Exit: 0 ok, 1 failure (the error and its class on stderr), 2 usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "controller/act/actuator.h"
#include "controller/act/blkiotune.h"
#include "controller/act/journal.h"

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) {
        got_signal = sig;
}

static int usage(void) {
        fprintf(stderr, "usage: act_tool [-s STATE] [-c CPU_ROOT] [-b BLKIO_ROOT] [-2] [-u URI] "
                        "cpu|io|get-cpu|restore|tune|tune-restore ARGS\n");
        return 2;
}

static int report(const char *what, int r) {
        if (r < 0) {
                fprintf(stderr, "%s: %s (%s)\n", what, strerror(-r),
                        vmg_act_class_name(vmg_act_classify(r)));
                return 1;
        }
        printf("%s: %d\n", what, r);
        fflush(stdout);
        return 0;
}

static uint64_t limit_arg(const char *s) {
        return strcmp(s, "keep") == 0 ? VMG_IO_KEEP : strtoull(s, NULL, 10);
}

static void wait_for_signal(void) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        printf("holding\n");
        fflush(stdout);
        while (!got_signal)
                pause();
}

static int run_tune(struct vmg_journal *j, const char *uri, int argc, char **argv) {
        struct vmg_blkiotune_config cfg = {.journal = j, .uri = uri};
        struct vmg_blkiotune *bt = NULL;
        int r = vmg_blkiotune_new(&cfg, &bt);
        if (r < 0)
                return report("blkiotune", r);
        int rc;
        if (strcmp(argv[0], "tune-restore") == 0) {
                rc = report("tune-restore", vmg_blkiotune_restore_sync(bt, argc > 1 ? argv[1] : NULL));
        } else if (argc >= 6) {
                int64_t id = vmg_blkiotune_set(bt, argv[1], argv[2], argv[3], argv[4],
                                               strtoull(argv[5], NULL, 10));
                struct vmg_blkiotune_result res = {.r = (int) id};
                while (id > 0 && vmg_blkiotune_pending(bt) > 0) {
                        if (vmg_blkiotune_dispatch(bt, &res, 1) == 1)
                                break;
                        usleep(20000);
                }
                rc = report("tune", res.r);
                if (rc == 0 && argc > 6 && strcmp(argv[6], "hold") == 0) {
                        wait_for_signal();
                        rc = report("tune-restore", vmg_blkiotune_restore_sync(bt, NULL));
                }
        } else {
                rc = usage();
        }
        vmg_blkiotune_free(bt);
        return rc;
}

int main(int argc, char **argv) {
        const char *state = NULL, *cpu_root = "/sys/fs/cgroup/cpu", *blkio_root = "/sys/fs/cgroup/blkio";
        const char *uri = NULL;
        int version = 1, opt;
        while ((opt = getopt(argc, argv, "+s:c:b:u:2")) > 0) {
                switch (opt) {
                case 's': state = optarg; break;
                case 'c': cpu_root = optarg; break;
                case 'b': blkio_root = optarg; break;
                case 'u': uri = optarg; break;
                case '2': version = 2; break;
                default: return usage();
                }
        }
        argc -= optind;
        argv += optind;
        if (argc < 1)
                return usage();
        log_set_max_level(getenv("ACT_TOOL_DEBUG") ? LOG_DEBUG : LOG_INFO);

        struct vmg_journal *j = NULL;
        int r = vmg_journal_open(state, &j);
        if (r < 0)
                return report("journal", r);
        if (strncmp(argv[0], "tune", 4) == 0) {
                int rc = run_tune(j, uri, argc, argv);
                vmg_journal_free(j);
                return rc;
        }
        struct vmg_actuator_config cfg = {.cgroup_version = version, .cpu_root = cpu_root,
                                          .blkio_root = blkio_root, .journal = j};
        struct vmg_actuator *a = NULL;
        r = vmg_actuator_new(&cfg, &a);
        if (r < 0) {
                vmg_journal_free(j);
                return report("actuator", r);
        }

        int rc = 2;
        bool hold = false;
        if (strcmp(argv[0], "cpu") == 0 && argc >= 5) {
                struct vmg_act_vm vm = {argv[1], argv[2], argv[3], argv[3]};
                rc = report("cpu", vmg_act_set_cpu(a, &vm, strtod(argv[4], NULL)));
                hold = argc > 5 && strcmp(argv[5], "hold") == 0;
        } else if (strcmp(argv[0], "io") == 0 && argc >= 9) {
                struct vmg_act_vm vm = {argv[1], argv[2], argv[3], argv[3]};
                unsigned maj, min;
                if (sscanf(argv[4], "%u:%u", &maj, &min) == 2) {
                        struct vmg_io_limit lim = {limit_arg(argv[5]), limit_arg(argv[6]),
                                                   limit_arg(argv[7]), limit_arg(argv[8])};
                        rc = report("io", vmg_act_set_io(a, &vm, maj, min, &lim));
                        hold = argc > 9 && strcmp(argv[9], "hold") == 0;
                }
        } else if (strcmp(argv[0], "get-cpu") == 0 && argc >= 2) {
                struct vmg_act_vm vm = {"-", "-", argv[1], argv[1]};
                double cores;
                r = vmg_act_get_cpu(a, &vm, &cores);
                rc = r < 0 ? report("get-cpu", r) : (printf("%.3f\n", cores), 0);
        } else if (strcmp(argv[0], "restore") == 0) {
                rc = report("restore", argc > 1 ? vmg_act_release(a, argv[1]) : vmg_act_restore_all(a));
        }
        if (rc == 2)
                usage();
        if (rc == 0 && hold) {
                wait_for_signal();
                rc = report("restore", vmg_act_restore_all(a));
        }
        vmg_actuator_free(a);
        vmg_journal_free(j);
        return rc;
}
