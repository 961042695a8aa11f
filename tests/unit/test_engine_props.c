/* Properties of the engine over many random traces (seeded, reproducible): floors never
 * violated, caps always held, limit changes bounded per minute on square-wave loads, no
 * throttle without harm a limit on that resource can undo, tenants never cross, a step is a
 * pure function of its arguments, and no guest stays throttled long after the harm is gone.
 * The plant is crude on purpose: a guest's usage follows min(demand, limit), host PSI follows
 * the sum of disk writes, a guest held under its CPU demand by a quota waits on it (its
 * throttled time, and the same wait in its steal).
 *
 * What is counted: each property (an assertion site below, enum prop) counts once per seed
 * in which it was exercised and never failed, not once per execution; every failure is
 * reported. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "controller/engine/engine.h"
#include "tests/harness.h"
#include "tests/unit/test_engine_oracle.h"

/* The properties checked on random traces, one per assertion site. */
enum prop {
        P_KNOWN_VM,     /* every action names a VM of the input */
        P_TENANT,       /* an action carries its VM's own tenant, never an unmanaged VM's */
        P_RULE,         /* only resources the tenant has a rule for */
        P_CAP,          /* no new limit over the cap */
        P_FLOOR,        /* no new limit under the floor */
        P_HARM,         /* throttle/tighten only under harm a limit on it can undo */
        P_OLD_LIMIT,    /* old_limit is the state's previous limit */
        P_HOLD,         /* min_hold between two moves of one limit */
        P_STATE_CAP,    /* the state's limit is within the cap every tick */
        P_PURE,         /* the same step twice gives the same answer */
        P_RELEASE,      /* released in time once the harm is gone */
        P_COUNT,
};
static const char *const prop_names[P_COUNT] = {
        "known VM", "own tenant", "rule exists", "cap", "floor", "harm of its kind", "old_limit",
        "min_hold", "state within cap", "purity", "release after calm",
};

#define N_TENANTS 3
#define N_VMS 6
#define MINUTE (60 * NSEC_PER_SEC)

struct rng {
        uint64_t s;
};

/* xorshift64*: enough for test data, and identical on every machine for a given seed. */
static uint64_t rnd(struct rng *r) {
        r->s ^= r->s >> 12;
        r->s ^= r->s << 25;
        r->s ^= r->s >> 27;
        return r->s * 2685821657736338717ULL;
}

static double unif(struct rng *r, double lo, double hi) {
        return lo + (hi - lo) * ((double) (rnd(r) >> 11) / (double) (1ULL << 53));
}

static bool chance(struct rng *r, double p) {
        return unif(r, 0, 1) < p;
}

/* Per VM per resource: the times of the engine's own moves in this life of the VM. */
struct moves {
        uint64_t at[64]; /* ring of the last moves */
        size_t n;
};

struct world {
        struct vmg_policy pol;
        struct vmg_tenant tenants[N_TENANTS];
        char tnames[N_TENANTS][16];
        struct vmg_service svc;
        char uuids[N_VMS][40], names[N_VMS][16];
        int tenant[N_VMS];
        bool present[N_VMS];
        double demand_hi[N_VMS][VMG_RES_COUNT];
        uint64_t period[N_VMS], on_for[N_VMS], phase[N_VMS];
        struct moves moves[N_VMS][VMG_RES_COUNT];
        unsigned max_per_minute;
        unsigned bound;
        size_t n_actions, n_throttles;
        unsigned long evaluated[P_COUNT], failed[P_COUNT];
        /* Per VM per resource: when the world became calm for it while it was throttled (0 =
         * not counting), and the deadline for its next loosening move. */
        uint64_t calm_from[N_VMS][VMG_RES_COUNT];
        double longest_held_s; /* the longest wait seen from calm to a loosening move */
};

/* One property check: counted per seed (see the top), failures reported at once. */
#define PROP(w, p, cond, ...)                                   \
        do {                                                    \
                (w)->evaluated[p]++;                            \
                if (!(cond)) {                                  \
                        (w)->failed[p]++;                       \
                        CHECK_MSG(false, __VA_ARGS__);          \
                }                                               \
        } while (0)

static void set_usage(struct vmg_vm_rates *rt, enum vmg_resource r, double v) {
        switch (r) {
        case VMG_RES_CPU: rt->cpu_cores = v; break;
        case VMG_RES_DISK_READ_BPS: rt->disk_read_Bps = v; break;
        case VMG_RES_DISK_WRITE_BPS: rt->disk_write_Bps = v; break;
        case VMG_RES_DISK_READ_IOPS: rt->disk_read_iops = v; break;
        case VMG_RES_DISK_WRITE_IOPS: rt->disk_write_iops = v; break;
        case VMG_RES_NET_RX_BPS: rt->net_rx_bps = v; break;
        case VMG_RES_NET_TX_BPS: rt->net_tx_bps = v; break;
        default: break;
        }
}

static void make_world(struct world *w, struct rng *g) {
        static const uint64_t holds[] = { 5, 10, 15, 30 };

        memset(w, 0, sizeof(*w));
        w->pol.tenants = w->tenants;
        w->pol.n_tenants = N_TENANTS;
        w->pol.host = (struct vmg_host_policy) {
                .psi_io_some = 0.10, .psi_cpu_some = 0.5, .vm_steal = 0.25,
                .min_hold_ns = holds[rnd(g) % ARRAY_SIZE(holds)] * NSEC_PER_SEC,
                .step_down = unif(g, 0.3, 0.9), .step_up = unif(g, 1.2, 3),
                .services = &w->svc, .n_services = 1,
        };
        w->svc = (struct vmg_service) { .name = (char *) "dnsmasq", .max_run_delay_ms = 10,
                                        .max_probe_latency_ms = 200 };
        /* Each moved limit waits min_hold, so any 60 s window holds at most 60/min_hold + 1
         * of them (the +1: one at the window's very start). */
        w->bound = (unsigned) (MINUTE / w->pol.host.min_hold_ns) + 1;
        for (int t = 0; t < N_TENANTS; t++) {
                snprintf(w->tnames[t], sizeof(w->tnames[t]), "t%d", t);
                w->tenants[t].name = w->tnames[t];
                for (int r = 0; r < VMG_RES_COUNT; r++) {
                        struct vmg_rule *ru = &w->tenants[t].rules[r];
                        if (chance(g, 0.4))
                                continue; /* this tenant does not limit r */
                        double scale = r == VMG_RES_CPU ? 1 : 1e7;
                        if (chance(g, 0.4))
                                ru->cap = scale * unif(g, 2, 8);
                        if (chance(g, 0.8)) {
                                ru->noisy = true;
                                ru->noisy_above = scale * unif(g, 0.5, 2);
                                ru->throttle_to = chance(g, 0.1) ? 0 : ru->noisy_above * unif(g, 0.2, 1.2);
                                ru->floor = chance(g, 0.2) ? 0 : ru->noisy_above * unif(g, 0.05, 0.4);
                                ru->noisy_for_ns = (rnd(g) % 21) * NSEC_PER_SEC;
                                ru->calm_for_ns = (rnd(g) % 61) * NSEC_PER_SEC;
                        }
                }
        }
        for (int i = 0; i < N_VMS; i++) {
                snprintf(w->uuids[i], sizeof(w->uuids[i]), "00000000-0000-0000-0000-%012d", i);
                snprintf(w->names[i], sizeof(w->names[i]), "vm-%d", i);
                w->tenant[i] = (int) (rnd(g) % (N_TENANTS + 1)) - 1;
                w->present[i] = true;
                /* square wave: on for on_for of every period */
                w->period[i] = (2 + rnd(g) % 199) * NSEC_PER_SEC;
                w->on_for[i] = (uint64_t) (unif(g, 0.1, 0.9) * (double) w->period[i]);
                w->phase[i] = rnd(g) % w->period[i];
                for (int r = 0; r < VMG_RES_COUNT; r++)
                        w->demand_hi[i][r] = (r == VMG_RES_CPU ? 1 : 1e7) * unif(g, 0.5, 10);
        }
}

static void record_move(struct world *w, size_t vi, const struct vmg_action *a, uint64_t now) {
        struct moves *m = &w->moves[vi][a->resource];
        unsigned in_window = 1;

        if (a->kind == VMG_ACT_CAP)
                return; /* at sight only (no reloads here), not a damped move */
        if (m->n > 0) {
                uint64_t last = m->at[(m->n - 1) % ARRAY_SIZE(m->at)];
                PROP(w, P_HOLD, now - last >= w->pol.host.min_hold_ns,
                     "%s %s moved %.1fs after the last move, min_hold %.0fs", a->vm,
                          vmg_action_kind_name(a->kind), (now - last) / 1e9, w->pol.host.min_hold_ns / 1e9);
        }
        for (size_t k = 0; k < m->n && k < ARRAY_SIZE(m->at); k++)
                if (now - m->at[(m->n - 1 - k) % ARRAY_SIZE(m->at)] < MINUTE)
                        in_window++;
        /* Not a property of its own: the bound follows from min_hold, checked above. */
        if (in_window > w->max_per_minute)
                w->max_per_minute = in_window;
        m->at[m->n++ % ARRAY_SIZE(m->at)] = now;
}

/* Did the engine judge VM's resource r this tick (a valid, finite figure)? */
static bool usage_ok(const struct vmg_vm_rates *rt, enum vmg_resource r) {
        if (rt->reset || !(rt->interval_s > 0))
                return false;
        switch (r) {
        case VMG_RES_CPU: return rt->cpu_valid && isfinite(rt->cpu_cores);
        case VMG_RES_DISK_READ_BPS:
        case VMG_RES_DISK_WRITE_BPS:
        case VMG_RES_DISK_READ_IOPS:
        case VMG_RES_DISK_WRITE_IOPS: return rt->disk_valid;
        default: return rt->net_valid;
        }
}

/* No guest stays at a throttled limit longer than calm_for x its strike multiplier + min_hold
 * (+ one tick) once every signal of harm a limit on it can undo is under its threshold and no
 * other guest's wait beyond its own quota is high: after that it must loosen (relax or
 * release), and the count starts again from the move. */
static void check_release(struct world *w, const struct vmg_engine_input *in, const struct vmg_action *a,
                          size_t n, const struct vmg_engine_state *st, const size_t *vm_index) {
        for (size_t j = 0; j < in->n_vms; j++) {
                size_t vi = vm_index[j];
                if (w->tenant[vi] < 0)
                        continue;
                for (int r = 0; r < VMG_RES_COUNT; r++) {
                        struct vmg_engine_limit_info li;
                        uint64_t *from = &w->calm_from[vi][r];
                        bool loosened = false;
                        for (size_t i = 0; i < n; i++)
                                loosened |= strcmp(a[i].uuid, in->vms[j].uuid) == 0 && (int) a[i].resource == r &&
                                            (a[i].kind == VMG_ACT_RELAX || a[i].kind == VMG_ACT_RELEASE);
                        if (*from && loosened && (double) (in->now_ns - *from) / 1e9 > w->longest_held_s)
                                w->longest_held_s = (double) (in->now_ns - *from) / 1e9;
                        if (vmg_engine_query(st, in->vms[j].uuid, r, &li) < 0 || !li.throttled || loosened ||
                            oracle_contended(&w->pol, in, (long) j, r)) {
                                *from = 0;
                                continue;
                        }
                        if (!*from) {
                                if (usage_ok(&in->vms[j].rates, r))
                                        *from = in->now_ns;
                                continue;
                        }
                        const struct vmg_rule *ru = &w->tenants[w->tenant[vi]].rules[r];
                        uint64_t allowed = (ru->calm_for_ns << li.strikes) + w->pol.host.min_hold_ns + NSEC_PER_SEC;
                        PROP(w, P_RELEASE, in->now_ns - *from <= allowed,
                             "%s resource %d: throttled at %g for %.0fs after the harm was gone (calm_for %.0fs, %u strikes, min_hold %.0fs)",
                             w->names[vi], r, li.limit, (double) (in->now_ns - *from) / 1e9, ru->calm_for_ns / 1e9,
                             li.strikes, w->pol.host.min_hold_ns / 1e9);
                        if (in->now_ns - *from > allowed)
                                *from = 0; /* one report per episode */
                }
        }
}

static void check_step(struct world *w, const struct vmg_engine_state *prev,
                       const struct vmg_engine_input *in, const struct vmg_action *a, size_t n,
                       const struct vmg_engine_state *st, size_t *vm_index) {
        for (size_t i = 0; i < n; i++) {
                size_t vi = vm_index[0];
                long ii = -1;
                for (size_t j = 0; j < in->n_vms; j++)
                        if (strcmp(in->vms[j].uuid, a[i].uuid) == 0)
                                ii = (long) j, vi = vm_index[j];
                PROP(w, P_KNOWN_VM, ii >= 0, "action for a VM not in the input: %s", a[i].uuid);
                if (ii < 0)
                        continue;
                w->n_actions++;
                /* No "reason names the VM" here: the engine writes the name it was given into
                 * every reason, so the check held by construction (test_engine checks the
                 * wording on traces). */
                PROP(w, P_TENANT, w->tenant[vi] >= 0 && a[i].tenant == w->tenant[vi], "%s of tenant %d got an action of tenant %d",
                          w->names[vi], w->tenant[vi], a[i].tenant);
                if (w->tenant[vi] < 0)
                        continue;
                const struct vmg_rule *ru = &w->tenants[w->tenant[vi]].rules[a[i].resource];
                PROP(w, P_RULE, ru->cap > 0 || ru->noisy, "%s: action on a resource its tenant has no rule for", a[i].vm);
                if (ru->cap > 0)
                        PROP(w, P_CAP, a[i].new_limit > 0 && a[i].new_limit <= ru->cap * (1 + 1e-9),
                                  "%s: limit %g over cap %g", a[i].vm, a[i].new_limit, ru->cap);
                if (a[i].new_limit > 0 && ru->floor > 0 && (ru->cap == 0 || ru->floor <= ru->cap))
                        PROP(w, P_FLOOR, a[i].new_limit >= ru->floor * (1 - 1e-9), "%s: limit %g under floor %g",
                                  a[i].vm, a[i].new_limit, ru->floor);
                if (a[i].kind == VMG_ACT_THROTTLE || a[i].kind == VMG_ACT_TIGHTEN) {
                        w->n_throttles++;
                        PROP(w, P_HARM, oracle_contended(&w->pol, in, ii, (int) a[i].resource),
                             "%s: %s of resource %d without harm a limit on it can undo", a[i].vm,
                             vmg_action_kind_name(a[i].kind), (int) a[i].resource);
                }
                struct vmg_engine_limit_info li;
                if (vmg_engine_query(prev, a[i].uuid, a[i].resource, &li) == 0)
                        PROP(w, P_OLD_LIMIT, li.limit == a[i].old_limit, "%s: old_limit %g, state had %g", a[i].vm,
                                  a[i].old_limit, li.limit);
                record_move(w, vi, &a[i], in->now_ns);
        }
        /* Caps hold in the state too, for every managed VM and resource, every tick. */
        for (size_t j = 0; j < in->n_vms; j++) {
                size_t vi = vm_index[j];
                if (w->tenant[vi] < 0)
                        continue;
                for (int r = 0; r < VMG_RES_COUNT; r++) {
                        const struct vmg_rule *ru = &w->tenants[w->tenant[vi]].rules[r];
                        struct vmg_engine_limit_info li;
                        if (ru->cap <= 0)
                                continue;
                        if (vmg_engine_query(st, in->vms[j].uuid, r, &li) == 0)
                                PROP(w, P_STATE_CAP, li.limit > 0 && li.limit <= ru->cap * (1 + 1e-9),
                                     "%s: state limit %g, cap %g", w->names[vi], li.limit, ru->cap);
                }
        }
}

/* One random trace of n_ticks one-second ticks. Returns false on an engine error. */
static bool run_world(uint64_t seed, unsigned n_ticks, unsigned (*props_seen)[P_COUNT]) {
        struct rng g = { seed * 0x9E3779B97F4A7C15ULL + 1 };
        _cleanup_free_ struct world *w = calloc(1, sizeof(*w));
        struct vmg_engine_state *st = NULL;
        double limit[N_VMS][VMG_RES_COUNT] = {};
        bool ok = true;

        if (!w)
                return false;
        make_world(w, &g);
        for (unsigned tick = 0; tick < n_ticks && ok; tick++) {
                uint64_t now = (uint64_t) tick * NSEC_PER_SEC + 1;
                struct vmg_engine_vm vms[N_VMS];
                size_t vm_index[N_VMS];
                struct vmg_engine_service svc = { "dnsmasq", 0, { .interval_s = 1, .valid = true, .probe_latency_ms = -1 } };
                struct vmg_engine_input in = { .now_ns = now, .services = &svc, .n_services = 1, .vms = vms };
                double writes = 0;

                for (size_t i = 0; i < N_VMS; i++) {
                        if (chance(&g, 0.002)) { /* vanish or come back */
                                w->present[i] = !w->present[i];
                                memset(w->moves[i], 0, sizeof(w->moves[i]));
                                memset(limit[i], 0, sizeof(limit[i]));
                        }
                        if (!w->present[i])
                                continue;
                        if (chance(&g, 0.002)) /* vanish or come back: nothing to release */
                                memset(w->calm_from[i], 0, sizeof(w->calm_from[i]));
                        bool on = (now + w->phase[i]) % w->period[i] < w->on_for[i];
                        struct vmg_vm_rates rt = { .interval_s = 1, .cpu_valid = true, .disk_valid = true,
                                                   .net_valid = true, .vcpu_delay_valid = true };
                        for (int r = 0; r < VMG_RES_COUNT; r++) {
                                double d = on ? w->demand_hi[i][r] : w->demand_hi[i][r] * unif(&g, 0, 0.1);
                                if (limit[i][r] > 0)
                                        d = fmin(d, limit[i][r] * unif(&g, 0.9, 1.0));
                                set_usage(&rt, r, d);
                        }
                        rt.vcpu_delay_frac = unif(&g, 0, 0.3);
                        /* A guest held under its CPU demand by its quota waits on it: throttled
                         * time, and the same wait in its run-queue delay (its "steal"). */
                        double want = on ? w->demand_hi[i][VMG_RES_CPU] : 0;
                        if (limit[i][VMG_RES_CPU] > 0 && want > limit[i][VMG_RES_CPU]) {
                                rt.cpu_throttled_time_frac = fmin(1, 1 - limit[i][VMG_RES_CPU] / want);
                                rt.vcpu_delay_frac = fmin(1, rt.vcpu_delay_frac + rt.cpu_throttled_time_frac);
                        }
                        if (chance(&g, 0.01))
                                rt.reset = true;
                        if (chance(&g, 0.005))
                                rt.cpu_cores = NAN;
                        if (chance(&g, 0.005))
                                rt.disk_valid = false;
                        if (chance(&g, 0.002))
                                rt.interval_s = 0;
                        if (!rt.reset && rt.disk_valid)
                                writes += rt.disk_write_Bps;
                        vm_index[in.n_vms] = i;
                        vms[in.n_vms++] = (struct vmg_engine_vm) { w->uuids[i], w->names[i], w->tenant[i], rt, false };
                }
                /* Victims suffer with the sum of writes, plus noise of their own. */
                in.host = (struct vmg_host_rates) { .interval_s = 1, .psi_valid = !chance(&g, 0.01),
                                                    .psi_io_some = fmin(1, writes / 4e8 + unif(&g, 0, 0.03)),
                                                    .psi_cpu_some = unif(&g, 0, 0.55) };
                svc.rates.run_delay_avg_ms = chance(&g, 0.02) ? 40 : unif(&g, 0, 5);

                struct vmg_engine_state *next = NULL, *again = NULL;
                _cleanup_free_ struct vmg_action *a = NULL;
                _cleanup_free_ struct vmg_action *a2 = NULL;
                size_t n = 0, n2 = 0;
                int r = vmg_engine_step(&w->pol, st, &in, &next, &a, &n);
                if (r < 0) { /* an error, not a property: only ENOMEM can get here */
                        CHECK_MSG(false, "seed %" PRIu64 " tick %u: step failed: %d", seed, tick, r);
                        ok = false;
                        break;
                }
                /* Purity: the same arguments give the same answer, and prev is left as it was. */
                if (tick % 7 == 0) {
                        r = vmg_engine_step(&w->pol, st, &in, &again, &a2, &n2);
                        PROP(w, P_PURE, r == 0 && n2 == n && (n == 0 || memcmp(a, a2, n * sizeof(*a)) == 0),
                             "seed %" PRIu64 " tick %u: a second step from the same state differs", seed, tick);
                        vmg_engine_state_free(again);
                }
                check_step(w, st, &in, a, n, next, vm_index);
                check_release(w, &in, a, n, next, vm_index);
                for (size_t i = 0; i < n; i++)
                        for (size_t j = 0; j < in.n_vms; j++)
                                if (strcmp(vms[j].uuid, a[i].uuid) == 0)
                                        limit[vm_index[j]][a[i].resource] = a[i].new_limit;
                vmg_engine_state_free(st);
                st = next;
        }
        vmg_engine_state_free(st);
        unsigned sites = 0;
        for (int p = 0; p < P_COUNT; p++)
                if (w->evaluated[p] > 0) {
                        sites++;
                        (*props_seen)[p]++;
                        if (!w->failed[p])
                                CHECK(true); /* one per property per seed, not per execution */
                }
        printf("seed %2" PRIu64 ": min_hold %2.0fs, %5zu actions, %4zu throttle/tighten, max %u changes per VM-resource in 60s (bound %u), "
               "longest calm before a loosening %.0fs, %u properties exercised\n",
               seed, w->pol.host.min_hold_ns / 1e9, w->n_actions, w->n_throttles, w->max_per_minute, w->bound,
               w->longest_held_s, sites);
        return ok;
}

/* The worst case for flapping: a square wave whose every edge flips contention too, with
 * noisy_for and calm_for 0 so that only min_hold damps. */
static void square_wave_bound(uint64_t hold_s, uint64_t period_s) {
        struct vmg_tenant t = { .name = (char *) "acme" };
        t.rules[VMG_RES_DISK_WRITE_BPS] = (struct vmg_rule) {
                .noisy = true, .noisy_above = 40e6, .throttle_to = 20e6, .floor = 5e6 };
        struct vmg_policy pol = {
                .host = { .psi_io_some = 0.1, .min_hold_ns = hold_s * NSEC_PER_SEC, .step_down = 0.5, .step_up = 2 },
                .tenants = &t, .n_tenants = 1,
        };
        struct vmg_engine_state *st = NULL;
        uint64_t at[4096];
        size_t n_at = 0;
        unsigned worst = 0, bound = (unsigned) (60 / hold_s) + 1;
        double limit = 0;

        for (uint64_t s = 0; s < 3600; s++) {
                bool on = (s % period_s) < period_s / 2;
                struct vmg_engine_vm vm = { "u", "wave", 0, { .interval_s = 1, .disk_valid = true }, false };
                vm.rates.disk_write_Bps = on ? 200e6 : 1e6;
                if (limit > 0)
                        vm.rates.disk_write_Bps = fmin(vm.rates.disk_write_Bps, limit);
                struct vmg_engine_input in = { .now_ns = s * NSEC_PER_SEC, .vms = &vm, .n_vms = 1,
                                               .host = { .psi_valid = true, .psi_io_some = on ? 0.5 : 0 } };
                struct vmg_engine_state *next = NULL;
                _cleanup_free_ struct vmg_action *a = NULL;
                size_t n = 0;
                if (vmg_engine_step(&pol, st, &in, &next, &a, &n) < 0)
                        break;
                for (size_t i = 0; i < n && n_at < ARRAY_SIZE(at); i++) {
                        at[n_at++] = in.now_ns;
                        limit = a[i].new_limit;
                }
                vmg_engine_state_free(st);
                st = next;
        }
        vmg_engine_state_free(st);
        for (size_t i = 0; i < n_at; i++) {
                unsigned c = 0;
                for (size_t j = i; j < n_at && at[j] - at[i] < MINUTE; j++)
                        c++;
                if (c > worst)
                        worst = c;
        }
        printf("square wave period %3" PRIu64 "s, min_hold %2" PRIu64 "s: %3zu changes/hour, worst %u in 60s (bound %u)\n",
               period_s, hold_s, n_at, worst, bound);
        CHECK_MSG(n_at > 0, "the square wave never moved a limit: the case tests nothing");
        CHECK_MSG(worst <= bound, "period %" PRIu64 "s hold %" PRIu64 "s: %u changes in 60s, bound %u",
                  period_s, hold_s, worst, bound);
}

int main(void) {
        static const uint64_t holds[] = { 5, 10, 30 };
        static const uint64_t periods[] = { 2, 10, 20, 30, 60, 120 };

        T_CASE("square wave: changes per minute bounded by min_hold");
        for (size_t h = 0; h < ARRAY_SIZE(holds); h++)
                for (size_t p = 0; p < ARRAY_SIZE(periods); p++)
                        square_wave_bound(holds[h], periods[p]);

        T_CASE("random traces: floors, caps, damping, harm of its kind, fairness, purity, release after calm");
        unsigned seen[P_COUNT] = {}, total = 0;
        for (uint64_t seed = 1; seed <= 24; seed++)
                if (!run_world(seed, 3600, &seen))
                        CHECK_MSG(false, "seed %" PRIu64 ": the engine failed", seed);
        for (int p = 0; p < P_COUNT; p++) {
                printf("property %-20s exercised in %2u of 24 seeds\n", prop_names[p], seen[p]);
                CHECK_MSG(seen[p] > 0, "property '%s' was never exercised: it tests nothing", prop_names[p]);
                total += seen[p];
        }
        printf("random traces: %d properties x 24 seeds: %u property-seeds checked\n", P_COUNT, total);
        return t_summary();
}
