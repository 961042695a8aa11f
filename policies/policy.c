/* The policy module: tenant and host policy files, JSON in, a validated read-only struct
 * out; every error names file, line, column and field. The jobs, one per file: parse.c
 * (errors, positions, typed getters), tenant.c and host.c (the two file kinds), load.c
 * (files and the tenants directory into one policy), resources.c (resource keys, units,
 * formatting), and this file: which tenant a VM belongs to, and printing the policy. */
#include "policies/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/stat.h>

#include "common/macros.h"


/* Metadata names the tenant explicitly, so it wins; a UUID is exact and stable across
 * renames; a name glob is the loosest claim. Metadata naming a tenant that did not opt in
 * ("metadata": true) is ignored and the VM is matched by UUID and name as usual. */
int vmg_policy_match(const struct vmg_policy *p, const char *metadata_tenant,
                     const char *name, const char *uuid) {
        static const enum vmg_match_kind order[] = { VMG_MATCH_METADATA, VMG_MATCH_UUID,
                                                     VMG_MATCH_NAME_GLOB };
        if (!p)
                return -1;
        for (size_t o = 0; o < ARRAY_SIZE(order); o++)
                for (size_t i = 0; i < p->n_tenants; i++) {
                        const struct vmg_tenant *t = &p->tenants[i];
                        for (size_t j = 0; j < t->n_matches; j++) {
                                const struct vmg_vm_match *m = &t->matches[j];
                                if (m->kind != order[o])
                                        continue;
                                bool hit = false;
                                switch (m->kind) {
                                case VMG_MATCH_METADATA:
                                        hit = metadata_tenant &&
                                              strcmp(metadata_tenant, t->name) == 0;
                                        break;
                                case VMG_MATCH_UUID:
                                        hit = uuid && strcasecmp(uuid, m->value) == 0;
                                        break;
                                case VMG_MATCH_NAME_GLOB:
                                        hit = name && fnmatch(m->value, name, 0) == 0;
                                        break;
                                }
                                if (hit)
                                        return (int) i;
                        }
                }
        return -1;
}


/* ---------------------------------------------------------------------------------------
 * Printing the effective policy */

static void print_rule(FILE *out, enum vmg_resource res, const struct vmg_rule *r) {
        char a[64], b[64], c[64], d1[32], d2[32];
        fprintf(out, "    %-16s", vmg_resource_name(res));
        if (r->cap > 0)
                fprintf(out, "cap %s%s", vmg_resource_format(res, r->cap, a, sizeof a),
                        r->noisy ? "; " : "");
        if (r->noisy)
                fprintf(out,
                        "noisy above %s for %s while contended -> throttle to %s (floor %s), "
                        "release after %s calm",
                        vmg_resource_format(res, r->noisy_above, a, sizeof a),
                        pol_format_duration(r->noisy_for_ns, d1, sizeof d1),
                        vmg_resource_format(res, r->throttle_to, b, sizeof b),
                        vmg_resource_format(res, r->floor, c, sizeof c),
                        pol_format_duration(r->calm_for_ns, d2, sizeof d2));
        fputc('\n', out);
}

void vmg_policy_print(const struct vmg_policy *p, FILE *out) {
        const struct vmg_host_policy *h = &p->host;
        char a[32];

        fprintf(out, "host (%s)\n", h->file ? h->file : "built-in defaults");
        fprintf(out, "  tick         %s\n", pol_format_duration(h->tick_ns, a, sizeof a));
        fprintf(out, "  contention   psi_io_some %g%%, psi_cpu_some %g%%, vm_steal %g%% "
                     "(0 = not judged)\n",
                h->psi_io_some * 100, h->psi_cpu_some * 100, h->vm_steal * 100);
        fprintf(out, "  damping      min_hold %s, step_down x%g, step_up x%g\n",
                pol_format_duration(h->min_hold_ns, a, sizeof a), h->step_down, h->step_up);
        if (h->n_services == 0)
                fprintf(out, "  services     none\n");
        for (size_t i = 0; i < h->n_services; i++) {
                const struct vmg_service *s = &h->services[i];
                fprintf(out, "  service %s: %s \"%s\", priority %d", s->name,
                        s->kind == VMG_SERVICE_PROCESS ? "process" : "unit", s->match,
                        s->priority);
                if (s->exe)
                        fprintf(out, ", exe %s, uid %u", s->exe, (unsigned) s->uid);
                if (s->max_run_delay_ms > 0)
                        fprintf(out, ", max_run_delay %gms", s->max_run_delay_ms);
                if (s->max_io_delay_frac > 0)
                        fprintf(out, ", max_io_delay %g%%", s->max_io_delay_frac * 100);
                if (s->max_probe_latency_ms > 0)
                        fprintf(out, ", max_probe_latency %gms via %s", s->max_probe_latency_ms,
                                s->probe_dns);
                fputc('\n', out);
        }
        for (size_t i = 0; i < p->n_tenants; i++) {
                const struct vmg_tenant *t = &p->tenants[i];
                bool any = false;
                fprintf(out, "tenant %s (%s)\n    %-16s", t->name, t->file, "vms");
                for (size_t j = 0; j < t->n_matches; j++) {
                        const struct vmg_vm_match *m = &t->matches[j];
                        fprintf(out, "%s", j ? ", " : "");
                        if (m->kind == VMG_MATCH_METADATA)
                                fprintf(out, "metadata tenant=%s", t->name);
                        else
                                fprintf(out, "%s %s", m->kind == VMG_MATCH_UUID ? "uuid" : "name",
                                        m->value);
                }
                fputc('\n', out);
                for (int res = 0; res < VMG_RES_COUNT; res++)
                        if (t->rules[res].cap > 0 || t->rules[res].noisy) {
                                print_rule(out, res, &t->rules[res]);
                                any = true;
                        }
                if (!any)
                        fprintf(out, "    no limits: metered only\n");
        }
        if (p->n_tenants == 0)
                fprintf(out, "no tenants: every VM is metered only\n");
}

