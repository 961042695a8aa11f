/* The daemon's state, its lifecycle (start, restore, stop), reload and tick: sample
 * (monitor) -> decide (engine) -> act (apply.c: cgroup actuator, QEMU block I/O tune, tap
 * shaper) -> report (journal log; snapshot.c: status file and socket). One Manager, passed
 * explicitly; the event loop lives in vmguardd.c. */
#pragma once
#include <stdbool.h>
#include <jansson.h>
#include <stdint.h>

#include "policies/policy.h"

struct vmg_manager_config {
        const char *host_file;   /* NULL: /etc/vmguard/host.json when present */
        const char *tenants_dir; /* NULL: /etc/vmguard/tenants.d */
        const char *uri;         /* libvirt; NULL: qemu:///system */
        const char *state_dir;   /* NULL: /run/vmguard */
        const char *cgroup_root; /* NULL: /sys/fs/cgroup */
        const char *proc_root;   /* NULL: /proc */
        const char *netns_dir;   /* NULL: /run/netns */
        const char *libvirt_run_dir; /* QEMU pid files; NULL: /run/libvirt/qemu (tests) */
        const char *mountinfo;   /* NULL: /proc/self/mountinfo (tests) */
        const char *lock_file;   /* the host-wide instance lock; NULL: VMG_LOCK_FILE */
        bool dry_run;            /* decide and log everything, change nothing */
        uint64_t tick_ns;        /* 0: the host policy's tick */
};

struct vmg_manager;

/* Unless dry_run: takes the host's and the state dir's instance locks (-EBUSY, logged with
 * the running instance's pid, when another vmguardd holds either: nothing is touched then),
 * opens the journal and puts back every original a previous vmguard left (crash or SIGKILL:
 * cgroup values, block I/O tune, sysctls, services' cgroups) BEFORE anything that can fail
 * for another reason: the policy is loaded only then, and libvirt listed after it, so a
 * broken tenant file or a hung libvirtd never leaves a guest throttled. Then opens probes
 * and actors and lists the guests. Returns 0, or -errno with the reason logged (bad policy
 * with file:line:field, no cgroups, unwritable state dir, another instance, ...). */
int vmg_manager_new(const struct vmg_manager_config *cfg, struct vmg_manager **ret);

/* Puts back every value vmguard changed, then frees. Returns NULL. */
struct vmg_manager *vmg_manager_free(struct vmg_manager *m);

/* One tick at now_ns (CLOCK_MONOTONIC). Returns 0 or -errno (logged); a failing guest is
 * logged and skipped, never fatal. */
int vmg_manager_tick(struct vmg_manager *m, uint64_t now_ns);

/* Validates the policy files again; on success swaps them in, on failure keeps the old
 * set and returns the error (logged with file:line:col). */
int vmg_manager_reload(struct vmg_manager *m);

/* Lists the guests again (libvirt lifecycle event, reconnect). */
int vmg_manager_rescan(struct vmg_manager *m);

/* Fds the loop must watch: libvirt events and block I/O tune completions. */
int vmg_manager_libvirt_fd(const struct vmg_manager *m);
int vmg_manager_blkiotune_fd(const struct vmg_manager *m);
/* Handles readable libvirt events: when a guest started or stopped, the next tick lists
 * the guests again (once, however many events came). */
int vmg_manager_on_libvirt(struct vmg_manager *m);
/* Handles finished block I/O tune jobs (logs failures). */
void vmg_manager_on_blkiotune(struct vmg_manager *m);

/* The status snapshot at now_ns: its JSON contract is in controller/daemon/snapshot.h.
 * Also refreshes the sd_notify status line. The caller owns it. */
json_t *vmg_manager_snapshot(struct vmg_manager *m, uint64_t now_ns);
/* The snapshot built at the end of the last tick that got that far (borrowed: valid until
 * the next tick or vmg_manager_free()); NULL before the first. */
const json_t *vmg_manager_last_snapshot(const struct vmg_manager *m);

/* The policy in force (replaced on a successful reload: do not keep it across ticks). */
const struct vmg_policy *vmg_manager_policy(const struct vmg_manager *m);

uint64_t vmg_manager_tick_ns(const struct vmg_manager *m);
/* "N guests, M throttled" for sd_notify STATUS=. */
const char *vmg_manager_status_line(struct vmg_manager *m);
