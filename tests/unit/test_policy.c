/* The policy module (policies/policy.c): every validation error of tests/fixtures/policy/bad
 * with its file:line:col, field and message; cross-file claims; the shipped examples; defaults;
 * a bad reload never replacing a good policy; the order in which a VM finds its tenant.
 * Run from the repository root (tests/run.sh does). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macros.h"
#include "controller/cli/commands.h"
#include "policies/policy.h"
#include "tests/harness.h"

#define FIX "tests/fixtures/policy"
#define BAD FIX "/bad/"

/* A pointer no allocation returns: the loader must leave *ret exactly as it was. */
#define SENTINEL ((struct vmg_policy *) (uintptr_t) 0x5e47)

struct bad_case {
        const char *file;
        bool host; /* loaded as the host file rather than as a tenant file */
        const char *want; /* substring of "FILE:LINE:COL: FIELD: message" */
};

static const struct bad_case bad_cases[] = {
        /* syntax and shape */
        { "syntax.json", false, BAD "syntax.json:3:30: invalid JSON: string or '}' expected" },
        { "empty.json", false, BAD "empty.json:1:1: invalid JSON:" },
        { "not_object.json", false, BAD "not_object.json:1:1: (top level): must be a JSON object, not an array" },
        { "host_not_object.json", true, BAD "host_not_object.json:1:1: (top level): must be a JSON object, not a string" },
        { "duplicate_key.json", false, BAD "duplicate_key.json:7:7: limits.cpu.cap: duplicate key (first at 6:7)" },
        { "host_duplicate_key.json", true, BAD "host_duplicate_key.json:4:7: services[0].process: duplicate key (first at 3:20)" },
        /* unknown keys */
        { "unknown_key.json", false, BAD "unknown_key.json:7:7: limits.cpu.thottle_to: unknown key \"thottle_to\" (did you mean \"throttle_to\"?)" },
        { "unknown_resource.json", false, BAD "unknown_resource.json:5:5: limits.disk_writes: unknown key \"disk_writes\" (did you mean \"disk_write\"?)" },
        { "unknown_top_key.json", false, BAD "unknown_top_key.json:4:3: owner: unknown key \"owner\" (allowed here: tenant, description, vms, limits)" },
        { "host_unknown_key.json", true, BAD "host_unknown_key.json:2:3: tik: unknown key \"tik\" (did you mean \"tick\"?)" },
        /* wrong types */
        { "wrong_type_names.json", false, BAD "wrong_type_names.json:3:12: vms.names: must be an array of strings, not a string" },
        { "wrong_type_rule.json", false, BAD "wrong_type_rule.json:5:5: limits.cpu: must be an object, not a string" },
        { "wrong_type_value.json", false, BAD "wrong_type_value.json:5:14: limits.cpu.cap: must be a string or number like cores" },
        { "metadata_type.json", false, BAD "metadata_type.json:3:12: vms.metadata: must be true or false, not a string" },
        { "host_services_type.json", true, BAD "host_services_type.json:2:3: services: must be an array of objects, not an object" },
        /* values */
        { "bad_unit.json", false, BAD "bad_unit.json:5:21: limits.disk_write.noisy_above: invalid byte rate \"40MB\"" },
        { "trailing_junk.json", false, BAD "trailing_junk.json:5:14: limits.cpu.cap: invalid CPU amount \"2 cores please\"" },
        { "negative.json", false, BAD "negative.json:5:14: limits.cpu.cap: must not be negative" },
        { "zero_cap.json", false, BAD "zero_cap.json:5:14: limits.cpu.cap: must be greater than 0" },
        { "bare_bytes.json", false, BAD "bare_bytes.json:5:21: limits.disk_write.cap: a bare number has no unit" },
        { "huge_cpu.json", false, BAD "huge_cpu.json:5:14: limits.cpu.cap: 100000.00 cores is above the maximum of 4096.00 cores" },
        { "duration_range.json", false, BAD "duration_range.json:5:67: limits.cpu.calm_for: 500ms is out of range: must be between 1s and 24h" },
        { "duration_unit.json", false, BAD "duration_unit.json:5:67: limits.cpu.for: a bare number has no unit" },
        { "host_tick_range.json", true, BAD "host_tick_range.json:2:3: tick: 10ms is out of range: must be between 100ms and 1m" },
        { "host_psi_range.json", true, BAD "host_psi_range.json:3:5: contention.psi_io_some: 150% is out of range" },
        { "host_step_down.json", true, BAD "host_step_down.json:2:34: damping.step_down: 1.5 is out of range: must be above 0 and below 1" },
        { "host_step_up.json", true, BAD "host_step_up.json:2:16: damping.step_up: 0.9 is out of range: must be above 1" },
        /* relations inside a rule */
        { "floor_above_throttle.json", false, BAD "floor_above_throttle.json:8:7: limits.cpu.floor: 0.60 cores is above throttle_to (0.50 cores)" },
        { "throttle_above_cap.json", false, BAD "throttle_above_cap.json:8:7: limits.cpu.throttle_to: 0.50 cores is above cap (0.40 cores)" },
        { "noisy_above_cap.json", false, BAD "noisy_above_cap.json:7:7: limits.cpu.noisy_above: 1.50 cores can never be exceeded" },
        { "throttle_not_below_noisy.json", false, BAD "throttle_not_below_noisy.json:7:7: limits.net_tx.throttle_to: 1.0Gbit/s must be below noisy_above (100.0Mbit/s)" },
        { "noisy_without_throttle.json", false, BAD "noisy_without_throttle.json:6:7: limits.disk_write.noisy_above: needs \"throttle_to\"" },
        { "throttle_without_noisy.json", false, BAD "throttle_without_noisy.json:7:7: limits.disk_read.throttle_to: only meaningful with \"noisy_above\"" },
        { "empty_rule.json", false, BAD "empty_rule.json:5:5: limits.net_rx: sets nothing" },
        /* the tenant and its VMs */
        { "missing_tenant.json", false, BAD "missing_tenant.json:1:1: tenant: missing" },
        { "bad_tenant_name.json", false, BAD "bad_tenant_name.json:2:3: tenant: \"acme corp\" is not a valid tenant name" },
        { "name_mismatch.json", false, BAD "name_mismatch.json:2:3: tenant: \"acme\" does not match the file name: name the file acme.json" },
        { "missing_vms.json", false, BAD "missing_vms.json:1:1: vms: missing" },
        { "no_matchers.json", false, BAD "no_matchers.json:3:3: vms: matches no VM" },
        { "bad_uuid.json", false, BAD "bad_uuid.json:4:55: vms.uuids[1]: \"6f1c2a8e-3b4d\" is not a UUID" },
        { "names_twice.json", false, BAD "names_twice.json:5:15: vms.names[1]: \"web-*\" is listed twice (first at 4:15)" },
        /* protected services */
        { "host_service_both.json", true, BAD "host_service_both.json:4:45: services[1].unit: give either \"process\" or \"unit\", not both" },
        { "host_service_none.json", true, BAD "host_service_none.json:4:5: services[1].process: missing" },
        { "host_service_missing_name.json", true, BAD "host_service_missing_name.json:4:5: services[1].name: missing" },
        { "host_service_dup.json", true, BAD "host_service_dup.json:4:7: services[1].name: service \"dnsmasq\" is defined twice (first at 3:7)" },
        { "host_service_comm.json", true, BAD "host_service_comm.json:4:24: services[1].process: \"qemu-guest-agent-d\" is longer than 15 characters" },
        { "host_service_unit.json", true, BAD "host_service_unit.json:4:23: services[1].unit: \"unbound\" is not a unit name" },
        { "host_service_probe.json", true, BAD "host_service_probe.json:4:75: services[1].probe_dns: \"198.18.0.300/x.lab\" is not ADDR[:PORT]/NAME" },
        { "host_service_probe_missing.json", true, BAD "host_service_probe_missing.json:4:45: services[1].max_probe_latency: needs \"probe_dns\"" },
        { "host_service_judges_nothing.json", true, BAD "host_service_judges_nothing.json:4:5: services[1]: judges nothing" },
        { "host_service_priority.json", true, BAD "host_service_priority.json:4:45: services[1].priority: 11 is out of range 1..10" },
};

static void test_bad_files(void) {
        for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
                const struct bad_case *c = &bad_cases[i];
                char path[256], msg[1024];
                struct vmg_policy *p = SENTINEL;
                struct vmg_policy_error err = { 0 };
                const char *files[1] = { path };
                int r;

                T_CASE(c->file);
                snprintf(path, sizeof path, BAD "%s", c->file);
                if (c->host)
                        r = vmg_policy_load_files(path, NULL, 0, &p, &err);
                else
                        r = vmg_policy_load_files(NULL, files, 1, &p, &err);
                CHECK_INT(r, -EINVAL);
                CHECK(p == SENTINEL);
                CHECK_CONTAINS(vmg_policy_error_format(&err, msg, sizeof msg), c->want);
                CHECK_STR(err.file, path);
                CHECK(err.line >= 1 && err.column >= 1);
        }
}

/* The whole bad/ directory is covered by the table: a new fixture without a row fails. */
static void test_bad_dir_covered(void) {
        size_t n = 0;
        T_CASE("every bad fixture has a row");
        FILE *f = popen("ls " FIX "/bad", "r");
        CHECK(f != NULL);
        if (!f)
                return;
        char line[256];
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = 0;
                bool found = false;
                for (size_t i = 0; i < ARRAY_SIZE(bad_cases) && !found; i++)
                        found = strcmp(bad_cases[i].file, line) == 0;
                CHECK_MSG(found, "fixture %s has no expected message", line);
                n++;
        }
        pclose(f);
        CHECK_INT(n, ARRAY_SIZE(bad_cases));
}

struct conflict_case {
        const char *dir;
        const char *want;
};

static const struct conflict_case conflicts[] = {
        { FIX "/conflict-glob",
          FIX "/conflict-glob/globex.json:5:15: vms.names[1]: VM name \"web-*\" is also claimed "
              "by tenant \"acme\" as \"web-*\" at " FIX "/conflict-glob/acme.json:3:22" },
        { FIX "/conflict-uuid",
          FIX "/conflict-uuid/globex.json:5:15: vms.uuids[0]: UUID "
              "\"6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b\" is also claimed by tenant \"acme\" as "
              "\"6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b\" at " FIX "/conflict-uuid/acme.json:3:22" },
        { FIX "/conflict-literal",
          FIX "/conflict-literal/globex.json:3:30: vms.names[1]: VM name \"web-7\" is also "
              "claimed by tenant \"acme\" as \"web-*\" at " FIX "/conflict-literal/acme.json:3:22" },
};

static void test_conflicts(void) {
        for (size_t i = 0; i < ARRAY_SIZE(conflicts); i++) {
                struct vmg_policy *p = SENTINEL;
                struct vmg_policy_error err = { 0 };
                char msg[1024];
                T_CASE(conflicts[i].dir);
                CHECK_INT(vmg_policy_load(NULL, conflicts[i].dir, &p, &err), -EINVAL);
                CHECK(p == SENTINEL);
                CHECK_CONTAINS(vmg_policy_error_format(&err, msg, sizeof msg), conflicts[i].want);
        }
        T_CASE("same tenant in two files");
        const char *twice[] = { "policies/examples/tenants.d/acme.json",
                                FIX "/conflict-glob/acme.json" };
        struct vmg_policy *p = SENTINEL;
        struct vmg_policy_error err = { 0 };
        CHECK_INT(vmg_policy_load_files(NULL, twice, 2, &p, &err), -EINVAL);
        CHECK(p == SENTINEL);
        CHECK_STR(err.field, "tenant");
        CHECK_CONTAINS(err.message, "also defined in policies/examples/tenants.d/acme.json");
}

static void test_examples(void) {
        struct vmg_policy *p = NULL;
        struct vmg_policy_error err = { 0 };
        char msg[1024];
        int r;

        T_CASE("shipped examples load");
        r = vmg_policy_load("policies/examples/host.json", "policies/examples/tenants.d", &p,
                            &err);
        CHECK_MSG(r == 0, "%s", vmg_policy_error_format(&err, msg, sizeof msg));
        if (r < 0)
                return;
        CHECK_U64(p->host.tick_ns, 1000000000ULL);
        CHECK_NEAR(p->host.psi_io_some, 0.10, 1e-12);
        CHECK_NEAR(p->host.psi_cpu_some, 0.20, 1e-12);
        CHECK_NEAR(p->host.vm_steal, 0.20, 1e-12);
        CHECK_U64(p->host.min_hold_ns, 5000000000ULL);
        CHECK_NEAR(p->host.step_down, 0.5, 1e-12);
        CHECK_NEAR(p->host.step_up, 1.5, 1e-12);
        CHECK_INT(p->host.n_services, 2);
        if (p->host.n_services == 2) {
                const struct vmg_service *s = &p->host.services[0];
                CHECK_STR(s->name, "dnsmasq");
                CHECK_INT(s->kind, VMG_SERVICE_PROCESS);
                CHECK_STR(s->match, "dnsmasq");
                CHECK_INT(s->priority, 10);
                CHECK_NEAR(s->max_run_delay_ms, 10, 1e-9);
                CHECK_NEAR(s->max_io_delay_frac, 0.2, 1e-12);
                CHECK_NEAR(s->max_probe_latency_ms, 200, 1e-9);
                CHECK_STR(s->probe_dns, "198.18.0.1:53/victim.lab");
                s = &p->host.services[1];
                CHECK_STR(s->name, "unbound");
                CHECK_INT(s->kind, VMG_SERVICE_UNIT);
                CHECK_STR(s->match, "unbound.service");
                CHECK(s->probe_dns == NULL);
                CHECK_NEAR(s->max_io_delay_frac, 0, 0);
        }
        CHECK_INT(p->n_tenants, 2);
        if (p->n_tenants == 2) {
                const struct vmg_tenant *a = &p->tenants[0], *g = &p->tenants[1];
                CHECK_STR(a->name, "acme");
                CHECK_STR(g->name, "globex");
                CHECK_STR(a->file, "policies/examples/tenants.d/acme.json");
                CHECK_INT(a->n_matches, 4);
                const struct vmg_rule *cpu = &a->rules[VMG_RES_CPU];
                CHECK_NEAR(cpu->cap, 2, 1e-12);
                CHECK(cpu->noisy);
                CHECK_NEAR(cpu->noisy_above, 0.8, 1e-12);
                CHECK_U64(cpu->noisy_for_ns, 10000000000ULL);
                CHECK_NEAR(cpu->throttle_to, 0.5, 1e-12);
                CHECK_NEAR(cpu->floor, 0.2, 1e-12);
                CHECK_U64(cpu->calm_for_ns, 30000000000ULL);
                const struct vmg_rule *dw = &a->rules[VMG_RES_DISK_WRITE_BPS];
                CHECK_NEAR(dw->noisy_above, 40e6, 1e-3);
                CHECK_NEAR(dw->throttle_to, 20.0 * 1048576, 1e-3);
                CHECK_NEAR(dw->floor, 5.0 * 1048576, 1e-3);
                CHECK_NEAR(dw->cap, 0, 0);
                CHECK_NEAR(a->rules[VMG_RES_NET_TX_BPS].cap, 1e9, 1e-3);
                CHECK_NEAR(a->rules[VMG_RES_NET_TX_BPS].throttle_to, 10e6, 1e-3);
                CHECK(!a->rules[VMG_RES_NET_RX_BPS].noisy);
                CHECK_NEAR(a->rules[VMG_RES_NET_RX_BPS].cap, 0, 0);
                CHECK_NEAR(g->rules[VMG_RES_CPU].cap, 1.5, 1e-12);
                CHECK(!g->rules[VMG_RES_CPU].noisy);
                CHECK_U64(g->rules[VMG_RES_CPU].noisy_for_ns, 0);
        }

        T_CASE("print");
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        CHECK(f != NULL);
        if (f) {
                vmg_policy_print(p, f);
                fclose(f);
                CHECK_CONTAINS(out, "host (policies/examples/host.json)");
                CHECK_CONTAINS(out, "service dnsmasq: process \"dnsmasq\", priority 10");
                CHECK_CONTAINS(out, "tenant acme (policies/examples/tenants.d/acme.json)");
                CHECK_CONTAINS(out, "metadata tenant=acme");
                CHECK_CONTAINS(out, "cap 2.00 cores; noisy above 0.80 cores for 10s");
                CHECK_CONTAINS(out, "throttle to 21.0MB/s (floor 5.2MB/s), release after 30s calm");
                CHECK_CONTAINS(out, "cap 1.0Gbit/s");
                CHECK_CONTAINS(out, "release after 1m calm");
                free(out);
        }
        vmg_policy_free(p);
}

/* Defaults filled in, and the loader's choice of files: sorted, *.json only, no hidden. */
static void test_defaults(void) {
        struct vmg_policy *p = NULL;
        struct vmg_policy_error err = { 0 };
        char msg[1024];
        int r;

        T_CASE("defaults");
        r = vmg_policy_load(FIX "/good/host.json", FIX "/good/tenants.d", &p, &err);
        CHECK_MSG(r == 0, "%s", vmg_policy_error_format(&err, msg, sizeof msg));
        if (r < 0)
                return;
        CHECK_U64(p->host.tick_ns, 500000000ULL);
        CHECK_NEAR(p->host.psi_io_some, 0.05, 1e-12);
        CHECK_NEAR(p->host.psi_cpu_some, 0.20, 1e-12); /* default */
        CHECK_NEAR(p->host.step_down, 0.5, 1e-12);
        CHECK_INT(p->host.services[0].priority, 5);
        CHECK_INT(p->n_tenants, 3);
        if (p->n_tenants == 3) {
                CHECK_STR(p->tenants[0].name, "a");
                CHECK_STR(p->tenants[1].name, "b");
                CHECK_STR(p->tenants[2].name, "c");
                const struct vmg_rule *dw = &p->tenants[1].rules[VMG_RES_DISK_WRITE_BPS];
                CHECK(dw->noisy);
                CHECK_NEAR(dw->floor, dw->throttle_to, 0); /* no floor: stay at throttle_to */
                CHECK_U64(dw->noisy_for_ns, 10000000000ULL);
                CHECK_U64(dw->calm_for_ns, 30000000000ULL);
                CHECK_NEAR(dw->cap, 0, 0);
                /* UUIDs keep their position for cross-file messages */
                CHECK_INT(p->tenants[1].matches[0].kind, VMG_MATCH_UUID);
                CHECK_INT(p->tenants[1].matches[0].line, 4);
                CHECK_INT(p->tenants[1].matches[0].column, 15);
        }
        p = vmg_policy_free(p);
        CHECK(p == NULL);

        T_CASE("no host file");
        r = vmg_policy_load(NULL, NULL, &p, &err);
        CHECK_INT(r, 0);
        if (r == 0) {
                CHECK(p->host.file == NULL);
                CHECK_U64(p->host.tick_ns, 1000000000ULL);
                CHECK_NEAR(p->host.psi_io_some, 0.10, 1e-12);
                CHECK_NEAR(p->host.vm_steal, 0.20, 1e-12);
                CHECK_U64(p->host.min_hold_ns, 5000000000ULL);
                CHECK_NEAR(p->host.step_up, 1.5, 1e-12);
                CHECK_INT(p->host.n_services, 0);
                CHECK_INT(p->n_tenants, 0);
        }
        vmg_policy_free(p);
}

static int write_file(const char *dir, const char *name, const char *text) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        fputs(text, f);
        return fclose(f) == 0 ? 0 : -errno;
}

/* What the daemon does on SIGHUP: reload the directory; a broken edit keeps the old policy. */
static void test_reload_keeps_old(void) {
        char dir[] = "/tmp/test_policy.XXXXXX";
        struct vmg_policy *p = NULL, *old;
        struct vmg_policy_error err = { 0 };
        char msg[1024], path[600];

        T_CASE("reload");
        CHECK(mkdtemp(dir) != NULL);
        CHECK_INT(write_file(dir, "zeta.json",
                             "{ \"tenant\": \"zeta\", \"vms\": { \"names\": [\"z-*\"] } }\n"), 0);
        CHECK_INT(write_file(dir, "alpha.json",
                             "{ \"tenant\": \"alpha\", \"vms\": { \"metadata\": true },\n"
                             "  \"limits\": { \"cpu\": { \"cap\": \"50%\" } } }\n"), 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), 0);
        CHECK(p != NULL);
        if (!p)
                goto out;
        CHECK_INT(p->n_tenants, 2);
        CHECK_STR(p->tenants[0].name, "alpha");
        CHECK_NEAR(p->tenants[0].rules[VMG_RES_CPU].cap, 0.5, 1e-12);

        old = p;
        CHECK_INT(write_file(dir, "alpha.json",
                             "{ \"tenant\": \"alpha\", \"vms\": { \"metadata\": true },\n"
                             "  \"limits\": { \"cpu\": { \"cap\": \"fifty\" } } }\n"), 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), -EINVAL);
        CHECK(p == old);
        CHECK_INT(p->n_tenants, 2);
        CHECK_NEAR(p->tenants[0].rules[VMG_RES_CPU].cap, 0.5, 1e-12);
        snprintf(path, sizeof path, "%s/alpha.json:2:24: limits.cpu.cap: invalid CPU amount", dir);
        CHECK_CONTAINS(vmg_policy_error_format(&err, msg, sizeof msg), path);

        T_CASE("reload: missing host file");
        snprintf(path, sizeof path, "%s/nope.json", dir);
        CHECK_INT(vmg_policy_load(path, NULL, &p, &err), -ENOENT);
        CHECK(p == old);
        CHECK_STR(err.file, path);
        CHECK_INT(err.line, 0);
        CHECK_CONTAINS(vmg_policy_error_format(&err, msg, sizeof msg), "nope.json: cannot open:");

        T_CASE("reload: missing directory");
        CHECK_INT(vmg_policy_load(NULL, path, &p, &err), -ENOENT);
        CHECK(p == old);
        CHECK_CONTAINS(err.message, "cannot open tenant directory");

        T_CASE("reload: fixed");
        CHECK_INT(write_file(dir, "alpha.json",
                             "{ \"tenant\": \"alpha\", \"vms\": { \"metadata\": true } }\n"), 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), 0);
        CHECK(p != old);
        CHECK_NEAR(p->tenants[0].rules[VMG_RES_CPU].cap, 0, 0);
        vmg_policy_free(old);
out:
        vmg_policy_free(p);
        snprintf(path, sizeof path, "rm -rf '%s'", dir);
        CHECK_INT(system(path), 0);
}

/* Editors' swap, lock and backup files beside a tenant file are not tenants: a half-saved
 * swap file must not break a reload, nor a backup define the tenant twice. */
static void test_editor_files_ignored(void) {
        char dir[] = "/tmp/test_policy_editor.XXXXXX";
        struct vmg_policy *p = NULL;
        struct vmg_policy_error err = { 0 };
        char cmd[600];
        static const char *const junk[] = {
                ".acme.json.swp", ".acme.json.swx", "acme.json~", "#acme.json#", ".#acme.json",
                "acme.json.orig", "acme.json.dpkg-old", "acme.json.tmp", "#acme.json", ".json",
        };

        T_CASE("reload: editor swap, lock and backup files ignored");
        CHECK(mkdtemp(dir) != NULL);
        CHECK_INT(write_file(dir, "acme.json",
                             "{ \"tenant\": \"acme\", \"vms\": { \"names\": [\"a-*\"] } }\n"), 0);
        /* each a complete, valid tenant "acme": read as a tenant, it would clash */
        for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
                CHECK_INT(write_file(dir, junk[i],
                                     "{ \"tenant\": \"acme\", \"vms\": { \"names\": [\"b-*\"] } }\n"), 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), 0);
        CHECK(p != NULL);
        if (p) {
                CHECK_INT(p->n_tenants, 1);
                CHECK_STR(p->tenants[0].matches[0].value, "a-*");
        }
        vmg_policy_free(p);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK_INT(system(cmd), 0);
}

/* The test seam of vmg_policy_load_ex(): an editor at work between two read passes. */
struct edit_between {
        const char *dir;
        unsigned calls;
        unsigned edit_until; /* edit before passes 0..edit_until-1 */
        unsigned gen;
};

static void write_gen(const char *dir, const char *tenant, unsigned gen) {
        char name[64], text[256];
        snprintf(name, sizeof name, "%s.json", tenant);
        snprintf(text, sizeof text, "{ \"tenant\": \"%s\", \"vms\": { \"names\": [\"%s-g%u-*\"] } }\n",
                 tenant, tenant, gen);
        (void) write_file(dir, name, text);
}

static void edit_both(void *userdata, unsigned pass) {
        struct edit_between *e = userdata;
        e->calls++;
        if (pass >= e->edit_until)
                return;
        e->gen++;
        write_gen(e->dir, "alpha", e->gen);
        write_gen(e->dir, "beta", e->gen);
}

static void remove_beta(void *userdata, unsigned pass) {
        struct edit_between *e = userdata;
        char path[512];
        e->calls++;
        if (pass > 0)
                return;
        snprintf(path, sizeof path, "%s/beta.json", e->dir);
        (void) unlink(path);
}

static void test_reload_consistent_read(void) {
        char dir[] = "/tmp/test_policy_race.XXXXXX";
        struct vmg_policy *p = NULL, *old = NULL;
        struct vmg_policy_error err = { 0 };
        char msg[1024], cmd[600];

        T_CASE("reload: both files rewritten between passes: the new pair, never a mix");
        CHECK(mkdtemp(dir) != NULL);
        write_gen(dir, "alpha", 1);
        write_gen(dir, "beta", 1);
        struct edit_between e = { .dir = dir, .edit_until = 1, .gen = 1 };
        struct vmg_policy_load_opts o = { .between_passes = edit_both, .userdata = &e };
        CHECK_INT(vmg_policy_load_ex(NULL, dir, &o, &p, &err), 0);
        /* pass 0 read gen 1, pass 1 gen 2 (differs), pass 2 gen 2 again: agreed */
        CHECK_INT(e.calls, 2);
        CHECK(p != NULL);
        if (p) {
                CHECK_INT(p->n_tenants, 2);
                CHECK_STR(p->tenants[0].matches[0].value, "alpha-g2-*");
                CHECK_STR(p->tenants[1].matches[0].value, "beta-g2-*");
        }
        old = p;

        T_CASE("reload: a directory that never settles: -EAGAIN, old policy kept");
        e = (struct edit_between) { .dir = dir, .edit_until = 100, .gen = 10 };
        o.tries = 3;
        CHECK_INT(vmg_policy_load_ex(NULL, dir, &o, &p, &err), -EAGAIN);
        CHECK(p == old);
        CHECK_INT(e.calls, 3);
        CHECK_STR(err.file, dir);
        CHECK_CONTAINS(vmg_policy_error_format(&err, msg, sizeof msg), "kept changing while being read (3 tries)");

        T_CASE("reload: a file deleted between passes is not half-loaded");
        e = (struct edit_between) { .dir = dir };
        o = (struct vmg_policy_load_opts) { .between_passes = remove_beta, .userdata = &e };
        CHECK_INT(vmg_policy_load_ex(NULL, dir, &o, &p, &err), 0);
        CHECK(p != old);
        CHECK_INT(e.calls, 2);
        if (p && p != old) {
                CHECK_INT(p->n_tenants, 1);
                CHECK_STR(p->tenants[0].name, "alpha");
        }

        T_CASE("reload: a torn file that stays torn is refused with file:line");
        vmg_policy_free(old);
        old = p;
        CHECK_INT(write_file(dir, "alpha.json", "{ \"tenant\": \"alpha\", \"vms\": { \"na"), 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), -EINVAL);
        CHECK(p == old);
        snprintf(cmd, sizeof cmd, "%s/alpha.json:1:", dir);
        CHECK_CONTAINS(vmg_policy_error_format(&err, msg, sizeof msg), cmd);
        CHECK_CONTAINS(msg, "invalid JSON");

        vmg_policy_free(old);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK_INT(system(cmd), 0);
}

struct match_case {
        const char *label, *metadata, *name, *uuid;
        int want;
};

/* fixtures good/tenants.d: a = metadata + "web-*"; b = UUID 0f0e… + "db-*"; c = "*-prod" */
static const struct match_case matches[] = {
        { "metadata wins over UUID and name", "a", "db-1", "0f0e0d0c-0b0a-4908-8706-050403020100", 0 },
        { "metadata of a tenant that did not opt in is ignored", "b", "web-1", NULL, 0 },
        { "metadata of an unknown tenant falls through", "nosuch", "db-2", NULL, 1 },
        { "UUID wins over name", NULL, "web-1", "0f0e0d0c-0b0a-4908-8706-050403020100", 1 },
        { "UUID is case-insensitive", NULL, NULL, "0F0E0D0C-0B0A-4908-8706-050403020100", 1 },
        { "unknown UUID falls through to name", NULL, "x-prod", "11111111-2222-3333-4444-555555555555", 2 },
        { "name glob", NULL, "db-7", NULL, 1 },
        { "overlapping globs: first tenant in file order", NULL, "web-prod", NULL, 0 },
        { "globs are case-sensitive", NULL, "WEB-1", NULL, -1 },
        { "glob must match the whole name", NULL, "myweb-1", NULL, -1 },
        { "unmanaged", NULL, "zzz", NULL, -1 },
        { "nothing known", NULL, NULL, NULL, -1 },
};

static void test_match(void) {
        struct vmg_policy *p = NULL;
        struct vmg_policy_error err = { 0 };
        T_CASE("match: load");
        CHECK_INT(vmg_policy_load(NULL, FIX "/good/tenants.d", &p, &err), 0);
        if (!p)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(matches); i++) {
                T_CASE(matches[i].label);
                CHECK_INT(vmg_policy_match(p, matches[i].metadata, matches[i].name,
                                           matches[i].uuid),
                          matches[i].want);
        }
        T_CASE("match: no policy");
        CHECK_INT(vmg_policy_match(NULL, "a", "web-1", NULL), -1);
        vmg_policy_free(p);
}

/* The parse functions on buffers that are not NUL-terminated (ASan catches a scan past len). */
static void test_buffers(void) {
        static const char tenant[] =
                "{\n  \"tenant\": \"t\",\n  \"vms\": { \"uuids\": [\"6F1C2A8E-3B4D-4E5F-9A0B-1C2D3E4F5A6B\"] },\n"
                "  \"limits\": { \"disk_read_iops\": { \"noisy_above\": 300, \"throttle_to\": \"100iops\" } }\n}";
        static const char bad[] = "{ \"tenant\": \"t\", \"vms\": { \"names\": [\"a\"] }, \"limits\": { \"cpu\": { \"cap\": \"1 core\" ";
        struct vmg_tenant t = { 0 };
        struct vmg_policy_error err = { 0 };
        char *buf;

        T_CASE("tenant from buffer");
        buf = malloc(sizeof tenant - 1);
        memcpy(buf, tenant, sizeof tenant - 1);
        CHECK_INT(vmg_tenant_parse("<buffer>", buf, sizeof tenant - 1, &t, &err), 0);
        CHECK_STR(t.name, "t");
        CHECK_STR(t.file, "<buffer>");
        CHECK_INT(t.n_matches, 1);
        if (t.n_matches == 1) {
                CHECK_STR(t.matches[0].value, "6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b");
                CHECK_INT(t.matches[0].line, 3);
                CHECK_INT(t.matches[0].column, 22);
        }
        CHECK_NEAR(t.rules[VMG_RES_DISK_READ_IOPS].noisy_above, 300, 0);
        CHECK_NEAR(t.rules[VMG_RES_DISK_READ_IOPS].throttle_to, 100, 0);
        vmg_tenant_done(&t);
        CHECK(t.name == NULL && t.matches == NULL);
        free(buf);

        T_CASE("truncated buffer");
        buf = malloc(sizeof bad - 1);
        memcpy(buf, bad, sizeof bad - 1);
        memset(&t, 0x5a, sizeof t);
        CHECK_INT(vmg_tenant_parse("<buffer>", buf, sizeof bad - 1, &t, &err), -EINVAL);
        CHECK_CONTAINS(err.message, "invalid JSON");
        CHECK(t.n_matches == 0x5a5a5a5a5a5a5a5aULL); /* untouched */
        free(buf);

        T_CASE("host from buffer");
        static const char host[] = "{ \"services\": [ { \"name\": \"u\", \"unit\": \"u.scope\", "
                                   "\"max_probe_latency\": \"1s\", \"probe_dns\": \"[2001:db8::1]:5353/a.lab\" } ] }";
        struct vmg_host_policy h;
        CHECK_INT(vmg_host_policy_parse("h", host, sizeof host - 1, &h, &err), 0);
        CHECK_INT(h.n_services, 1);
        CHECK_NEAR(h.services[0].max_probe_latency_ms, 1000, 1e-9);
        CHECK_STR(h.services[0].probe_dns, "[2001:db8::1]:5353/a.lab");
        vmg_host_policy_done(&h);
        CHECK(h.services == NULL);

        T_CASE("probe_dns forms");
        static const struct {
                const char *probe;
                int ret;
        } probes[] = {
                { "198.18.0.1/a.lab", 0 },
                { "198.18.0.1:53/a.lab", 0 },
                { "[::1]/a", 0 },
                { "198.18.0.1:0/a.lab", -EINVAL },
                { "198.18.0.1:65536/a.lab", -EINVAL },
                { "198.18.0.1:/a.lab", -EINVAL },
                { "198.18.0.1:53/", -EINVAL },
                { "198.18.0.1", -EINVAL },
                { "dns.lab/a.lab", -EINVAL },
                { "::1/a", -EINVAL },
                { "[::1]x/a", -EINVAL },
                { "198.18.0.1/a b", -EINVAL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(probes); i++) {
                char json[256];
                int n = snprintf(json, sizeof json,
                                 "{ \"services\": [ { \"name\": \"d\", \"process\": \"d\", "
                                 "\"max_probe_latency\": \"1s\", \"probe_dns\": \"%s\", "
                                 "\"exe\": \"/usr/sbin/d\", \"uid\": 0 } ] }",
                                 probes[i].probe);
                T_CASE(probes[i].probe);
                int r = vmg_host_policy_parse("h", json, (size_t) n, &h, &err);
                CHECK_INT(r, probes[i].ret);
                if (r == 0)
                        vmg_host_policy_done(&h);
                else
                        CHECK_STR(err.field, "services[0].probe_dns");
        }
}

/* A process service names its owner: exe and uid; a name alone is anyone's. */
static void test_service_owner(void) {
        static const struct {
                const char *svc, *field, *msg;
        } cases[] = {
                { "\"process\": \"dnsmasq\"", "services[0].exe", "a process name alone can be taken" },
                { "\"process\": \"dnsmasq\", \"exe\": \"/usr/sbin/dnsmasq\"", "services[0].uid", "missing" },
                { "\"process\": \"dnsmasq\", \"exe\": \"dnsmasq\", \"uid\": 0", "services[0].exe", "not an absolute" },
                { "\"process\": \"dnsmasq\", \"exe\": \"/usr/sbin/../tmp/dnsmasq\", \"uid\": 0", "services[0].exe", "normalised" },
                { "\"process\": \"dnsmasq\", \"exe\": \"/usr/sbin/dnsmasq\", \"uid\": -1", "services[0].uid", "out of range" },
                { "\"process\": \"dnsmasq\", \"exe\": \"/usr/sbin/dnsmasq\", \"uid\": \"root\"", "services[0].uid", "numeric uid" },
                { "\"process\": \"dnsmasq\", \"exe\": \"/usr/sbin/dnsmasq\", \"uid\": 4294967295", "services[0].uid", "out of range" },
                { "\"unit\": \"dnsmasq.service\", \"exe\": \"/usr/sbin/dnsmasq\"", "services[0].exe", "a unit is found by its cgroup" },
                { "\"process\": \"dnsmasq\", \"exe\": \"/usr/sbin/dnsmasq\", \"uid\": 65534", NULL, NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct vmg_host_policy h;
                struct vmg_policy_error err = { 0 };
                char json[512];
                int n = snprintf(json, sizeof json,
                                 "{ \"services\": [ { \"name\": \"d\", %s, \"max_run_delay\": \"10ms\" } ] }",
                                 cases[i].svc);
                T_CASE(cases[i].svc);
                int r = vmg_host_policy_parse("h.json", json, (size_t) n, &h, &err);
                CHECK_INT(r, cases[i].field ? -EINVAL : 0);
                if (r == 0) {
                        CHECK_STR(h.services[0].exe, "/usr/sbin/dnsmasq");
                        CHECK_INT(h.services[0].uid, 65534);
                        vmg_host_policy_done(&h);
                        continue;
                }
                CHECK_STR(err.field, cases[i].field);
                CHECK_CONTAINS(err.message, cases[i].msg);
                CHECK_INT(err.line, 1);
        }
}

static void test_error_format(void) {
        char buf[512];
        struct vmg_policy_error e = { .file = "a.json", .line = 3, .column = 7,
                                      .field = "limits.cpu.cap", .message = "bad" };
        T_CASE("error format");
        CHECK_STR(vmg_policy_error_format(&e, buf, sizeof buf), "a.json:3:7: limits.cpu.cap: bad");
        e.field[0] = 0;
        CHECK_STR(vmg_policy_error_format(&e, buf, sizeof buf), "a.json:3:7: bad");
        e.line = 0;
        CHECK_STR(vmg_policy_error_format(&e, buf, sizeof buf), "a.json: bad");
}

/* Runs `vmguard policy ARGS…` in-process with stdout and stderr captured. */
static int run_cli(const char *const *args, char **out, char **err) {
        char *argv[16];
        int argc = 0, saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
        FILE *fo = tmpfile(), *fe = tmpfile();
        argv[argc++] = (char *) "policy";
        for (; *args && argc < 15; args++)
                argv[argc++] = (char *) *args;
        argv[argc] = NULL;
        fflush(stdout);
        fflush(stderr);
        dup2(fileno(fo), STDOUT_FILENO);
        dup2(fileno(fe), STDERR_FILENO);
        int status = cmd_policy(argc, argv);
        fflush(stdout);
        fflush(stderr);
        dup2(saved_out, STDOUT_FILENO);
        dup2(saved_err, STDERR_FILENO);
        close(saved_out);
        close(saved_err);
        FILE *files[2] = { fo, fe };
        char **bufs[2] = { out, err };
        for (int i = 0; i < 2; i++) {
                long len = ftell(files[i]);
                *bufs[i] = calloc(1, (size_t) len + 1);
                rewind(files[i]);
                if (*bufs[i] && len > 0 && fread(*bufs[i], 1, (size_t) len, files[i]) != (size_t) len)
                        (*bufs[i])[0] = 0;
                fclose(files[i]);
        }
        return status;
}

struct cli_case {
        const char *label;
        const char *args[8];
        int status;
        const char *out, *err; /* substrings expected; NULL = must be empty */
};

static const struct cli_case cli_cases[] = {
        { "examples", { "check", "--host", "policies/examples/host.json", "--tenants",
                        "policies/examples/tenants.d" },
          0, "tenant globex (policies/examples/tenants.d/globex.json)", NULL },
        { "quiet", { "check", "-q", "--host=policies/examples/host.json",
                     "--tenants=policies/examples/tenants.d" },
          0, "configuration OK\n", NULL },
        { "files only", { "check", "-q", "--host", "policies/examples/host.json",
                          "policies/examples/tenants.d/acme.json" },
          0, "configuration OK", NULL },
        { "a file replaces the directory's namesake",
          { "check", "--host", FIX "/good/host.json", "--tenants", "policies/examples/tenants.d",
            FIX "/conflict-glob/acme.json" },
          0, "tenant acme (" FIX "/conflict-glob/acme.json)", NULL },
        { "bad tenant", { "check", "-q", "--host", "policies/examples/host.json", BAD "negative.json" },
          1, NULL, BAD "negative.json:5:14: limits.cpu.cap: must not be negative\n" },
        { "bad host", { "check", "-q", "--host", BAD "host_step_up.json", "--tenants",
                        "policies/examples/tenants.d" },
          1, NULL, BAD "host_step_up.json:2:16: damping.step_up:" },
        { "conflict", { "check", "-q", "--host", FIX "/good/host.json", "--tenants",
                        FIX "/conflict-uuid" },
          1, NULL, "is also claimed by tenant \"acme\"" },
        { "missing host file", { "check", "--host", "/nonexistent/host.json", "--", BAD "../good/tenants.d/a.json" },
          1, NULL, "/nonexistent/host.json: cannot open: No such file or directory" },
        { "missing tenants dir", { "check", "--host", FIX "/good/host.json", "--tenants", "/nonexistent" },
          1, NULL, "/nonexistent: cannot read tenant directory" },
        { "no subcommand", { NULL }, 2, NULL, "usage: vmguard policy check" },
        { "unknown subcommand", { "verify" }, 2, NULL, "unknown command \"verify\"" },
        { "unknown option", { "check", "--hots", "x" }, 2, NULL, "unknown option --hots" },
        { "option without argument", { "check", "--host" }, 2, NULL, "--host needs an argument" },
        { "help", { "check", "--help" }, 0, "usage: vmguard policy check", NULL },
};

static void test_cli(void) {
        for (size_t i = 0; i < ARRAY_SIZE(cli_cases); i++) {
                const struct cli_case *c = &cli_cases[i];
                char *out = NULL, *err = NULL;
                T_CASE(c->label);
                CHECK_INT(run_cli(c->args, &out, &err), c->status);
                if (!out || !err) {
                        CHECK_MSG(false, "%s", "capture failed");
                } else {
                        if (c->out)
                                CHECK_CONTAINS(out, c->out);
                        if (c->err)
                                CHECK_CONTAINS(err, c->err);
                        else
                                CHECK_STR(err, "");
                        if (c->status == 0 && strcmp(c->args[1], "--help") != 0) {
                                size_t n = strlen(out);
                                CHECK(n >= 17 && strcmp(out + n - 17, "configuration OK\n") == 0);
                        }
                        if (c->status != 0)
                                CHECK(strstr(out, "configuration OK") == NULL);
                }
                free(out);
                free(err);
        }
}

/* StrictModes: a file another user could rewrite is refused, and changes nothing. */
static void test_strict_modes(void) {
        char dir[] = "/tmp/test_policy_modes.XXXXXX";
        struct vmg_policy *p = NULL;
        struct vmg_policy_error err = { 0 };
        char msg[1024], path[600];

        T_CASE("strict modes");
        CHECK(mkdtemp(dir) != NULL);
        CHECK_INT(write_file(dir, "acme.json",
                             "{ \"tenant\": \"acme\", \"vms\": { \"names\": [\"a-*\"] } }\n"), 0);
        snprintf(path, sizeof path, "%s/acme.json", dir);
        CHECK(chmod(path, 0666) == 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), -EPERM);
        CHECK(p == NULL);
        vmg_policy_error_format(&err, msg, sizeof msg);
        CHECK_CONTAINS(msg, "acme.json");
        CHECK_CONTAINS(msg, "writable by group or others (mode 0666)");
        CHECK(chmod(path, 0620) == 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), -EPERM);
        CHECK(chmod(path, 0644) == 0);
        CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), 0);
        vmg_policy_free(p);
        p = NULL;
        if (geteuid() == 0) {
                /* Root may read anyone's file; it must still refuse one a user owns. */
                CHECK(chown(path, 65534, 65534) == 0);
                CHECK_INT(vmg_policy_load(NULL, dir, &p, &err), -EPERM);
                vmg_policy_error_format(&err, msg, sizeof msg);
                CHECK_CONTAINS(msg, "owned by uid 65534, not root");
        }
        unlink(path);
        rmdir(dir);
}

static void on_alarm(int sig) {
        (void) sig;
        static const char msg[] = "FAIL tests/unit/test_policy.c [policy directory trust]: "
                                  "vmg_policy_load() blocked for 5 s on a FIFO in tenants.d\n"
                                  "0 passed, 1 failed\n";
        if (write(2, msg, sizeof msg - 1) < 0)
                _exit(1);
        _exit(1);
}

/* The attacks on the directory: whoever can write tenants.d (or a directory above it) can
 * replace any tenant's file, and a FIFO (or a symlink to one) there blocked the daemon's
 * event loop at the next SIGHUP, since the file was opened before its type was checked. */
static void test_dir_trust(void) {
        char dir[] = "/tmp/test_policy_trust.XXXXXX";
        char sub[600], path[700], msg[1024];
        struct vmg_policy *p = NULL;
        struct vmg_policy_error err = { 0 };

        CHECK(mkdtemp(dir) != NULL);
        snprintf(sub, sizeof sub, "%s/tenants.d", dir);
        CHECK(mkdir(sub, 0755) == 0);
        CHECK_INT(write_file(sub, "acme.json",
                             "{ \"tenant\": \"acme\", \"vms\": { \"names\": [\"a-*\"] } }\n"), 0);
        CHECK_INT(vmg_policy_load(NULL, sub, &p, &err), 0);
        vmg_policy_free(p);
        p = NULL;

        signal(SIGALRM, on_alarm);
        alarm(5);
        T_CASE("a FIFO in tenants.d");
        snprintf(path, sizeof path, "%s/fifo.json", sub);
        CHECK(mkfifo(path, 0644) == 0);
        CHECK_INT(vmg_policy_load(NULL, sub, &p, &err), -EINVAL);
        CHECK(p == NULL);
        vmg_policy_error_format(&err, msg, sizeof msg);
        CHECK_CONTAINS(msg, "fifo.json");
        CHECK_CONTAINS(msg, "not a regular file");
        T_CASE("a symlink to a FIFO in tenants.d");
        CHECK(rename(path, "/tmp/test_policy_trust.fifo") == 0 || unlink(path) == 0);
        snprintf(path, sizeof path, "%s/link.json", sub);
        CHECK(symlink("/tmp/test_policy_trust.fifo", path) == 0);
        CHECK_INT(vmg_policy_load(NULL, sub, &p, &err), -ELOOP);
        CHECK(p == NULL);
        vmg_policy_error_format(&err, msg, sizeof msg);
        CHECK_CONTAINS(msg, "link.json");
        CHECK_CONTAINS(msg, "symbolic link");
        alarm(0);
        unlink(path);
        unlink("/tmp/test_policy_trust.fifo");

        T_CASE("a world-writable tenants.d");
        CHECK(chmod(sub, 0777) == 0);
        CHECK_INT(vmg_policy_load(NULL, sub, &p, &err), -EPERM);
        CHECK(p == NULL);
        vmg_policy_error_format(&err, msg, sizeof msg);
        CHECK_CONTAINS(msg, "tenants.d");
        CHECK_CONTAINS(msg, "writable by group or others (mode 0777)");
        T_CASE("a sticky world-writable tenants.d too: anyone could add a tenant");
        CHECK(chmod(sub, 01777) == 0);
        CHECK_INT(vmg_policy_load(NULL, sub, &p, &err), -EPERM);
        CHECK(chmod(sub, 0755) == 0);

        T_CASE("a group-writable directory above tenants.d");
        CHECK(chmod(dir, 0775) == 0);
        CHECK_INT(vmg_policy_load(NULL, sub, &p, &err), -EPERM);
        vmg_policy_error_format(&err, msg, sizeof msg);
        CHECK_CONTAINS(msg, dir);
        CHECK_CONTAINS(msg, "mode 0775");
        T_CASE("the host file's directory is checked the same way");
        snprintf(path, sizeof path, "%s/host.json", dir);
        CHECK_INT(write_file(dir, "host.json", "{ \"tick\": \"1s\" }\n"), 0);
        CHECK_INT(vmg_policy_load(path, NULL, &p, &err), -EPERM);
        CHECK(chmod(dir, 0755) == 0);
        CHECK_INT(vmg_policy_load(path, sub, &p, &err), 0);
        vmg_policy_free(p);
        p = NULL;
        if (geteuid() == 0) {
                T_CASE("tenants.d owned by another user");
                CHECK(chown(sub, 65534, 65534) == 0);
                CHECK_INT(vmg_policy_load(NULL, sub, &p, &err), -EPERM);
                vmg_policy_error_format(&err, msg, sizeof msg);
                CHECK_CONTAINS(msg, "owned by uid 65534");
                CHECK(chown(sub, 0, 0) == 0);
        }
        unlink(path);
        snprintf(path, sizeof path, "%s/acme.json", sub);
        unlink(path);
        rmdir(sub);
        rmdir(dir);
}

int main(void) {
        if (access(FIX "/bad", R_OK) < 0) {
                fprintf(stderr, "run from the repository root: %s not found\n", FIX "/bad");
                printf("0 passed, 1 failed\n");
                return 1;
        }
        test_bad_files();
        test_bad_dir_covered();
        test_conflicts();
        test_examples();
        test_defaults();
        test_reload_keeps_old();
        test_editor_files_ignored();
        test_reload_consistent_read();
        test_strict_modes();
        test_match();
        test_buffers();
        test_service_owner();
        test_dir_trust();
        test_error_format();
        test_cli();
        return t_summary();
}
