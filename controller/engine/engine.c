/* The decision engine. Pure: everything it knows comes in through its arguments, everything
 * it decides goes out through its results. See docs/ENGINE.md for the rules in prose.
 *
 * Why one file of ~870 lines: it is one function's private parts (vmg_engine_step() and the
 * judging, holding and reconciling it calls), sharing the static per-guest state struct and
 * the harm/signal types; split, those would become a header of internals every piece includes
 * and nothing else may use. Its service rule and resource words live outside already
 * (service_health.c, policies/resources.c). */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/utf8.h"
#include "controller/engine/engine.h"
#include "controller/engine/service_health.h"
#include "policies/resources.h"

/* A throttled guest's usage cannot exceed its limit, so "usage > noisy_above" says nothing
 * about whether it still wants more. It is taken as still pressing when it runs at 80% of its
 * limit or more: measured limits hold usage a little under the figure (a 20 MB/s blkio limit
 * gave 19 MB/s: docs/LAB.md, "Levers measured") and one tick's rate jitters by a few
 * percent; 80% leaves room for both while a guest that really calmed down drops far lower. */
#define PRESS_FRAC 0.8

/* At most this many restricting moves (throttle or tighten) per tick, across all VMs and
 * resources, biggest offender (usage / noisy_above) first. The victims' signals are host-wide
 * sums that lag (PSI averages, probe round trips), so throttling every suspect at once would
 * punish guests whose share the first cut already removed; one per tick still handles N
 * offenders within N ticks, which is short beside noisy_for and min_hold (tens of ticks). */
#define MAX_RESTRICT_PER_TICK 1

/* Relative tolerance when comparing limits: a limit computed as x*step_down*step_up must
 * compare equal to x, or a rounding error would look like a change and cost a write. */
#define LIMIT_EPS 1e-9

/* A guest released while it still wants more comes straight back: it hurts the victims for
 * the ticks it takes to be caught again, is held for calm_for, is released, and so on, a
 * sawtooth of harm every calm_for for as long as its load runs (a bonnie++ run lasts tens of
 * minutes; the victim's DHCP renewals land in the teeth). So each throttle within
 * REPEAT_WINDOW_NS of the same resource's release doubles the calm its next release needs, up
 * to REPEAT_MAX_STRIKES doublings (8x calm_for); a resource that stays free for the window
 * starts from calm_for again. fail2ban's bantime.increment answers repeat offenders the same
 * way. */
#define REPEAT_WINDOW_NS (600 * NSEC_PER_SEC)

/* Ticks between two steps beyond which the time between is taken as unobserved. */
#define GAP_TICKS 3
#define REPEAT_MAX_STRIKES 3

struct res_state {
        double cap;   /* the cap this state last applied, 0 = none */
        double limit; /* in force, 0 = unlimited */
        double usage;
        bool throttled;
        bool suspect;
        uint64_t suspect_since;
        bool calm;
        uint64_t calm_since;
        bool changed;
        uint64_t last_change;
        bool released;       /* released at least once: released_at is meaningful */
        uint64_t released_at;
        unsigned strikes;    /* throttled again within REPEAT_WINDOW_NS of a release */
        char reason[512];
};

struct vm_state {
        char uuid[VMG_UUID_LEN + 1];
        char name[VMG_NAME_MAX];
        int tenant;
        bool seen;       /* sampled at least once: seen_at is meaningful */
        uint64_t seen_at; /* the last tick with rates */
        struct res_state res[VMG_RES_COUNT];
};

struct vmg_engine_state {
        bool have_now;
        uint64_t now_ns;
        bool contended;
        char contention[512];
        size_t n_vms;
        struct vm_state *vms;
};

/* Kinds of harm a signal shows, and a lever can undo. Measured on the development host with
 * real TCG guests: a disk writer's harm reached dnsmasq as I/O wait (its lease fsync waits
 * behind the writes; host PSI io some ~1 ms/s calm, 100-250 ms/s under disk noise) while its
 * run delay barely moved, and a disk limit fixed it (20 MB/s write_bps: DHCP exchange p90
 * back to ~1.2x calm); a busy vCPU in its own cgroup barely hurt a host service (CFS group
 * scheduling) but shows as other guests' vCPU wait, which a CPU quota fixes; a broadcast flood
 * stopped another guest's DHCP and a 10 Mbit shaper on the flooder's transmit brought it back,
 * its harm travelling as CPU work (the bridge copies every frame, each QEMU handles it) and
 * never through the disk. So a CPU signal alone does not justify a disk limit, nor an I/O
 * signal a CPU quota. A probe's latency is the victim's whole experience and may come from
 * any of them: it justifies every lever. */
enum {
        HARM_CPU = 1 << 0,
        HARM_IO = 1 << 1,
        HARM_NET = 1 << 2,
        HARM_ANY = HARM_CPU | HARM_IO | HARM_NET,
};

/* One reason the host counts as contended, and whose harm it is: victim is the input index
 * of the VM that suffers, or -1 for the host and its services. A VM's own steal never makes
 * it a noisy neighbour's victim of itself. harm: the HARM_* kinds it shows. */
struct signal {
        int victim;
        unsigned harm;
        char text[160];
};

/* The harm a limit on r can undo (see HARM_*). */
static unsigned harm_fixed_by(enum vmg_resource r) {
        switch (r) {
        case VMG_RES_CPU: return HARM_CPU;
        case VMG_RES_DISK_READ_BPS:
        case VMG_RES_DISK_WRITE_BPS:
        case VMG_RES_DISK_READ_IOPS:
        case VMG_RES_DISK_WRITE_IOPS: return HARM_IO;
        case VMG_RES_NET_RX_BPS:
        case VMG_RES_NET_TX_BPS: return HARM_NET | HARM_CPU;
        case VMG_RES_COUNT: break;
        }
        return 0;
}

struct action_list {
        struct vmg_action *a;
        size_t n, allocated;
};

struct candidate {
        size_t vm;
        enum vmg_resource res;
        enum vmg_action_kind kind;
        double new_limit;
        double score;
};

const char *vmg_action_kind_name(enum vmg_action_kind k) {
        switch (k) {
        case VMG_ACT_THROTTLE: return "throttle";
        case VMG_ACT_TIGHTEN: return "tighten";
        case VMG_ACT_RELAX: return "relax";
        case VMG_ACT_RELEASE: return "release";
        case VMG_ACT_CAP: return "cap";
        }
        return "?";
}

int vmg_engine_state_new(struct vmg_engine_state **ret) {
        struct vmg_engine_state *s;

        if (!ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

struct vmg_engine_state *vmg_engine_state_free(struct vmg_engine_state *s) {
        if (s) {
                free(s->vms);
                free(s);
        }
        return NULL;
}

static const char *fmt_limit(enum vmg_resource r, double v, char *buf, size_t len) {
        if (v <= 0) {
                snprintf(buf, len, "unlimited");
                return buf;
        }
        return vmg_resource_format(r, v, buf, len);
}

static const char *fmt_duration(uint64_t ns, char *buf, size_t len) {
        if (ns % NSEC_PER_SEC == 0)
                snprintf(buf, len, "%llus", (unsigned long long) (ns / NSEC_PER_SEC));
        else
                snprintf(buf, len, "%.1fs", (double) ns / NSEC_PER_SEC);
        return buf;
}

static const char *fmt_ms(double ms, char *buf, size_t len) {
        snprintf(buf, len, ms < 10 ? "%.1fms" : "%.0fms", ms);
        return buf;
}

/* Appends to a fixed buffer, truncating quietly: a reason cut short beats no action. */
_Pragma("GCC diagnostic push")
_Pragma("GCC diagnostic ignored \"-Wformat-nonliteral\"")
__attribute__((format(printf, 3, 4)))
static void append(char *buf, size_t len, const char *fmt, ...) {
        size_t used = strnlen(buf, len);
        va_list ap;

        if (used + 1 >= len)
                return;
        va_start(ap, fmt);
        vsnprintf(buf + used, len - used, fmt, ap);
        va_end(ap);
}
_Pragma("GCC diagnostic pop")

static bool finite_nonneg(double v) {
        return isfinite(v) && v >= 0;
}

/* The VM's figure for r this tick; false when its interval must be ignored (a counter reset,
 * a missing source, or a figure that is not a number). */
static bool vm_usage(const struct vmg_vm_rates *rt, enum vmg_resource r, double *ret) {
        bool valid;
        double v;

        if (rt->reset || !(isfinite(rt->interval_s) && rt->interval_s > 0))
                return false;
        switch (r) {
        case VMG_RES_CPU: valid = rt->cpu_valid; v = rt->cpu_cores; break;
        case VMG_RES_DISK_READ_BPS: valid = rt->disk_valid; v = rt->disk_read_Bps; break;
        case VMG_RES_DISK_WRITE_BPS: valid = rt->disk_valid; v = rt->disk_write_Bps; break;
        case VMG_RES_DISK_READ_IOPS: valid = rt->disk_valid; v = rt->disk_read_iops; break;
        case VMG_RES_DISK_WRITE_IOPS: valid = rt->disk_valid; v = rt->disk_write_iops; break;
        case VMG_RES_NET_RX_BPS: valid = rt->net_valid; v = rt->net_rx_bps; break;
        case VMG_RES_NET_TX_BPS: valid = rt->net_valid; v = rt->net_tx_bps; break;
        default: return false;
        }
        if (!valid || !finite_nonneg(v))
                return false;
        *ret = v;
        return true;
}

static const char *vm_label(const struct vmg_engine_vm *vm) {
        return vm->name && vm->name[0] ? vm->name : vm->uuid;
}

/* The part of a guest's vCPU run-queue wait that its own CFS quota explains: seconds its
 * group was throttled per second, at most 1. A task held back by a quota stays queued, so
 * its wait grows as if a neighbour held the CPU (measured on the 2-core development host: a
 * busy loop capped at 0.1 core waited 1.80 s in 2 s, 1.60 s of it throttled_time). The
 * kernel sums throttled time over the CPUs where the group was held (two capped loops: 1.81 s
 * wait each, 2.58 s throttled_time in 2 s), so per vCPU it lies between the sum / vCPUs
 * (1.29 s there: 26% of "steal" left over, over a 20% threshold) and the sum itself. The sum
 * is taken: a vCPU held by its own quota cannot run sooner whatever a neighbour does, so a
 * wait counted as the quota's is at worst harm no throttle of a neighbour would undo. 0 when
 * the figure is missing or not a number. */
static double quota_wait(const struct vmg_engine_vm *vm) {
        const struct vmg_vm_rates *rt = &vm->rates;

        if (vm->unsampled || !rt->cpu_valid || rt->reset || !finite_nonneg(rt->cpu_throttled_time_frac))
                return 0;
        return fmin(rt->cpu_throttled_time_frac, 1);
}

/* Collects every contention signal of this tick. Returns the number written to sig (sized
 * n_services + 2 + n_vms by the caller). */
static size_t judge_contention(const struct vmg_policy *p, const struct vmg_engine_input *in,
                               struct signal *sig) {
        const struct vmg_host_policy *h = &p->host;
        char a[32], b[32];
        size_t n = 0;

        for (size_t i = 0; i < in->n_services; i++) {
                const struct vmg_engine_service *es = &in->services[i];
                const struct vmg_service_rates *sr = &es->rates;
                const struct vmg_service *ps;
                const char *name;

                if (es->policy_index < 0 || (size_t) es->policy_index >= h->n_services ||
                    !h->services || !sr->valid)
                        continue;
                ps = &h->services[es->policy_index];
                name = es->name ? es->name : ps->name ? ps->name : "service";
                unsigned symptoms = vmg_service_symptoms(ps, sr);

                /* One signal per service naming each symptom over its threshold: the reason
                 * names a service once (counting signals means counting victims), and its
                 * harm is every kind those symptoms show. */
                sig[n].text[0] = 0;
                sig[n].harm = 0;
                if (symptoms & VMG_SVC_BIT(VMG_SVC_RUN_DELAY)) {
                        append(sig[n].text, sizeof(sig[n].text), "%s run-queue delay %s > %s",
                               name, fmt_ms(sr->run_delay_avg_ms, a, sizeof(a)),
                               fmt_ms(ps->max_run_delay_ms, b, sizeof(b)));
                        sig[n].harm |= HARM_CPU;
                }
                if (symptoms & VMG_SVC_BIT(VMG_SVC_IO_DELAY)) {
                        append(sig[n].text, sizeof(sig[n].text), "%s%sI/O wait %.0f%% > %.0f%%",
                               sig[n].harm ? ", " : name, sig[n].harm ? "" : " ",
                               sr->blkio_delay_frac * 100, ps->max_io_delay_frac * 100);
                        sig[n].harm |= HARM_IO;
                }
                if (symptoms & VMG_SVC_BIT(VMG_SVC_PROBE_LATENCY)) {
                        append(sig[n].text, sizeof(sig[n].text), "%s%sprobe latency %s > %s",
                               sig[n].harm ? ", " : name, sig[n].harm ? "" : " ",
                               fmt_ms(sr->probe_latency_ms, a, sizeof(a)),
                               fmt_ms(ps->max_probe_latency_ms, b, sizeof(b)));
                        sig[n].harm |= HARM_ANY;
                }
                if (!sig[n].harm)
                        continue;
                sig[n++].victim = -1;
        }

        if (in->host.psi_valid) {
                if (h->psi_io_some > 0 && finite_nonneg(in->host.psi_io_some) &&
                    in->host.psi_io_some > h->psi_io_some) {
                        snprintf(sig[n].text, sizeof(sig[n].text), "host PSI io some %.0f%% > %.0f%%",
                                 in->host.psi_io_some * 100, h->psi_io_some * 100);
                        sig[n].harm = HARM_IO;
                        sig[n++].victim = -1;
                }
                /* A task held back by a CFS quota counts as stalled in the host's PSI cpu, so
                 * a guest vmguard (or anyone) caps would keep the host "contended" by its cap
                 * alone and never be released. The largest quota stall of any guest is left
                 * out: a lower bound of the quota-made part of "some". */
                double quota_stall = 0;
                for (size_t i = 0; i < in->n_vms; i++)
                        quota_stall = fmax(quota_stall, quota_wait(&in->vms[i]));
                double psi_cpu = in->host.psi_cpu_some - quota_stall;
                if (h->psi_cpu_some > 0 && finite_nonneg(in->host.psi_cpu_some) && psi_cpu > h->psi_cpu_some) {
                        if (quota_stall > 0)
                                snprintf(sig[n].text, sizeof(sig[n].text),
                                         "host PSI cpu some %.0f%% (%.0f%% beyond CFS quotas' own stall) > %.0f%%",
                                         in->host.psi_cpu_some * 100, psi_cpu * 100, h->psi_cpu_some * 100);
                        else
                                snprintf(sig[n].text, sizeof(sig[n].text), "host PSI cpu some %.0f%% > %.0f%%",
                                         in->host.psi_cpu_some * 100, h->psi_cpu_some * 100);
                        sig[n].harm = HARM_CPU;
                        sig[n++].victim = -1;
                }
        }

        if (h->vm_steal > 0)
                for (size_t i = 0; i < in->n_vms; i++) {
                        const struct vmg_vm_rates *rt = &in->vms[i].rates;

                        if (!in->vms[i].uuid || in->vms[i].unsampled || rt->reset || !rt->vcpu_delay_valid ||
                            !finite_nonneg(rt->vcpu_delay_frac) ||
                            !(isfinite(rt->interval_s) && rt->interval_s > 0))
                                continue;
                        /* Only the wait beyond the guest's own quota is harm from others:
                         * two guests throttled by vmguard (or capped by their tenants) kept
                         * each other "contended" by their quota waits alone, were tightened
                         * to the floor and never released. */
                        double own = quota_wait(&in->vms[i]), beyond = rt->vcpu_delay_frac - own;
                        if (beyond <= h->vm_steal)
                                continue;
                        if (own > 0)
                                snprintf(sig[n].text, sizeof(sig[n].text),
                                         "guest %s vCPU steal %.0f%% (%.0f%% beyond its own CFS quota) > %.0f%%",
                                         vm_label(&in->vms[i]), rt->vcpu_delay_frac * 100, beyond * 100,
                                         h->vm_steal * 100);
                        else
                                snprintf(sig[n].text, sizeof(sig[n].text), "guest %s vCPU steal %.0f%% > %.0f%%",
                                         vm_label(&in->vms[i]), rt->vcpu_delay_frac * 100, h->vm_steal * 100);
                        sig[n].harm = HARM_CPU;
                        sig[n++].victim = (int) i;
                }
        return n;
}

/* The first signal that is somebody else's harm of a kind a limit on r can undo, or NULL: a
 * VM is not contended by its own steal, and a disk writer not by CPU harm alone. */
static const struct signal *contention_for(const struct signal *sig, size_t n, size_t vm,
                                           enum vmg_resource r) {
        for (size_t i = 0; i < n; i++)
                if (sig[i].victim != (int) vm && (sig[i].harm & harm_fixed_by(r)))
                        return &sig[i];
        return NULL;
}

static int push_action(struct action_list *l, const struct vmg_engine_vm *vm, int tenant,
                       enum vmg_resource r, enum vmg_action_kind kind, double old_limit,
                       double new_limit, const char *reason) {
        struct vmg_action *a;

        if (l->n == l->allocated) {
                size_t na = l->allocated ? l->allocated * 2 : 8;
                struct vmg_action *t = realloc(l->a, na * sizeof(*t));
                if (!t)
                        return -ENOMEM;
                l->a = t;
                l->allocated = na;
        }
        a = &l->a[l->n++];
        memset(a, 0, sizeof(*a));
        snprintf(a->uuid, sizeof(a->uuid), "%s", vm->uuid);
        snprintf(a->vm, sizeof(a->vm), "%s", vm_label(vm));
        /* A guest picks its name: a cut inside a character is invalid UTF-8, which
         * jansson refuses, and the status snapshot with it. */
        vmg_utf8_cut(a->vm);
        a->tenant = tenant;
        a->resource = r;
        a->kind = kind;
        a->old_limit = old_limit;
        a->new_limit = new_limit;
        snprintf(a->reason, sizeof(a->reason), "%s", reason);
        vmg_utf8_cut(a->reason);
        return 0;
}

/* Within 10% of the floor counts as the floor when tightening. */
#define FLOOR_SNAP 1.10

static bool limits_equal(double a, double b) {
        return fabs(a - b) <= LIMIT_EPS * fmax(fabs(a), fabs(b));
}

static const char *tenant_name(const struct vmg_policy *p, int t) {
        return t >= 0 && (size_t) t < p->n_tenants && p->tenants[t].name ? p->tenants[t].name
                                                                          : "(unmanaged)";
}

/* Applies one decided move to the state and the action list. */
static int apply(struct action_list *l, const struct vmg_engine_vm *vm, struct vm_state *vs,
                 enum vmg_resource r, enum vmg_action_kind kind, double new_limit, bool engine_move,
                 uint64_t now, const char *reason) {
        struct res_state *rs = &vs->res[r];
        int k;

        k = push_action(l, vm, vs->tenant, r, kind, rs->limit, new_limit, reason);
        if (k < 0)
                return k;
        rs->limit = new_limit;
        snprintf(rs->reason, sizeof(rs->reason), "%s", reason);
        vmg_utf8_cut(rs->reason);
        /* Only the engine's own noise moves start the hold: a cap is the operator's word and
         * must not delay a throttle that noise calls for. */
        if (engine_move) {
                rs->changed = true;
                rs->last_change = now;
        }
        return 0;
}

/* Brings the limit in line with the policy's cap and floor (first sight, policy reload,
 * tenant change). Caps hold always, contention or not. */
static int reconcile(const struct vmg_policy *p, struct action_list *l,
                     const struct vmg_engine_vm *vm, struct vm_state *vs, enum vmg_resource r,
                     const struct vmg_rule *rule, uint64_t now) {
        struct res_state *rs = &vs->res[r];
        double cap = rule->cap > 0 && isfinite(rule->cap) ? rule->cap : 0;
        const char *tn = tenant_name(p, vs->tenant);
        char reason[512], a[48];
        int k;

        rs->cap = cap;
        if (rs->throttled && (!rule->noisy || rule->noisy_above <= 0)) {
                rs->throttled = false;
                snprintf(reason, sizeof(reason),
                         "guest %s of tenant %s: no noisy-neighbour rule for %s any more, limit back to %s",
                         vm_label(vm), tn, vmg_resource_words(r), fmt_limit(r, cap, a, sizeof(a)));
                return apply(l, vm, vs, r, VMG_ACT_RELEASE, cap, false, now, reason);
        }
        if (rs->throttled) {
                double floor = rule->floor > 0 ? rule->floor : 0;
                if (cap > 0 && rs->limit > cap && !limits_equal(rs->limit, cap)) {
                        snprintf(reason, sizeof(reason), "guest %s of tenant %s: %s hard cap %s",
                                 vm_label(vm), tn, vmg_resource_words(r), vmg_resource_format(r, cap, a, sizeof(a)));
                        return apply(l, vm, vs, r, VMG_ACT_CAP, cap, false, now, reason);
                }
                if (floor > 0 && rs->limit < floor && (cap == 0 || floor <= cap) &&
                    !limits_equal(rs->limit, floor)) {
                        snprintf(reason, sizeof(reason),
                                 "guest %s of tenant %s: %s floor raised to %s by the policy",
                                 vm_label(vm), tn, vmg_resource_words(r), vmg_resource_format(r, floor, a, sizeof(a)));
                        return apply(l, vm, vs, r, VMG_ACT_RELAX, floor, false, now, reason);
                }
                return 0;
        }
        if (limits_equal(rs->limit, cap))
                return 0;
        if (cap > 0) {
                snprintf(reason, sizeof(reason), "guest %s of tenant %s: %s hard cap %s",
                         vm_label(vm), tn, vmg_resource_words(r), vmg_resource_format(r, cap, a, sizeof(a)));
                k = apply(l, vm, vs, r, VMG_ACT_CAP, cap, false, now, reason);
        } else {
                snprintf(reason, sizeof(reason), "guest %s of tenant %s: no cap on %s any more, unlimited",
                         vm_label(vm), tn, vmg_resource_words(r));
                k = apply(l, vm, vs, r, VMG_ACT_RELEASE, 0, false, now, reason);
        }
        return k;
}

static double throttle_target(const struct vmg_rule *rule, double cap) {
        double t = rule->throttle_to > 0 ? rule->throttle_to : rule->noisy_above;

        if (rule->floor > 0)
                t = fmax(t, rule->floor);
        if (cap > 0)
                t = fmin(t, cap);
        return t;
}

static double floor_of(const struct vmg_rule *rule, double cap) {
        double f = rule->floor > 0 ? rule->floor : 0;
        return cap > 0 ? fmin(f, cap) : f;
}

/* Judges one VM's resource: updates suspect/calm tracking, emits loosening moves at once and
 * offers a restricting move as a candidate (sets *has_candidate and fills *c). Returns 0 or
 * -ENOMEM. */
static int judge(const struct vmg_policy *p, const struct vmg_engine_input *in,
                 struct action_list *l, size_t vi, struct vm_state *vs, enum vmg_resource r,
                 const struct vmg_rule *rule, const struct signal *why, struct candidate *c,
                 bool *has_candidate) {
        const struct vmg_engine_vm *vm = &in->vms[vi];
        struct res_state *rs = &vs->res[r];
        const struct vmg_host_policy *h = &p->host;
        uint64_t now = in->now_ns;
        bool hold_ok, contended = why != NULL;
        char reason[512], a[48], b[48], d[32];
        double u;

        *has_candidate = false;
        if (vm->unsampled || !vm_usage(&vm->rates, r, &u))
                return 0; /* interval ignored, state kept */
        rs->usage = u;
        if (!rule->noisy || !(rule->noisy_above > 0) || !isfinite(rule->noisy_above)) {
                rs->suspect = rs->calm = false;
                return 0;
        }
        hold_ok = !rs->changed || now - rs->last_change >= h->min_hold_ns;

        if (!rs->throttled) {
                rs->calm = false;
                if (!(u > rule->noisy_above && contended)) {
                        rs->suspect = false;
                        return 0;
                }
                if (!rs->suspect) {
                        rs->suspect = true;
                        rs->suspect_since = now;
                }
                if (now - rs->suspect_since >= rule->noisy_for_ns && hold_ok) {
                        double t = throttle_target(rule, rs->cap);
                        if (t > 0 && (rs->limit <= 0 || (t < rs->limit && !limits_equal(t, rs->limit)))) {
                                *c = (struct candidate) { vi, r, VMG_ACT_THROTTLE, t, u / rule->noisy_above };
                                *has_candidate = true;
                        }
                }
                return 0;
        }

        /* Throttled. */
        bool at_limit = u >= PRESS_FRAC * rs->limit || u > rule->noisy_above;
        if (contended && at_limit) {
                rs->calm = false;
                if (!rs->suspect) {
                        rs->suspect = true;
                        rs->suspect_since = now;
                }
                double f = floor_of(rule, rs->cap);
                if (hold_ok && h->step_down > 0 && h->step_down < 1) {
                        double t = fmax(rs->limit * h->step_down, f);
                        /* A step that would stop just above the floor goes to the floor:
                         * one cgroup write instead of a second, tiny one next hold. */
                        if (f > 0 && t < f * FLOOR_SNAP)
                                t = f;
                        if (t < rs->limit && !limits_equal(t, rs->limit)) {
                                *c = (struct candidate) { vi, r, VMG_ACT_TIGHTEN, t, u / rule->noisy_above };
                                *has_candidate = true;
                        }
                }
                return 0;
        }

        rs->suspect = false;
        if (!rs->calm) {
                rs->calm = true;
                rs->calm_since = now;
        }
        uint64_t calm_needed = rule->calm_for_ns << rs->strikes;
        if (now - rs->calm_since < calm_needed || !hold_ok)
                return 0;

        double next = h->step_up > 1 && isfinite(h->step_up) ? rs->limit * h->step_up : INFINITY;
        char calm_why[160];
        if (!contended)
                snprintf(calm_why, sizeof(calm_why), "no contention");
        else
                snprintf(calm_why, sizeof(calm_why), "%s, under its limit %s",
                         vmg_resource_format(r, u, a, sizeof(a)), vmg_resource_format(r, rs->limit, b, sizeof(b)));
        /* Past noisy_above the limit restrains nothing the policy calls noise: release, to
         * the cap when there is one (release never lifts a VM above its cap). */
        if (next >= rule->noisy_above || (rs->cap > 0 && next >= rs->cap)) {
                char back[64];

                if (rs->cap > 0)
                        snprintf(back, sizeof(back), "cap %s", vmg_resource_format(r, rs->cap, b, sizeof(b)));
                else
                        snprintf(back, sizeof(back), "unlimited");
                rs->throttled = false;
                rs->calm = false;
                rs->released = true;
                rs->released_at = now;
                snprintf(reason, sizeof(reason),
                         "guest %s of tenant %s: %s calm for %s (%s), noise limit lifted, back to %s",
                         vm_label(vm), tenant_name(p, vs->tenant), vmg_resource_words(r),
                         fmt_duration(now - rs->calm_since, d, sizeof(d)), calm_why, back);
                return apply(l, vm, vs, r, VMG_ACT_RELEASE, rs->cap, true, now, reason);
        }
        snprintf(reason, sizeof(reason),
                 "guest %s of tenant %s: %s calm for %s (%s), limit raised to %s",
                 vm_label(vm), tenant_name(p, vs->tenant), vmg_resource_words(r),
                 fmt_duration(now - rs->calm_since, d, sizeof(d)), calm_why,
                 vmg_resource_format(r, next, a, sizeof(a)));
        return apply(l, vm, vs, r, VMG_ACT_RELAX, next, true, now, reason);
}

static int restrict_move(const struct vmg_policy *p, const struct vmg_engine_input *in,
                         struct action_list *l, struct vm_state *vs, const struct candidate *c,
                         const struct signal *why) {
        const struct vmg_engine_vm *vm = &in->vms[c->vm];
        const struct vmg_rule *rule = &p->tenants[vs->tenant].rules[c->res];
        struct res_state *rs = &vs->res[c->res];
        enum vmg_resource r = c->res;
        char reason[512], a[48], b[48], d[32];

        if (c->kind == VMG_ACT_THROTTLE) {
                if (rs->released && in->now_ns - rs->released_at < REPEAT_WINDOW_NS) {
                        if (rs->strikes < REPEAT_MAX_STRIKES)
                                rs->strikes++;
                } else {
                        rs->strikes = 0;
                }
                snprintf(reason, sizeof(reason), "guest %s of tenant %s: %s %s over %s for %s while %s",
                         vm_label(vm), tenant_name(p, vs->tenant), vmg_resource_words(r),
                         vmg_resource_format(r, rs->usage, a, sizeof(a)),
                         vmg_resource_format(r, rule->noisy_above, b, sizeof(b)),
                         fmt_duration(in->now_ns - rs->suspect_since, d, sizeof(d)), why->text);
                if (rs->strikes > 0) {
                        char e[32];
                        append(reason, sizeof(reason), "; noisy again %s after its release: its next release needs %s of calm",
                               fmt_duration(in->now_ns - rs->released_at, d, sizeof(d)),
                               fmt_duration(rule->calm_for_ns << rs->strikes, e, sizeof(e)));
                }
                rs->throttled = true;
        } else {
                snprintf(reason, sizeof(reason),
                         "guest %s of tenant %s: %s %s at its limit %s, still contended %s after the last change (%s)",
                         vm_label(vm), tenant_name(p, vs->tenant), vmg_resource_words(r),
                         vmg_resource_format(r, rs->usage, a, sizeof(a)), vmg_resource_format(r, rs->limit, b, sizeof(b)),
                         fmt_duration(in->now_ns - rs->last_change, d, sizeof(d)), why->text);
        }
        return apply(l, vm, vs, r, c->kind, c->new_limit, true, in->now_ns, reason);
}

/* Counts of calm and of noise restart at now: see the gap in vmg_engine_step(). */
static void restart_counts(struct vm_state *vs, uint64_t now) {
        for (int r = 0; r < VMG_RES_COUNT; r++) {
                if (vs->res[r].calm)
                        vs->res[r].calm_since = now;
                if (vs->res[r].suspect)
                        vs->res[r].suspect_since = now;
        }
}

static const struct vm_state *find_prev(const struct vmg_engine_state *prev, const char *uuid) {
        if (!prev)
                return NULL;
        for (size_t i = 0; i < prev->n_vms; i++)
                if (strcmp(prev->vms[i].uuid, uuid) == 0)
                        return &prev->vms[i];
        return NULL;
}

static const struct vmg_rule *rule_for(const struct vmg_policy *p, int tenant, enum vmg_resource r) {
        static const struct vmg_rule none; /* read-only: unmanaged VMs get no rule */

        if (tenant < 0 || (size_t) tenant >= p->n_tenants || !p->tenants)
                return &none;
        return &p->tenants[tenant].rules[r];
}

int vmg_engine_step(const struct vmg_policy *p, const struct vmg_engine_state *prev,
                    const struct vmg_engine_input *in, struct vmg_engine_state **ret_state,
                    struct vmg_action **ret_actions, size_t *ret_n) {
        _cleanup_free_ struct signal *sig = NULL;
        _cleanup_free_ size_t *vm_of = NULL; /* input index -> new state index, SIZE_MAX = skipped */
        struct action_list l = {};
        struct vmg_engine_state *s = NULL;
        struct candidate best = {};
        bool have_best = false;
        size_t n_sig;
        int k;

        if (!p || !in || !ret_state || !ret_actions || !ret_n ||
            (in->n_vms > 0 && !in->vms) || (in->n_services > 0 && !in->services))
                return -EINVAL;
        if (prev && prev->have_now && in->now_ns < prev->now_ns)
                return -EINVAL;
        if (in->n_vms > (size_t) INT32_MAX)
                return -EINVAL;

        sig = calloc(in->n_services + in->n_vms + 2, sizeof(*sig));
        vm_of = calloc(in->n_vms + 1, sizeof(*vm_of));
        s = calloc(1, sizeof(*s));
        if (!sig || !vm_of || !s) {
                k = -ENOMEM;
                goto fail;
        }
        s->vms = calloc(in->n_vms + 1, sizeof(*s->vms));
        if (!s->vms) {
                k = -ENOMEM;
                goto fail;
        }
        s->have_now = true;
        s->now_ns = in->now_ns;

        n_sig = judge_contention(p, in, sig);
        s->contended = n_sig > 0;
        for (size_t i = 0; i < n_sig; i++)
                append(s->contention, sizeof(s->contention), "%s%s", i ? "; " : "", sig[i].text);

        /* A gap of several ticks (the daemon stopped or starved, the host suspended): what
         * happened in it was not seen, so it must not count as calm (a release nobody
         * watched for) nor as noise. The tick is the one the daemon runs at: with --tick 4s
         * over a 1 s policy tick, judging by the policy's made every step a gap, so no count
         * ever reached noisy_for and nothing was throttled. */
        uint64_t tick = in->tick_ns ? in->tick_ns : p->host.tick_ns;
        bool gap = prev && prev->have_now && tick > 0 && in->now_ns - prev->now_ns > GAP_TICKS * tick;

        /* Carry state over by uuid; VMs missing from the input are gone and drop out here. */
        for (size_t i = 0; i < in->n_vms; i++) {
                const struct vmg_engine_vm *vm = &in->vms[i];
                const struct vm_state *old;
                struct vm_state *vs;
                int tenant = vm->tenant;
                bool dup = false;

                vm_of[i] = SIZE_MAX;
                if (!vm->uuid || !vm->uuid[0] || strlen(vm->uuid) > VMG_UUID_LEN)
                        continue;
                for (size_t j = 0; j < s->n_vms && !dup; j++)
                        dup = strcmp(s->vms[j].uuid, vm->uuid) == 0;
                if (dup)
                        continue; /* the first report of a uuid wins */
                if (tenant < 0 || (size_t) tenant >= p->n_tenants)
                        tenant = -1;

                vs = &s->vms[s->n_vms];
                old = find_prev(prev, vm->uuid);
                if (old) {
                        *vs = *old;
                        /* The same for one guest the daemon could not sample for longer than
                         * a gap: its calm and noise went unobserved. */
                        bool unseen = !vm->unsampled && old->seen && tick > 0 &&
                                      in->now_ns - old->seen_at > GAP_TICKS * tick;
                        if (gap || unseen)
                                restart_counts(vs, in->now_ns);
                        if (old->tenant != tenant)
                                /* A new owner's rules start from scratch; the limit stays so
                                 * reconcile() moves it to what the new tenant allows. */
                                for (size_t r = 0; r < VMG_RES_COUNT; r++) {
                                        struct res_state *rs = &vs->res[r];
                                        double lim = rs->limit;
                                        memset(rs, 0, sizeof(*rs));
                                        rs->limit = lim;
                                }
                }
                snprintf(vs->uuid, sizeof(vs->uuid), "%s", vm->uuid);
                snprintf(vs->name, sizeof(vs->name), "%s", vm_label(vm));
                vmg_utf8_cut(vs->name);
                vs->tenant = tenant;
                if (!vm->unsampled) {
                        vs->seen = true;
                        vs->seen_at = in->now_ns;
                }
                vm_of[i] = s->n_vms++;
        }

        for (size_t i = 0; i < in->n_vms; i++) {
                struct vm_state *vs;

                if (vm_of[i] == SIZE_MAX)
                        continue;
                vs = &s->vms[vm_of[i]];
                for (size_t r = 0; r < VMG_RES_COUNT; r++) {
                        const struct signal *why = contention_for(sig, n_sig, i, r);
                        const struct vmg_rule *rule = rule_for(p, vs->tenant, r);
                        struct candidate c;
                        bool has;

                        k = reconcile(p, &l, &in->vms[i], vs, r, rule, in->now_ns);
                        if (k < 0)
                                goto fail;
                        if (vs->tenant < 0)
                                continue; /* unmanaged: never throttled */
                        k = judge(p, in, &l, i, vs, r, rule, why, &c, &has);
                        if (k < 0)
                                goto fail;
                        if (has && (!have_best || c.score > best.score)) {
                                best = c;
                                have_best = true;
                        }
                }
        }
        static_assert(MAX_RESTRICT_PER_TICK == 1, "the selection below keeps one best candidate");
        if (have_best) {
                k = restrict_move(p, in, &l, &s->vms[vm_of[best.vm]], &best,
                                  contention_for(sig, n_sig, best.vm, best.res));
                if (k < 0)
                        goto fail;
        }

        *ret_state = s;
        *ret_actions = l.n ? l.a : NULL;
        if (!l.n)
                free(l.a);
        *ret_n = l.n;
        return 0;
fail:
        free(l.a);
        vmg_engine_state_free(s);
        return k;
}

static const struct vm_state *find_vm(const struct vmg_engine_state *s, const char *uuid) {
        if (!s || !uuid)
                return NULL;
        for (size_t i = 0; i < s->n_vms; i++)
                if (strcmp(s->vms[i].uuid, uuid) == 0)
                        return &s->vms[i];
        return NULL;
}

int vmg_engine_query(const struct vmg_engine_state *s, const char *uuid, enum vmg_resource r,
                     struct vmg_engine_limit_info *ret) {
        const struct vm_state *vs;
        const struct res_state *rs;

        if (!s || !uuid || !ret || (int) r < 0 || r >= VMG_RES_COUNT)
                return -EINVAL;
        vs = find_vm(s, uuid);
        if (!vs)
                return -ENOENT;
        rs = &vs->res[r];
        *ret = (struct vmg_engine_limit_info) {
                .name = vs->name,
                .tenant = vs->tenant,
                .limit = rs->limit,
                .cap = rs->cap,
                .throttled = rs->throttled,
                .usage = rs->usage,
                .suspect = rs->suspect,
                .suspect_since_ns = rs->suspect_since,
                .calm = rs->calm,
                .calm_since_ns = rs->calm_since,
                .changed = rs->changed,
                .last_change_ns = rs->last_change,
                .strikes = rs->strikes,
                .reason = rs->reason,
        };
        return 0;
}

bool vmg_engine_contended(const struct vmg_engine_state *s, const char **ret_reason) {
        if (ret_reason)
                *ret_reason = s ? s->contention : "";
        return s && s->contended;
}

size_t vmg_engine_vm_count(const struct vmg_engine_state *s) {
        return s ? s->n_vms : 0;
}

const char *vmg_engine_vm_uuid(const struct vmg_engine_state *s, size_t i) {
        return s && i < s->n_vms ? s->vms[i].uuid : NULL;
}
