/* Host-service probes; see services.h for the contracts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libproc2/pids.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "probes/services.h"

/* The kernel keeps TASK_COMM_LEN - 1 bytes of a process name. */
#define COMM_MAX 15
/* A unit with more sub-cgroups than this is not a DNS/DHCP daemon. */
#define UNIT_MAX_CGROUPS 256

struct pidvec {
        pid_t *v;
        size_t n, cap;
};

static int pidvec_add(struct pidvec *pv, pid_t pid) {
        if (pv->n == pv->cap) {
                size_t ncap = pv->cap ? pv->cap * 2 : 16;
                pid_t *nv = realloc(pv->v, ncap * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                pv->v = nv;
                pv->cap = ncap;
        }
        pv->v[pv->n++] = pid;
        return 0;
}

static int cmp_pid(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
        return (x > y) - (x < y);
}

static void pidvec_finish(struct pidvec *pv, pid_t **ret, size_t *n) {
        if (pv->n)
                qsort(pv->v, pv->n, sizeof(*pv->v), cmp_pid);
        *ret = pv->v;
        *n = pv->n;
}

static bool comm_matches(const char *have, const char *want) {
        return strncmp(have, want, COMM_MAX) == 0;
}

int vmg_service_pids_by_comm(struct vmg_procfs *p, const char *comm, pid_t **ret, size_t *n) {
        _cleanup_free_ pid_t *all = NULL;
        size_t n_all = 0;
        struct pidvec pv = { 0 };
        int r = vmg_procfs_list_pids(p, &all, &n_all);
        if (r < 0)
                return log_error_errno(r, "Cannot list %s: %m", vmg_procfs_root(p));
        for (size_t i = 0; i < n_all; i++) {
                char have[64];
                if (vmg_procfs_comm(p, all[i], 0, have, sizeof(have)) < 0)
                        continue; /* exited while scanning */
                if (comm_matches(have, comm) && pidvec_add(&pv, all[i]) < 0) {
                        free(pv.v);
                        return -ENOMEM;
                }
        }
        pidvec_finish(&pv, ret, n);
        return 0;
}

int vmg_service_pids_by_comm_live(const char *comm, pid_t **ret, size_t *n) {
        enum pids_item items[] = { PIDS_ID_PID, PIDS_CMD };
        enum { I_PID, I_CMD };
        struct pids_info *info = NULL;
        struct pidvec pv = { 0 };
        int r = procps_pids_new(&info, items, (int) ARRAY_SIZE(items));
        if (r < 0)
                return log_error_errno(r == -ENOMEM ? ENOMEM : EIO, "libproc2: procps_pids_new failed: %d", r);
        struct pids_fetch *f = procps_pids_reap(info, PIDS_FETCH_TASKS_ONLY);
        if (!f) {
                procps_pids_unref(&info);
                return log_error_errno(EIO, "libproc2: procps_pids_reap failed");
        }
        for (int i = 0; i < f->counts->total; i++) {
                const char *cmd = PIDS_VAL(I_CMD, str, f->stacks[i], info);
                if (!cmd || !comm_matches(cmd, comm))
                        continue;
                if (pidvec_add(&pv, PIDS_VAL(I_PID, s_int, f->stacks[i], info)) < 0) {
                        free(pv.v);
                        procps_pids_unref(&info);
                        return -ENOMEM;
                }
        }
        procps_pids_unref(&info);
        pidvec_finish(&pv, ret, n);
        return 0;
}

/* Adds the PIDs listed in cgroup.procs of dirfd (none when it has no such file). */
static int add_procs(int dirfd, struct pidvec *pv) {
        int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return 0;
        FILE *f = fdopen(fd, "re");
        if (!f) {
                close(fd);
                return -ENOMEM;
        }
        long pid;
        int r = 0;
        while (r == 0 && fscanf(f, "%ld", &pid) == 1)
                if (pid > 0 && pidvec_add(pv, (pid_t) pid) < 0)
                        r = -ENOMEM;
        fclose(f);
        return r;
}

static int visit_procs(int dirfd, const char *rel, unsigned depth, void *userdata) {
        (void) rel;
        (void) depth;
        return add_procs(dirfd, userdata);
}

/* The unit's own cgroup.procs and those of its sub-cgroups, at any depth (the walk's
 * budget bounds it, not a depth). Symlinks are not followed. */
static int collect_procs(int dirfd, struct pidvec *pv) {
        int r = add_procs(dirfd, pv);
        if (r < 0)
                return r;
        r = vmg_cgroup_walk(dirfd, UINT_MAX, UNIT_MAX_CGROUPS, visit_procs, pv, NULL);
        return r < 0 ? r : 0;
}

int vmg_service_pids_by_unit(struct vmg_cgroup_ctx *c, const char *unit, pid_t **ret, size_t *n) {
        static const enum vmg_cg_hier order[] = { VMG_CG_SYSTEMD, VMG_CG_UNIFIED };
        for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
                _cleanup_free_ char *rel = NULL;
                int r = vmg_cgroup_find_dir(c, order[i], unit, &rel);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                _cleanup_close_ int fd = vmg_open_beneath(vmg_cgroup_hier_fd(c, order[i]), rel,
                                                          O_RDONLY | O_DIRECTORY);
                if (fd < 0)
                        return log_debug_errno(fd, "Unit %s: cannot open %s/%s: %m", unit,
                                               vmg_cgroup_hier_path(c, order[i]), rel);
                struct pidvec pv = { 0 };
                r = collect_procs(fd, &pv);
                if (r < 0) {
                        free(pv.v);
                        return r;
                }
                log_debug("Unit %s: %zu processes in %s/%s", unit, pv.n,
                          vmg_cgroup_hier_path(c, order[i]), rel);
                pidvec_finish(&pv, ret, n);
                return 0;
        }
        return log_debug_errno(ENOENT, "Unit %s: no cgroup of that name", unit);
}

/* Whether pid runs exe under uid (real and effective). A " (deleted)" suffix is accepted:
 * a package upgrade replaces the binary under a running daemon, and only root could have
 * put a file at that path before. An unreadable exe (-EACCES: vmguard without
 * CAP_SYS_PTRACE) or a kernel thread does not count as the service. */
static bool owner_matches(struct vmg_procfs *p, pid_t pid, const char *exe, uid_t uid) {
        char have[PATH_MAX + 16];
        uid_t ruid, euid;
        if (vmg_procfs_exe(p, pid, have, sizeof(have)) < 0)
                return false;
        size_t n = strlen(exe);
        if (strncmp(have, exe, n) != 0 || (have[n] && strcmp(have + n, " (deleted)") != 0)) {
                log_debug("Process %d is named as a service but runs %s, not %s: not the service",
                          (int) pid, have, exe);
                return false;
        }
        if (vmg_procfs_uids(p, pid, &ruid, &euid) < 0)
                return false;
        if (ruid != uid || euid != uid) {
                log_debug("Process %d runs %s as uid %u/%u, not %u: not the service", (int) pid,
                          exe, (unsigned) ruid, (unsigned) euid, (unsigned) uid);
                return false;
        }
        return true;
}

int vmg_service_pids_owned(struct vmg_procfs *p, const char *exe, uid_t uid, pid_t *pids,
                           size_t *n) {
        size_t k = 0;
        for (size_t i = 0; i < *n; i++)
                if (owner_matches(p, pids[i], exe, uid))
                        pids[k++] = pids[i];
        *n = k;
        return 0;
}

int vmg_service_find(struct vmg_procfs *p, struct vmg_cgroup_ctx *c, const struct vmg_service *svc,
                     bool live, pid_t **ret, size_t *n) {
        int r;
        switch (svc->kind) {
        case VMG_SERVICE_PROCESS:
                if (svc->exe && !p)
                        return -EINVAL;
                r = live ? vmg_service_pids_by_comm_live(svc->match, ret, n)
                         : vmg_service_pids_by_comm(p, svc->match, ret, n);
                if (r >= 0 && svc->exe)
                        r = vmg_service_pids_owned(p, svc->exe, svc->uid, *ret, n);
                return r;
        case VMG_SERVICE_UNIT:
                if (!c)
                        return -EINVAL;
                return vmg_service_pids_by_unit(c, svc->match, ret, n);
        }
        return -EINVAL;
}

/* Adds one process's threads. Returns 0, -ENOENT (process gone), -EINVAL. */
static int read_one(struct vmg_procfs *p, pid_t pid, uint64_t delayacct_since, bool *unaccounted,
                    struct vmg_service_counters *acc) {
        struct vmg_pid_stat st;
        _cleanup_free_ pid_t *tids = NULL;
        size_t n_tids = 0;
        /* utime/stime of the process include its exited threads; per-thread stat does not. */
        int r = vmg_procfs_pid_stat(p, pid, 0, &st);
        if (r < 0)
                return r;
        r = vmg_procfs_list_tids(p, pid, &tids, &n_tids);
        if (r < 0)
                return r;
        uint64_t wait = 0, slices = 0, blk = 0;
        for (size_t i = 0; i < n_tids; i++) {
                struct vmg_schedstat ss;
                struct vmg_pid_stat ts;
                r = vmg_procfs_schedstat(p, pid, tids[i], &ss);
                if (r == -ENOENT)
                        continue; /* thread exited */
                if (r < 0)
                        return r;
                wait += ss.wait_ns;
                slices += ss.timeslices;
                /* field 42 in /proc/PID/stat is the leader's alone */
                r = vmg_procfs_pid_stat(p, pid, tids[i], &ts);
                if (r == 0) {
                        blk += ts.blkio_ticks;
                        if (delayacct_since != VMG_DELAYACCT_OFF && ts.start_ticks < delayacct_since)
                                *unaccounted = true;
                }
                else if (r != -ENOENT)
                        return r;
        }
        acc->cpu_ns += vmg_procfs_ticks_to_ns(st.utime_ticks + st.stime_ticks);
        acc->run_delay_ns += wait;
        acc->nr_timeslices += slices;
        acc->blkio_delay_ns += vmg_procfs_ticks_to_ns(blk);
        acc->n_pids++;
        return 0;
}

int vmg_service_read(struct vmg_procfs *p, const pid_t *pids, size_t n, uint64_t delayacct_since,
                     struct vmg_service_counters *ret) {
        struct vmg_service_counters acc = { .ts_ns = ret->ts_ns };
        bool unaccounted = delayacct_since == VMG_DELAYACCT_OFF;
        for (size_t i = 0; i < n; i++) {
                int r = read_one(p, pids[i], delayacct_since, &unaccounted, &acc);
                if (r == -ENOENT) {
                        log_debug("Service process %d in %s vanished", (int) pids[i], vmg_procfs_root(p));
                        continue;
                }
                if (r < 0)
                        return r;
        }
        acc.valid = acc.n_pids > 0;
        acc.blkio_delay_valid = acc.valid && !unaccounted;
        if (!acc.blkio_delay_valid)
                acc.blkio_delay_ns = 0;
        *ret = acc;
        return 0;
}
