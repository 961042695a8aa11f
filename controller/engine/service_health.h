/* "Is this protected service hurting?": the one rule, judged on a service's rates against
 * its policy. The status snapshot (controller/daemon/snapshot.c, field "healthy") calls
 * vmg_service_hurting(); the engine's judge_contention() calls vmg_service_symptoms() to
 * name every symptom in its reason, and so does the engine tests' oracle. Pure: no I/O, no
 * clock. */
#pragma once
#include "policies/policy.h"
#include "probes/sample.h"

enum vmg_service_symptom {
        VMG_SVC_FINE = 0,
        VMG_SVC_RUN_DELAY,     /* mean run-queue wait per timeslice over max_run_delay_ms */
        VMG_SVC_IO_DELAY,      /* blkio delay seconds per second over max_io_delay_frac */
        VMG_SVC_PROBE_LATENCY, /* active probe answer time over max_probe_latency_ms */
};

/* The first symptom over its threshold, in the engine's order (run delay, I/O delay, probe
 * latency), or VMG_SVC_FINE. A threshold of 0 is not judged; a figure that is not finite
 * and >= 0 (no probe answer: -1) never counts. rates->valid is the caller's business: a
 * service without a fresh interval is neither healthy nor hurting. */
enum vmg_service_symptom vmg_service_hurting(const struct vmg_service *policy,
                                             const struct vmg_service_rates *rates);

/* Bit of a symptom in vmg_service_symptoms()'s mask. */
#define VMG_SVC_BIT(s) (1u << (s))
/* Every symptom over its threshold, as a mask of VMG_SVC_BIT(symptom); 0 when fine. Judged
 * exactly as vmg_service_hurting(), which returns the lowest of them. */
unsigned vmg_service_symptoms(const struct vmg_service *policy, const struct vmg_service_rates *rates);
