#include "controller/engine/service_health.h"

#include <math.h>

static bool over(double v, double max) {
        return max > 0 && isfinite(v) && v >= 0 && v > max;
}

unsigned vmg_service_symptoms(const struct vmg_service *policy, const struct vmg_service_rates *rates) {
        unsigned mask = 0;
        if (over(rates->run_delay_avg_ms, policy->max_run_delay_ms))
                mask |= VMG_SVC_BIT(VMG_SVC_RUN_DELAY);
        if (rates->blkio_delay_valid && over(rates->blkio_delay_frac, policy->max_io_delay_frac))
                mask |= VMG_SVC_BIT(VMG_SVC_IO_DELAY);
        if (over(rates->probe_latency_ms, policy->max_probe_latency_ms))
                mask |= VMG_SVC_BIT(VMG_SVC_PROBE_LATENCY);
        return mask;
}

enum vmg_service_symptom vmg_service_hurting(const struct vmg_service *policy,
                                             const struct vmg_service_rates *rates) {
        unsigned mask = vmg_service_symptoms(policy, rates);
        for (enum vmg_service_symptom s = VMG_SVC_RUN_DELAY; s <= VMG_SVC_PROBE_LATENCY; s++)
                if (mask & VMG_SVC_BIT(s))
                        return s;
        return VMG_SVC_FINE;
}
