/* Host PSI cpu and CFS quotas: a guest held back by a quota counts as stalled in the host's
 * PSI cpu; that stall alone must not keep the host "contended", or a capped guest would never
 * be released. Measured here: a busy loop capped at 0.1 core took /proc/pressure/cpu "some"
 * from 4% to 51% with nothing else running. */
#include <stdlib.h>

#include "controller/engine/engine.h"
#include "tests/harness.h"

static bool contended(double psi_cpu, double quota_stall, const char **why) {
        struct vmg_policy p = { .host = { .psi_cpu_some = 0.15, .min_hold_ns = 1, .step_down = 0.5,
                                          .step_up = 2 } };
        struct vmg_engine_vm vm = {
                .uuid = "u1", .name = "capped", .tenant = -1,
                .rates = { .interval_s = 1, .cpu_valid = true, .cpu_cores = 0.1,
                           .cpu_throttled_time_frac = quota_stall },
        };
        struct vmg_engine_input in = {
                .now_ns = 1000000000ull,
                .host = { .interval_s = 1, .psi_valid = true, .psi_cpu_some = psi_cpu },
                .vms = &vm, .n_vms = 1,
        };
        struct vmg_engine_state *st = NULL;
        struct vmg_action *acts = NULL;
        size_t n = 0;
        if (vmg_engine_step(&p, NULL, &in, &st, &acts, &n) < 0)
                return false;
        static char buf[512];
        const char *r = "";
        bool c = vmg_engine_contended(st, &r);
        snprintf(buf, sizeof buf, "%s", r ? r : "");
        *why = buf;
        free(acts);
        vmg_engine_state_free(st);
        return c;
}

int main(void) {
        const char *why;
        T_CASE("no quota: PSI over the threshold is contention");
        CHECK(contended(0.51, 0, &why));
        CHECK_CONTAINS(why, "host PSI cpu some 51% > 15%");
        T_CASE("the stall is the quota's own: not contention");
        CHECK(!contended(0.51, 0.9, &why));
        CHECK(!contended(0.92, 0.85, &why));
        T_CASE("more stall than the quota explains: contention, said so");
        CHECK(contended(0.95, 0.5, &why));
        CHECK_CONTAINS(why, "beyond CFS quotas' own stall");
        T_CASE("nonsense quota figures are ignored, not trusted");
        CHECK(contended(0.51, -1, &why));
        return t_summary();
}
