#include "controller/daemon/manager.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"
#include "controller/act/actuator.h"
#include "controller/act/blkiotune.h"
#include "controller/engine/engine.h"
#include "controller/act/journal.h"
#include "probes/monitor.h"
#include "probes/prober.h"
#include "controller/act/shaper.h"
#include "controller/act/svcprio.h"
#include "probes/libvirt.h"
#include "probes/netlink.h"

#ifndef VMG_DAEMON_VERSION
#define VMG_DAEMON_VERSION "0.1"
#endif

static uint64_t now_mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

/* What vmguard has put in force on one guest, per resource (0 = nothing of ours). */
struct applied {
        char uuid[VMG_UUID_LEN + 1];
        double limit[VMG_RES_COUNT];
        bool unmanaged; /* a permanent write error: hands off this guest, alert raised */
        bool shaped;    /* some tap of it carries vmguard's tc pieces */
        /* Per tap: the netlink generation of the device the limit was last put on (a new
         * device under the same name carries none of it), and whether its loss was logged. */
        unsigned long tap_gen[VMG_MAX_IFACES];
        bool tap_lost[VMG_MAX_IFACES];
};

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
        struct vmg_engine_state *engine;
        struct vmg_prober **probers; /* parallel to policy->host.services; NULL entries */
        size_t n_probers;
        struct applied *applied;
        size_t n_applied;
        int cgroup_version;
        uint64_t tick_ns;
        int delayacct_orig; /* -1: untouched; else the value to put back at stop */
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

static struct applied *applied_get(struct vmg_manager *m, const char *uuid, bool create) {
        for (size_t i = 0; i < m->n_applied; i++)
                if (strcmp(m->applied[i].uuid, uuid) == 0)
                        return &m->applied[i];
        if (!create)
                return NULL;
        struct applied *p = realloc(m->applied, (m->n_applied + 1) * sizeof *p);
        if (!p)
                return NULL;
        m->applied = p;
        struct applied *a = &m->applied[m->n_applied++];
        memset(a, 0, sizeof *a);
        snprintf(a->uuid, sizeof a->uuid, "%s", uuid);
        return a;
}

static void applied_forget(struct vmg_manager *m, const char *uuid) {
        for (size_t i = 0; i < m->n_applied; i++)
                if (strcmp(m->applied[i].uuid, uuid) == 0) {
                        m->applied[i] = m->applied[--m->n_applied];
                        return;
                }
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

static int tap_netns(struct vmg_manager *m, const char *tap, const char **ret) {
        const char *ns = NULL;
        int r = vmg_netlink_tap_netns(vmg_monitor_netlink(m->mon), tap, &ns);
        if (r < 0)
                return r;
        *ret = ns && *ns ? ns : NULL;
        return 0;
}

/* Removes vmguard's tc pieces from every tap of a guest: on release, at stop, and at
 * start for pieces a killed vmguard left behind (they are recognisable by handle). */
static void unshape_vm(struct vmg_manager *m, const struct vmg_vm *vm) {
        for (size_t j = 0; j < vm->dom->n_ifaces; j++) {
                const char *tap = vm->dom->ifaces[j].tap, *ns = NULL;
                if (!*tap || tap_netns(m, tap, &ns) < 0)
                        continue;
                int r = vmg_shaper_clear(m->shaper, ns, tap);
                if (r < 0 && r != -ENODEV && r != -ENOENT)
                        log_warning_errno(r, "guest %s: cannot remove shaping of tap %s: %m",
                                          vm->dom->name, tap);
        }
}

/* Block-I/O delay of the protected services (stat field 42) is how a noisy guest's disk
 * writes show on dnsmasq (its lease-file fsync waits): the kernel only counts it with
 * kernel.task_delayacct=1, off by default since 5.14 for its small scheduling cost. */
static void delayacct_enable(struct vmg_manager *m) {
        char path[512], buf[8] = "";
        snprintf(path, sizeof path, "%s/sys/kernel/task_delayacct", m->cfg.proc_root ? m->cfg.proc_root : VMG_PROC_ROOT);
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return; /* older kernels account always and have no switch */
        if (read(fd, buf, sizeof buf - 1) <= 0 || buf[0] != '0')
                return;
        if (pwrite(fd, "1", 1, 0) != 1) {
                log_warning_errno(errno, "cannot write 1 to %s: services' I/O delay stays unknown: %m", path);
                return;
        }
        m->delayacct_orig = 0;
        log_info("enabled %s (was 0) to see services' block-I/O delay; restored at stop", path);
}

static void delayacct_restore(struct vmg_manager *m) {
        if (m->delayacct_orig < 0)
                return;
        char path[512];
        snprintf(path, sizeof path, "%s/sys/kernel/task_delayacct", m->cfg.proc_root ? m->cfg.proc_root : VMG_PROC_ROOT);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
                log_warning_errno(errno, "cannot restore %s to 0: %m", path);
        m->delayacct_orig = -1;
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

static int restore_everything(struct vmg_manager *m, const char *why) {
        int r, ret = 0;
        r = vmg_act_restore_all(m->act);
        if (r < 0) {
                log_error_errno(r, "%s: restoring cgroup values failed: %m", why);
                ret = r;
        } else if (r > 0)
                log_notice("%s: restored %d cgroup value(s)", why, r);
        r = vmg_blkiotune_restore_sync(m->bt, NULL);
        if (r < 0) {
                log_error_errno(r, "%s: restoring block I/O tune failed: %m", why);
                if (!ret)
                        ret = r;
        } else if (r > 0)
                log_notice("%s: restored %d block I/O tune value(s)", why, r);
        for (size_t i = 0; i < vmg_monitor_n_vms(m->mon); i++)
                unshape_vm(m, vmg_monitor_vm(m->mon, i));
        m->n_applied = 0;
        if (m->svcprio)
                (void) vmg_svcprio_restore_all(m->svcprio);
        return ret;
}

int vmg_manager_rescan(struct vmg_manager *m) {
        struct vmg_domain *doms = NULL;
        size_t n = 0;
        int r = vmg_libvirt_list(m->lv, &doms, &n);
        if (r < 0)
                return log_warning_errno(r, "cannot list guests from libvirt: %m");
        /* Guests that went away: drop what we remember of them (their cgroups are gone, so
         * restoring finds nothing to restore and the journal forgets them). */
        for (size_t i = 0; i < m->n_applied;) {
                bool present = false;
                for (size_t k = 0; k < n; k++)
                        present |= doms[k].def && strcmp(doms[k].def->uuid, m->applied[i].uuid) == 0;
                if (present) {
                        i++;
                        continue;
                }
                log_info("guest %s is gone: releasing what vmguard held for it", m->applied[i].uuid);
                (void) vmg_act_release(m->act, m->applied[i].uuid);
                (void) vmg_blkiotune_restore(m->bt, m->applied[i].uuid);
                /* Its tap may outlive it (a persistent tap, a veth), and its ifb does
                 * whenever the tap's namespace stays: not restored at stop once it is
                 * no longer listed. */
                const struct vmg_vm *gone = m->applied[i].shaped ? vmg_monitor_find(m->mon, m->applied[i].uuid) : NULL;
                if (gone)
                        unshape_vm(m, gone);
                applied_forget(m, m->applied[i].uuid);
        }
        r = vmg_monitor_set_listed(m->mon, doms, n);
        if (r < 0)
                return r;
        log_debug("watching %zu guest(s)", n);
        return 0;
}

int vmg_manager_new(const struct vmg_manager_config *cfg, struct vmg_manager **ret) {
        struct vmg_manager *m = calloc(1, sizeof *m);
        int r;
        if (!m)
                return -ENOMEM;
        m->cfg = *cfg;
        m->delayacct_orig = -1;
        m->host_file = strdup(cfg->host_file ? cfg->host_file : VMG_HOST_FILE);
        m->tenants_dir = strdup(cfg->tenants_dir ? cfg->tenants_dir : VMG_TENANTS_DIR);
        m->state_dir = strdup(cfg->state_dir ? cfg->state_dir : VMG_STATE_DIR);
        if (!m->host_file || !m->tenants_dir || !m->state_dir) {
                r = -ENOMEM;
                goto fail;
        }
        r = load_policy(m, &m->policy);
        if (r < 0)
                goto fail;
        m->tick_ns = cfg->tick_ns ? cfg->tick_ns : m->policy->host.tick_ns;
        if (!cfg->dry_run)
                delayacct_enable(m); /* before the monitor reads the switch */

        struct vmg_monitor_paths paths = {
                .cgroup = { .root = cfg->cgroup_root, .proc = cfg->proc_root },
                .proc_root = cfg->proc_root,
                .netns_dir = cfg->netns_dir,
        };
        r = vmg_monitor_new(&paths, &m->mon);
        if (r < 0)
                goto fail;
        r = vmg_monitor_set_services(m->mon, m->policy->host.services, m->policy->host.n_services);
        if (r < 0)
                goto fail;

        struct vmg_cgroup_ctx *cg = vmg_monitor_cgroup(m->mon);
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
                if (mkdir(m->state_dir, 0700) < 0 && errno != EEXIST) {
                        r = log_error_errno(errno, "cannot create state directory %s: %m", m->state_dir);
                        goto fail;
                }
                r = vmg_journal_open(m->state_dir, &m->journal);
                if (r < 0) {
                        log_error_errno(r, "cannot open the journal of original values in %s: %m", m->state_dir);
                        goto fail;
                }
                /* Never change a value we could not put back. */
                r = vmg_journal_check_writable(m->journal);
                if (r < 0) {
                        log_error_errno(r, "state directory %s is not writable: refusing to throttle anything: %m",
                                        m->state_dir);
                        goto fail;
                }
                ac.journal = m->journal;
                r = vmg_actuator_new(&ac, &m->act);
                if (r < 0) {
                        log_error_errno(r, "cannot open cgroup roots %s, %s: %m", ac.cpu_root,
                                        ac.blkio_root ? ac.blkio_root : "-");
                        goto fail;
                }
                struct vmg_blkiotune_config bc = { .journal = m->journal, .uri = cfg->uri };
                r = vmg_blkiotune_new(&bc, &m->bt);
                if (r < 0)
                        goto fail;
                struct vmg_shaper_config sc = { .netns_dir = cfg->netns_dir };
                r = vmg_shaper_new(&sc, &m->shaper);
                if (r < 0)
                        goto fail;
                /* On systemd hosts the services' cgroups are systemd's: leave them be. */
                bool systemd_host = access("/run/systemd/system", F_OK) == 0;
                if (!systemd_host && (ac.cgroup_version == 1 || vmg_cgroup_v2_enabled(cg, "cpu"))) {
                        r = vmg_svcprio_new(ac.cpu_root, ac.cgroup_version, cfg->proc_root, m->state_dir, &m->svcprio);
                        if (r < 0)
                                goto fail;
                }
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

        /* A previous vmguard that crashed or was SIGKILLed may have left limits behind:
         * put every original back before the first tick. */
        if (!cfg->dry_run)
                (void) restore_everything(m, "start-up reconcile");

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
        if (m->act && m->mon)
                (void) restore_everything(m, "stop");
        delayacct_restore(m);
        vmg_engine_state_free(m->engine);
        probers_free(m->probers, m->n_probers);
        vmg_shaper_free(m->shaper);
        vmg_svcprio_free(m->svcprio);
        vmg_blkiotune_free(m->bt);
        vmg_actuator_free(m->act);
        vmg_journal_free(m->journal);
        vmg_libvirt_free(m->lv);
        vmg_monitor_free(m->mon);
        vmg_policy_free(m->policy);
        free(m->applied);
        free(m->host_file);
        free(m->tenants_dir);
        free(m->state_dir);
        free(m);
        return NULL;
}

static const char *blkiotune_param(enum vmg_resource r) {
        switch (r) {
        case VMG_RES_DISK_READ_BPS: return "read_bytes_sec";
        case VMG_RES_DISK_WRITE_BPS: return "write_bytes_sec";
        case VMG_RES_DISK_READ_IOPS: return "read_iops_sec";
        case VMG_RES_DISK_WRITE_IOPS: return "write_iops_sec";
        default: return NULL;
        }
}

static int apply_disk(struct vmg_manager *m, const struct vmg_vm *vm, const struct vmg_act_vm *avm,
                      enum vmg_resource res, double limit) {
        int ret = 0;
        unsigned long long v = limit > 0 ? (unsigned long long) limit : 0;
        for (size_t i = 0; i < vm->dom->n_disks; i++) {
                const struct vmg_dom_disk *d = &vm->dom->disks[i];
                /* QEMU's own throttle: the lever that also reaches cache=writeback disks,
                 * whose writes the host flusher charges to the root cgroup (blkio read 0 for a
                 * writeback guest writing +11.5 GB per 10 s on the lab host, docs/LAB.md). */
                int64_t id = vmg_blkiotune_set(m->bt, vm->dom->uuid, vm->dom->name, d->target,
                                               blkiotune_param(res), v);
                if (id < 0 && id != -EBUSY)
                        log_warning_errno((int) id, "guest %s: block I/O tune of %s %s=%llu not queued: %m",
                                          vm->dom->name, d->target, blkiotune_param(res), v);
                if (d->dev_error || !d->dev.major || !avm->blkio_dir)
                        continue;
                struct vmg_io_limit lim = { VMG_IO_KEEP, VMG_IO_KEEP, VMG_IO_KEEP, VMG_IO_KEEP };
                uint64_t *slot = res == VMG_RES_DISK_READ_BPS    ? &lim.rbps
                                 : res == VMG_RES_DISK_WRITE_BPS ? &lim.wbps
                                 : res == VMG_RES_DISK_READ_IOPS ? &lim.riops
                                                                 : &lim.wiops;
                *slot = v;
                int r = vmg_act_set_io(m->act, avm, d->dev.major, d->dev.minor, &lim);
                if (r < 0 && !ret)
                        ret = r;
        }
        return ret;
}

static int apply_net(struct vmg_manager *m, const struct vmg_vm *vm, struct applied *ap) {
        int ret = 0;
        for (size_t j = 0; j < vm->dom->n_ifaces; j++) {
                const char *tap = vm->dom->ifaces[j].tap, *ns = NULL;
                if (!*tap)
                        continue;
                int r = tap_netns(m, tap, &ns);
                if (r < 0) {
                        log_warning_errno(r, "guest %s: tap %s not found in any namespace: %m", vm->dom->name, tap);
                        continue;
                }
                r = vmg_shaper_set(m->shaper, ns, tap, ap->limit[VMG_RES_NET_TX_BPS],
                                   ap->limit[VMG_RES_NET_RX_BPS]);
                if (r < 0) {
                        log_warning_errno(r, "guest %s: shaping tap %s%s%s to tx %.0f rx %.0f bit/s failed: %m",
                                          vm->dom->name, tap, ns ? " in netns " : "", ns ? ns : "",
                                          ap->limit[VMG_RES_NET_TX_BPS], ap->limit[VMG_RES_NET_RX_BPS]);
                        if (!ret)
                                ret = r;
                } else {
                        ap->shaped = true;
                        if (j < VMG_MAX_IFACES)
                                ap->tap_gen[j] = vmg_netlink_tap_generation(vmg_monitor_netlink(m->mon), tap);
                }
        }
        return ret;
}

/* A tap that vanishes takes vmguard's pieces on it along (ingress qdisc and filter, the ifb
 * too when its namespace is deleted: issue #9). The engine still holds the guest's limit, so
 * when a tap of that name turns up again as a new device (namespace made again, tap made
 * again) the limit is put back on it and the kernel agrees with the engine again. Once per
 * loss and per return, so a tap that stays away or a refused set logs one line, not one a
 * tick. */
static void reshape_returned_taps(struct vmg_manager *m) {
        if (m->cfg.dry_run || !m->shaper)
                return;
        for (size_t i = 0; i < vmg_monitor_n_vms(m->mon); i++) {
                const struct vmg_vm *vm = vmg_monitor_vm(m->mon, i);
                struct applied *ap = applied_get(m, vm->dom->uuid, false);
                double tx = ap ? ap->limit[VMG_RES_NET_TX_BPS] : 0, rx = ap ? ap->limit[VMG_RES_NET_RX_BPS] : 0;
                if (!ap || ap->unmanaged || !(tx > 0 || rx > 0))
                        continue;
                for (size_t j = 0; j < vm->dom->n_ifaces && j < VMG_MAX_IFACES; j++) {
                        const char *tap = vm->dom->ifaces[j].tap, *ns = NULL;
                        if (!*tap)
                                continue;
                        if (tap_netns(m, tap, &ns) < 0) {
                                if (!ap->tap_lost[j])
                                        log_notice("guest %s: tap %s is gone (its network namespace deleted, or the "
                                                   "tap removed), with the shaping on it; put back if it returns",
                                                   vm->dom->name, tap);
                                ap->tap_lost[j] = true;
                                continue;
                        }
                        unsigned long gen = vmg_netlink_tap_generation(vmg_monitor_netlink(m->mon), tap);
                        if (gen == ap->tap_gen[j])
                                continue;
                        ap->tap_gen[j] = gen;
                        ap->tap_lost[j] = false;
                        int r = vmg_shaper_set(m->shaper, ns, tap, tx, rx);
                        if (r < 0) {
                                m->errors_total++;
                                log_warning_errno(r, "guest %s: tap %s%s%s is back, putting its limit back (tx %.0f "
                                                  "rx %.0f bit/s) failed: %m", vm->dom->name, tap,
                                                  ns ? " in netns " : "", ns ? ns : "", tx, rx);
                        } else
                                log_notice("guest %s: tap %s%s%s is back as a new device: limit put back, tx %.0f "
                                           "rx %.0f bit/s", vm->dom->name, tap, ns ? " in netns " : "",
                                           ns ? ns : "", tx, rx);
                }
        }
}

static void log_action(const struct vmg_manager *m, const struct vmg_vm *vm,
                       const struct vmg_action *a, const char *tenant, int r) {
        char oldv[48], newv[48];
        vmg_resource_format(a->resource, a->old_limit, oldv, sizeof oldv);
        vmg_resource_format(a->resource, a->new_limit, newv, sizeof newv);
        if (a->old_limit <= 0)
                snprintf(oldv, sizeof oldv, "unlimited");
        if (a->new_limit <= 0)
                snprintf(newv, sizeof newv, "unlimited");
        const char *mode = m->cfg.dry_run ? "dry-run, not applied: " : r < 0 ? "FAILED: " : "";
        if (log_to_journal())
                sd_journal_send("MESSAGE=%s%s %s %s -> %s: %s", mode, vmg_action_kind_name(a->kind),
                                vmg_resource_name(a->resource), oldv, newv, a->reason,
                                "PRIORITY=%d", r < 0 ? LOG_WARNING : LOG_NOTICE,
                                "VMGUARD_VM=%s", vm ? vm->dom->name : a->vm, "VMGUARD_UUID=%s", a->uuid,
                                "VMGUARD_TENANT=%s", tenant, "VMGUARD_RESOURCE=%s",
                                vmg_resource_name(a->resource), "VMGUARD_ACTION=%s",
                                vmg_action_kind_name(a->kind), "VMGUARD_OLD=%s", oldv,
                                "VMGUARD_NEW=%s", newv, "VMGUARD_REASON=%s", a->reason,
                                r < 0 ? "ERRNO=%d" : NULL, -r, NULL);
        else
                fprintf(stderr, "vmguard: %sguest %s tenant %s: %s %s %s -> %s: %s%s%s\n", mode,
                        a->vm, tenant, vmg_action_kind_name(a->kind), vmg_resource_name(a->resource),
                        oldv, newv, a->reason, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
}

static int apply_action(struct vmg_manager *m, struct vmg_vm *vm, const struct vmg_action *a) {
        struct applied *ap = applied_get(m, a->uuid, true);
        if (!ap)
                return -ENOMEM;
        if (ap->unmanaged)
                return 0;
        struct vmg_act_vm avm = {
                .uuid = vm->dom->uuid,
                .name = vm->dom->name,
                .cpu_dir = vm->cg ? vmg_cgroup_vm_dir(vm->cg, m->cgroup_version == 2 ? VMG_CG_UNIFIED : VMG_CG_CPU) : NULL,
                .blkio_dir = vm->cg ? vmg_cgroup_vm_dir(vm->cg, m->cgroup_version == 2 ? VMG_CG_UNIFIED : VMG_CG_BLKIO) : NULL,
        };
        int r = 0;
        ap->limit[a->resource] = a->new_limit;
        switch (a->resource) {
        case VMG_RES_CPU:
                if (!avm.cpu_dir)
                        return log_warning_errno(ENOENT, "guest %s: no cpu cgroup found: cannot apply CPU limit",
                                                 vm->dom->name);
                r = vmg_act_set_cpu(m->act, &avm, a->new_limit);
                break;
        case VMG_RES_DISK_READ_BPS:
        case VMG_RES_DISK_WRITE_BPS:
        case VMG_RES_DISK_READ_IOPS:
        case VMG_RES_DISK_WRITE_IOPS:
                r = apply_disk(m, vm, &avm, a->resource, a->new_limit);
                break;
        case VMG_RES_NET_RX_BPS:
        case VMG_RES_NET_TX_BPS:
                r = apply_net(m, vm, ap);
                break;
        default:
                return -EINVAL;
        }
        if (r < 0 && vmg_act_classify(r) == VMG_RESULT_PERMANENT) {
                /* Stop managing this guest: restore what we changed and alert, rather than
                 * retry a write the kernel refuses every tick. */
                ap->unmanaged = true;
                log_error_errno(r, "guest %s: permanent error applying %s: vmguard stops managing it: %m",
                                vm->dom->name, vmg_resource_name(a->resource));
                (void) vmg_act_release(m->act, vm->dom->uuid);
                (void) vmg_blkiotune_restore(m->bt, vm->dom->uuid);
                unshape_vm(m, vm);
        }
        return r < 0 ? r : 0;
}

static json_t *json_num_or_null(bool valid, double v) { return valid ? json_real(v) : json_null(); }

static json_t *vm_usage_json(const struct vmg_vm *vm) {
        const struct vmg_vm_rates *r = &vm->rates;
        const struct vmg_vm_counters *c = &vm->cur;
        bool ok = vm->have_rates;
        uint64_t rb = 0, wb = 0, ri = 0, wi = 0, txb = 0, rxb = 0, txp = 0, rxp = 0;
        for (size_t i = 0; i < c->n_devs; i++) {
                rb += c->devs[i].rbytes;
                wb += c->devs[i].wbytes;
                ri += c->devs[i].rios;
                wi += c->devs[i].wios;
        }
        for (size_t i = 0; i < c->n_ifaces; i++) {
                /* The tap's rx is what the guest sent. */
                txb += c->ifaces[i].rx_bytes;
                rxb += c->ifaces[i].tx_bytes;
                txp += c->ifaces[i].rx_packets;
                rxp += c->ifaces[i].tx_packets;
        }
        json_t *u = json_object();
        json_object_set_new(u, "cpu_cores", json_num_or_null(ok && r->cpu_valid, r->cpu_cores));
        json_object_set_new(u, "vcpu_delay_frac", json_num_or_null(ok && r->vcpu_delay_valid, r->vcpu_delay_frac));
        json_object_set_new(u, "disk_read_bytes_per_s", json_num_or_null(ok && r->disk_valid, r->disk_read_Bps));
        json_object_set_new(u, "disk_write_bytes_per_s", json_num_or_null(ok && r->disk_valid, r->disk_write_Bps));
        json_object_set_new(u, "disk_read_iops", json_num_or_null(ok && r->disk_valid, r->disk_read_iops));
        json_object_set_new(u, "disk_write_iops", json_num_or_null(ok && r->disk_valid, r->disk_write_iops));
        json_object_set_new(u, "net_tx_bits_per_s", json_num_or_null(ok && r->net_valid, r->net_tx_bps));
        json_object_set_new(u, "net_rx_bits_per_s", json_num_or_null(ok && r->net_valid, r->net_rx_bps));
        json_object_set_new(u, "net_tx_packets_per_s", json_num_or_null(ok && r->net_valid, r->net_tx_pps));
        json_object_set_new(u, "net_rx_packets_per_s", json_num_or_null(ok && r->net_valid, r->net_rx_pps));
        /* Cumulative counters, for Prometheus counters and rate() over them. */
        json_object_set_new(u, "cpu_seconds_total", json_num_or_null(c->cpu_valid, (double) c->cpu_usage_ns / 1e9));
        json_object_set_new(u, "cpu_throttled_seconds_total", json_real((double) c->cpu_throttled_ns / 1e9));
        json_object_set_new(u, "vcpu_delay_seconds_total",
                            json_num_or_null(c->vcpu_delay_valid, (double) c->vcpu_run_delay_ns / 1e9));
        json_object_set_new(u, "disk_read_bytes_total", json_integer((json_int_t) rb));
        json_object_set_new(u, "disk_write_bytes_total", json_integer((json_int_t) wb));
        json_object_set_new(u, "disk_read_ops_total", json_integer((json_int_t) ri));
        json_object_set_new(u, "disk_write_ops_total", json_integer((json_int_t) wi));
        json_object_set_new(u, "proc_write_bytes_total", json_integer((json_int_t) c->proc_wchar));
        json_object_set_new(u, "net_tx_bytes_total", json_integer((json_int_t) txb));
        json_object_set_new(u, "net_rx_bytes_total", json_integer((json_int_t) rxb));
        json_object_set_new(u, "net_tx_packets_total", json_integer((json_int_t) txp));
        json_object_set_new(u, "net_rx_packets_total", json_integer((json_int_t) rxp));
        return u;
}

json_t *vmg_manager_snapshot(struct vmg_manager *m, uint64_t now_ns) {
        json_t *vms = json_array();
        size_t throttled = 0;
        for (size_t i = 0; i < vmg_monitor_n_vms(m->mon); i++) {
                struct vmg_vm *vm = vmg_monitor_vm(m->mon, i);
                int t = vmg_policy_match(m->policy, vm->dom->tenant, vm->dom->name, vm->dom->uuid);
                json_t *res = json_object();
                bool any = false;
                uint64_t since = 0;
                for (int k = 0; k < VMG_RES_COUNT; k++) {
                        struct vmg_engine_limit_info li;
                        if (vmg_engine_query(m->engine, vm->dom->uuid, k, &li) < 0)
                                continue;
                        if (li.limit <= 0 && !li.suspect && !li.changed && li.cap <= 0)
                                continue;
                        any |= li.throttled;
                        if (li.throttled && li.changed && (!since || li.last_change_ns < since))
                                since = li.last_change_ns;
                        json_t *o = json_pack("{s:f, s:f, s:b, s:f, s:b, s:s}", "limit", li.limit, "cap",
                                              li.cap, "throttled", li.throttled, "usage", li.usage,
                                              "suspect", li.suspect, "reason", li.reason ? li.reason : "");
                        if (li.suspect)
                                json_object_set_new(o, "suspect_for_s",
                                                    json_real((double) (now_ns - li.suspect_since_ns) / 1e9));
                        if (li.calm)
                                json_object_set_new(o, "calm_for_s",
                                                    json_real((double) (now_ns - li.calm_since_ns) / 1e9));
                        if (li.strikes)
                                json_object_set_new(o, "repeat_offences", json_integer(li.strikes));
                        if (li.changed)
                                json_object_set_new(o, "changed_s_ago",
                                                    json_real((double) (now_ns - li.last_change_ns) / 1e9));
                        json_object_set_new(res, vmg_resource_name(k), o);
                }
                throttled += any;
                char src[128];
                struct applied *ap = applied_get(m, vm->dom->uuid, false);
                json_t *o = json_pack("{s:s, s:s, s:s?, s:i, s:b, s:b, s:o, s:o, s:s}", "name", vm->dom->name,
                                      "uuid", vm->dom->uuid, "tenant", t >= 0 ? m->policy->tenants[t].name : NULL,
                                      "qemu_pid", (int) vm->qemu_pid, "throttled", any, "unmanaged",
                                      ap && ap->unmanaged, "usage", vm_usage_json(vm), "resources", res,
                                      "sources", vmg_vm_sources(vm, src, sizeof src));
                if (any)
                        json_object_set_new(o, "throttled_for_s", json_real((double) (now_ns - since) / 1e9));
                if (vm->error)
                        json_object_set_new(o, "error", json_string(strerror(-vm->error)));
                json_array_append_new(vms, o);
        }

        json_t *svcs = json_array();
        for (size_t i = 0; i < vmg_monitor_n_services(m->mon); i++) {
                const struct vmg_svc *sv = vmg_monitor_service(m->mon, i);
                const struct vmg_service *pol = i < m->policy->host.n_services ? &m->policy->host.services[i] : NULL;
                const struct vmg_service_rates *r = &sv->rates;
                bool ok = sv->have_rates;
                bool healthy = ok;
                if (ok && pol) {
                        if (pol->max_run_delay_ms > 0 && r->run_delay_avg_ms > pol->max_run_delay_ms)
                                healthy = false;
                        if (pol->max_io_delay_frac > 0 && r->blkio_delay_valid && r->blkio_delay_frac > pol->max_io_delay_frac)
                                healthy = false;
                }
                json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:b, s:o, s:o, s:o, s:o, s:o}", "name", sv->name,
                                      "match", sv->match, "pids", (int) sv->n_pids, "up", sv->n_pids > 0,
                                      "healthy", healthy, "cpu_cores", json_num_or_null(ok, r->cpu_cores),
                                      "run_delay_avg_ms", json_num_or_null(ok, r->run_delay_avg_ms),
                                      "run_delay_frac", json_num_or_null(ok, r->run_delay_frac),
                                      "blkio_delay_frac", json_num_or_null(ok && r->blkio_delay_valid, r->blkio_delay_frac),
                                      "max_run_delay_ms", json_num_or_null(pol && pol->max_run_delay_ms > 0,
                                                                           pol ? pol->max_run_delay_ms : 0));
                json_object_set_new(o, "run_delay_seconds_total", json_real((double) sv->cur.run_delay_ns / 1e9));
                if (i < m->n_probers && m->probers[i]) {
                        double lat = vmg_prober_latency_ms(m->probers[i]);
                        json_object_set_new(o, "probe_latency_ms", json_num_or_null(lat >= 0, lat));
                        json_object_set_new(o, "probe_sent_total", json_integer((json_int_t) vmg_prober_sent(m->probers[i])));
                        json_object_set_new(o, "probe_answered_total",
                                            json_integer((json_int_t) vmg_prober_answered(m->probers[i])));
                        if (pol && pol->max_probe_latency_ms > 0 && lat > pol->max_probe_latency_ms)
                                json_object_set_new(o, "healthy", json_false());
                }
                json_object_set_new(o, "cpu_seconds_total", json_real((double) sv->cur.cpu_ns / 1e9));
                json_array_append_new(svcs, o);
        }

        const char *why = "";
        bool contended = vmg_engine_contended(m->engine, &why);
        struct vmg_host_rates h;
        bool hv = vmg_monitor_host_rates(m->mon, &h);
        json_t *host = json_pack("{s:o, s:o, s:o, s:o, s:o, s:b, s:s}", "psi_cpu_some",
                                 json_num_or_null(hv && h.psi_valid, h.psi_cpu_some), "psi_io_some",
                                 json_num_or_null(hv && h.psi_valid, h.psi_io_some), "psi_io_full",
                                 json_num_or_null(hv && h.psi_valid, h.psi_io_full), "cpu_busy_frac",
                                 json_num_or_null(hv && h.stat_valid, h.cpu_busy_frac), "iowait_frac",
                                 json_num_or_null(hv && h.stat_valid, h.iowait_frac), "contended", contended,
                                 "contention", why ? why : "");
        json_t *acts = json_object();
        for (int k = VMG_ACT_THROTTLE; k <= VMG_ACT_CAP; k++)
                json_object_set_new(acts, vmg_action_kind_name(k), json_integer((json_int_t) m->actions_by_kind[k]));
        json_t *daemon = json_pack("{s:i, s:s, s:I, s:f, s:f, s:f, s:b, s:I, s:o, s:b, s:i, s:i}", "pid", (int) getpid(),
                                   "version", VMG_DAEMON_VERSION, "ticks", (json_int_t) m->ticks, "tick_seconds",
                                   (double) m->tick_ns / 1e9, "last_tick_duration_seconds",
                                   (double) m->last_tick_duration_ns / 1e9, "last_tick_age_seconds",
                                   m->last_tick_ns ? (double) (now_ns - m->last_tick_ns) / 1e9 : -1.0, "dry_run",
                                   m->cfg.dry_run, "errors_total", (json_int_t) m->errors_total, "actions_total",
                                   acts, "libvirt_connected", vmg_libvirt_connected(m->lv), "tenants",
                                   (int) m->policy->n_tenants, "guests_throttled", (int) throttled);
        snprintf(m->status, sizeof m->status, "%zu guest(s), %zu throttled%s", vmg_monitor_n_vms(m->mon),
                 throttled, contended ? ", host contended" : "");
        json_t *tenants = json_array();
        for (size_t i = 0; i < m->policy->n_tenants; i++) {
                const struct vmg_tenant *t = &m->policy->tenants[i];
                json_t *match = json_array();
                for (size_t j = 0; j < t->n_matches; j++)
                        json_array_append_new(match, json_string(t->matches[j].value));
                json_array_append_new(tenants, json_pack("{s:s, s:s?, s:o}", "name", t->name, "file",
                                                         t->file, "vms", match));
        }
        json_t *pol = json_pack("{s:I, s:I, s:s, s:o}", "generation", (json_int_t) m->policy_generation,
                                "rejected_total", (json_int_t) m->policy_rejected, "last_error",
                                m->policy_error, "tenants", tenants);
        return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o}", "version", 1, "daemon", daemon, "host", host,
                         "services", svcs, "vms", vms, "policy", pol);
}

/* The snapshot also lands in the state directory each tick, for `vmguard status` when the
 * socket is not reachable and for node_exporter-style scrapers. tmpfs: cheap. */
static void write_status(struct vmg_manager *m, uint64_t now_ns) {
        json_t *root = vmg_manager_snapshot(m, now_ns);
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
        reshape_returned_taps(m);
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
                /* A guest without a fresh interval (vanished, first tick) is left out: the
                 * engine keeps nothing for guests it does not see. */
                if (!vm->have_rates)
                        continue;
                evms[k++] = (struct vmg_engine_vm){
                        .uuid = vm->dom->uuid,
                        .name = vm->dom->name,
                        .tenant = vmg_policy_match(m->policy, vm->dom->tenant, vm->dom->name, vm->dom->uuid),
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
        struct vmg_engine_input in = { .now_ns = now_ns, .services = esv, .n_services = ks,
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
                        r = apply_action(m, vm, a);
                if (r < 0)
                        m->errors_total++;
                m->actions_total++;
                if (a->kind <= VMG_ACT_CAP)
                        m->actions_by_kind[a->kind]++;
                log_action(m, vm, a, tenant, r);
        }
        free(acts);
        if (m->bt)
                vmg_manager_on_blkiotune(m);
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
                for (size_t i = 0; i < n; i++)
                        if (res[i].r < 0) {
                                m->errors_total++;
                                log_warning_errno(res[i].r, "guest %s: block I/O tune %s of %s failed: %m",
                                                  res[i].uuid, res[i].param, res[i].disk);
                        }
                if (n < ARRAY_SIZE(res))
                        break;
        }
}

uint64_t vmg_manager_tick_ns(const struct vmg_manager *m) { return m->tick_ns; }
const char *vmg_manager_status_line(struct vmg_manager *m) { return m->status; }
const struct vmg_policy *vmg_manager_policy(const struct vmg_manager *m) { return m->policy; }
