/* Active DNS probe of a protected service: one A query per tick, timed by the kernel's
 * receive timestamp, so the answer time is exact even though answers are collected only at
 * the next tick. This is the victims' own view: on this host a noisy guest reaches dnsmasq
 * through its lease-file fsync, and queries queue behind it (DNS answers waited up to
 * 0.3-0.8 s under disk noise on the lab host, docs/LAB.md). */
#pragma once
#include <stdint.h>

struct vmg_prober;

/* spec: "ADDR[:PORT]/NAME" (validated by the policy module). netns_path: the namespace file
 * to send from (e.g. /run/netns/vmglab), NULL for ours; the socket is created inside it and
 * stays bound to it. Returns 0, -EINVAL (bad spec), -ENOENT (no such namespace), -errno. */
int vmg_prober_new(const char *spec, const char *netns_path, struct vmg_prober **ret);
struct vmg_prober *vmg_prober_free(struct vmg_prober *p);

/* A query unanswered this long is lost: it counts as one sample of exactly this latency and
 * the next tick sends a fresh query. Without a cap a DROP on the probe path read as a wait
 * growing for ever, and every guest above its noisy_above stayed throttled for ever. 2 s is
 * over twice the worst answer seen under disk noise on the lab host (0.8 s). */
#define VMG_PROBER_TIMEOUT_MS 2000
/* After this many lost queries in a row the service is unreachable, not slow (a firewall
 * DROP, a stopped dnsmasq): throttling guests cannot bring its answers back, so the probe
 * reads "no data" (-1) until an answer arrives again; the service's own counters
 * (run-queue delay, I/O wait) still judge it meanwhile. */
#define VMG_PROBER_LOST_RUN 3

/* Collects the answer to the previous query (if any), then sends the next one. now_ns is
 * CLOCK_MONOTONIC. Only an answer from the probed address and port (the socket is
 * connected: the kernel drops datagrams from elsewhere) carrying the query's id and the QR
 * bit counts. Returns 0 or -errno of sending (logged once per change). */
int vmg_prober_tick(struct vmg_prober *p, uint64_t now_ns);

/* The latency that describes the service now, in ms: the last answer's time, or, when the
 * query before this tick's got no answer, how long it has waited so far, at most
 * VMG_PROBER_TIMEOUT_MS (a stuck service shows a bad figure rather than a stale good one).
 * -1 before the first result and after VMG_PROBER_LOST_RUN lost queries in a row. */
double vmg_prober_latency_ms(const struct vmg_prober *p);

/* Queries sent and answered, for metrics. */
uint64_t vmg_prober_sent(const struct vmg_prober *p);
uint64_t vmg_prober_answered(const struct vmg_prober *p);
uint64_t vmg_prober_lost(const struct vmg_prober *p);

/* Encodes an A/IN query for name with id into buf. Returns its length, or -EINVAL (a label
 * over 63 bytes, a name over 253) / -ENOBUFS. Exposed for tests. */
int vmg_dns_query_encode(const char *name, uint16_t id, uint8_t *buf, int len);
