/* Prometheus text exposition (format 0.0.4) of the daemon's snapshot (its JSON contract is
 * in controller/daemon/snapshot.h). Pure: JSON in, text out, no clock and no daemon state,
 * so the same code serves /metrics, the node_exporter textfile and the tests. Metric
 * names, units and the mapping to libvirt-exporter / cAdvisor names are in docs/FLEET.md. */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define VMG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Writes the exposition of snapshot to out: every family once, HELP and TYPE before its
 * first sample, samples of a family contiguous, label values escaped; null or missing
 * figures are left out (never printed as NaN). Guests without a uuid and repeated uuids
 * (which would make Prometheus reject the whole scrape) are skipped. The text is built in
 * memory first, so out receives all of it or, on -EINVAL/-ENOMEM, nothing. Returns 0;
 * -EINVAL when snapshot is not a JSON object or out is NULL; -ENOMEM; -EIO when writing
 * to out failed. */
int vmg_metrics_render(const json_t *snapshot, FILE *out);

/* Same, into a malloc()ed NUL-terminated buffer. On success *ret (free() it) and
 * *ret_len (without the NUL) are set and 0 is returned; -EINVAL or -ENOMEM otherwise,
 * with *ret and *ret_len untouched. */
int vmg_metrics_render_buf(const json_t *snapshot, char **ret, size_t *ret_len);

/* For node_exporter's textfile collector: renders, then replaces path atomically
 * (vmg_write_file_atomic_path(): PATH.tmp, fsync, rename), so the collector never reads
 * half a file. path must end in ".prom" (the collector ignores anything else). Returns 0,
 * -EINVAL on a bad path or snapshot, or the -errno of the failing step (logged). */
int vmg_metrics_write_textfile(const json_t *snapshot, const char *path);
