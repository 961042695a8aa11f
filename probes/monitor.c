#include "probes/monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"
#include "probes/libvirt.h"
#include "probes/netlink.h"
#include "probes/procfs.h"
#include "probes/rates.h"
#include "probes/services.h"

/* Looking a service up again costs a scan of /proc; 10 s bounds how long a restarted
 * service goes unwatched while keeping the scan off most ticks. */
#define VMG_SERVICE_RESCAN_NS (10 * NSEC_PER_SEC)

struct vmg_monitor {
        struct vmg_cgroup_ctx *cg;
        struct vmg_procfs *proc;
        struct vmg_netlink *nl;

        struct vmg_vm *vms;
        size_t n_vms;

        struct vmg_host_counters host_prev, host_cur;
        bool host_have_prev;
        bool host_have_rates;
        struct vmg_host_rates host_rates;

        struct vmg_svc *svcs;
        size_t n_svcs;
        uint64_t delayacct_since; /* VMG_DELAYACCT_OFF, 0, or when vmguard turned it on */

        /* Scratch for the one netlink read per tick that covers every guest's taps. */
        struct vmg_iface_counters *ifs;
        size_t ifs_cap;
};

int vmg_monitor_new(const struct vmg_monitor_paths *paths, struct vmg_monitor **ret) {
        struct vmg_monitor *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        int r = vmg_cgroup_ctx_new(&paths->cgroup, &m->cg);
        if (r < 0) {
                log_error_errno(r, "cannot find cgroup hierarchies under %s: %m",
                                paths->cgroup.root ? paths->cgroup.root : VMG_CGROUP_ROOT);
                goto fail;
        }
        r = vmg_procfs_new(paths->proc_root, &m->proc);
        if (r < 0) {
                log_error_errno(r, "cannot open %s: %m", paths->proc_root ? paths->proc_root : VMG_PROC_ROOT);
                goto fail;
        }
        r = vmg_netlink_new(paths->netns_dir, &m->nl);
        if (r < 0) {
                log_error_errno(r, "cannot open rtnetlink: %m");
                goto fail;
        }
        bool delayacct = false;
        if (vmg_procfs_task_delayacct(m->proc, &delayacct) < 0)
                delayacct = false;
        m->delayacct_since = delayacct ? 0 : VMG_DELAYACCT_OFF;
        *ret = m;
        return 0;
fail:
        vmg_monitor_free(m);
        return r;
}

static void vm_done(struct vmg_vm *vm) {
        vmg_domxml_free(vm->dom);
        vmg_cgroup_vm_free(vm->cg);
        vmg_proc_qemu_free(vm->proc);
        memset(vm, 0, sizeof *vm);
}

static void svc_done(struct vmg_svc *s) {
        free(s->name);
        free(s->match);
        free(s->exe);
        free(s->pids);
        memset(s, 0, sizeof *s);
}

struct vmg_monitor *vmg_monitor_free(struct vmg_monitor *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_svcs; i++)
                svc_done(&m->svcs[i]);
        free(m->svcs);
        for (size_t i = 0; i < m->n_vms; i++)
                vm_done(&m->vms[i]);
        free(m->vms);
        free(m->ifs);
        vmg_netlink_free(m->nl);
        vmg_procfs_free(m->proc);
        vmg_cgroup_ctx_free(m->cg);
        free(m);
        return NULL;
}

/* Opens what a guest is sampled through and is not open yet. Failures leave the guest listed
 * with its error: an admin looking at `vmguard top` should see the guest and why it has no
 * figures; the next listing tries again (a transient -ENOMEM must not leave it unsampled). */
static void vm_open(struct vmg_monitor *m, struct vmg_vm *vm) {
        struct vmg_domain_ref ref = {
                .name = vm->dom->name,
                .id = vm->dom->id,
                .uuid = vm->dom->uuid,
                .qemu_pid = vm->qemu_pid,
        };
        int r = vm->cg ? 0 : vmg_cgroup_vm_open(m->cg, &ref, &vm->cg);
        if (r < 0) {
                log_warning_errno(r, "guest %s: cgroup directories not found: %m", vm->dom->name);
                vm->error = r;
        }
        if (vm->qemu_pid > 0 && !vm->proc) {
                r = vmg_proc_qemu_open(m->proc, vm->qemu_pid, vm->dom->name, &vm->proc);
                if (r < 0) {
                        log_warning_errno(r, "guest %s: QEMU process %d not readable: %m",
                                          vm->dom->name, (int) vm->qemu_pid);
                        if (!vm->error)
                                vm->error = r;
                }
        }
}

static struct vmg_vm *find_same(struct vmg_vm *vms, size_t n, const struct vmg_domxml *d) {
        for (size_t i = 0; i < n; i++)
                if (vms[i].dom && vms[i].dom->id == d->id && strcmp(vms[i].dom->uuid, d->uuid) == 0)
                        return &vms[i];
        return NULL;
}

int vmg_monitor_set_domains(struct vmg_monitor *m, struct vmg_domxml **doms,
                            const pid_t *pids, size_t n) {
        struct vmg_vm *next = calloc(n ? n : 1, sizeof *next);
        if (!next) {
                for (size_t i = 0; i < n; i++)
                        vmg_domxml_free(doms[i]);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct vmg_vm *old = find_same(m->vms, m->n_vms, doms[i]);
                if (old && old->qemu_pid == pids[i]) {
                        /* Keep handles and the previous sample; take the new XML, which
                         * may list hot-plugged disks or NICs. */
                        next[i] = *old;
                        memset(old, 0, sizeof *old);
                        vmg_domxml_free(next[i].dom);
                        next[i].dom = doms[i];
                        /* Try again what failed to open, backing off (1, 2, 4 … 64
                         * listings): a domain with no cgroup at all (another driver's, a
                         * guest mid-teardown) would otherwise cost a walk of every
                         * hierarchy and a warning at every listing, which under domain
                         * churn is every tick. */
                        if (!next[i].cg || (next[i].qemu_pid > 0 && !next[i].proc)) {
                                unsigned shift = next[i].open_failures > 0 ? next[i].open_failures - 1 : 0;
                                if (shift > 6)
                                        shift = 6;
                                if (++next[i].listings_waited >= 1u << shift) {
                                        next[i].listings_waited = 0;
                                        next[i].error = 0;
                                        vm_open(m, &next[i]);
                                        if (!next[i].cg || (next[i].qemu_pid > 0 && !next[i].proc))
                                                next[i].open_failures++;
                                        else
                                                next[i].open_failures = 0;
                                }
                        }
                        continue;
                }
                next[i].dom = doms[i];
                next[i].qemu_pid = pids[i];
                vm_open(m, &next[i]);
                if (!next[i].cg || (next[i].qemu_pid > 0 && !next[i].proc))
                        next[i].open_failures = 1;
        }
        for (size_t i = 0; i < m->n_vms; i++)
                vm_done(&m->vms[i]);
        free(m->vms);
        m->vms = next;
        m->n_vms = n;
        return 0;
}

static void sample_service(struct vmg_monitor *m, struct vmg_svc *s, uint64_t now_ns);

int vmg_monitor_set_listed(struct vmg_monitor *m, struct vmg_domain *doms, size_t n) {
        _cleanup_free_ struct vmg_domxml **defs = calloc(n ? n : 1, sizeof *defs);
        _cleanup_free_ pid_t *pids = calloc(n ? n : 1, sizeof *pids);
        if (!defs || !pids) {
                vmg_domains_free(doms, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                defs[i] = TAKE_PTR(doms[i].def);
                pids[i] = doms[i].qemu_pid;
        }
        vmg_domains_free(doms, n);
        return vmg_monitor_set_domains(m, defs, pids, n);
}

static int sample_vm(struct vmg_monitor *m, struct vmg_vm *vm, uint64_t now_ns,
                     struct vmg_vm_counters *c) {
        memset(c, 0, sizeof *c);
        c->ts_ns = now_ns;
        int r, err = 0;
        if (vm->cg) {
                r = vmg_cgroup_vm_read(vm->cg, c);
                if (r < 0)
                        err = r;
        }
        if (vm->proc) {
                r = vmg_proc_qemu_read(vm->proc, c);
                if (r < 0 && !err)
                        err = r;
        }
        (void) m;
        return err;
}

static int ensure_ifs(struct vmg_monitor *m, size_t need) {
        if (need <= m->ifs_cap)
                return 0;
        struct vmg_iface_counters *p = realloc(m->ifs, need * sizeof *p);
        if (!p)
                return -ENOMEM;
        m->ifs = p;
        m->ifs_cap = need;
        return 0;
}

int vmg_monitor_sample(struct vmg_monitor *m, uint64_t now_ns) {
        _cleanup_free_ struct vmg_vm_counters *cur = calloc(m->n_vms ? m->n_vms : 1, sizeof *cur);
        if (!cur)
                return -ENOMEM;

        size_t n_taps = 0;
        for (size_t i = 0; i < m->n_vms; i++)
                n_taps += m->vms[i].dom->n_ifaces < VMG_MAX_IFACES ? m->vms[i].dom->n_ifaces
                                                                    : VMG_MAX_IFACES;
        int r = ensure_ifs(m, n_taps);
        if (r < 0)
                return r;

        size_t k = 0;
        for (size_t i = 0; i < m->n_vms; i++) {
                struct vmg_vm *vm = &m->vms[i];
                r = sample_vm(m, vm, now_ns, &cur[i]);
                if (r == -ENOENT || r == -ENODEV || r == -ESRCH) {
                        if (!vm->vanished)
                                log_debug("guest %s: vanished during sampling", vm->dom->name);
                        vm->vanished = true;
                } else if (r < 0 && r != vm->error) {
                        log_warning_errno(r, "guest %s: sampling failed: %m", vm->dom->name);
                }
                vm->error = r;
                size_t nif = vm->dom->n_ifaces < VMG_MAX_IFACES ? vm->dom->n_ifaces : VMG_MAX_IFACES;
                for (size_t j = 0; j < nif; j++, k++) {
                        memset(&m->ifs[k], 0, sizeof m->ifs[k]);
                        snprintf(m->ifs[k].tap, sizeof m->ifs[k].tap, "%s", vm->dom->ifaces[j].tap);
                }
        }
        if (n_taps > 0)
                (void) vmg_netlink_read(m->nl, m->ifs, n_taps);

        k = 0;
        for (size_t i = 0; i < m->n_vms; i++) {
                struct vmg_vm *vm = &m->vms[i];
                size_t nif = vm->dom->n_ifaces < VMG_MAX_IFACES ? vm->dom->n_ifaces : VMG_MAX_IFACES;
                cur[i].n_ifaces = nif;
                for (size_t j = 0; j < nif; j++, k++)
                        cur[i].ifaces[j] = m->ifs[k];
                if (vm->error < 0 && vm->vanished) {
                        vm->have_rates = false;
                        continue;
                }
                if (vm->cur.ts_ns) {
                        vm->prev = vm->cur;
                        vm->have_prev = true;
                }
                vm->cur = cur[i];
                vm->have_rates = vm->have_prev &&
                                 vmg_rates_compute(&vm->prev, &vm->cur, &vm->rates) == 0;
        }

        for (size_t i = 0; i < m->n_svcs; i++)
                sample_service(m, &m->svcs[i], now_ns);

        struct vmg_host_counters h = { .ts_ns = now_ns };
        r = vmg_procfs_read_host(m->proc, &h);
        if (r < 0)
                return log_error_errno(r, "cannot read host counters under %s: %m",
                                       vmg_procfs_root(m->proc));
        if (m->host_cur.ts_ns) {
                m->host_prev = m->host_cur;
                m->host_have_prev = true;
        }
        m->host_cur = h;
        m->host_have_rates = m->host_have_prev &&
                             vmg_host_rates_compute(&m->host_prev, &m->host_cur, &m->host_rates) == 0;
        return 0;
}

int vmg_monitor_set_services(struct vmg_monitor *m, const struct vmg_service *svcs, size_t n) {
        struct vmg_svc *next = calloc(n ? n : 1, sizeof *next);
        if (!next)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                next[i].name = strdup(svcs[i].name);
                next[i].match = strdup(svcs[i].match);
                next[i].kind = svcs[i].kind;
                next[i].exe = svcs[i].exe ? strdup(svcs[i].exe) : NULL;
                next[i].uid = svcs[i].uid;
                if (!next[i].name || !next[i].match || (svcs[i].exe && !next[i].exe)) {
                        for (size_t j = 0; j <= i; j++)
                                svc_done(&next[j]);
                        free(next);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < m->n_svcs; i++)
                svc_done(&m->svcs[i]);
        free(m->svcs);
        m->svcs = next;
        m->n_svcs = n;
        return 0;
}

size_t vmg_monitor_n_services(const struct vmg_monitor *m) { return m->n_svcs; }
const struct vmg_svc *vmg_monitor_service(const struct vmg_monitor *m, size_t i) {
        return i < m->n_svcs ? &m->svcs[i] : NULL;
}

static void sample_service(struct vmg_monitor *m, struct vmg_svc *s, uint64_t now_ns) {
        struct vmg_service_counters c = { .ts_ns = now_ns };
        int r;
        bool rescan = !s->scanned_ns || now_ns - s->scanned_ns >= VMG_SERVICE_RESCAN_NS;
        for (int attempt = 0; attempt < 2; attempt++) {
                if (rescan) {
                        free(s->pids);
                        s->pids = NULL;
                        s->n_pids = 0;
                        const struct vmg_service def = { .kind = s->kind, .match = s->match,
                                                         .exe = s->exe, .uid = s->uid };
                        r = vmg_service_find(m->proc, m->cg, &def, false, &s->pids, &s->n_pids);
                        s->scanned_ns = now_ns;
                        if (r < 0 && r != -ENOENT)
                                log_debug_errno(r, "service %s: lookup of %s failed: %m", s->name, s->match);
                }
                r = vmg_service_read(m->proc, s->pids, s->n_pids, m->delayacct_since, &c);
                c.ts_ns = now_ns;
                /* A process of the service exited: look again at once, not in 10 s. */
                if (r >= 0 && c.n_pids == s->n_pids && c.valid)
                        break;
                if (rescan)
                        break;
                rescan = true;
        }
        s->error = r < 0 ? r : 0;
        if (s->cur.ts_ns) {
                s->prev = s->cur;
        }
        s->cur = c;
        s->have_rates = s->prev.ts_ns && s->prev.valid && c.valid &&
                        vmg_service_rates_compute(&s->prev, &s->cur, &s->rates) == 0 &&
                        s->rates.valid;
}

size_t vmg_monitor_n_vms(const struct vmg_monitor *m) { return m->n_vms; }
struct vmg_vm *vmg_monitor_vm(struct vmg_monitor *m, size_t i) {
        return i < m->n_vms ? &m->vms[i] : NULL;
}

struct vmg_vm *vmg_monitor_find(struct vmg_monitor *m, const char *uuid) {
        for (size_t i = 0; i < m->n_vms; i++)
                if (strcmp(m->vms[i].dom->uuid, uuid) == 0)
                        return &m->vms[i];
        return NULL;
}

bool vmg_monitor_host_rates(const struct vmg_monitor *m, struct vmg_host_rates *ret) {
        if (!m->host_have_rates)
                return false;
        *ret = m->host_rates;
        return true;
}

struct vmg_cgroup_ctx *vmg_monitor_cgroup(struct vmg_monitor *m) { return m->cg; }
struct vmg_procfs *vmg_monitor_procfs(struct vmg_monitor *m) { return m->proc; }
struct vmg_netlink *vmg_monitor_netlink(struct vmg_monitor *m) { return m->nl; }

const char *vmg_vm_sources(const struct vmg_vm *vm, char *buf, size_t len) {
        const struct vmg_vm_counters *c = &vm->cur;
        const char *net = "none";
        for (size_t j = 0; j < c->n_ifaces; j++)
                if (c->ifaces[j].found)
                        net = "netlink";
        snprintf(buf, len, "cpu=%s disk=%s net=%s", vmg_source_name(c->cpu_source),
                 vmg_source_name(vm->rates.disk_source), net);
        return buf;
}

void vmg_monitor_set_delayacct_since(struct vmg_monitor *m, uint64_t start_ticks) {
        m->delayacct_since = start_ticks;
}
