/* Applying the engine's actions to the levers (cgroup actuator, QEMU block I/O tune, tap
 * shaper), and the record of what is in force per guest. The manager owns the levers and the
 * record and passes them in; nothing here reads the clock or the policy. Every function
 * logs with the guest's name, the lever and the value. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"
#include "controller/act/actuator.h"
#include "controller/act/blkiotune.h"
#include "controller/act/shaper.h"
#include "controller/engine/engine.h"
#include "probes/monitor.h"
#include "probes/netlink.h"

/* Whether a desired limit is known to be in force. A write is believed only once seen to
 * succeed: a cgroup write that returned 0, a block I/O tune job that completed without
 * error. Until then the limit is out of sync and retried with backoff. */
struct vmg_sync {
        bool out;            /* not (yet) seen in force */
        unsigned bt_pending; /* block I/O tune jobs queued for it, not completed yet */
        uint64_t since_ns;   /* out of sync since (valid while out) */
        uint64_t next_ns;    /* next retry (0: waiting for bt_pending) */
        uint64_t backoff_ns; /* the wait after the next failure */
        int error;           /* the last failure (-errno), 0 when only unconfirmed */
};

/* Retry backoff of an out-of-sync limit: 1, 2, 4 ... 60 s. A transient failure (EBUSY, a
 * libvirt call that timed out because a backup or suspend held the domain's job: seen for
 * 37-78 s on a fresh machine) usually clears within a minute; retrying each tick would add
 * a libvirt call per disk per tick to a domain that is already stuck. */
#define VMG_SYNC_BACKOFF_MIN_NS (1 * NSEC_PER_SEC)
#define VMG_SYNC_BACKOFF_MAX_NS (60 * NSEC_PER_SEC)

/* What vmguard has put in force on one guest, per resource (0 = nothing of ours). */
struct vmg_applied {
        char uuid[VMG_UUID_LEN + 1];
        double limit[VMG_RES_COUNT]; /* desired: the engine's decision */
        struct vmg_sync sync[VMG_RES_COUNT];
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

/* Records a->new_limit as the desired limit of vm's a->resource and puts it in force
 * through that resource's lever. A permanent write error marks the guest unmanaged: what
 * vmguard changed on it is put back and it is left alone from then on (alert logged); any
 * other failure leaves the limit out of sync, retried by vmg_apply_reconcile(). Returns 0
 * or -errno. */
int vmg_apply_action(const struct vmg_levers *lv, struct vmg_applied_set *set, struct vmg_vm *vm,
                     const struct vmg_action *a, uint64_t now_ns);

/* Once a tick: puts every out-of-sync desired limit whose retry is due in force again
 * (guests of mon only). Returns how many retries failed (logged). */
unsigned vmg_apply_reconcile(const struct vmg_levers *lv, struct vmg_applied_set *set,
                             struct vmg_monitor *mon, uint64_t now_ns);

/* A finished block I/O tune job: confirms the limit it carried, or leaves it out of sync
 * with its retry scheduled. Results of other guests or of restores are ignored. */
void vmg_apply_blkiotune_done(struct vmg_applied_set *set, const struct vmg_blkiotune_result *res,
                              uint64_t now_ns);

/* How many desired limits are out of sync and since when the oldest one is (0 when none).
 * Unmanaged guests are not counted: nothing of vmguard's is in force on them. */
size_t vmg_applied_out_of_sync(const struct vmg_applied_set *set, uint64_t *ret_oldest_since_ns);

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
