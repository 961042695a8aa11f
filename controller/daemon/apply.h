/* Applying the engine's actions to the levers (cgroup actuator, QEMU block I/O tune, tap
 * shaper), and the record of what is in force per guest. The manager owns the levers and the
 * record and passes them in; nothing here reads the clock or the policy. Every function
 * logs with the guest's name, the lever and the value. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "controller/act/actuator.h"
#include "controller/act/blkiotune.h"
#include "controller/act/shaper.h"
#include "controller/engine/engine.h"
#include "probes/monitor.h"
#include "probes/netlink.h"

/* What vmguard has put in force on one guest, per resource (0 = nothing of ours). */
struct vmg_applied {
        char uuid[VMG_UUID_LEN + 1];
        double limit[VMG_RES_COUNT];
        bool unmanaged; /* a permanent write error: hands off this guest, alert raised */
        bool shaped;    /* some tap of it carries vmguard's tc pieces */
        /* Per tap: the netlink generation of the device the limit was last put on (a new
         * device under the same name carries none of it), and whether its loss was logged. */
        unsigned long tap_gen[VMG_MAX_IFACES];
        bool tap_lost[VMG_MAX_IFACES];
};

/* One per guest vmguard acted on; the manager owns it. */
struct vmg_applied_set {
        struct vmg_applied *v;
        size_t n;
};

/* The guest's record; with create, a zeroed one is added when missing. NULL when missing
 * (or, with create, out of memory). */
struct vmg_applied *vmg_applied_get(struct vmg_applied_set *set, const char *uuid, bool create);
void vmg_applied_forget(struct vmg_applied_set *set, const char *uuid);
const struct vmg_applied *vmg_applied_find(const struct vmg_applied_set *set, const char *uuid);

/* The levers, borrowed from the manager. bt and shaper may be NULL (not available). */
struct vmg_levers {
        struct vmg_actuator *act;
        struct vmg_blkiotune *bt;
        struct vmg_shaper *shaper;
        const struct vmg_netlink *nl; /* where each tap lives, and its device generation */
        int cgroup_version;
};

/* Puts a->new_limit in force on vm through the lever of a->resource and records it. A
 * permanent write error marks the guest unmanaged: what vmguard changed on it is put back
 * and it is left alone from then on (alert logged). Returns 0 or -errno. */
int vmg_apply_action(const struct vmg_levers *lv, struct vmg_applied_set *set, struct vmg_vm *vm,
                     const struct vmg_action *a);

/* Removes vmguard's tc pieces from every tap of a guest: on release, at stop, and at
 * start for pieces a killed vmguard left behind (they are recognisable by handle). */
void vmg_unshape_vm(const struct vmg_levers *lv, const struct vmg_vm *vm);

/* Puts a guest's network limit back on a tap that came back as a new device (namespace or
 * tap made again). Returns how many such puts failed (logged). */
unsigned vmg_reshape_returned_taps(const struct vmg_levers *lv, struct vmg_applied_set *set,
                                   struct vmg_monitor *mon);

/* One journal entry (or stderr line) per action: guest, tenant, resource, old -> new and
 * the engine's reason; marked dry-run or FAILED. */
void vmg_log_action(const struct vmg_vm *vm, const struct vmg_action *a, const char *tenant,
                    bool dry_run, int r);
