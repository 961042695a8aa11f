/* Rates from two counter snapshots: pure functions, no I/O, no clock. Timestamps are the
 * snapshots' ts_ns (CLOCK_MONOTONIC). Every function returns 0 and fills *ret, or -EINVAL
 * when cur is not later than prev (nothing written). A counter that went backwards (VM or
 * service restarted, tap recreated) is not an error: the figures it feeds are marked
 * invalid (and, for VMs, ret->reset is set) so the caller skips this interval. */
#pragma once
#include "probes/sample.h"

/* Disk: per direction the largest of three sources, because on a given host only some of
 * them move (docs/LAB.md "Which disk counters move"): the cgroup's blkio/io.stat bytes, QEMU's /proc read_bytes/
 * write_bytes, and QEMU's rchar/wchar minus its taps' traffic (QEMU read()s the guest's
 * received frames from the tap = tap tx, and write()s its sent frames = tap rx).
 * disk_source names the source that won the larger direction. IOPS likewise from the
 * cgroup's ios and from syscr/syscw minus tap packets. Only devices and taps present in
 * both snapshots count. vcpu_delay_frac is run-delay seconds per second per vCPU. */
int vmg_rates_compute(const struct vmg_vm_counters *prev, const struct vmg_vm_counters *cur,
                      struct vmg_vm_rates *ret);

int vmg_host_rates_compute(const struct vmg_host_counters *prev,
                           const struct vmg_host_counters *cur, struct vmg_host_rates *ret);

/* probe_latency_ms is set to -1 (filled by the active prober, not from counters). A change
 * in n_pids (service restarted) makes the interval invalid. */
int vmg_service_rates_compute(const struct vmg_service_counters *prev,
                              const struct vmg_service_counters *cur,
                              struct vmg_service_rates *ret);
