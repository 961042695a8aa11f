/* The monitor: the set of running guests and one sample of each per tick. libvirt (or a
 * test) says which guests exist; each tick then reads only cgroupfs, procfs and netlink,
 * so one domain stuck in a libvirt job stalls nothing. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/cgroup.h"
#include "probes/domxml.h"
#include "policies/policy.h"
#include "probes/sample.h"

struct vmg_monitor_paths {
        struct vmg_cgroup_paths cgroup;
        const char *proc_root; /* NULL: /proc */
        const char *netns_dir; /* NULL: /run/netns */
};

/* One guest as the monitor sees it. Owned by the monitor; valid until the next
 * vmg_monitor_set_domains(). */
struct vmg_vm {
        struct vmg_domxml *dom;     /* name, uuid, id, tenant, disks, taps */
        pid_t qemu_pid;
        struct vmg_cgroup_vm *cg;   /* NULL when its cgroups were not found */
        struct vmg_proc_qemu *proc; /* NULL when the QEMU pid is unknown */
        struct vmg_vm_counters prev, cur;
        bool have_prev;             /* cur and prev both hold a sample */
        bool have_rates;
        struct vmg_vm_rates rates;
        int error;                  /* last sampling error (-errno), 0 when fine */
        unsigned open_failures;     /* listings whose open of a missing handle failed */
        unsigned listings_waited;   /* listings since the last try (backoff) */
        bool vanished;              /* its cgroup or process disappeared */
};

struct vmg_monitor;

/* Opens cgroup, procfs and netlink contexts. Returns 0, -ENOMEM, or the -errno of the
 * first context that failed (logged with its path). */
int vmg_monitor_new(const struct vmg_monitor_paths *paths, struct vmg_monitor **ret);
struct vmg_monitor *vmg_monitor_free(struct vmg_monitor *m);
/* kernel.task_delayacct was turned on at start_ticks (clock ticks since boot, the unit of
 * /proc/PID/stat field 22): services' processes older than that have no I/O-delay record
 * (vmg_service_read()). */
void vmg_monitor_set_delayacct_since(struct vmg_monitor *m, uint64_t start_ticks);

/* Replaces the inventory with doms[0..n) (ownership of each domxml passes to the monitor,
 * also on error). Guests already known (same UUID and domain id) keep their handles and
 * previous sample; new ones are opened; missing ones are dropped. A guest whose cgroups
 * or process cannot be found is kept with error set, so it still shows. Returns 0 or
 * -ENOMEM. */
int vmg_monitor_set_domains(struct vmg_monitor *m, struct vmg_domxml **doms,
                            const pid_t *pids, size_t n);

/* The same from libvirt's listing: takes each domain's parsed XML and QEMU pid, then frees
 * the list (also on error). Returns 0 or -ENOMEM. */
struct vmg_domain;
int vmg_monitor_set_listed(struct vmg_monitor *m, struct vmg_domain *doms, size_t n);

/* One tick: reads every guest's counters, the host's and computes rates against the
 * previous tick. now_ns is CLOCK_MONOTONIC. Per-guest errors are recorded in vm->error
 * (a vanished guest is expected); returns 0, or -errno when the host counters could not be
 * read. */
int vmg_monitor_sample(struct vmg_monitor *m, uint64_t now_ns);

size_t vmg_monitor_n_vms(const struct vmg_monitor *m);
struct vmg_vm *vmg_monitor_vm(struct vmg_monitor *m, size_t i);
/* The guest with this UUID, or NULL. */
struct vmg_vm *vmg_monitor_find(struct vmg_monitor *m, const char *uuid);

/* A protected host service as sampled: its processes are looked up again when one exits
 * and at least every VMG_SERVICE_RESCAN_NS, so a restarted service is picked up. */
struct vmg_svc {
        char *name;
        enum vmg_service_kind kind;
        char *match;
        char *exe;              /* owner check of a process service, see struct vmg_service */
        uid_t uid;
        pid_t *pids;
        size_t n_pids;
        uint64_t scanned_ns;
        struct vmg_service_counters prev, cur;
        bool have_rates;
        struct vmg_service_rates rates;
        int error;
};

/* Replaces the list of services to watch (copied). Returns 0 or -ENOMEM. */
int vmg_monitor_set_services(struct vmg_monitor *m, const struct vmg_service *svcs, size_t n);
size_t vmg_monitor_n_services(const struct vmg_monitor *m);
const struct vmg_svc *vmg_monitor_service(const struct vmg_monitor *m, size_t i);

/* Host rates of the last tick; false before two samples. */
bool vmg_monitor_host_rates(const struct vmg_monitor *m, struct vmg_host_rates *ret);

/* Contexts shared with the actors and the service probes. */
struct vmg_cgroup_ctx *vmg_monitor_cgroup(struct vmg_monitor *m);
struct vmg_procfs *vmg_monitor_procfs(struct vmg_monitor *m);
struct vmg_netlink *vmg_monitor_netlink(struct vmg_monitor *m);

/* Where each figure came from, e.g. "cpu=cgroup-v2 disk=proc net=netlink". */
const char *vmg_vm_sources(const struct vmg_vm *vm, char *buf, size_t len);
