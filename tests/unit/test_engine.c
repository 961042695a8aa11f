/* The engine on traces: every .trace file in tests/fixtures/traces is replayed tick by tick (format in
 * docs/ENGINE.md). "expect" lines pin the actions a tick line must produce, exactly: an action
 * nobody expected fails as much as an expected one that did not come. Every trace, with or
 * without expectations, is also checked against the invariants (caps, floors, reasons,
 * fairness, no throttle without contention, the engine's verdict against an oracle here). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "common/utf8.h"
#include "tests/fixtures/cap_policy.h"
#include "controller/engine/engine.h"
#include "policies/resources.h"
#include "tests/harness.h"
#include "tests/unit/test_engine_oracle.h"

#define MAX_TENANTS 8
#define MAX_SERVICES 8
#define MAX_VMS 16
#define MAX_BLOCK_ACTIONS 512


struct tvm {
        char name[64], uuid[VMG_UUID_LEN + 1];
        int tenant;
        bool gone;      /* absent from the input: really gone */
        bool unsampled; /* in the input without fresh rates */
        struct vmg_vm_rates rates;
};

struct block_action {
        struct vmg_action a;
        uint64_t at;
        bool matched;
};

struct trace {
        char where[300]; /* "file:line" of the line being read */
        char block_where[300]; /* ... of the tick line whose actions are being matched */
        struct vmg_policy pol;
        struct vmg_tenant tenants[MAX_TENANTS];
        char tenant_names[MAX_TENANTS][64];
        struct vmg_service services[MAX_SERVICES];
        char service_names[MAX_SERVICES][64];
        struct vmg_service_rates svc_rates[MAX_SERVICES];
        struct tvm vms[MAX_VMS];
        size_t n_vms;
        struct vmg_host_rates host;
        double interval_s;
        uint64_t daemon_tick_ns; /* the input's tick_ns (vmguardd --tick), 0 = the policy's */
        struct vmg_engine_state *st;
        bool ticked;
        uint64_t now;
        struct block_action acts[MAX_BLOCK_ACTIONS];
        size_t n_acts;
        size_t n_expects; /* in the whole trace, counted before the replay: a trace with
                           * none gets invariants only */
        size_t n_ticks;
};

static int parse_res(const char *s) {
        enum vmg_resource r = vmg_resource_from_name(s);
        return r == VMG_RES_COUNT ? -1 : (int) r;
}

/* "40M", "1.5k", "0.2", "nan": decimal multipliers, as traces write rates. */
static int parse_num(const char *s, double *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s)
                return -EINVAL;
        if (*end == 'k')
                v *= 1e3, end++;
        else if (*end == 'M')
                v *= 1e6, end++;
        else if (*end == 'G')
                v *= 1e9, end++;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* "10s", "500ms", "2m", "1.5s", or bare seconds. */
static int parse_time(const char *s, uint64_t *ret) {
        char *end;
        double v, mult = 1e9;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || v < 0 || !isfinite(v))
                return -EINVAL;
        if (strcmp(end, "ms") == 0)
                mult = 1e6;
        else if (strcmp(end, "m") == 0)
                mult = 60e9;
        else if (strcmp(end, "s") != 0 && *end)
                return -EINVAL;
        *ret = (uint64_t) llround(v * mult);
        return 0;
}

static bool fail_at(struct trace *t, const char *what, const char *arg) {
        CHECK_MSG(false, "%s: %s '%s'", t->where, what, arg ? arg : "");
        return false;
}

static int find_tenant(struct trace *t, const char *name, bool create) {
        for (size_t i = 0; i < t->pol.n_tenants; i++)
                if (strcmp(t->tenant_names[i], name) == 0)
                        return (int) i;
        if (!create || t->pol.n_tenants == MAX_TENANTS)
                return -1;
        size_t i = t->pol.n_tenants++;
        snprintf(t->tenant_names[i], sizeof(t->tenant_names[i]), "%s", name);
        t->tenants[i].name = t->tenant_names[i];
        return (int) i;
}

static int find_service(struct trace *t, const char *name) {
        for (size_t i = 0; i < t->pol.host.n_services; i++)
                if (strcmp(t->service_names[i], name) == 0)
                        return (int) i;
        return -1;
}

static struct tvm *find_vm(struct trace *t, const char *name) {
        for (size_t i = 0; i < t->n_vms; i++)
                if (strcmp(t->vms[i].name, name) == 0)
                        return &t->vms[i];
        return NULL;
}

static bool set_kv(struct trace *t, char *kv, char **key, char **val) {
        char *eq = strchr(kv, '=');
        if (!eq)
                return fail_at(t, "expected KEY=VALUE, got", kv);
        *eq = 0;
        *key = kv;
        *val = eq + 1;
        return true;
}

static bool line_host(struct trace *t, char **tok, size_t n) {
        struct vmg_host_policy *h = &t->pol.host;
        for (size_t i = 1; i < n; i++) {
                char *k = NULL, *v = NULL;
                double d;
                int r;
                if (!set_kv(t, tok[i], &k, &v))
                        return false;
                if (strcmp(k, "min_hold") == 0)
                        r = parse_time(v, &h->min_hold_ns);
                else if (strcmp(k, "tick") == 0)
                        r = parse_time(v, &h->tick_ns);
                else {
                        r = parse_num(v, &d);
                        if (strcmp(k, "psi_io_some") == 0) h->psi_io_some = d;
                        else if (strcmp(k, "psi_cpu_some") == 0) h->psi_cpu_some = d;
                        else if (strcmp(k, "vm_steal") == 0) h->vm_steal = d;
                        else if (strcmp(k, "step_down") == 0) h->step_down = d;
                        else if (strcmp(k, "step_up") == 0) h->step_up = d;
                        else return fail_at(t, "unknown host key", k);
                }
                if (r < 0)
                        return fail_at(t, "bad value", v);
        }
        return true;
}

static bool line_service(struct trace *t, char **tok, size_t n) {
        struct vmg_host_policy *h = &t->pol.host;
        if (n < 2 || h->n_services == MAX_SERVICES || find_service(t, tok[1]) >= 0)
                return fail_at(t, "bad or duplicate service", n > 1 ? tok[1] : "");
        size_t si = h->n_services++;
        struct vmg_service *s = &t->services[si];
        snprintf(t->service_names[si], sizeof(t->service_names[si]), "%s", tok[1]);
        s->name = s->match = t->service_names[si];
        t->svc_rates[si].probe_latency_ms = -1;
        for (size_t i = 2; i < n; i++) {
                char *k = NULL, *v = NULL;
                double d;
                if (!set_kv(t, tok[i], &k, &v))
                        return false;
                if (parse_num(v, &d) < 0)
                        return fail_at(t, "bad value", v);
                if (strcmp(k, "max_run_delay_ms") == 0) s->max_run_delay_ms = d;
                else if (strcmp(k, "max_io_delay_frac") == 0) s->max_io_delay_frac = d;
                else if (strcmp(k, "max_probe_latency_ms") == 0) s->max_probe_latency_ms = d;
                else return fail_at(t, "unknown service key", k);
        }
        return true;
}

static bool line_rule(struct trace *t, char **tok, size_t n) {
        int ti, r;
        if (n < 3 || (ti = find_tenant(t, tok[1], true)) < 0 || (r = parse_res(tok[2])) < 0)
                return fail_at(t, "rule TENANT RESOURCE KEY=VALUE...:", n > 2 ? tok[2] : "");
        struct vmg_rule *ru = &t->tenants[ti].rules[r];
        for (size_t i = 3; i < n; i++) {
                char *k = NULL, *v = NULL;
                double d = 0;
                int q;
                if (!set_kv(t, tok[i], &k, &v))
                        return false;
                if (strcmp(k, "noisy_for") == 0)
                        q = parse_time(v, &ru->noisy_for_ns);
                else if (strcmp(k, "calm_for") == 0)
                        q = parse_time(v, &ru->calm_for_ns);
                else {
                        q = parse_num(v, &d);
                        if (strcmp(k, "cap") == 0) ru->cap = d;
                        else if (strcmp(k, "noisy_above") == 0) ru->noisy_above = d, ru->noisy = true;
                        else if (strcmp(k, "throttle_to") == 0) ru->throttle_to = d;
                        else if (strcmp(k, "floor") == 0) ru->floor = d;
                        else return fail_at(t, "unknown rule key", k);
                }
                if (q < 0)
                        return fail_at(t, "bad value", v);
        }
        return true;
}

static bool line_vm(struct trace *t, char **tok, size_t n) {
        if (n < 3 || t->n_vms == MAX_VMS || find_vm(t, tok[1]))
                return fail_at(t, "vm NAME TENANT|- [uuid=U], bad or duplicate:", n > 1 ? tok[1] : "");
        struct tvm *vm = &t->vms[t->n_vms++];
        snprintf(vm->name, sizeof(vm->name), "%s", tok[1]);
        snprintf(vm->uuid, sizeof(vm->uuid), "uuid-%.31s", tok[1]);
        vm->tenant = strcmp(tok[2], "-") == 0 ? -1 : find_tenant(t, tok[2], true);
        for (size_t i = 3; i < n; i++) {
                char *k = NULL, *v = NULL;
                if (!set_kv(t, tok[i], &k, &v))
                        return false;
                if (strcmp(k, "uuid") != 0)
                        return fail_at(t, "unknown vm key", k);
                snprintf(vm->uuid, sizeof(vm->uuid), "%s", v);
        }
        return true;
}

/* One tick field: psi_io=, psi_cpu=, SERVICE.{run_delay_ms,io_delay,probe_ms}=,
 * VM.{cpu,disk_*,net_*,steal,reset,gone}=. "-" marks a figure invalid. Values persist. */
static bool tick_field(struct trace *t, char *kv) {
        char *k = NULL, *v = NULL, *dot;
        double d = 0;
        bool unset;

        if (!set_kv(t, kv, &k, &v))
                return false;
        /* interval= takes a time ("1s", "500ms"), not a plain number: parse it first. */
        if (strcmp(k, "interval") == 0) {
                uint64_t ns;
                if (parse_time(v, &ns) < 0 || ns == 0)
                        return fail_at(t, "bad interval", v);
                t->interval_s = (double) ns / 1e9;
                return true;
        }
        if (strcmp(k, "daemon_tick") == 0)
                return parse_time(v, &t->daemon_tick_ns) == 0 ? true : fail_at(t, "bad daemon_tick", v);
        unset = strcmp(v, "-") == 0;
        if (!unset && parse_num(v, &d) < 0)
                return fail_at(t, "bad value", v);
        if (strcmp(k, "psi_io") == 0 || strcmp(k, "psi_cpu") == 0) {
                t->host.psi_valid = !unset;
                *(strcmp(k, "psi_io") == 0 ? &t->host.psi_io_some : &t->host.psi_cpu_some) = d;
                return true;
        }
        dot = strrchr(k, '.');
        if (!dot)
                return fail_at(t, "unknown tick field", k);
        *dot = 0;
        const char *f = dot + 1;
        int si = find_service(t, k);
        if (si >= 0) {
                struct vmg_service_rates *sr = &t->svc_rates[si];
                sr->valid = true;
                if (strcmp(f, "run_delay_ms") == 0) sr->run_delay_avg_ms = d;
                else if (strcmp(f, "io_delay") == 0) sr->blkio_delay_frac = d, sr->blkio_delay_valid = !unset;
                else if (strcmp(f, "probe_ms") == 0) sr->probe_latency_ms = unset ? -1 : d;
                else if (strcmp(f, "valid") == 0) sr->valid = d != 0;
                else return fail_at(t, "unknown service field", f);
                return true;
        }
        struct tvm *vm = find_vm(t, k);
        if (!vm)
                return fail_at(t, "unknown service or vm", k);
        struct vmg_vm_rates *rt = &vm->rates;
        int r = parse_res(f);
        switch (r) {
        case VMG_RES_CPU: rt->cpu_cores = d; rt->cpu_valid = !unset; return true;
        case VMG_RES_DISK_READ_BPS: rt->disk_read_Bps = d; rt->disk_valid = !unset; return true;
        case VMG_RES_DISK_WRITE_BPS: rt->disk_write_Bps = d; rt->disk_valid = !unset; return true;
        case VMG_RES_DISK_READ_IOPS: rt->disk_read_iops = d; rt->disk_valid = !unset; return true;
        case VMG_RES_DISK_WRITE_IOPS: rt->disk_write_iops = d; rt->disk_valid = !unset; return true;
        case VMG_RES_NET_RX_BPS: rt->net_rx_bps = d; rt->net_valid = !unset; return true;
        case VMG_RES_NET_TX_BPS: rt->net_tx_bps = d; rt->net_valid = !unset; return true;
        default: break;
        }
        if (strcmp(f, "steal") == 0) rt->vcpu_delay_frac = d, rt->vcpu_delay_valid = !unset;
        else if (strcmp(f, "throttled") == 0) rt->cpu_throttled_time_frac = unset ? 0 : d;
        else if (strcmp(f, "reset") == 0) rt->reset = d != 0;
        else if (strcmp(f, "gone") == 0) vm->gone = d != 0;
        else if (strcmp(f, "unsampled") == 0) vm->unsampled = d != 0;
        else return fail_at(t, "unknown vm field", f);
        return true;
}

/* Invariants every tick of every trace must hold, expectations or not. */
static void check_invariants(struct trace *t, const struct vmg_engine_state *prev,
                             const struct vmg_engine_input *in, const struct vmg_action *a,
                             size_t n, const struct vmg_engine_state *st) {
        const char *why;
        bool contended = vmg_engine_contended(st, &why);

        CHECK_MSG(contended == oracle_contended(&t->pol, in, -1, -1), "%s: engine verdict %d (%s)",
                  t->where, contended, why);
        CHECK_MSG(contended == (why[0] != 0), "%s: verdict without words or words without verdict", t->where);
        for (size_t i = 0; i < n; i++) {
                long vi = -1;
                for (size_t j = 0; j < in->n_vms; j++)
                        if (strcmp(in->vms[j].uuid, a[i].uuid) == 0)
                                vi = (long) j;
                CHECK_MSG(vi >= 0, "%s: action for a VM not in the input: %s", t->where, a[i].uuid);
                if (vi < 0)
                        continue;
                const struct vmg_engine_vm *vm = &in->vms[vi];
                CHECK_MSG(a[i].reason[0] && strstr(a[i].reason, vm->name), "%s: reason '%s'", t->where, a[i].reason);
                CHECK_MSG(a[i].tenant == vm->tenant && vm->tenant >= 0, "%s: action on %s of tenant %d",
                          t->where, vm->name, vm->tenant);
                if (vm->tenant < 0)
                        continue;
                const struct vmg_rule *ru = &t->pol.tenants[vm->tenant].rules[a[i].resource];
                CHECK_MSG(ru->cap > 0 || ru->noisy, "%s: %s: action on %s which its tenant has no rule for",
                          t->where, vm->name, vmg_resource_name(a[i].resource));
                if (ru->cap > 0)
                        CHECK_MSG(a[i].new_limit > 0 && a[i].new_limit <= ru->cap * (1 + 1e-9),
                                  "%s: %s: limit %g beyond cap %g", t->where, vm->name, a[i].new_limit, ru->cap);
                if (ru->floor > 0 && a[i].new_limit > 0 && (ru->cap == 0 || ru->floor <= ru->cap))
                        CHECK_MSG(a[i].new_limit >= ru->floor * (1 - 1e-9), "%s: %s: limit %g under floor %g",
                                  t->where, vm->name, a[i].new_limit, ru->floor);
                if (a[i].kind == VMG_ACT_THROTTLE || a[i].kind == VMG_ACT_TIGHTEN)
                        CHECK_MSG(oracle_contended(&t->pol, in, vi, (int) a[i].resource),
                                  "%s: %s %s %s without harm a limit on it can undo", t->where,
                                  vmg_action_kind_name(a[i].kind), vm->name, vmg_resource_name(a[i].resource));
                struct vmg_engine_limit_info before, after;
                if (vmg_engine_query(prev, vm->uuid, a[i].resource, &before) == 0)
                        CHECK_MSG(before.limit == a[i].old_limit, "%s: old_limit %g, state had %g",
                                  t->where, a[i].old_limit, before.limit);
                else
                        CHECK_MSG(a[i].old_limit == 0, "%s: first sight with old_limit %g", t->where, a[i].old_limit);
                CHECK_INT(vmg_engine_query(st, vm->uuid, a[i].resource, &after), 0);
        }
}

static bool run_ticks(struct trace *t, uint64_t from, uint64_t to, uint64_t step) {
        for (uint64_t now = from; now <= to; now += step) {
                struct vmg_engine_vm vms[MAX_VMS];
                struct vmg_engine_service svcs[MAX_SERVICES];
                struct vmg_engine_input in = { .now_ns = now, .tick_ns = t->daemon_tick_ns, .host = t->host,
                                               .vms = vms, .services = svcs };
                _cleanup_free_ struct vmg_action *a = NULL;
                struct vmg_engine_state *st = NULL;
                size_t n = 0;
                int r;

                in.host.interval_s = t->interval_s;
                for (size_t i = 0; i < t->n_vms; i++) {
                        if (t->vms[i].gone)
                                continue;
                        vms[in.n_vms] = (struct vmg_engine_vm) {
                                t->vms[i].uuid, t->vms[i].name, t->vms[i].tenant, t->vms[i].rates, t->vms[i].unsampled };
                        vms[in.n_vms++].rates.interval_s = t->interval_s;
                }
                for (size_t i = 0; i < t->pol.host.n_services; i++) {
                        svcs[in.n_services] = (struct vmg_engine_service) {
                                t->service_names[i], (int) i, t->svc_rates[i] };
                        svcs[in.n_services++].rates.interval_s = t->interval_s;
                }
                r = vmg_engine_step(&t->pol, t->st, &in, &st, &a, &n);
                if (r < 0)
                        return fail_at(t, "vmg_engine_step failed", strerror(-r));
                check_invariants(t, t->st, &in, a, n, st);
                for (size_t i = 0; i < n; i++) {
                        if (t->n_acts == MAX_BLOCK_ACTIONS)
                                return fail_at(t, "too many actions in one block", "");
                        t->acts[t->n_acts++] = (struct block_action) { .a = a[i], .at = now };
                }
                vmg_engine_state_free(t->st);
                t->st = st;
                t->now = now;
                t->ticked = true;
                t->n_ticks++;
                if (step == 0)
                        break;
        }
        return true;
}

static void close_block(struct trace *t) {
        for (size_t i = 0; i < t->n_acts; i++)
                if (t->n_expects > 0)
                        CHECK_MSG(t->acts[i].matched, "%s: unexpected action at %.3fs: %s %s %s -> %g: %s",
                                  t->block_where, t->acts[i].at / 1e9, vmg_action_kind_name(t->acts[i].a.kind),
                                  t->acts[i].a.vm, vmg_resource_name(t->acts[i].a.resource),
                                  t->acts[i].a.new_limit, t->acts[i].a.reason);
        t->n_acts = 0;
}

static bool line_tick(struct trace *t, char **tok, size_t n) {
        uint64_t from, to;
        char *dots;

        close_block(t);
        snprintf(t->block_where, sizeof(t->block_where), "%s", t->where);
        if (n < 2)
                return fail_at(t, "tick TIME[..TIME] FIELD=VALUE...", "");
        dots = strstr(tok[1], "..");
        if (dots)
                *dots = 0;
        if (parse_time(tok[1], &from) < 0 || (dots && parse_time(dots + 2, &to) < 0))
                return fail_at(t, "bad tick time", tok[1]);
        if (!dots)
                to = from;
        if (to < from || (t->ticked && from <= t->now))
                return fail_at(t, "tick time must go forward", tok[1]);
        for (size_t i = 2; i < n; i++)
                if (!tick_field(t, tok[i]))
                        return false;
        return run_ticks(t, from, to, dots ? (uint64_t) llround(t->interval_s * 1e9) : 0);
}

static int kind_of(const char *s) {
        for (int k = VMG_ACT_THROTTLE; k <= VMG_ACT_CAP; k++)
                if (strcmp(s, vmg_action_kind_name(k)) == 0)
                        return k;
        return -1;
}

/* expect KIND VM RES [LIMIT|unlimited] [at=TIME]
 * expect reason VM RES TEXT...      (an action of this block for VM/RES says TEXT)
 * expect limit VM RES LIMIT|unlimited  (the state after this block)
 * expect contended yes|no [TEXT...] */
static bool line_expect(struct trace *t, char **tok, size_t n, const char *rest_after3) {
        int kind, r;
        struct tvm *vm;

        if (n >= 3 && strcmp(tok[1], "contended") == 0) {
                const char *why;
                bool want = strcmp(tok[2], "yes") == 0;
                CHECK_MSG(vmg_engine_contended(t->st, &why) == want, "%s: contended is not %s (%s)",
                          t->where, tok[2], why);
                if (n > 3)
                        CHECK_MSG(strstr(why, rest_after3), "%s: verdict '%s' lacks '%s'", t->where, why, rest_after3);
                return true;
        }
        if (n < 4 || !(vm = find_vm(t, tok[2])) || (r = parse_res(tok[3])) < 0)
                return fail_at(t, "expect WHAT VM RES ...:", n > 1 ? tok[1] : "");
        if (strcmp(tok[1], "reason") == 0) {
                bool found = false;
                for (size_t i = 0; i < t->n_acts && !found; i++)
                        found = strcmp(t->acts[i].a.uuid, vm->uuid) == 0 && (int) t->acts[i].a.resource == r &&
                                strstr(t->acts[i].a.reason, rest_after3 ? rest_after3 : "");
                CHECK_MSG(found, "%s: no action for %s %s with reason containing '%s'", t->where,
                          vm->name, tok[3], rest_after3);
                return true;
        }
        double want = 0;
        if (n >= 5 && strcmp(tok[4], "unlimited") != 0 && strncmp(tok[4], "at=", 3) != 0 &&
            parse_num(tok[4], &want) < 0)
                return fail_at(t, "bad limit", tok[4]);
        if (strcmp(tok[1], "limit") == 0) {
                struct vmg_engine_limit_info li;
                int q = vmg_engine_query(t->st, vm->uuid, r, &li);
                CHECK_MSG(q == 0 && fabs(li.limit - want) <= 1e-6 * fmax(1, want),
                          "%s: %s %s limit %g (query %d), expected %g", t->where, vm->name, tok[3],
                          q == 0 ? li.limit : NAN, q, want);
                return true;
        }
        if ((kind = kind_of(tok[1])) < 0)
                return fail_at(t, "unknown expectation", tok[1]);
        bool has_limit = n >= 5 && strncmp(tok[4], "at=", 3) != 0;
        uint64_t at = 0;
        bool has_at = false;
        for (size_t i = 4; i < n; i++)
                if (strncmp(tok[i], "at=", 3) == 0) {
                        if (parse_time(tok[i] + 3, &at) < 0)
                                return fail_at(t, "bad at=", tok[i]);
                        has_at = true;
                }
        for (size_t i = 0; i < t->n_acts; i++) {
                struct block_action *b = &t->acts[i];
                if (b->matched || strcmp(b->a.uuid, vm->uuid) != 0 || (int) b->a.resource != r ||
                    (int) b->a.kind != kind || (has_at && b->at != at) ||
                    (has_limit && fabs(b->a.new_limit - want) > 1e-6 * fmax(1, want)))
                        continue;
                b->matched = true;
                CHECK(true);
                return true;
        }
        CHECK_MSG(false, "%s: expected %s %s %s %s%s%s did not happen", t->where, tok[1], vm->name,
                  tok[3], has_limit ? tok[4] : "", has_at ? " at " : "", has_at ? tok[n - 1] + 3 : "");
        return true;
}

/* Returns the number of words, or -1 when the line has more than max: a word silently
 * dropped would leave a captured guest at stale values and the trace would still pass. */
static int tokenize(char *line, char **tok, size_t max) {
        size_t n = 0;
        char *save = NULL;
        for (char *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (n == max)
                        return -1;
                tok[n++] = w;
        }
        return (int) n;
}

/* The expect lines of a whole trace. Counted before the first tick: a count of those read so
 * far would leave every action before the first expect unchecked (a throttle at tick 0
 * followed by "expect contended no" passed). */
static size_t count_expects(const char *text) {
        size_t n = 0;

        for (const char *line = text; line && *line;) {
                const char *w = line + strspn(line, " \t");
                if (strncmp(w, "expect", 6) == 0 && (w[6] == ' ' || w[6] == '\t'))
                        n++;
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return n;
}

/* Replays one trace text. Returns the number of ticks run, or -1 on a format error. */
static long run_trace(const char *name, char *text) {
        _cleanup_free_ struct trace *t = calloc(1, sizeof(*t));
        char *next = text;
        int lineno = 0;
        bool ok = true;

        if (!t)
                return -1;
        t->pol.tenants = t->tenants;
        t->pol.host.services = t->services;
        t->interval_s = 1;
        t->n_expects = count_expects(text);
        while (next && ok) {
                char *line = next, *nl = strchr(line, '\n');
                char copy[4096], *tok[256], *rest3 = NULL;
                int n;

                if (nl)
                        *nl = 0;
                next = nl ? nl + 1 : NULL;
                lineno++;
                snprintf(t->where, sizeof(t->where), "%s:%d", name, lineno);
                if (line[strspn(line, " \t")] == '#' || line[strspn(line, " \t")] == 0)
                        continue;
                if (strlen(line) >= sizeof(copy)) {
                        ok = fail_at(t, "line too long", "");
                        break;
                }
                snprintf(copy, sizeof(copy), "%s", line);
                n = tokenize(line, tok, ARRAY_SIZE(tok));
                if (n < 0) {
                        ok = fail_at(t, "too many words on one line", "");
                        break;
                }
                if (n == 0)
                        continue;
                if (n >= 4) { /* the free text of "expect reason VM RES TEXT", "expect contended yes TEXT" */
                        int skip = strcmp(tok[1], "contended") == 0 ? 3 : 4;
                        char *p = copy;
                        for (int w = 0; w < skip; w++) {
                                p += strspn(p, " \t");
                                p += strcspn(p, " \t");
                        }
                        rest3 = p + strspn(p, " \t");
                }
                if (strcmp(tok[0], "host") == 0) ok = line_host(t, tok, n);
                else if (strcmp(tok[0], "service") == 0) ok = line_service(t, tok, n);
                else if (strcmp(tok[0], "rule") == 0) ok = line_rule(t, tok, n);
                else if (strcmp(tok[0], "vm") == 0) ok = line_vm(t, tok, n);
                else if (strcmp(tok[0], "tick") == 0) ok = line_tick(t, tok, n);
                else if (strcmp(tok[0], "expect") == 0) ok = line_expect(t, tok, n, rest3);
                else ok = fail_at(t, "unknown line", tok[0]);
        }
        if (ok)
                close_block(t);
        vmg_engine_state_free(t->st);
        return ok ? (long) t->n_ticks : -1;
}

static char *read_all(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf;
        long len;

        if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
                return NULL;
        buf = malloc((size_t) len + 1);
        if (!buf)
                return NULL;
        if (fread(buf, 1, (size_t) len, f) != (size_t) len) {
                free(buf);
                return NULL;
        }
        buf[len] = 0;
        return buf;
}

/* The synthetic traces this test requires; others found in the directory (captured from real
 * guests) run too, with invariants only unless they carry expect lines. */
static const struct {
        const char *file;
        const char *what;
} required[] = {
        { "steady_noise.trace", "steady noise: throttle after noisy_for, tighten while contended, floor held" },
        { "burst.trace", "bursts shorter than noisy_for: no action" },
        { "two_tenants.trace", "two noisy tenants: biggest excess first, one per tick" },
        { "noise_stops.trace", "noise stops: stepwise relax after calm_for, then release to the cap" },
        { "counter_reset.trace", "counter reset: interval ignored, state kept" },
        { "vanish.trace", "VM vanishing mid-trace: state dropped, no crash, fresh on return" },
        { "no_contention.trace", "no contention: huge usage is never throttled" },
        { "caps.trace", "hard caps applied once at sight and held through throttle and release" },
        { "fairness.trace", "one tenant's rule never touches another's VM; unmanaged never limited" },
        { "steal.trace", "another guest's steal is contention, a guest's own steal is not" },
        { "resource_match.trace", "harm matched to the resource: CPU harm never limits a disk writer, I/O harm never a CPU burner" },
        { "self_throttle.trace", "throttled guests' quota waits are not contention: released calm_for (x strikes) after the victim is fine" },
        { "unsampled.trace", "a guest without fresh rates keeps its throttle; unobserved time is not calm" },
        { "daemon_tick.trace", "vmguardd --tick overrides the policy's tick in the gap rule" },
};

/* The API's contracts on struct literals: argument errors, purity, uuid handling, policy
 * reloads and tenant changes. */
static const struct vmg_rule acme_rules[VMG_RES_COUNT] = {
        [VMG_RES_DISK_WRITE_BPS] = { .cap = 100e6, .noisy = true, .noisy_above = 40e6,
                                     .noisy_for_ns = 0, .throttle_to = 20e6, .floor = 5e6,
                                     .calm_for_ns = 30 * NSEC_PER_SEC },
};

static struct vmg_vm_rates writing(double Bps) {
        return (struct vmg_vm_rates) { .interval_s = 1, .disk_valid = true, .disk_write_Bps = Bps };
}

static void api_cases(void) {
        struct vmg_tenant tenants[2] = { { .name = (char *) "acme" }, { .name = (char *) "globex" } };
        memcpy(tenants[0].rules, acme_rules, sizeof(acme_rules));
        struct vmg_policy pol = {
                .host = { .psi_io_some = 0.1, .min_hold_ns = 10 * NSEC_PER_SEC, .step_down = 0.5, .step_up = 2 },
                .tenants = tenants, .n_tenants = 2,
        };
        struct vmg_engine_vm vms[3] = {
                { "u-1", "web-3", 0, writing(180e6), false },
                { "u-1", "web-3-dup", 0, writing(0), false },
                { NULL, "no-uuid", 0, writing(500e6), false },
        };
        struct vmg_engine_input in = { .now_ns = 5 * NSEC_PER_SEC, .host = { .psi_valid = true, .psi_io_some = 0.5 },
                                       .vms = vms, .n_vms = 3 };
        struct vmg_engine_state *s0 = NULL, *s1 = NULL, *s2 = NULL, *bad = (struct vmg_engine_state *) 0x1;
        struct vmg_action *a = NULL, *a2 = NULL;
        struct vmg_engine_limit_info li;
        size_t n = 99, n2 = 0;
        const char *why;

        T_CASE("api: argument errors leave outputs untouched");
        CHECK_INT(vmg_engine_step(NULL, NULL, &in, &s1, &a, &n), -EINVAL);
        CHECK_INT(vmg_engine_step(&pol, NULL, NULL, &s1, &a, &n), -EINVAL);
        struct vmg_engine_input holes = { .n_vms = 2 };
        CHECK_INT(vmg_engine_step(&pol, NULL, &holes, &s1, &a, &n), -EINVAL);
        CHECK(s1 == NULL && a == NULL && n == 99);
        CHECK_INT(vmg_engine_state_new(NULL), -EINVAL);
        CHECK(vmg_engine_state_free(NULL) == NULL);
        CHECK(!vmg_engine_contended(NULL, &why) && why && !why[0]);

        T_CASE("api: first tick from an empty state, duplicates and missing uuids skipped");
        CHECK_INT(vmg_engine_state_new(&s0), 0);
        CHECK_INT(vmg_engine_step(&pol, s0, &in, &s1, &a, &n), 0);
        /* cap at sight, then throttle at once (noisy_for 0) in the same tick: the cap does
         * not start the hold */
        CHECK_INT(n, 2);
        CHECK_INT(a[0].kind, VMG_ACT_CAP);
        CHECK_INT(a[1].kind, VMG_ACT_THROTTLE);
        CHECK_NEAR(a[1].old_limit, 100e6, 1);
        CHECK_NEAR(a[1].new_limit, 20e6, 1);
        CHECK_STR(a[1].vm, "web-3");
        CHECK_STR(a[1].uuid, "u-1");
        CHECK_INT(vmg_engine_vm_count(s1), 1);
        CHECK_STR(vmg_engine_vm_uuid(s1, 0), "u-1");
        CHECK(vmg_engine_vm_uuid(s1, 1) == NULL);
        CHECK(vmg_engine_contended(s1, &why));
        CHECK_STR(why, "host PSI io some 50% > 10%");

        T_CASE("api: query");
        CHECK_INT(vmg_engine_query(s1, "u-1", VMG_RES_DISK_WRITE_BPS, &li), 0);
        CHECK(li.throttled && li.changed && li.last_change_ns == in.now_ns);
        CHECK_NEAR(li.limit, 20e6, 1);
        CHECK_NEAR(li.cap, 100e6, 1);
        CHECK_CONTAINS(li.reason, "disk writes 180.0MB/s over 40.0MB/s for 0s while host PSI io some 50% > 10%");
        CHECK_STR(li.name, "web-3");
        CHECK_INT(vmg_engine_query(s1, "nope", VMG_RES_CPU, &li), -ENOENT);
        CHECK_INT(vmg_engine_query(s1, "u-1", VMG_RES_COUNT, &li), -EINVAL);
        CHECK_INT(vmg_engine_query(NULL, "u-1", VMG_RES_CPU, &li), -EINVAL);

        T_CASE("api: prev is not modified, the step is deterministic");
        in.now_ns = 20 * NSEC_PER_SEC;
        CHECK_INT(vmg_engine_step(&pol, s1, &in, &s2, &a2, &n2), 0);
        CHECK_INT(n2, 1);
        CHECK_INT(n2 ? (int) a2[0].kind : -1, VMG_ACT_TIGHTEN);
        vmg_engine_state_free(s2);
        free(a2);
        CHECK_INT(vmg_engine_query(s1, "u-1", VMG_RES_DISK_WRITE_BPS, &li), 0);
        CHECK_NEAR(li.limit, 20e6, 1);
        CHECK_INT(vmg_engine_step(&pol, s1, &in, &s2, &a2, &n2), 0);
        CHECK_INT(n2, 1);
        CHECK_NEAR(n2 ? a2[0].new_limit : 0, 10e6, 1);
        vmg_engine_state_free(s2);
        free(a2);

        T_CASE("api: time going backwards is refused");
        in.now_ns = 1;
        s2 = bad;
        CHECK_INT(vmg_engine_step(&pol, s1, &in, &s2, &a2, &n2), -EINVAL);
        CHECK(s2 == bad);

        T_CASE("api: the VM changes tenant: the old tenant's limits go");
        in.now_ns = 21 * NSEC_PER_SEC;
        vms[0].tenant = 1;
        in.n_vms = 1;
        CHECK_INT(vmg_engine_step(&pol, s1, &in, &s2, &a2, &n2), 0);
        CHECK_INT(n2, 1);
        CHECK_INT(n2 ? (int) a2[0].kind : -1, VMG_ACT_RELEASE);
        CHECK_NEAR(n2 ? a2[0].new_limit : 1, 0, 0);
        CHECK_INT(n2 ? a2[0].tenant : 0, 1);
        vmg_engine_state_free(s2);
        free(a2);

        T_CASE("api: tenant index out of range is unmanaged");
        vms[0].tenant = 7;
        CHECK_INT(vmg_engine_step(&pol, s1, &in, &s2, &a2, &n2), 0);
        CHECK_INT(n2, 1);
        CHECK_INT(n2 ? a2[0].tenant : 0, -1);
        CHECK_INT(vmg_engine_query(s2, "u-1", VMG_RES_DISK_WRITE_BPS, &li), 0);
        CHECK_INT(li.tenant, -1);
        CHECK_NEAR(li.limit, 0, 0);
        vmg_engine_state_free(s2);
        free(a2);

        T_CASE("api: policy reload lowers the cap under a throttled VM, then drops the rule");
        vms[0].tenant = 0;
        tenants[0].rules[VMG_RES_DISK_WRITE_BPS].cap = 15e6;
        vms[0].rates = writing(0.5e6);
        CHECK_INT(vmg_engine_step(&pol, s1, &in, &s2, &a2, &n2), 0);
        CHECK_INT(n2, 1);
        CHECK_INT(n2 ? (int) a2[0].kind : -1, VMG_ACT_CAP);
        CHECK_NEAR(n2 ? a2[0].new_limit : 0, 15e6, 1);
        free(a2);
        struct vmg_engine_state *s3 = NULL;
        tenants[0].rules[VMG_RES_DISK_WRITE_BPS] = (struct vmg_rule) {};
        in.now_ns++;
        CHECK_INT(vmg_engine_step(&pol, s2, &in, &s3, &a2, &n2), 0);
        CHECK_INT(n2, 1);
        CHECK_INT(n2 ? (int) a2[0].kind : -1, VMG_ACT_RELEASE);
        CHECK_NEAR(n2 ? a2[0].new_limit : 1, 0, 0);
        free(a2);
        vmg_engine_state_free(s3);
        vmg_engine_state_free(s2);

        T_CASE("api: an empty tick forgets every VM");
        in.n_vms = 0;
        in.vms = NULL;
        CHECK_INT(vmg_engine_step(&pol, s1, &in, &s2, &a2, &n2), 0);
        CHECK_INT(n2, 0);
        CHECK(a2 == NULL);
        CHECK_INT(vmg_engine_vm_count(s2), 0);
        vmg_engine_state_free(s2);

        free(a);
        vmg_engine_state_free(s1);
        vmg_engine_state_free(s0);
}

/* Mutants the replay must reject: a trace that passes with a wrong action proves nothing.
 * Each runs with its failure messages silenced; the check is that it failed at all. */
static const struct {
        const char *what;
        const char *text;
} mutants[] = {
        { "a throttle in the trace's first tick, before any expect line",
          "host psi_io_some=0.10 min_hold=10s step_down=0.5 step_up=2\n"
          "rule acme disk_write noisy_above=40M noisy_for=0s throttle_to=20M floor=5M calm_for=30s\n"
          "vm web-3 acme\n"
          "tick 0s web-3.disk_write=180M psi_io=0.5\n"
          "tick 1s..5s web-3.disk_write=1M psi_io=0.01\n"
          "expect contended no\n" },
};

static void mutant_cases(void) {
        for (size_t i = 0; i < ARRAY_SIZE(mutants); i++) {
                _cleanup_free_ char *text = strdup(mutants[i].text);
                int saved_failed = t_failed, saved_passed = t_passed, err = dup(STDERR_FILENO);
                long ticks;

                T_CASE(mutants[i].what);
                if (!text || err < 0 || !freopen("/dev/null", "w", stderr)) {
                        CHECK_MSG(false, "cannot set up the mutant: %m");
                        continue;
                }
                ticks = run_trace("mutant.trace", text);
                int caught = t_failed - saved_failed;
                fflush(stderr);
                (void) dup2(err, STDERR_FILENO);
                close(err);
                t_failed = saved_failed;
                t_passed = saved_passed;
                CHECK_MSG(ticks > 0 && caught > 0, "mutant passed the replay (%ld ticks): %s", ticks, mutants[i].what);
        }
}

/* Names from guests: a domain named with 100 (or 2000) two-byte letters, control characters
 * and quotes. The action's vm and reason and the state's name are cut into fixed buffers;
 * cut inside a character they were invalid UTF-8, json_string() refused them and the
 * status snapshot was NULL (/metrics 500, control socket "internal", status.json stale). */
static void hostile_name_cases(void) {
        static char tname[] = "acme";
        struct vmg_tenant t;
        struct vmg_policy p;
        fx_cap_policy(&p, &t, tname);
        static const size_t letters[] = { 63, 64, 100, 255, 256, 2000 };
        for (size_t k = 0; k < ARRAY_SIZE(letters); k++) {
                char name[4096 + 16] = "\"q\\\n"; /* 4 bytes: the letters end on an odd byte */
                size_t n = strlen(name);
                for (size_t i = 0; i < letters[k]; i++, n += 2)
                        memcpy(name + n, "\xc3\xa9", 2); /* é */
                name[n] = '\0';
                struct vmg_engine_vm vm = { .uuid = "0f8fad5b-d9cb-469f-a165-70867728950e",
                                            .name = name, .tenant = 0 };
                vm.rates.cpu_cores = 0.5;
                struct vmg_engine_input in = { .now_ns = 5000000000ULL, .vms = &vm, .n_vms = 1 };
                struct vmg_engine_state *st = NULL;
                struct vmg_action *acts = NULL;
                size_t n_acts = 0;
                T_CASE("a guest named with non-ASCII letters: valid UTF-8 everywhere");
                CHECK_INT(vmg_engine_step(&p, NULL, &in, &st, &acts, &n_acts), 0);
                CHECK_MSG(n_acts >= 1, "%zu letters: no cap action", letters[k]);
                for (size_t i = 0; i < n_acts; i++) {
                        CHECK_MSG(vmg_utf8_valid(acts[i].vm), "%zu letters: action vm cut inside a character", letters[k]);
                        CHECK_MSG(vmg_utf8_valid(acts[i].reason), "%zu letters: action reason cut inside a character", letters[k]);
                }
                struct vmg_engine_limit_info li;
                if (st && vmg_engine_query(st, vm.uuid, VMG_RES_CPU, &li) == 0) {
                        CHECK_MSG(vmg_utf8_valid(li.name), "%zu letters: state name cut inside a character", letters[k]);
                        CHECK_MSG(vmg_utf8_valid(li.reason), "%zu letters: state reason cut inside a character", letters[k]);
                }
                free(acts);
                vmg_engine_state_free(st);
        }
        T_CASE("vmg_utf8_cut and _scrub");
        static const struct {
                const char *in, *out;
        } cuts[] = { { "ab\xc3", "ab" }, { "ab\xe2\x82", "ab" }, { "ab\xe2\x82\xac", "ab\xe2\x82\xac" } };
        for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
                char buf[16];
                snprintf(buf, sizeof buf, "%s", cuts[i].in);
                vmg_utf8_cut(buf);
                CHECK_STR(buf, cuts[i].out);
        }
        char d[] = "a\xff\xc0\xafz\xed\xa0\x80";
        vmg_utf8_scrub(d);
        CHECK_STR(d, "a???z???");
        CHECK(vmg_utf8_valid(d));
}

int main(int argc, char **argv) {
        const char *dir = argc > 1 ? argv[1] : getenv("VMG_TRACE_DIR");

        if (!dir)
                dir = "tests/fixtures/traces";
        api_cases();
        mutant_cases();
        hostile_name_cases();
        for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
                char path[512];
                _cleanup_free_ char *text = NULL;
                snprintf(path, sizeof(path), "%s/%s", dir, required[i].file);
                T_CASE(required[i].what);
                text = read_all(path);
                CHECK_MSG(text != NULL, "cannot read %s: %m", path);
                if (text)
                        CHECK_MSG(run_trace(required[i].file, text) > 0, "%s ran no ticks", path);
        }

        DIR *d = opendir(dir);
        CHECK_MSG(d != NULL, "cannot open %s: %m", dir);
        for (struct dirent *de; d && (de = readdir(d));) {
                size_t len = strlen(de->d_name);
                bool known = false;
                if (len < 7 || strcmp(de->d_name + len - 6, ".trace") != 0)
                        continue;
                for (size_t i = 0; i < ARRAY_SIZE(required); i++)
                        known |= strcmp(required[i].file, de->d_name) == 0;
                if (known)
                        continue;
                char path[512];
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                T_CASE(de->d_name);
                _cleanup_free_ char *text = read_all(path);
                CHECK_MSG(text != NULL, "cannot read %s: %m", path);
                if (text)
                        CHECK_MSG(run_trace(de->d_name, text) > 0, "%s ran no ticks", path);
        }
        if (d)
                closedir(d);
        return t_summary();
}
