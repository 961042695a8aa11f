/* churn: keeps N libvirt domains running and replaces some of them continuously, so a
 * vmguardd connected to the same libvirt sees real lifecycle events (issue 9).
 *
 *   churn --prefix P --run-dir DIR [--uri URI] [--n N] [--rate R] [--duration SEC]
 *         [--disk FILE] [--tenant-every K] [--seed S]
 *   churn --prefix P --run-dir DIR --cleanup      removes what a killed run left behind
 *
 * Meant for libvirt's test driver (default URI test+unix:///default, domain type 'test':
 * no QEMU). For each domain it also makes what libvirt makes for a QEMU guest, so the
 * daemon really samples it (tests/tools/synguest.h): a cgroup machine/qemu-ID-NAME.libvirt-qemu
 * with a sleeping process whose thread is named "CPU 0/TCG", and DIR/NAME.pid. The cgroup
 * and the pid file exist before the domain is created, as with libvirt, so the daemon finds
 * them whenever it lists. The test driver numbers domains sequentially, so the id is
 * predicted (last id + 1) and the directory renamed when someone else's domain took it.
 *
 * Phases, each announced by one line on stdout: fill to N ("ready ..."; with --wait-go it
 * then waits for SIGUSR1, so a test can measure the daemon with exactly N), then for SEC
 * seconds R replacements per second (destroy a random domain, create a new one in its
 * place; a "progress ..." line every 10 s), then "settled ..." and hold until SIGTERM,
 * SIGINT or SIGUSR1, then destroy everything, remove every cgroup and pid file, and print
 * "done ...". The processes are named --comm (default qemu-churn; 15 characters at most
 * stick), so a test can find its own. Exit 0 when every step worked and nothing is left behind. Names: P-tNNNN-G
 * (every K-th slot, for a tenant policy matching "P-t*") or P-oNNNN-G. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "common/macros.h"
#include "tests/tools/synguest.h"

#define PROGRESS_EVERY_NS (10 * NSEC_PER_SEC)

static volatile sig_atomic_t stop_requested, go;

static void on_signal(int sig) {
        (void) sig;
        stop_requested = 1;
}

static void on_go(int sig) {
        (void) sig;
        go = 1;
}

struct slot {
        virDomainPtr dom; /* NULL: empty */
        unsigned gen;
        char name[96];
        struct synguest g;
};

struct churn {
        virConnectPtr conn;
        struct synguest_host host;
        struct slot *slots;
        unsigned n;
        const char *prefix, *run_dir, *disk, *comm;
        unsigned tenant_every;
        int next_id;
        unsigned long long created, destroyed, id_mismatches, errors;
};

static void silent_error(void *opaque, virErrorPtr e) {
        (void) opaque;
        (void) e;
}

static const char *lv_error(void) {
        const char *m = virGetLastErrorMessage();
        return m ? m : "unknown libvirt error";
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

static void sleep_until(uint64_t t) {
        struct timespec ts = { .tv_sec = (time_t) (t / NSEC_PER_SEC), .tv_nsec = (long) (t % NSEC_PER_SEC) };
        while (!stop_requested && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

/* xorshift64: reproducible slot choice from --seed. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void pidfile_path(const struct churn *c, const char *name, char *buf, size_t len) {
        snprintf(buf, len, "%s/%s.pid", c->run_dir, name);
}

/* Written to a temporary name and renamed: the daemon never reads half a pid. */
static int pidfile_write(const struct churn *c, const char *name, pid_t pid) {
        char path[512], tmp[520];
        pidfile_path(c, name, path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "we");
        if (!f)
                return log_error_errno(errno, "cannot create %s: %m", tmp);
        fprintf(f, "%d", (int) pid);
        if (fclose(f) != 0 || rename(tmp, path) < 0) {
                int r = log_error_errno(errno, "cannot write %s: %m", path);
                unlink(tmp);
                return r;
        }
        return 0;
}

static void guest_dir(const char *name, int id, char *buf, size_t len) {
        snprintf(buf, len, "machine/qemu-%d-%s.libvirt-qemu", id, name);
}

static int slot_create(struct churn *c, unsigned i) {
        struct slot *s = &c->slots[i];
        char dir[SYNGUEST_DIR_MAX], xml[1024];
        int r;
        s->gen++;
        snprintf(s->name, sizeof s->name, "%s-%c%04u-%u", c->prefix,
                 c->tenant_every && i % c->tenant_every == 0 ? 't' : 'o', i, s->gen);
        int predicted = c->next_id;
        guest_dir(s->name, predicted, dir, sizeof dir);
        r = synguest_spawn(&c->host, dir, c->comm, &s->g);
        if (r < 0)
                goto fail;
        r = pidfile_write(c, s->name, s->g.pid);
        if (r < 0)
                goto fail_guest;
        char disk[600] = "";
        if (c->disk)
                snprintf(disk, sizeof disk,
                         "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                         "<source file='%s'/><target dev='vda' bus='virtio'/></disk>",
                         c->disk);
        snprintf(xml, sizeof xml,
                 "<domain type='test'><name>%s</name><memory unit='MiB'>128</memory>"
                 "<vcpu>1</vcpu><os><type>hvm</type></os><devices>%s</devices></domain>",
                 s->name, disk);
        s->dom = virDomainCreateXML(c->conn, xml, 0);
        if (!s->dom) {
                r = log_error_errno(EIO, "cannot create domain %s: %s", s->name, lv_error());
                goto fail_pid;
        }
        int id = (int) virDomainGetID(s->dom);
        c->next_id = id + 1;
        if (id != predicted) {
                /* Someone else's domain took the id: keep libvirt's naming. */
                c->id_mismatches++;
                guest_dir(s->name, id, dir, sizeof dir);
                (void) synguest_rename(&c->host, &s->g, dir);
        }
        c->created++;
        return 0;
fail_pid: {
        char path[512];
        pidfile_path(c, s->name, path, sizeof path);
        unlink(path);
}
fail_guest:
        (void) synguest_kill(&c->host, &s->g);
fail:
        c->errors++;
        return r;
}

/* libvirt first, then its "QEMU" and cgroups, in the order libvirt itself tears down.
 * At teardown every process is SIGKILLed first, so their exits overlap instead of each
 * rmdir waiting for one. */
static int slot_destroy(struct churn *c, unsigned i) {
        struct slot *s = &c->slots[i];
        int r = 0;
        if (!s->dom)
                return 0;
        if (virDomainDestroy(s->dom) < 0) {
                r = log_error_errno(EIO, "cannot destroy domain %s: %s", s->name, lv_error());
                c->errors++;
        } else
                c->destroyed++;
        virDomainFree(s->dom);
        s->dom = NULL;
        char path[512];
        pidfile_path(c, s->name, path, sizeof path);
        if (unlink(path) < 0 && errno != ENOENT)
                log_warning_errno(errno, "cannot remove %s: %m", path);
        if (synguest_kill(&c->host, &s->g) < 0) {
                c->errors++;
                r = r ? r : -EBUSY;
        }
        return r;
}

static int max_domain_id(virConnectPtr conn) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE), max = 0;
        for (int i = 0; i < n; i++) {
                int id = (int) virDomainGetID(doms[i]);
                if (id > max)
                        max = id;
                virDomainFree(doms[i]);
        }
        free(doms);
        return max;
}

/* Domains of ours a killed run left in libvirt, then their pid files and cgroups. */
static int cleanup(struct churn *c) {
        char match[128];
        int ret = 0;
        size_t pl = strlen(c->prefix);
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(c->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        for (int i = 0; i < n; i++) {
                const char *name = virDomainGetName(doms[i]);
                if (name && strncmp(name, c->prefix, pl) == 0 && name[pl] == '-') {
                        char path[512];
                        pidfile_path(c, name, path, sizeof path);
                        unlink(path);
                        if (virDomainDestroy(doms[i]) < 0)
                                ret = -EIO;
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        snprintf(match, sizeof match, "-%s-", c->prefix);
        if (synguest_cleanup_leftovers(&c->host, match) < 0)
                ret = -EBUSY;
        return ret;
}

static unsigned threads_of_self(void) {
        FILE *f = fopen("/proc/self/status", "re");
        char line[128];
        unsigned n = 0;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "Threads: %u", &n) == 1)
                        break;
        if (f)
                fclose(f);
        return n;
}

static void usage(FILE *out) {
        fputs("usage: churn --prefix P --run-dir DIR [--uri URI] [--n N] [--rate R] [--duration SEC]\n"
              "             [--disk FILE] [--tenant-every K] [--seed S] [--wait-go] [--comm NAME] [--cleanup]\n",
              out);
}

int main(int argc, char **argv) {
        const char *uri = "test+unix:///default";
        long n = 1000, tenant_every = 10, seed = 0;
        double rate = 5, duration = 60;
        bool cleanup_only = false, wait_go = false;
        struct churn c = { 0 };
        static const struct option opts[] = {
                { "uri", required_argument, NULL, 'u' },      { "prefix", required_argument, NULL, 'p' },
                { "n", required_argument, NULL, 'n' },        { "rate", required_argument, NULL, 'r' },
                { "duration", required_argument, NULL, 'd' }, { "run-dir", required_argument, NULL, 'R' },
                { "disk", required_argument, NULL, 'D' },     { "tenant-every", required_argument, NULL, 'k' },
                { "seed", required_argument, NULL, 's' },     { "cleanup", no_argument, NULL, 'c' },
                { "wait-go", no_argument, NULL, 'g' },        { "comm", required_argument, NULL, 'C' },
                { "help", no_argument, NULL, 'h' },           {},
        };
        int o;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (o) {
                case 'u': uri = optarg; break;
                case 'p': c.prefix = optarg; break;
                case 'n': n = strtol(optarg, NULL, 10); break;
                case 'r': rate = strtod(optarg, NULL); break;
                case 'd': duration = strtod(optarg, NULL); break;
                case 'R': c.run_dir = optarg; break;
                case 'D': c.disk = optarg; break;
                case 'k': tenant_every = strtol(optarg, NULL, 10); break;
                case 's': seed = strtol(optarg, NULL, 10); break;
                case 'c': cleanup_only = true; break;
                case 'g': wait_go = true; break;
                case 'C': c.comm = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (!c.prefix || !*c.prefix || strlen(c.prefix) > 40 || !c.run_dir || n < 1 || n > 5000 || rate <= 0 ||
            rate > 1000 || duration < 0 || tenant_every < 0) {
                usage(stderr);
                return 2;
        }
        if (!c.comm)
                c.comm = "qemu-churn";
        c.n = (unsigned) n;
        c.tenant_every = (unsigned) tenant_every;
        rng_state ^= (uint64_t) (seed ? seed : getpid()) * 0x9E3779B97F4A7C15ULL;
        setvbuf(stdout, NULL, _IOLBF, 0);
        log_set_max_level(LOG_NOTICE);

        struct sigaction sa = { .sa_handler = on_signal };
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        /* SIGUSR1: the next phase (start churning after --wait-go; tear down after it). */
        struct sigaction sg = { .sa_handler = on_go };
        sigaction(SIGUSR1, &sg, NULL);

        virSetErrorFunc(NULL, silent_error);
        c.conn = virConnectOpen(uri);
        if (!c.conn) {
                fprintf(stderr, "churn: cannot connect to %s: %s\n", uri, lv_error());
                return 1;
        }
        /* The children call pthread_create() after fork(): safe only from a process with one
         * thread (a lock held by another thread at fork time would never be released). */
        if (threads_of_self() != 1)
                fprintf(stderr, "churn: warning: %u threads after connecting; forks may deadlock\n",
                        threads_of_self());
        int ret = 1;
        if (synguest_host_init(&c.host, NULL) < 0)
                goto out;
        if (cleanup_only) {
                ret = cleanup(&c) < 0 ? 1 : 0;
                goto out;
        }
        c.slots = calloc(c.n, sizeof *c.slots);
        if (!c.slots)
                goto out;
        c.next_id = max_domain_id(c.conn) + 1;

        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < c.n && !stop_requested; i++)
                (void) slot_create(&c, i);
        if (stop_requested)
                goto teardown;
        printf("ready n=%u created=%llu errors=%llu fill_s=%.1f\n", c.n, c.created, c.errors,
               (double) (now_ns() - t0) / 1e9);
        while (wait_go && !go && !stop_requested)
                usleep(100000); /* not pause(): a signal between the test and the call would be lost */
        go = 0;

        uint64_t start = now_ns(), end = start + (uint64_t) (duration * 1e9), step = (uint64_t) (1e9 / rate);
        uint64_t next = start, next_progress = start + PROGRESS_EVERY_NS;
        unsigned long long replaced = 0;
        while (!stop_requested && next < end) {
                sleep_until(next);
                if (stop_requested)
                        break;
                unsigned i = (unsigned) (rnd() % c.n);
                (void) slot_destroy(&c, i);
                (void) slot_create(&c, i);
                replaced++;
                next += step;
                uint64_t now = now_ns();
                /* Behind by more than a second (a loaded host): catch up no faster than
                 * the rate, rather than in a burst. */
                if (now > next + NSEC_PER_SEC)
                        next = now;
                if (now >= next_progress) {
                        printf("progress t=%.0f replaced=%llu created=%llu destroyed=%llu id_mismatches=%llu "
                               "errors=%llu\n",
                               (double) (now - start) / 1e9, replaced, c.created, c.destroyed, c.id_mismatches,
                               c.errors);
                        next_progress += PROGRESS_EVERY_NS;
                }
        }
        if (stop_requested)
                goto teardown;
        printf("settled churn_s=%.1f replaced=%llu rate_achieved=%.2f created=%llu destroyed=%llu "
               "id_mismatches=%llu errors=%llu\n",
               (double) (now_ns() - start) / 1e9, replaced, (double) replaced / ((double) (now_ns() - start) / 1e9),
               c.created, c.destroyed, c.id_mismatches, c.errors);
        while (!stop_requested && !go)
                usleep(100000);

teardown:;
        bool interrupted_early = !c.slots || c.created == 0;
        uint64_t td = now_ns();
        for (unsigned i = 0; c.slots && i < c.n; i++)
                if (c.slots[i].g.pid > 0)
                        (void) kill(c.slots[i].g.pid, SIGKILL);
        for (unsigned i = 0; c.slots && i < c.n; i++)
                (void) slot_destroy(&c, i);
        char match[128];
        snprintf(match, sizeof match, "-%s-", c.prefix);
        int left_dirs = synguest_count_dirs(&c.host, match);
        printf("done created=%llu destroyed=%llu id_mismatches=%llu errors=%llu leftover_dirs=%d teardown_s=%.1f\n",
               c.created, c.destroyed, c.id_mismatches, c.errors, left_dirs, (double) (now_ns() - td) / 1e9);
        ret = c.errors == 0 && left_dirs == 0 && c.created == c.destroyed && !interrupted_early ? 0 : 1;
out:
        free(c.slots);
        synguest_host_done(&c.host);
        virConnectClose(c.conn);
        return ret;
}
