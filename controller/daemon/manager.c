#include "controller/daemon/manager.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"
#include "controller/act/actuator.h"
#include "controller/act/blkiotune.h"
#include "controller/act/journal.h"
#include "controller/act/shaper.h"
#include "controller/act/svcprio.h"
#include "controller/act/sysctl.h"
#include "controller/daemon/apply.h"
#include "controller/daemon/lock.h"
#include "controller/daemon/snapshot.h"
#include "controller/engine/engine.h"
#include "probes/libvirt.h"
#include "probes/monitor.h"
#include "probes/netlink.h"
#include "probes/prober.h"


static uint64_t now_mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

struct vmg_manager {
        struct vmg_manager_config cfg;
        char *host_file, *tenants_dir, *state_dir;
        struct vmg_policy *policy;
        struct vmg_monitor *mon;
        struct vmg_libvirt *lv;
        struct vmg_journal *journal;
        struct vmg_actuator *act;
        struct vmg_blkiotune *bt;
        struct vmg_shaper *shaper;
        struct vmg_svcprio *svcprio; /* NULL: services' CPU share left alone */
        struct vmg_sysctl *sysctl;   /* NULL: dry run, or no <proc_root>/sys */
        uint64_t delayacct_since;     /* clock ticks since boot when vmguard turned it on, or 0 */
        int host_lock_fd, state_lock_fd; /* -1: not held (dry run) */
        struct vmg_engine_state *engine;
        struct vmg_prober **probers; /* parallel to policy->host.services; NULL entries */
        json_t *last_snapshot; /* built once at the end of each tick; NULL before the first */
        size_t n_probers;
        struct vmg_applied_set applied;
        int cgroup_version;
        uint64_t tick_ns;
        unsigned long long ticks, actions_total, errors_total;
        unsigned long long actions_by_kind[VMG_ACT_CAP + 1];
        uint64_t last_tick_ns, last_tick_duration_ns;
        /* Which policy is in force, for status: loads swapped in (1 = the start's), reloads
         * refused, and the last refusal's reason (file:line:column: field: message). */
        unsigned long long policy_generation, policy_rejected;
        char policy_error[512];
        char status[128];
        /* A lifecycle event asked for a new listing: done once at the next tick (issue 9).
         * Listing right away cost a full listing per wakeup, dozens a second under churn,
         * and between ticks a new listing changes nothing: guests are sampled at ticks. */
        bool rescan_pending;
};

/* The levers the tick applies actions through, borrowed for one call. */
static struct vmg_levers levers(struct vmg_manager *m) {
        return (struct vmg_levers){ .act = m->act, .bt = m->bt, .shaper = m->shaper,
                                    .nl = vmg_monitor_netlink(m->mon), .cgroup_version = m->cgroup_version };
}

static int load_policy(struct vmg_manager *m, struct vmg_policy **ret) {
        struct vmg_policy_error err = {};
        const char *host = m->host_file;
        /* The host file is optional: without it the defaults apply. */
        if (host && access(host, F_OK) < 0 && !m->cfg.host_file)
                host = NULL;
        const char *tenants = m->tenants_dir;
        if (!m->cfg.tenants_dir && access(tenants, F_OK) < 0)
                tenants = NULL; /* no tenants yet: watch and report, throttle nothing */
        int r = vmg_policy_load(host, tenants, ret, &err);
        if (r < 0) {
                vmg_policy_error_format(&err, m->policy_error, sizeof m->policy_error);
                m->policy_rejected++;
                return log_error_errno(r, "policy rejected: %s", m->policy_error);
        }
        m->policy_generation++;
        return 0;
}

/* Block-I/O delay of the protected services (stat field 42) is how a noisy guest's disk
 * writes show on dnsmasq (its lease-file fsync waits): the kernel only counts it with
 * kernel.task_delayacct=1, off by default since 5.14 for its small scheduling cost. The
 * original is journaled (sysctl.c), so a SIGKILLed vmguard's next start puts 0 back. */
static void delayacct_enable(struct vmg_manager *m) {
        if (!m->sysctl)
                return;
        int r = vmg_sysctl_set(m->sysctl, "kernel/task_delayacct", "1");
        if (r < 0 && r != -ENOENT) /* -ENOENT: older kernels account always, no switch */
                log_warning_errno(r, "services' block-I/O delay stays unknown: %m");
        if (r != 1)
                return;
        /* The kernel gives a task its delay record at fork, and only while accounting is
         * on: a dnsmasq started before this moment reads 0 I/O delay however long it waits
         * (seen in the lab: 0% while its DNS answers took 2 s behind a lease fsync). So
         * those processes are marked unaccounted, and the admin is told how to fix it. */
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        long hz = sysconf(_SC_CLK_TCK);
        m->delayacct_since = (uint64_t) ts.tv_sec * (uint64_t) (hz > 0 ? hz : 100) +
                             (uint64_t) ts.tv_nsec / (1000000000ull / (uint64_t) (hz > 0 ? hz : 100));
        log_warning("turned kernel.task_delayacct on (it was 0): the I/O wait of services started "
                    "before now is not counted until they restart; set it at boot "
                    "(kernel.task_delayacct = 1 in /etc/sysctl.d, or the kernel's delayacct option)");
}

static void probers_free(struct vmg_prober **probers, size_t n) {
        for (size_t i = 0; i < n; i++)
                vmg_prober_free(probers[i]);
        free(probers);
}

/* One prober per service with probe_dns. A prober that cannot open (its namespace is not
 * there yet) is logged and left out: the service is then judged by its other signals. */
static int probers_new(const struct vmg_manager *m, const struct vmg_policy *p,
                       struct vmg_prober ***ret) {
        struct vmg_prober **v = calloc(p->host.n_services ? p->host.n_services : 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < p->host.n_services; i++) {
                const struct vmg_service *s = &p->host.services[i];
                if (!s->probe_dns)
                        continue;
                char ns[512];
                if (s->probe_netns)
                        snprintf(ns, sizeof ns, "%s/%s", m->cfg.netns_dir ? m->cfg.netns_dir : VMG_NETNS_DIR,
                                 s->probe_netns);
                int r = vmg_prober_new(s->probe_dns, s->probe_netns ? ns : NULL, &v[i]);
                if (r < 0)
                        log_warning_errno(r, "service %s: DNS probe %s disabled: %m", s->name, s->probe_dns);
        }
        *ret = v;
        return 0;
}

/* Puts back every value in the journal and the services' cgroups. Needs neither the policy
 * nor libvirt's listing (block I/O tune talks to libvirt on its worker, bounded by its
 * timeout), so it runs first at start. */
static int restore_journaled(struct vmg_manager *m, const char *why, bool keep_switches) {
        int r, ret = 0;
        r = vmg_act_restore_all(m->act);
        if (r < 0) {
                log_error_errno(r, "%s: restoring cgroup values failed: %m", why);
                ret = r;
        } else if (r > 0)
                log_notice("%s: restored %d cgroup value(s)", why, r);
        if (m->bt) {
                r = vmg_blkiotune_restore_sync(m->bt, NULL);
                if (r < 0) {
                        log_error_errno(r, "%s: restoring block I/O tune failed: %m", why);
                        if (!ret)
                                ret = r;
                } else if (r > 0)
                        log_notice("%s: restored %d block I/O tune value(s)", why, r);
        }
        /* At start the host switches (kernel.task_delayacct) stay as a killed vmguard left
         * them, journaled: the daemon sets them again right after, and turning delay
         * accounting off and on would make every process that started meanwhile look
         * unaccounted (see delayacct_enable()). A start that fails restores them in
         * vmg_manager_free(). */
        if (m->sysctl && !keep_switches) {
                r = vmg_sysctl_restore_all(m->sysctl);
                if (r < 0 && !ret)
                        ret = r;
        }
        if (m->svcprio)
                (void) vmg_svcprio_restore_all(m->svcprio);
        return ret;
}

/* tc pieces are not journaled (they are recognisable by handle): removed from the taps of
 * the guests libvirt lists. */
static void unshape_listed(struct vmg_manager *m) {
        if (!m->mon || !m->shaper)
                return;
        struct vmg_levers lv = levers(m);
        for (size_t i = 0; i < vmg_monitor_n_vms(m->mon); i++)
                vmg_unshape_vm(&lv, vmg_monitor_vm(m->mon, i));
}

static int restore_everything(struct vmg_manager *m, const char *why) {
        int r = restore_journaled(m, why, false);
        unshape_listed(m);
        m->applied.n = 0;
        return r;
}

int vmg_manager_rescan(struct vmg_manager *m) {
        struct vmg_levers lv = levers(m);
        struct vmg_domain *doms = NULL;
        size_t n = 0;
        int r = vmg_libvirt_list(m->lv, &doms, &n);
        if (r < 0)
                return log_warning_errno(r, "cannot list guests from libvirt: %m");
        /* Guests that went away: drop what we remember of them (their cgroups are gone, so
         * restoring finds nothing to restore and the journal forgets them). */
        for (size_t i = 0; i < m->applied.n;) {
                bool present = false;
                for (size_t k = 0; k < n; k++)
                        present |= doms[k].def && strcmp(doms[k].def->uuid, m->applied.v[i].uuid) == 0;
                if (present) {
                        i++;
                        continue;
                }
                log_info("guest %s is gone: releasing what vmguard held for it", m->applied.v[i].uuid);
                (void) vmg_act_release(m->act, m->applied.v[i].uuid);
                (void) vmg_blkiotune_restore(m->bt, m->applied.v[i].uuid);
                /* Its tap may outlive it (a persistent tap, a veth), and its ifb does
                 * whenever the tap's namespace stays: not restored at stop once it is
                 * no longer listed. */
                const struct vmg_vm *gone = m->applied.v[i].shaped ? vmg_monitor_find(m->mon, m->applied.v[i].uuid) : NULL;
                if (gone)
                        vmg_unshape_vm(&lv, gone);
                vmg_applied_forget(&m->applied, m->applied.v[i].uuid);
        }
        r = vmg_monitor_set_listed(m->mon, doms, n);
        if (r < 0)
                return r;
        log_debug("watching %zu guest(s)", n);
        return 0;
}

/* One vmguardd per host (lock.h): the host's lock, then the state dir's. */
static int take_locks(struct vmg_manager *m) {
        const char *host = m->cfg.lock_file ? m->cfg.lock_file : VMG_LOCK_FILE;
        char state[512];
        snprintf(state, sizeof state, "%s/%s", m->state_dir, VMG_STATE_LOCK_NAME);
        const char *paths[2] = { host, state };
        int *fds[2] = { &m->host_lock_fd, &m->state_lock_fd };
        for (size_t i = 0; i < 2; i++) {
                pid_t holder = 0;
                int fd = vmg_lock_take(paths[i], &holder);
                if (fd == -EBUSY) {
                        char who[32] = "unknown pid";
                        if (holder > 0)
                                snprintf(who, sizeof who, "pid %ld", (long) holder);
                        return log_error_errno(fd, "another vmguardd is running (%s, holding %s): it manages "
                                               "this host's guests; refusing to start, nothing was changed",
                                               who, paths[i]);
                }
                if (fd < 0)
                        return log_error_errno(fd, "cannot take the instance lock %s: %m", paths[i]);
                *fds[i] = fd;
        }
        return 0;
}

/* Non-dry-run start, first half: nothing here reads the policy or lists libvirt, so a
 * broken tenant file or a hung libvirtd cannot keep a crashed vmguard's limits in force. */
static int open_levers_and_restore(struct vmg_manager *m, struct vmg_actuator_config *ac,
                                   const struct vmg_cgroup_ctx *cg) {
        const struct vmg_manager_config *cfg = &m->cfg;
        if (mkdir(m->state_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "cannot create state directory %s: %m", m->state_dir);
        int r = take_locks(m);
        if (r < 0)
                return r;
        r = vmg_journal_open(m->state_dir, &m->journal);
        if (r < 0)
                return log_error_errno(r, "cannot open the journal of original values in %s: %m", m->state_dir);
        ac->journal = m->journal;
        r = vmg_actuator_new(ac, &m->act);
        if (r < 0)
                return log_error_errno(r, "cannot open cgroup roots %s, %s: %m", ac->cpu_root,
                                       ac->blkio_root ? ac->blkio_root : "-");
        struct vmg_blkiotune_config bc = { .journal = m->journal, .uri = cfg->uri };
        r = vmg_blkiotune_new(&bc, &m->bt);
        if (r < 0)
                return r;
        r = vmg_sysctl_new(cfg->proc_root, m->journal, &m->sysctl);
        if (r < 0)
                log_warning_errno(r, "cannot open %s/sys: kernel switches left alone: %m",
                                  cfg->proc_root ? cfg->proc_root : VMG_PROC_ROOT);
        /* On systemd hosts the services' cgroups are systemd's: leave them be. */
        bool systemd_host = access("/run/systemd/system", F_OK) == 0;
        if (!systemd_host && (ac->cgroup_version == 1 || vmg_cgroup_v2_enabled(cg, "cpu"))) {
                r = vmg_svcprio_new(ac->cpu_root, ac->cgroup_version, cfg->proc_root, m->state_dir, &m->svcprio);
                if (r < 0)
                        return r;
        }
        /* A previous vmguard that crashed or was SIGKILLed may have left limits behind. */
        (void) restore_journaled(m, "start-up reconcile", true);
        /* Never change a value we could not put back (restoring works from a read-only
         * journal; recording does not). */
        r = vmg_journal_check_writable(m->journal);
        if (r < 0)
                return log_error_errno(r, "state directory %s is not writable: refusing to throttle anything: %m",
                                       m->state_dir);
        return 0;
}

static void cgroup_ctxp(struct vmg_cgroup_ctx **c) { vmg_cgroup_ctx_free(*c); }

int vmg_manager_new(const struct vmg_manager_config *cfg, struct vmg_manager **ret) {
        /* The cgroup roots, from mountinfo alone: the monitor opens its own after the
         * policy, this one is for the levers and the restore. */
        _cleanup_(cgroup_ctxp) struct vmg_cgroup_ctx *cg = NULL;
        struct vmg_manager *m = calloc(1, sizeof *m);
        int r;
        if (!m)
                return -ENOMEM;
        m->cfg = *cfg;
        m->host_lock_fd = m->state_lock_fd = -1;
        m->host_file = strdup(cfg->host_file ? cfg->host_file : VMG_HOST_FILE);
        m->tenants_dir = strdup(cfg->tenants_dir ? cfg->tenants_dir : VMG_TENANTS_DIR);
        m->state_dir = strdup(cfg->state_dir ? cfg->state_dir : VMG_STATE_DIR);
        if (!m->host_file || !m->tenants_dir || !m->state_dir) {
                r = -ENOMEM;
                goto fail;
        }

        struct vmg_cgroup_paths cgp = { .root = cfg->cgroup_root, .mountinfo = cfg->mountinfo, .proc = cfg->proc_root };
        r = vmg_cgroup_ctx_new(&cgp, &cg);
        if (r < 0) {
                log_error_errno(r, "cannot find the cgroup hierarchies: %m");
                goto fail;
        }
        struct vmg_actuator_config ac = { .cgroup_version = 1 };
        if (vmg_cgroup_hier_path(cg, VMG_CG_CPU)) {
                ac.cpu_root = vmg_cgroup_hier_path(cg, VMG_CG_CPU);
                ac.blkio_root = vmg_cgroup_hier_path(cg, VMG_CG_BLKIO);
        } else if (vmg_cgroup_hier_path(cg, VMG_CG_UNIFIED)) {
                ac.cgroup_version = 2;
                ac.cpu_root = ac.blkio_root = vmg_cgroup_hier_path(cg, VMG_CG_UNIFIED);
        } else {
                r = log_error_errno(ENOENT, "no cpu controller mounted (cgroup v1 cpu or cgroup2): cannot throttle");
                goto fail;
        }
        m->cgroup_version = ac.cgroup_version;

        if (!cfg->dry_run) {
                r = open_levers_and_restore(m, &ac, cg);
                if (r < 0)
                        goto fail;
        }

        /* Only now the policy: whatever is wrong in it, the originals are back. */
        r = load_policy(m, &m->policy);
        if (r < 0)
                goto fail;
        m->tick_ns = cfg->tick_ns ? cfg->tick_ns : m->policy->host.tick_ns;
        if (!cfg->dry_run)
                delayacct_enable(m); /* after the reconcile, before the monitor reads the switch */

        struct vmg_monitor_paths paths = {
                .cgroup = { .root = cfg->cgroup_root, .mountinfo = cfg->mountinfo, .proc = cfg->proc_root },
                .proc_root = cfg->proc_root,
                .netns_dir = cfg->netns_dir,
        };
        r = vmg_monitor_new(&paths, &m->mon);
        if (r < 0)
                goto fail;
        if (m->delayacct_since)
                vmg_monitor_set_delayacct_since(m->mon, m->delayacct_since);
        r = vmg_monitor_set_services(m->mon, m->policy->host.services, m->policy->host.n_services);
        if (r < 0)
                goto fail;

        if (!cfg->dry_run) {
                struct vmg_shaper_config sc = { .netns_dir = cfg->netns_dir };
                r = vmg_shaper_new(&sc, &m->shaper);
                if (r < 0)
                        goto fail;
        }

        struct vmg_libvirt_config lc = { .uri = cfg->uri, .run_dir = cfg->libvirt_run_dir };
        r = vmg_libvirt_new(&lc, &m->lv);
        if (r < 0)
                goto fail;
        r = vmg_libvirt_start(m->lv);
        if (r < 0) {
                log_error_errno(r, "cannot start the libvirt event thread: %m");
                goto fail;
        }
        if (r == 0)
                log_warning("libvirt at %s is not answering yet; vmguard keeps trying and watches no guest until then",
                            cfg->uri ? cfg->uri : "qemu:///system");
        else
                (void) vmg_manager_rescan(m);

        /* tc pieces a killed vmguard left on the listed guests' taps. */
        if (!cfg->dry_run)
                unshape_listed(m);

        r = probers_new(m, m->policy, &m->probers);
        if (r < 0)
                goto fail;
        m->n_probers = m->policy->host.n_services;
        r = vmg_engine_state_new(&m->engine);
        if (r < 0)
                goto fail;
        log_info("vmguard started: %zu tenant(s), %zu protected service(s), tick %.2fs, cgroup v%d%s",
                 m->policy->n_tenants, m->policy->host.n_services, (double) m->tick_ns / 1e9,
                 m->cgroup_version, cfg->dry_run ? ", dry run: nothing will be changed" : "");
        *ret = m;
        return 0;
fail:
        vmg_manager_free(m);
        return r;
}

struct vmg_manager *vmg_manager_free(struct vmg_manager *m) {
        if (!m)
                return NULL;
        if (m->act)
                (void) restore_everything(m, "stop");
        vmg_engine_state_free(m->engine);
        probers_free(m->probers, m->n_probers);
        vmg_shaper_free(m->shaper);
        vmg_svcprio_free(m->svcprio);
        vmg_blkiotune_free(m->bt);
        vmg_actuator_free(m->act);
        vmg_sysctl_free(m->sysctl);
        vmg_journal_free(m->journal);
        vmg_libvirt_free(m->lv);
        vmg_monitor_free(m->mon);
        vmg_policy_free(m->policy);
        free(m->applied.v);
        free(m->host_file);
        free(m->tenants_dir);
        free(m->state_dir);
        /* Last: the locks guard everything above, the restore included. */
        if (m->state_lock_fd >= 0)
                close(m->state_lock_fd);
        if (m->host_lock_fd >= 0)
                close(m->host_lock_fd);
        json_decref(m->last_snapshot);
        free(m);
        return NULL;
}

json_t *vmg_manager_snapshot(struct vmg_manager *m, uint64_t now_ns) {
        struct vmg_snapshot_input in = {
                .policy = m->policy,
                .mon = m->mon,
                .engine = m->engine,
                .probers = m->probers,
                .n_probers = m->n_probers,
                .applied = &m->applied,
                .libvirt_connected = vmg_libvirt_connected(m->lv),
                .dry_run = m->cfg.dry_run,
                .ticks = m->ticks,
                .errors_total = m->errors_total,
                .actions_by_kind = m->actions_by_kind,
                .tick_ns = m->tick_ns,
                .last_tick_ns = m->last_tick_ns,
                .last_tick_duration_ns = m->last_tick_duration_ns,
                .policy_generation = m->policy_generation,
                .policy_rejected = m->policy_rejected,
                .policy_error = m->policy_error,
        };
        return vmg_snapshot_build(&in, now_ns, m->status, sizeof m->status);
}

/* The snapshot also lands in the state directory each tick, for `vmguard status` when the
 * socket is not reachable and for node_exporter-style scrapers. tmpfs: cheap. It is kept
 * for the /metrics text and the textfile, so a tick builds one snapshot, not one per
 * consumer or per scrape. */
static void write_status(struct vmg_manager *m, uint64_t now_ns) {
        json_t *root = vmg_manager_snapshot(m, now_ns);
        if (root) {
                json_decref(m->last_snapshot);
                m->last_snapshot = json_incref(root);
        }
        if (m->cfg.dry_run && access(m->state_dir, W_OK) < 0) {
                json_decref(root);
                return;
        }
        char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        char dst[512];
        snprintf(dst, sizeof dst, "%s/%s", m->state_dir, VMG_STATUS_FILE);
        int r = text ? vmg_write_file_atomic_path(dst, text, strlen(text), 0644) : -ENOMEM;
        if (r < 0)
                log_debug_errno(r, "cannot write %s: %m", dst);
        free(text);
        json_decref(root);
}

int vmg_manager_tick(struct vmg_manager *m, uint64_t now_ns) {
        struct vmg_levers lv = levers(m);
        if (m->rescan_pending) {
                m->rescan_pending = false;
                /* Not connected: the reconnect's event asks again. */
                int rr = vmg_manager_rescan(m);
                if (rr < 0 && rr != -ENOTCONN)
                        m->rescan_pending = true;
        }
        for (size_t i = 0; i < m->n_probers; i++)
                if (m->probers[i])
                        (void) vmg_prober_tick(m->probers[i], now_ns);
        int r = vmg_monitor_sample(m->mon, now_ns);
        if (r < 0) {
                m->errors_total++;
                return r;
        }
        m->ticks++;
        if (!m->cfg.dry_run)
                m->errors_total += vmg_reshape_returned_taps(&lv, &m->applied, m->mon);
        if (m->svcprio)
                for (size_t i = 0; i < vmg_monitor_n_services(m->mon) && i < m->policy->host.n_services; i++) {
                        const struct vmg_svc *sv = vmg_monitor_service(m->mon, i);
                        const struct vmg_service *pol = &m->policy->host.services[i];
                        /* Only right after a lookup of its processes: not every tick. */
                        if (pol->kind != VMG_SERVICE_PROCESS || sv->scanned_ns != now_ns || !sv->n_pids)
                                continue;
                        (void) vmg_svcprio_raise(m->svcprio, sv->name, sv->pids, sv->n_pids, pol->priority);
                }
        size_t n = vmg_monitor_n_vms(m->mon);
        _cleanup_free_ struct vmg_engine_vm *evms = calloc(n ? n : 1, sizeof *evms);
        size_t ns = vmg_monitor_n_services(m->mon);
        _cleanup_free_ struct vmg_engine_service *esv = calloc(ns ? ns : 1, sizeof *esv);
        if (!evms || !esv)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                struct vmg_vm *vm = vmg_monitor_vm(m->mon, i);
                /* Every guest libvirt still lists goes in, with or without a fresh interval
                 * (a vanished flag, a new QEMU pid): left out, the engine forgot its throttle
                 * while the kernel kept the limit, and nothing ever released it. A guest no
                 * longer listed is gone: vmg_manager_rescan() cleared what we held for it,
                 * and its absence here makes the engine forget it too. */
                evms[k++] = (struct vmg_engine_vm){
                        .uuid = vm->dom->uuid,
                        .name = vm->dom->name,
                        .tenant = vmg_policy_match(m->policy, vm->dom->tenant, vm->dom->name, vm->dom->uuid),
                        .unsampled = !vm->have_rates,
                        .rates = vm->rates,
                };
        }
        size_t ks = 0;
        for (size_t i = 0; i < ns; i++) {
                const struct vmg_svc *sv = vmg_monitor_service(m->mon, i);
                if (!sv->have_rates)
                        continue;
                esv[ks] = (struct vmg_engine_service){ .name = sv->name, .policy_index = (int) i,
                                                       .rates = sv->rates };
                if (i < m->n_probers && m->probers[i])
                        esv[ks].rates.probe_latency_ms = vmg_prober_latency_ms(m->probers[i]);
                ks++;
        }
        struct vmg_engine_input in = { .now_ns = now_ns, .tick_ns = m->tick_ns, .services = esv, .n_services = ks,
                                       .vms = evms, .n_vms = k };
        if (!vmg_monitor_host_rates(m->mon, &in.host))
                memset(&in.host, 0, sizeof in.host);

        struct vmg_engine_state *next = NULL;
        struct vmg_action *acts = NULL;
        size_t n_acts = 0;
        r = vmg_engine_step(m->policy, m->engine, &in, &next, &acts, &n_acts);
        if (r < 0) {
                m->errors_total++;
                return log_error_errno(r, "decision step failed: %m");
        }
        vmg_engine_state_free(m->engine);
        m->engine = next;

        for (size_t i = 0; i < n_acts; i++) {
                const struct vmg_action *a = &acts[i];
                struct vmg_vm *vm = vmg_monitor_find(m->mon, a->uuid);
                const char *tenant = a->tenant >= 0 && (size_t) a->tenant < m->policy->n_tenants
                                             ? m->policy->tenants[a->tenant].name : "-";
                r = 0;
                if (!m->cfg.dry_run && vm)
                        r = vmg_apply_action(&lv, &m->applied, vm, a, now_ns);
                if (r < 0)
                        m->errors_total++;
                m->actions_total++;
                if (a->kind <= VMG_ACT_CAP)
                        m->actions_by_kind[a->kind]++;
                vmg_log_action(vm, a, tenant, m->cfg.dry_run, r);
        }
        free(acts);
        if (m->bt)
                vmg_manager_on_blkiotune(m);
        /* Desired limits not seen in force (a transient write error, a block I/O tune call
         * that timed out) are put in force again, with backoff, until they are. */
        if (!m->cfg.dry_run)
                m->errors_total += vmg_apply_reconcile(&lv, &m->applied, m->mon, now_ns);
        m->last_tick_ns = now_ns;
        m->last_tick_duration_ns = now_mono_ns() - now_ns;
        write_status(m, now_ns);
        return 0;
}

int vmg_manager_reload(struct vmg_manager *m) {
        struct vmg_policy *p = NULL;
        int r = load_policy(m, &p);
        if (r < 0) {
                log_error("reload: keeping the policy in force");
                return r;
        }
        struct vmg_prober **probers = NULL;
        r = probers_new(m, p, &probers);
        if (r >= 0)
                r = vmg_monitor_set_services(m->mon, p->host.services, p->host.n_services);
        if (r < 0) {
                probers_free(probers, p->host.n_services);
                vmg_policy_free(p);
                return r;
        }
        probers_free(m->probers, m->n_probers);
        m->probers = probers;
        m->n_probers = p->host.n_services;
        vmg_policy_free(m->policy);
        m->policy = p;
        if (!m->cfg.tick_ns)
                m->tick_ns = p->host.tick_ns;
        log_info("policy reloaded: %zu tenant(s), %zu protected service(s)", p->n_tenants, p->host.n_services);
        return 0;
}

int vmg_manager_libvirt_fd(const struct vmg_manager *m) { return vmg_libvirt_event_fd(m->lv); }
int vmg_manager_blkiotune_fd(const struct vmg_manager *m) { return m->bt ? vmg_blkiotune_fd(m->bt) : -1; }

static void on_event(const struct vmg_libvirt_event *ev, void *userdata) {
        bool *rescan = userdata;
        if (ev->type != VMG_LV_DISCONNECTED)
                *rescan = true;
        if (ev->type == VMG_LV_DISCONNECTED)
                log_warning("libvirtd went away; reconnecting, guests keep being sampled from the kernel");
        else
                log_debug("libvirt event %s %s", vmg_libvirt_event_name(ev->type), ev->name);
}

int vmg_manager_on_libvirt(struct vmg_manager *m) {
        bool rescan = false;
        int r = vmg_libvirt_drain_events(m->lv, on_event, &rescan);
        if (r < 0)
                return r;
        m->rescan_pending |= rescan;
        return 0;
}

void vmg_manager_on_blkiotune(struct vmg_manager *m) {
        struct vmg_blkiotune_result res[16];
        size_t n;
        while ((n = vmg_blkiotune_dispatch(m->bt, res, ARRAY_SIZE(res))) > 0) {
                for (size_t i = 0; i < n; i++) {
                        vmg_apply_blkiotune_done(&m->applied, &res[i], now_mono_ns());
                        if (res[i].r < 0) {
                                m->errors_total++;
                                log_warning_errno(res[i].r, "guest %s: block I/O tune %s of %s failed: %m",
                                                  res[i].uuid, res[i].param, res[i].disk);
                        }
                }
                if (n < ARRAY_SIZE(res))
                        break;
        }
}

uint64_t vmg_manager_tick_ns(const struct vmg_manager *m) { return m->tick_ns; }
const char *vmg_manager_status_line(struct vmg_manager *m) { return m->status; }
const json_t *vmg_manager_last_snapshot(const struct vmg_manager *m) { return m->last_snapshot; }
const struct vmg_policy *vmg_manager_policy(const struct vmg_manager *m) { return m->policy; }
