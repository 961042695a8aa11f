/* Names from guests, through the engine's fixed buffers and the metrics renderer. Input:
 * the domain name, then (after a NUL) a tenant name from metadata and a service name.
 * A name libvirt hands over is valid UTF-8 (libxml2 checks it); anything else is scrubbed
 * first, as the snapshot does. Invariants: the engine's action and state strings stay valid
 * UTF-8 however the name is cut (jansson refuses anything else and the whole snapshot with
 * it), the snapshot holding them renders, and each name stays one label value: every
 * exposition line is a comment or a vmguard_ sample, never one a name injected. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "controller/daemon/metrics.h"
#include "controller/engine/engine.h"
#include "tests/fixtures/cap_policy.h"
#include "tests/fuzz/fuzz.h"

static char *valid_copy(const struct fz_part *p, size_t n, size_t i, const char *dflt) {
        char *s = strdup(fz_absent(p, n, i) ? dflt : p[i].text);
        FZ_ASSERT(s != NULL);
        vmg_utf8_scrub(s);
        return s;
}

int vmg_fuzz_names(const uint8_t *data, size_t size) {
        char *buf = NULL;
        struct fz_part parts[3];
        size_t n = fz_split(data, size, &buf, parts, 3);
        char *name = valid_copy(parts, n, 0, "web-1");
        char *tname = valid_copy(parts, n, 1, "acme");
        char *svc = valid_copy(parts, n, 2, "dnsmasq");
        static const char uuid[] = "0f8fad5b-d9cb-469f-a165-70867728950e";

        struct vmg_tenant t;
        struct vmg_policy p;
        fx_cap_policy(&p, &t, tname);
        struct vmg_engine_vm vm = { .uuid = uuid, .name = name, .tenant = 0 };
        vm.rates.cpu_cores = 0.5;
        struct vmg_engine_input in = { .now_ns = 5000000000ULL, .vms = &vm, .n_vms = 1 };
        struct vmg_engine_state *st = NULL;
        struct vmg_action *acts = NULL;
        size_t n_acts = 0;
        int r = vmg_engine_step(&p, NULL, &in, &st, &acts, &n_acts);
        FZ_ASSERT(r == 0);
        for (size_t i = 0; i < n_acts; i++) {
                FZ_ASSERT(vmg_utf8_valid(acts[i].vm));
                FZ_ASSERT(vmg_utf8_valid(acts[i].reason));
        }
        struct vmg_engine_limit_info li = { 0 };
        const char *reason = "";
        if (vmg_engine_query(st, uuid, VMG_RES_CPU, &li) == 0) {
                FZ_ASSERT(vmg_utf8_valid(li.name));
                FZ_ASSERT(vmg_utf8_valid(li.reason));
                reason = li.reason;
        }

        /* The snapshot's layout (controller/daemon/snapshot.h) for one guest, one service. */
        json_t *snap = json_pack(
                "{s:i, s:{s:i, s:s, s:I, s:f, s:b, s:b}, s:[{s:s, s:s, s:s, s:i, s:b, s:b, "
                "s:{s:f}, s:{s:{s:f, s:f, s:b, s:f, s:b, s:s}}, s:s}], "
                "s:[{s:s, s:s, s:i, s:b, s:b}], s:{s:[{s:s}]}}",
                "version", 1, "daemon", "pid", 1, "version", "0.1", "ticks", (json_int_t) 3,
                "tick_duration_s", 0.01, "libvirt_connected", 1, "dry_run", 0, "vms", "name", name,
                "uuid", uuid, "tenant", tname, "qemu_pid", 42, "throttled", 1, "unmanaged", 0,
                "usage", "cpu_cores", 0.5, "resources", "cpu", "limit", 1.0, "cap", 1.0,
                "throttled", 1, "usage", 0.5, "suspect", 0, "reason", reason, "sources", "v2",
                "services", "name", svc, "match", svc, "pids", 1, "up", 1, "healthy", 1, "policy",
                "tenants", "name", tname);
        FZ_ASSERT(snap != NULL); /* every string in it is valid UTF-8 */
        char *text = NULL;
        size_t len = 0;
        r = vmg_metrics_render_buf(snap, &text, &len);
        FZ_ASSERT(r == 0 || r == -EINVAL);
        if (r == 0) {
                FZ_ASSERT(len > 0 && text[len - 1] == '\n');
                for (const char *l = text; *l;) {
                        FZ_ASSERT(strncmp(l, "# ", 2) == 0 || strncmp(l, "vmguard_", 8) == 0);
                        const char *nl = strchr(l, '\n');
                        FZ_ASSERT(nl != NULL);
                        l = nl + 1;
                }
        }
        free(text);
        json_decref(snap);
        free(acts);
        vmg_engine_state_free(st);
        free(name);
        free(tname);
        free(svc);
        free(buf);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_names)
