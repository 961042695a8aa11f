/* The one "is this protected service hurting" rule, on struct literals (as systemd-oomd
 * tests its pressure predicate). */
#include <math.h>

#include "common/macros.h"
#include "controller/engine/service_health.h"
#include "tests/harness.h"

int main(void) {
        const struct vmg_service pol = { .name = "dnsmasq", .max_run_delay_ms = 10,
                                         .max_io_delay_frac = 0.1, .max_probe_latency_ms = 200 };
        const struct vmg_service unjudged = { .name = "sshd" };
        struct {
                const char *what;
                const struct vmg_service *pol;
                struct vmg_service_rates r;
                enum vmg_service_symptom want;
        } cases[] = {
                { "calm", &pol, { .valid = true, .run_delay_avg_ms = 0.5, .probe_latency_ms = 3 },
                  VMG_SVC_FINE },
                { "run delay over", &pol, { .valid = true, .run_delay_avg_ms = 35, .probe_latency_ms = -1 },
                  VMG_SVC_RUN_DELAY },
                { "run delay at the limit is fine", &pol, { .valid = true, .run_delay_avg_ms = 10,
                  .probe_latency_ms = -1 }, VMG_SVC_FINE },
                { "I/O wait over", &pol, { .valid = true, .blkio_delay_valid = true,
                  .blkio_delay_frac = 0.4, .probe_latency_ms = -1 }, VMG_SVC_IO_DELAY },
                { "I/O wait not accounted", &pol, { .valid = true, .blkio_delay_frac = 0.4,
                  .probe_latency_ms = -1 }, VMG_SVC_FINE },
                { "probe slow", &pol, { .valid = true, .probe_latency_ms = 650 }, VMG_SVC_PROBE_LATENCY },
                { "no probe answer (-1)", &pol, { .valid = true, .probe_latency_ms = -1 }, VMG_SVC_FINE },
                { "NaN never counts", &pol, { .valid = true, .run_delay_avg_ms = NAN, .probe_latency_ms = NAN },
                  VMG_SVC_FINE },
                { "run delay named first", &pol, { .valid = true, .run_delay_avg_ms = 50,
                  .blkio_delay_valid = true, .blkio_delay_frac = 0.5, .probe_latency_ms = 900 },
                  VMG_SVC_RUN_DELAY },
                { "thresholds of 0 are not judged", &unjudged, { .valid = true, .run_delay_avg_ms = 500,
                  .blkio_delay_valid = true, .blkio_delay_frac = 0.9, .probe_latency_ms = 900 },
                  VMG_SVC_FINE },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(cases[i].what);
                CHECK_INT(vmg_service_hurting(cases[i].pol, &cases[i].r), cases[i].want);
        }
        return t_summary();
}
