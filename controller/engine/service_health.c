#include "controller/engine/service_health.h"

#include <math.h>

static bool over(double v, double max) {
        return max > 0 && isfinite(v) && v >= 0 && v > max;
}

enum vmg_service_symptom vmg_service_hurting(const struct vmg_service *policy,
                                             const struct vmg_service_rates *rates) {
        if (over(rates->run_delay_avg_ms, policy->max_run_delay_ms))
                return VMG_SVC_RUN_DELAY;
        if (rates->blkio_delay_valid && over(rates->blkio_delay_frac, policy->max_io_delay_frac))
                return VMG_SVC_IO_DELAY;
        if (over(rates->probe_latency_ms, policy->max_probe_latency_ms))
                return VMG_SVC_PROBE_LATENCY;
        return VMG_SVC_FINE;
}
