/* The policy language: the input is one JSON file, parsed as a tenant file (under a name
 * that skips the file-name check and under one that applies it) and as the host file. A
 * file that parses must give a struct the rest of vmguard can use blindly: printable,
 * matchable, and within the ranges the parser promises. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "tests/fuzz/fuzz.h"

static FILE *devnull(void) {
        static FILE *f;
        if (!f)
                f = fopen("/dev/null", "we");
        if (!f)
                abort();
        return f;
}

static void check_error(int r, const struct vmg_policy_error *err) {
        char buf[1024];
        FZ_ASSERT(r == -EINVAL || r == -ENOMEM);
        FZ_ASSERT(memchr(err->file, 0, sizeof(err->file)));
        FZ_ASSERT(memchr(err->field, 0, sizeof(err->field)));
        FZ_ASSERT(memchr(err->message, 0, sizeof(err->message)));
        FZ_ASSERT(err->message[0]);
        vmg_policy_error_format(err, buf, sizeof(buf));
}

static void check_tenant(const struct vmg_tenant *t) {
        FZ_ASSERT(t->name && t->file && t->n_matches > 0 && t->matches);
        for (size_t i = 0; i < t->n_matches; i++)
                FZ_ASSERT(t->matches[i].value && t->matches[i].value[0]);
        for (int r = 0; r < VMG_RES_COUNT; r++) {
                const struct vmg_rule *u = &t->rules[r];
                FZ_ASSERT(isfinite(u->cap) && u->cap >= 0);
                if (!u->noisy)
                        continue;
                /* the engine relies on floor <= throttle_to < noisy_above (<= cap) */
                FZ_ASSERT(u->noisy_above > 0 && u->throttle_to > 0);
                FZ_ASSERT(u->throttle_to < u->noisy_above);
                FZ_ASSERT(u->floor > 0 && u->floor <= u->throttle_to);
                FZ_ASSERT(u->cap == 0 || u->noisy_above < u->cap);
                FZ_ASSERT(u->calm_for_ns > 0);
        }
}

static void check_host(const struct vmg_host_policy *h) {
        FZ_ASSERT(h->file);
        FZ_ASSERT(h->tick_ns >= 100000000ull && h->tick_ns <= 60000000000ull);
        FZ_ASSERT(h->step_down > 0 && h->step_down < 1);
        FZ_ASSERT(h->step_up > 1 && h->step_up <= 10);
        FZ_ASSERT(h->psi_cpu_some >= 0 && h->psi_cpu_some <= 1);
        FZ_ASSERT(h->psi_io_some >= 0 && h->psi_io_some <= 1);
        FZ_ASSERT(h->vm_steal >= 0 && h->vm_steal <= 1);
        for (size_t i = 0; i < h->n_services; i++) {
                const struct vmg_service *s = &h->services[i];
                FZ_ASSERT(s->name && s->match);
                FZ_ASSERT(s->priority >= 1 && s->priority <= 10);
                FZ_ASSERT(s->max_run_delay_ms > 0 || s->max_io_delay_frac > 0 ||
                          s->max_probe_latency_ms > 0);
                FZ_ASSERT((s->probe_dns != NULL) == (s->max_probe_latency_ms > 0));
        }
}

static void use_policy(struct vmg_tenant *t, struct vmg_host_policy *h) {
        struct vmg_policy p = { .n_tenants = t ? 1 : 0, .tenants = t };
        if (h)
                p.host = *h;
        else {
                p.host.tick_ns = 1000000000ull;
                p.host.step_down = 0.5;
                p.host.step_up = 1.5;
        }
        vmg_policy_print(&p, devnull());
        if (t) {
                int i = vmg_policy_match(&p, t->name, "web-1", "00000000-0000-0000-0000-000000000000");
                FZ_ASSERT(i == -1 || i == 0);
                for (size_t k = 0; k < t->n_matches; k++) {
                        /* a literal name or UUID must match its own tenant */
                        const struct vmg_vm_match *m = &t->matches[k];
                        if (m->kind == VMG_MATCH_UUID)
                                FZ_ASSERT(vmg_policy_match(&p, NULL, NULL, m->value) == 0);
                        else if (m->kind == VMG_MATCH_NAME_GLOB && !strpbrk(m->value, "*?[\\"))
                                FZ_ASSERT(vmg_policy_match(&p, NULL, m->value, NULL) == 0);
                }
        }
}

int vmg_fuzz_policy(const uint8_t *data, size_t size) {
        static const char *const names[] = { "fuzz-tenant", "/etc/vmguard/tenants.d/acme.json" };
        const char *buf = (const char *) data;
        struct vmg_policy_error err;
        int r;

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                struct vmg_tenant t;
                memset(&t, 0xAA, sizeof(t)); /* "*ret untouched on failure": detectable */
                memset(&err, 0, sizeof(err));
                r = vmg_tenant_parse(names[i], buf, size, &t, &err);
                if (r < 0) {
                        check_error(r, &err);
                        FZ_ASSERT(t.name == (char *) (uintptr_t) 0xAAAAAAAAAAAAAAAAull);
                        continue;
                }
                FZ_ASSERT(r == 0);
                check_tenant(&t);
                if (i == 1)
                        FZ_ASSERT(strcmp(t.name, "acme") == 0);
                use_policy(&t, NULL);
                vmg_tenant_done(&t);
        }

        struct vmg_host_policy h;
        memset(&err, 0, sizeof(err));
        r = vmg_host_policy_parse("/etc/vmguard/host.json", buf, size, &h, &err);
        if (r < 0) {
                check_error(r, &err);
                return 0;
        }
        check_host(&h);
        use_policy(NULL, &h);
        vmg_host_policy_done(&h);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_policy)
