/* The decision engine: a pure function from (policy, previous state, one tick's observation)
 * to (actions, new state). No I/O, no clock, no globals, no logging: the caller reads the
 * probes, passes `now`, applies the actions and logs them. docs/ENGINE.md explains the rules,
 * the constants and the flapping bound. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policies/policy.h"
#include "probes/sample.h"

/* One guest as seen this tick. uuid and name are borrowed for the duration of the call.
 * Every guest that still exists belongs in the input, sampled or not: a guest missing from
 * the input is gone, and the engine forgets it (the caller clears what it holds for it). */
struct vmg_engine_vm {
        const char *uuid;
        const char *name;
        int tenant; /* index into policy->tenants, -1 = unmanaged (never limited, may be a victim) */
        struct vmg_vm_rates rates;
        /* Exists but has no fresh rates this tick (a sample failed, a new QEMU pid has no
         * previous sample yet): rates are ignored, its state and limits are kept, and time
         * without rates counts toward neither calm nor noise once it exceeds the gap. */
        bool unsampled;
};

/* One protected host service; policy_index points into policy->host.services. */
struct vmg_engine_service {
        const char *name;
        int policy_index;
        struct vmg_service_rates rates;
};

struct vmg_engine_input {
        uint64_t now_ns; /* CLOCK_MONOTONIC of this tick; must not go backwards */
        uint64_t tick_ns; /* the tick the caller runs at (vmguardd --tick); 0 = policy->host.tick_ns */
        struct vmg_host_rates host;
        const struct vmg_engine_service *services;
        size_t n_services;
        const struct vmg_engine_vm *vms;
        size_t n_vms;
};

enum vmg_action_kind {
        VMG_ACT_THROTTLE, /* first limit below the cap because the guest is noisy */
        VMG_ACT_TIGHTEN,  /* contention persisted after the hold: limit *= step_down */
        VMG_ACT_RELAX,    /* calm: limit *= step_up */
        VMG_ACT_RELEASE,  /* noise limit lifted: new_limit is the cap, or 0 (unlimited) */
        VMG_ACT_CAP,      /* the tenant's hard cap (re)applied, contention or not */
};
/* "throttle", "tighten", "relax", "release", "cap"; "?" for an unknown kind. */
const char *vmg_action_kind_name(enum vmg_action_kind k);

struct vmg_action {
        char uuid[VMG_UUID_LEN + 1];
        char vm[VMG_NAME_MAX];
        int tenant;
        enum vmg_resource resource;
        double old_limit, new_limit; /* 0 = unlimited */
        enum vmg_action_kind kind;
        char reason[512];
};

struct vmg_engine_state;

/* Returns 0 and an empty state in *ret, or -ENOMEM. */
int vmg_engine_state_new(struct vmg_engine_state **ret);
/* Frees s (NULL is fine); returns NULL. */
struct vmg_engine_state *vmg_engine_state_free(struct vmg_engine_state *s);

/* One decision step. prev may be NULL (first tick) and is never modified, so a caller may
 * keep it until the actions have been applied. On success returns 0, *ret_state owns the new
 * state, *ret_actions an array of *ret_n actions to free() (NULL when *ret_n == 0).
 * Returns -EINVAL when p or in is NULL, an array is NULL with a non-zero count, or now_ns is
 * before prev's; -ENOMEM. On failure nothing is written to the outputs. */
int vmg_engine_step(const struct vmg_policy *p, const struct vmg_engine_state *prev,
                    const struct vmg_engine_input *in, struct vmg_engine_state **ret_state,
                    struct vmg_action **ret_actions, size_t *ret_n);

/* What the engine holds for one VM's resource, for `vmguard explain` and metrics. Strings
 * point into the state and live as long as it. */
struct vmg_engine_limit_info {
        const char *name;      /* the VM's name at its last tick */
        int tenant;
        double limit;          /* in force now, 0 = unlimited */
        double cap;            /* the hard cap in force, 0 = none */
        bool throttled;        /* limit is below the cap because of noise */
        double usage;          /* last valid figure, in the resource's unit */
        bool suspect;          /* over noisy_above (or at its limit) while contended */
        uint64_t suspect_since_ns;
        bool calm;
        uint64_t calm_since_ns;
        bool changed;          /* the engine has moved this limit at least once */
        uint64_t last_change_ns;
        unsigned strikes;      /* times throttled again soon after a release: the next
                                * release needs calm_for << strikes of calm */
        const char *reason;    /* why the limit is what it is; "" when never limited */
};

/* Fills *ret for the VM with this uuid. Returns 0, -ENOENT when the state does not know the
 * VM, -EINVAL for a bad resource or NULL argument. */
int vmg_engine_query(const struct vmg_engine_state *s, const char *uuid, enum vmg_resource r,
                     struct vmg_engine_limit_info *ret);

/* The last contention verdict: true when the host was contended at the last tick. *ret_reason
 * (optional) gets the signals in words, e.g. "dnsmasq I/O wait 45% > 30%; host PSI
 * io some 24% > 10%", or "" when calm. A NULL state is calm. */
bool vmg_engine_contended(const struct vmg_engine_state *s, const char **ret_reason);

/* The VMs the state tracks, in the order of the last input: count, and the uuid of the i-th
 * (NULL when i is out of range). */
size_t vmg_engine_vm_count(const struct vmg_engine_state *s);
const char *vmg_engine_vm_uuid(const struct vmg_engine_state *s, size_t i);
