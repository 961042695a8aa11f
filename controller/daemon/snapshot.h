/* The status snapshot: everything an admin or a scraper asks about, as one JSON object.
 * Served on the control socket (`vmguard status|explain|top`, check_vmguard), written to
 * STATE_DIR/status.json each tick, and rendered by metrics.c for Prometheus. Built from
 * explicit inputs; reads no clock (now_ns is given) and changes nothing.
 *
 * The JSON contract (version 1). Consumers: controller/cli/ (ctlclient.c, cli_status.c,
 * top.c, top_limits.c, check_vmguard.c), controller/daemon/metrics.c, the integration
 * tests. Add fields freely; renaming or removing one is a new "version". A number that is
 * not known this tick (no interval yet, counter not offered by this host) is null.
 *
 * { "version": 1,
 *   "daemon":   { "pid", "version" (string), "ticks", "tick_seconds",
 *                 "last_tick_duration_seconds", "last_tick_age_seconds" (-1 before the first),
 *                 "dry_run", "errors_total", "actions_total": { ACTION: count } (throttle,
 *                 tighten, relax, release, cap), "libvirt_connected", "tenants",
 *                 "guests_throttled", "limits_out_of_sync": desired limits (guest x
 *                 resource) not seen in force yet, retried with backoff,
 *                 "limits_out_of_sync_oldest_seconds": the oldest one's age, 0 when none },
 *   "host":     { "psi_cpu_some", "psi_io_some", "psi_io_full" (fractions 0..1),
 *                 "cpu_busy_frac", "iowait_frac", "contended" (bool), "contention" (the
 *                 engine's reason, "" when calm) },
 *   "services": [ { "name", "match", "pids", "up", "healthy" (vmg_service_hurting() says
 *                 no, on a fresh interval), "cpu_cores", "run_delay_avg_ms",
 *                 "run_delay_frac", "blkio_delay_frac", "max_run_delay_ms",
 *                 "run_delay_seconds_total", "cpu_seconds_total", and with a DNS probe
 *                 "probe_latency_ms", "probe_sent_total", "probe_answered_total" } ],
 *   "vms":      [ { "name", "uuid", "tenant" (null: no tenant matches), "qemu_pid",
 *                 "throttled", "unmanaged", "sources" (which counter each figure came
 *                 from), "throttled_for_s" (when throttled), "error" (strerror of the last
 *                 sampling error), "out_of_sync" (only when some desired limit is not
 *                 seen in force: { RESOURCE: { "for_s", "error" } }),
 *                 "usage": { per-second rates: "cpu_cores", "vcpu_delay_frac",
 *                            "disk_{read,write}_bytes_per_s", "disk_{read,write}_iops",
 *                            "net_{tx,rx}_bits_per_s", "net_{tx,rx}_packets_per_s";
 *                            counters: "cpu_seconds_total", "cpu_throttled_seconds_total",
 *                            "vcpu_delay_seconds_total", "disk_{read,write}_bytes_total",
 *                            "disk_{read,write}_ops_total", "proc_write_bytes_total",
 *                            "net_{tx,rx}_bytes_total", "net_{tx,rx}_packets_total" },
 *                 "resources": { RESOURCE (vmg_resource_name()): { "limit", "cap" (0 =
 *                            none), "throttled", "usage", "suspect", "reason",
 *                            "suspect_for_s", "calm_for_s", "repeat_offences",
 *                            "changed_s_ago" (the last four only when they apply) } } } ],
 *   "policy":   { "generation" (loads swapped in), "rejected_total", "last_error"
 *                 (file:line:column: field: message), "tenants": [ { "name", "file",
 *                 "vms": [ match values ] } ] } }
 *
 * Guest "tx" is what the guest sent (its tap's rx). Seconds are floats; limits and usage
 * are in the resource's unit (cores, bytes/s, IOPS, bits/s). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/daemon/apply.h"
#include "controller/engine/engine.h"
#include "policies/policy.h"
#include "probes/monitor.h"
#include "probes/prober.h"

/* What the snapshot is built from: borrowed from the manager for one call. */
struct vmg_snapshot_input {
        const struct vmg_policy *policy;
        struct vmg_monitor *mon;
        const struct vmg_engine_state *engine;
        struct vmg_prober *const *probers; /* parallel to policy->host.services; NULL entries */
        size_t n_probers;
        const struct vmg_applied_set *applied;
        bool libvirt_connected, dry_run;
        unsigned long long ticks, errors_total;
        const unsigned long long *actions_by_kind; /* indexed by enum vmg_action_kind */
        uint64_t tick_ns, last_tick_ns, last_tick_duration_ns;
        unsigned long long policy_generation, policy_rejected;
        const char *policy_error;
};

/* The snapshot at now_ns (CLOCK_MONOTONIC, the tick's clock), and "N guest(s), M
 * throttled[, host contended]" into status_line for sd_notify. The caller owns the result;
 * NULL only when out of memory. */
json_t *vmg_snapshot_build(const struct vmg_snapshot_input *in, uint64_t now_ns, char *status_line,
                          size_t status_size);
