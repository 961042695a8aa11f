/* What one vmguard sampling tick costs per guest: runs vmg_monitor_sample() (the same
 * code vmguardd runs each tick) over either the real libvirt domains of this host or N
 * synthetic guests, and prints the sampling thread's CPU time per guest per sample and
 * the process's peak RSS.
 *
 *   bench_sample --real PREFIX [options]      running libvirt domains named PREFIX*
 *   bench_sample --synthetic N [options]      N fake guests in real cgroups (root only)
 *   bench_sample --cleanup                    removes synthetic leftovers of a killed run
 *
 * Options: --ticks K (10), --interval-ms MS (1000; 0 = back to back, for profilers),
 * --tap-prefix P (synthetic guest i gets tap P%04u, which the caller created in some
 * namespace under /run/netns), --label L, --tsv FILE (appends one row, header when new),
 * --uri URI, --watch-pid PID (also report PID's CPU over the measured ticks only, e.g.
 * libvirtd's: the one-off connect and domain listing stay outside that window).
 *
 * A synthetic guest is laid out as libvirt 9 without machined lays out a domain on the
 * lab host (docs/LAB.md): machine/qemu-ID-NAME.libvirt-qemu/ with vcpu0/ and emulator/ in cpu,
 * cpuset and the unified tree (threaded children there), the bare domain directory in
 * memory, freezer and blkio. Its "QEMU" is a forked child with a thread named
 * "CPU 0/TCG", so the monitor finds one vCPU thread as with a real guest; without one it
 * would rescan /proc/PID/task on every tick and the figure would be wrong. Everything
 * created is removed on the way out, also after SIGINT/SIGTERM; a SIGKILLed run leaves
 * directories that --cleanup removes (the children die with us: PR_SET_PDEATHSIG). The
 * guests are made by tests/tools/synguest.c, which the churn test shares. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "probes/monitor.h"
#include "probes/domxml.h"
#include "probes/libvirt.h"
#include "tests/tools/synguest.h"

/* Far above the ids libvirt hands out on a lab host, so a synthetic directory name can
 * never be a real domain's. */
#define SYN_ID_BASE 100000
#define SYN_NAME_FMT "vmgb-%04u"
#define SYN_MATCH "-vmgb-"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
        (void) sig;
        stop_requested = 1;
}

/* The synthetic guests themselves: tests/tools/synguest.h (shared with the churn test). */
struct syn {
        struct synguest_host host;
        bool host_ready;
        struct synguest *g;
        unsigned n;
};

static void syn_destroy(struct syn *s) {
        if (s->g) {
                /* All killed first: their exits overlap instead of each rmdir waiting for one. */
                for (unsigned i = 0; i < s->n; i++)
                        if (s->g[i].pid > 0)
                                kill(s->g[i].pid, SIGKILL);
                for (unsigned i = 0; i < s->n; i++)
                        (void) synguest_kill(&s->host, &s->g[i]);
                free(s->g);
                s->g = NULL;
        }
        if (s->host_ready)
                synguest_host_done(&s->host);
        s->host_ready = false;
}

static int syn_create(struct syn *s, unsigned n) {
        int r;
        s->g = calloc(n ? n : 1, sizeof(*s->g));
        if (!s->g)
                return -ENOMEM;
        s->n = n;
        r = synguest_host_init(&s->host, NULL);
        if (r < 0)
                return r;
        s->host_ready = true;
        for (unsigned i = 0; i < n && !stop_requested; i++) {
                char dir[SYNGUEST_DIR_MAX];
                synguest_pathf(dir, sizeof(dir), "machine/qemu-%u-" SYN_NAME_FMT ".libvirt-qemu", SYN_ID_BASE + i, i);
                r = synguest_spawn(&s->host, dir, "qemu-bench", &s->g[i]);
                if (r < 0)
                        return r;
        }
        return stop_requested ? -EINTR : 0;
}

/* Removes synthetic guest directories a killed run left behind: their tasks were our
 * children and died with us (PDEATHSIG), so the directories are empty or about to be. */
static int syn_cleanup_leftovers(void) {
        struct synguest_host h;
        int r = synguest_host_init(&h, NULL);
        if (r >= 0)
                r = synguest_cleanup_leftovers(&h, SYN_MATCH);
        if (r > 0)
                fprintf(stderr, "bench_sample: removed %d leftover directories\n", r);
        synguest_host_done(&h);
        return r < 0 ? r : 0;
}

static int syn_domxml(unsigned i, const char *tap_prefix, struct vmg_domxml **ret) {
        char tap_xml[256] = "";
        if (tap_prefix)
                synguest_pathf(tap_xml, sizeof(tap_xml),
                         "<interface type='ethernet'><mac address='52:54:00:be:%02x:%02x'/>"
                         "<target dev='%s%04u' managed='no'/><model type='virtio'/></interface>",
                         (i >> 8) & 0xff, i & 0xff, tap_prefix, i);
        _cleanup_free_ char *xml = NULL;
        int len = asprintf(&xml,
                           "<domain type='qemu' id='%u'>\n"
                           "  <name>" SYN_NAME_FMT "</name>\n"
                           "  <uuid>5eed0000-0000-4000-8000-%012u</uuid>\n"
                           "  <metadata><vmguard:tenant xmlns:vmguard='" VMG_TENANT_NS "'>bench-%02u</vmguard:tenant></metadata>\n"
                           "  <memory unit='KiB'>131072</memory>\n"
                           "  <vcpu placement='static'>1</vcpu>\n"
                           "  <resource><partition>/machine</partition></resource>\n"
                           "  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>\n"
                           "  <devices>\n"
                           "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
                           "    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='none' io='native'/>"
                           "<source file='/var/lib/vmguard-lab/disks/vmgb-%04u.raw'/><target dev='vda' bus='virtio'/></disk>\n"
                           "    %s\n"
                           "  </devices>\n"
                           "</domain>\n",
                           SYN_ID_BASE + i, i, i, i / 50, i, tap_xml);
        if (len < 0)
                return -ENOMEM;
        return vmg_domxml_parse(xml, (size_t) len, ret);
}

static uint64_t clock_ns(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

static uint64_t tv_us(struct timeval tv) { return (uint64_t) tv.tv_sec * USEC_PER_SEC + (uint64_t) tv.tv_usec; }

/* VmHWM or VmRSS of this process in KiB, 0 when unknown. */
static unsigned long status_kib(const char *key) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        size_t kl = strlen(key);
        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, key, kl) == 0 && line[kl] == ':')
                        return strtoul(line + kl + 1, NULL, 10);
        return 0;
}

static unsigned count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;
        if (!d)
                return 0;
        while (readdir(d))
                n++;
        closedir(d);
        return n > 2 ? n - 3 : 0; /* ".", ".." and the DIR's own fd */
}

/* utime+stime of pid in clock ticks, 0 when unreadable. */
static uint64_t pid_cpu_ticks(pid_t pid) {
        char path[64], buf[1024];
        synguest_pathf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
                return 0;
        return ut + st;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Moves the running domains named prefix* out of libvirt's list into doms/pids. */
static int real_domains(const char *uri, const char *prefix, struct vmg_libvirt **lv,
                        struct vmg_domxml ***doms, pid_t **pids, size_t *n) {
        struct vmg_libvirt_config cfg = { .uri = uri };
        struct vmg_domain *list = NULL;
        size_t nl = 0;
        int r = vmg_libvirt_new(&cfg, lv);
        if (r < 0)
                return log_error_errno(r, "libvirt: %m");
        r = vmg_libvirt_start(*lv);
        if (r <= 0)
                return log_error_errno(r < 0 ? r : -ENOTCONN, "cannot connect to %s: %m",
                                       uri ? uri : "qemu:///system");
        r = vmg_libvirt_list(*lv, &list, &nl);
        if (r < 0)
                return log_error_errno(r, "cannot list domains: %m");
        *doms = calloc(nl ? nl : 1, sizeof(**doms));
        *pids = calloc(nl ? nl : 1, sizeof(**pids));
        if (!*doms || !*pids) {
                vmg_domains_free(list, nl);
                return -ENOMEM;
        }
        size_t k = 0;
        for (size_t i = 0; i < nl; i++) {
                if (list[i].state != VMG_DOM_RUNNING || strncmp(list[i].def->name, prefix, strlen(prefix)) != 0)
                        continue;
                (*pids)[k] = list[i].qemu_pid;
                (*doms)[k++] = TAKE_PTR(list[i].def);
        }
        vmg_domains_free(list, nl);
        *n = k;
        return 0;
}

static void usage(void) {
        fputs("usage: bench_sample --real PREFIX | --synthetic N | --cleanup\n"
              "         [--ticks K] [--interval-ms MS] [--tap-prefix P] [--label L] [--tsv FILE] [--uri URI]\n",
              stderr);
}

int main(int argc, char **argv) {
        const char *real_prefix = NULL, *tap_prefix = NULL, *label = NULL, *tsv = NULL, *uri = NULL;
        long synthetic = -1, ticks = 10, interval_ms = 1000, watch_pid = 0;
        bool cleanup_only = false;
        static const struct option opts[] = {
                { "real", required_argument, NULL, 'r' },
                { "synthetic", required_argument, NULL, 's' },
                { "ticks", required_argument, NULL, 'k' },
                { "interval-ms", required_argument, NULL, 'i' },
                { "tap-prefix", required_argument, NULL, 't' },
                { "label", required_argument, NULL, 'l' },
                { "tsv", required_argument, NULL, 'o' },
                { "uri", required_argument, NULL, 'u' },
                { "cleanup", no_argument, NULL, 'c' },
                { "watch-pid", required_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int o;
        while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (o) {
                case 'r': real_prefix = optarg; break;
                case 's': synthetic = strtol(optarg, NULL, 10); break;
                case 'k': ticks = strtol(optarg, NULL, 10); break;
                case 'i': interval_ms = strtol(optarg, NULL, 10); break;
                case 't': tap_prefix = optarg; break;
                case 'l': label = optarg; break;
                case 'o': tsv = optarg; break;
                case 'u': uri = optarg; break;
                case 'c': cleanup_only = true; break;
                case 'w': watch_pid = strtol(optarg, NULL, 10); break;
                case 'h': usage(); return 0;
                default: usage(); return 2;
                }
        }
        if (cleanup_only)
                return syn_cleanup_leftovers() < 0 ? 1 : 0;
        if ((!real_prefix) == (synthetic < 0) || synthetic > 9999 || ticks < 1 || interval_ms < 0) {
                usage();
                return 2;
        }
        log_set_max_level(LOG_NOTICE);

        struct sigaction sa = { .sa_handler = on_signal };
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);

        struct syn syn = { 0 };
        struct vmg_libvirt *lv = NULL;
        struct vmg_monitor *m = NULL;
        struct vmg_domxml **doms = NULL;
        pid_t *pids = NULL;
        uint64_t *tick_ns = NULL;
        size_t n = 0;
        int r, ret = 1;
        unsigned long rss_base = status_kib("VmRSS");
        unsigned fds_base = count_fds();

        uint64_t t_setup = clock_ns(CLOCK_MONOTONIC);
        if (synthetic >= 0) {
                /* Children first, while this process has a single thread to fork. */
                r = syn_create(&syn, (unsigned) synthetic);
                if (r < 0)
                        goto out;
                n = (size_t) synthetic;
                doms = calloc(n ? n : 1, sizeof(*doms));
                pids = calloc(n ? n : 1, sizeof(*pids));
                if (!doms || !pids)
                        goto out;
                for (size_t i = 0; i < n; i++) {
                        r = syn_domxml((unsigned) i, tap_prefix, &doms[i]);
                        if (r < 0) {
                                log_error_errno(r, "synthetic domain XML %zu does not parse: %m", i);
                                goto out;
                        }
                        pids[i] = syn.g[i].pid;
                }
        } else {
                r = real_domains(uri, real_prefix, &lv, &doms, &pids, &n);
                if (r < 0)
                        goto out;
                if (n == 0) {
                        log_error("no running libvirt domain named %s*", real_prefix);
                        goto out;
                }
        }
        uint64_t t_made = clock_ns(CLOCK_MONOTONIC);

        struct vmg_monitor_paths paths = { 0 };
        r = vmg_monitor_new(&paths, &m);
        if (r < 0)
                goto out;
        uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        r = vmg_monitor_set_domains(m, doms, pids, n);
        for (size_t i = 0; i < n; i++)
                doms[i] = NULL; /* the monitor owns them now, also on error */
        if (r < 0) {
                log_error_errno(r, "vmg_monitor_set_domains: %m");
                goto out;
        }
        uint64_t open_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;

        /* One tick outside the measurement: rates need a previous sample, and the first
         * read of each file is the one that faults its kernel buffers in. */
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        r = vmg_monitor_sample(m, now);
        if (r < 0)
                goto out;

        tick_ns = calloc((size_t) ticks, sizeof(*tick_ns));
        if (!tick_ns)
                goto out;
        struct rusage ru0, ru1;
        getrusage(RUSAGE_THREAD, &ru0);
        uint64_t watch0 = watch_pid > 0 ? pid_cpu_ticks((pid_t) watch_pid) : 0;
        uint64_t cpu_total = 0, wall0 = clock_ns(CLOCK_MONOTONIC);
        long done = 0;
        struct timespec next;
        clock_gettime(CLOCK_MONOTONIC, &next);
        for (long t = 0; t < ticks && !stop_requested; t++) {
                if (interval_ms > 0) {
                        next.tv_nsec += (interval_ms % 1000) * 1000000L;
                        next.tv_sec += interval_ms / 1000 + next.tv_nsec / 1000000000L;
                        next.tv_nsec %= 1000000000L;
                        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR &&
                               !stop_requested)
                                ;
                        if (stop_requested)
                                break;
                }
                uint64_t a = clock_ns(CLOCK_THREAD_CPUTIME_ID);
                r = vmg_monitor_sample(m, clock_ns(CLOCK_MONOTONIC));
                uint64_t b = clock_ns(CLOCK_THREAD_CPUTIME_ID);
                if (r < 0)
                        goto out;
                tick_ns[t] = b - a;
                cpu_total += b - a;
                done++;
        }
        uint64_t wall = clock_ns(CLOCK_MONOTONIC) - wall0;
        getrusage(RUSAGE_THREAD, &ru1);
        double watch_s = watch_pid > 0 ? (double) (pid_cpu_ticks((pid_t) watch_pid) - watch0) /
                                                 (double) sysconf(_SC_CLK_TCK)
                                       : 0;
        if (stop_requested || done == 0) {
                log_error("interrupted after %ld ticks", done);
                goto out;
        }

        /* A guest counts as sampled only when everything the policy reads came back. */
        size_t ok = 0, with_taps = 0;
        for (size_t i = 0; i < n; i++) {
                struct vmg_vm *vm = vmg_monitor_vm(m, i);
                bool taps_ok = true;
                for (size_t j = 0; j < vm->cur.n_ifaces; j++)
                        taps_ok = taps_ok && vm->cur.ifaces[j].found;
                with_taps += vm->cur.n_ifaces > 0 && taps_ok;
                if (vm->error == 0 && vm->cg && vm->proc && vm->cur.cpu_valid && vm->cur.vcpu_delay_valid &&
                    vm->have_rates && taps_ok)
                        ok++;
                else if (ok + 10 > i) {
                        char src[96];
                        fprintf(stderr, "bench_sample: guest %s not fully sampled: error=%d cg=%s proc=%s %s\n",
                                vm->dom->name, vm->error, vm->cg ? "yes" : "no", vm->proc ? "yes" : "no",
                                vmg_vm_sources(vm, src, sizeof(src)));
                }
        }

        qsort(tick_ns, (size_t) done, sizeof(*tick_ns), cmp_u64);
        double per_vm_us = (double) cpu_total / 1e3 / (double) done / (double) n;
        double user_us = (double) (tv_us(ru1.ru_utime) - tv_us(ru0.ru_utime)) / (double) done / (double) n;
        double sys_us = (double) (tv_us(ru1.ru_stime) - tv_us(ru0.ru_stime)) / (double) done / (double) n;
        unsigned long hwm = status_kib("VmHWM");
        unsigned fds = count_fds() - fds_base;
        const char *mode = synthetic >= 0 ? "synthetic" : "real";
        if (!label)
                label = mode;

        printf("label=%s mode=%s n=%zu sampled_ok=%zu with_taps=%zu ticks=%ld interval_ms=%ld\n", label, mode, n, ok,
               with_taps, done, interval_ms);
        printf("  cpu per VM per sample: %.2f us (user %.2f, sys %.2f; getrusage has 4 ms granularity)\n", per_vm_us,
               user_us, sys_us);
        printf("  cpu per tick: median %.3f ms, max %.3f ms; wall per tick %.1f ms incl. sleep\n",
               (double) tick_ns[done / 2] / 1e6, (double) tick_ns[done - 1] / 1e6, (double) wall / 1e6 / (double) done);
        printf("  peak RSS (VmHWM) %lu KiB (before setup %lu KiB); fds held %u (%.1f per VM)\n", hwm, rss_base, fds,
               (double) fds / (double) n);
        if (watch_pid > 0)
                printf("  pid %ld used %.2f s CPU during the measured ticks\n", watch_pid, watch_s);
        printf("  setup: guests %.0f ms wall, monitor open %.1f ms CPU (%.1f us per VM)\n",
               (double) (t_made - t_setup) / 1e6, (double) open_cpu_ns / 1e6, (double) open_cpu_ns / 1e3 / (double) n);
        if (tsv) {
                bool fresh = access(tsv, F_OK) != 0;
                FILE *f = fopen(tsv, "ae");
                if (!f) {
                        log_error_errno(errno, "cannot open %s: %m", tsv);
                        goto out;
                }
                if (fresh)
                        fputs("label\tmode\tn\tsampled_ok\tticks\tinterval_ms\tcpu_us_per_vm_sample\tuser_us\tsys_us"
                              "\ttick_cpu_ms_median\ttick_cpu_ms_max\thwm_kib\tfds\topen_us_per_vm\twatched_cpu_s\n",
                              f);
                fprintf(f, "%s\t%s\t%zu\t%zu\t%ld\t%ld\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%lu\t%u\t%.1f\t%.2f\n", label, mode, n,
                        ok, done, interval_ms, per_vm_us, user_us, sys_us, (double) tick_ns[done / 2] / 1e6,
                        (double) tick_ns[done - 1] / 1e6, hwm, fds, (double) open_cpu_ns / 1e3 / (double) n, watch_s);
                fclose(f);
        }
        ret = ok == n ? 0 : 3;
        if (ret)
                fprintf(stderr, "bench_sample: only %zu of %zu guests fully sampled\n", ok, n);
out:
        free(tick_ns);
        vmg_monitor_free(m);
        if (doms)
                for (size_t i = 0; i < n; i++)
                        vmg_domxml_free(doms[i]);
        free(doms);
        free(pids);
        vmg_libvirt_free(lv);
        syn_destroy(&syn);
        return ret;
}
