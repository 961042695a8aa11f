/* Properties of the engine over many random traces (seeded, reproducible): floors never
 * violated, caps always held, limit changes bounded per minute on square-wave loads, no
 * throttle without contention, every action explained, tenants never cross, and a step is a
 * pure function of its arguments. The plant is crude on purpose: a guest's usage follows
 * min(demand, limit), host PSI follows the sum of disk writes. */
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
};

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

/* Same oracle as test_engine.c, from the policy's words: anyone but `self` hurting? */
static bool oracle_contended(const struct vmg_policy *p, const struct vmg_engine_input *in, long self) {
        const struct vmg_host_policy *h = &p->host;
        if (in->host.psi_valid && ((h->psi_io_some > 0 && in->host.psi_io_some > h->psi_io_some) ||
                                   (h->psi_cpu_some > 0 && in->host.psi_cpu_some > h->psi_cpu_some)))
                return true;
        for (size_t i = 0; i < in->n_services; i++) {
                const struct vmg_service *s = &h->services[in->services[i].policy_index];
                const struct vmg_service_rates *r = &in->services[i].rates;
                if (r->valid && ((s->max_run_delay_ms > 0 && r->run_delay_avg_ms > s->max_run_delay_ms) ||
                                 (s->max_probe_latency_ms > 0 && r->probe_latency_ms > s->max_probe_latency_ms)))
                        return true;
        }
        for (size_t i = 0; i < in->n_vms; i++)
                if ((long) i != self && h->vm_steal > 0 && !in->vms[i].rates.reset &&
                    in->vms[i].rates.vcpu_delay_valid && in->vms[i].rates.vcpu_delay_frac > h->vm_steal)
                        return true;
        return false;
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
                CHECK_MSG(now - last >= w->pol.host.min_hold_ns,
                          "%s %s moved %.1fs after the last move, min_hold %.0fs", a->vm,
                          vmg_action_kind_name(a->kind), (now - last) / 1e9, w->pol.host.min_hold_ns / 1e9);
        }
        for (size_t k = 0; k < m->n && k < ARRAY_SIZE(m->at); k++)
                if (now - m->at[(m->n - 1 - k) % ARRAY_SIZE(m->at)] < MINUTE)
                        in_window++;
        if (in_window > w->max_per_minute)
                w->max_per_minute = in_window;
        CHECK_MSG(in_window <= w->bound, "%s: %u limit changes within 60s, bound %u", a->vm, in_window, w->bound);
        m->at[m->n++ % ARRAY_SIZE(m->at)] = now;
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
                if (ii < 0) {
                        CHECK_MSG(false, "action for a VM not in the input: %s", a[i].uuid);
                        continue;
                }
                w->n_actions++;
                CHECK_MSG(a[i].reason[0] && strstr(a[i].reason, w->names[vi]), "reason '%s'", a[i].reason);
                CHECK_MSG(w->tenant[vi] >= 0 && a[i].tenant == w->tenant[vi], "%s of tenant %d got an action of tenant %d",
                          w->names[vi], w->tenant[vi], a[i].tenant);
                if (w->tenant[vi] < 0)
                        continue;
                const struct vmg_rule *ru = &w->tenants[w->tenant[vi]].rules[a[i].resource];
                CHECK_MSG(ru->cap > 0 || ru->noisy, "%s: action on a resource its tenant has no rule for", a[i].vm);
                if (ru->cap > 0)
                        CHECK_MSG(a[i].new_limit > 0 && a[i].new_limit <= ru->cap * (1 + 1e-9),
                                  "%s: limit %g over cap %g", a[i].vm, a[i].new_limit, ru->cap);
                if (a[i].new_limit > 0 && ru->floor > 0 && (ru->cap == 0 || ru->floor <= ru->cap))
                        CHECK_MSG(a[i].new_limit >= ru->floor * (1 - 1e-9), "%s: limit %g under floor %g",
                                  a[i].vm, a[i].new_limit, ru->floor);
                if (a[i].kind == VMG_ACT_THROTTLE || a[i].kind == VMG_ACT_TIGHTEN) {
                        w->n_throttles++;
                        CHECK_MSG(oracle_contended(&w->pol, in, ii), "%s: %s without contention", a[i].vm,
                                  vmg_action_kind_name(a[i].kind));
                }
                struct vmg_engine_limit_info li;
                if (vmg_engine_query(prev, a[i].uuid, a[i].resource, &li) == 0)
                        CHECK_MSG(li.limit == a[i].old_limit, "%s: old_limit %g, state had %g", a[i].vm,
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
                        if (vmg_engine_query(st, in->vms[j].uuid, r, &li) == 0 &&
                            !(li.limit > 0 && li.limit <= ru->cap * (1 + 1e-9)))
                                CHECK_MSG(false, "%s: state limit %g, cap %g", w->names[vi], li.limit, ru->cap);
                }
        }
}

/* One random trace of n_ticks one-second ticks. Returns false on an engine error. */
static bool run_world(uint64_t seed, unsigned n_ticks) {
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
                        vms[in.n_vms++] = (struct vmg_engine_vm) { w->uuids[i], w->names[i], w->tenant[i], rt };
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
                CHECK_MSG(r == 0, "seed %" PRIu64 " tick %u: step failed: %d", seed, tick, r);
                if (r < 0) {
                        ok = false;
                        break;
                }
                /* Purity: the same arguments give the same answer, and prev is left as it was. */
                if (tick % 7 == 0) {
                        r = vmg_engine_step(&w->pol, st, &in, &again, &a2, &n2);
                        CHECK_MSG(r == 0 && n2 == n && (n == 0 || memcmp(a, a2, n * sizeof(*a)) == 0),
                                  "seed %" PRIu64 " tick %u: a second step from the same state differs", seed, tick);
                        vmg_engine_state_free(again);
                }
                check_step(w, st, &in, a, n, next, vm_index);
                for (size_t i = 0; i < n; i++)
                        for (size_t j = 0; j < in.n_vms; j++)
                                if (strcmp(vms[j].uuid, a[i].uuid) == 0)
                                        limit[vm_index[j]][a[i].resource] = a[i].new_limit;
                vmg_engine_state_free(st);
                st = next;
        }
        vmg_engine_state_free(st);
        printf("seed %2" PRIu64 ": min_hold %2.0fs, %5zu actions, %4zu throttle/tighten, max %u changes per VM-resource in 60s (bound %u)\n",
               seed, w->pol.host.min_hold_ns / 1e9, w->n_actions, w->n_throttles, w->max_per_minute, w->bound);
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
                struct vmg_engine_vm vm = { "u", "wave", 0, { .interval_s = 1, .disk_valid = true } };
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

        T_CASE("random traces: floors, caps, damping, contention, reasons, fairness, purity");
        for (uint64_t seed = 1; seed <= 24; seed++)
                CHECK_MSG(run_world(seed, 3600), "seed %" PRIu64, seed);
        return t_summary();
}
