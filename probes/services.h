/* Protected host services (dnsmasq, unbound, …): find their processes by name, executable
 * and uid, or by systemd unit and sum their CPU, run-queue wait and block-I/O delay over every thread.
 * The victims' side of contention: their waits tell whether a noisy guest hurts. */
#pragma once
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "policies/policy.h"
#include "probes/cgroup.h"
#include "probes/procfs.h"
#include "probes/sample.h"

/* Processes whose comm equals comm (compared on the kernel's 15 bytes), scanning the
 * injectable proc root. *ret is malloc'ed and sorted (NULL with *n == 0 when none).
 * Returns 0, -ENOMEM, -errno of listing the proc root. */
int vmg_service_pids_by_comm(struct vmg_procfs *p, const char *comm, pid_t **ret, size_t *n);

/* Same through libproc2, which always reads the real /proc: the daemon's live scan.
 * Returns 0, -ENOMEM, -EIO when libproc2 fails. */
int vmg_service_pids_by_comm_live(const char *comm, pid_t **ret, size_t *n);

/* Processes in the unit's cgroup and its sub-cgroups: a directory named unit found in the
 * name=systemd hierarchy, else in the unified one. Returns 0 (possibly no PIDs: a unit
 * that is stopped), -ENOENT when no such cgroup exists, -ENOMEM. */
int vmg_service_pids_by_unit(struct vmg_cgroup_ctx *c, const char *unit, pid_t **ret, size_t *n);

/* Drops from pids[0..*n) (in place, order kept) every process that does not run exe
 * (/proc/PID/exe, " (deleted)" accepted) with real and effective uid uid, or whose exe or
 * status cannot be read. Returns 0. */
int vmg_service_pids_owned(struct vmg_procfs *p, const char *exe, uid_t uid, pid_t *pids,
                           size_t *n);

/* Dispatch on svc->kind: VMG_SERVICE_PROCESS scans p (or libproc2 when live is true) for
 * svc->match and, when svc->exe is set, keeps only the processes that run it as svc->uid
 * (checked under p, so p is needed then); VMG_SERVICE_UNIT walks c. Returns as the
 * functions above; -EINVAL on an unknown kind, a NULL c for a unit, a NULL p with exe. */
int vmg_service_find(struct vmg_procfs *p, struct vmg_cgroup_ctx *c, const struct vmg_service *svc,
                     bool live, pid_t **ret, size_t *n);

/* kernel.task_delayacct off: no block-I/O delay at all. */
#define VMG_DELAYACCT_OFF UINT64_MAX

/* Sums utime+stime (process), and per thread schedstat wait/timeslices and stat field 42
 * into ret (ts_ns untouched). delayacct_since: VMG_DELAYACCT_OFF, 0 when accounting is on
 * for every process, or the time (clock ticks since boot, as stat field 22) it was turned
 * on: the kernel gives a task its delay record at fork only while accounting is on, so a
 * process started before reads 0 forever, and blkio_delay_valid is false when any is.
 * PIDs that exited meanwhile are skipped; ret->n_pids counts the ones read and ret->valid
 * is false when none was. Returns 0, -ENOMEM, -EINVAL on unparsable content. */
int vmg_service_read(struct vmg_procfs *p, const pid_t *pids, size_t n, uint64_t delayacct_since,
                     struct vmg_service_counters *ret);
