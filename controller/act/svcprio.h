/* Raising a protected host service's CPU share: on hosts without systemd, vmguard moves the
 * service's processes into a cgroup of its own with a high weight (v1 cpu.shares, v2
 * cpu.weight) and moves them back, and removes the cgroup, when it stops. Where each
 * process came from is saved under the state directory first, so a vmguard that was killed
 * puts them back at its next start.
 *
 * What it buys, measured on the lab (docs/LAB.md): little. A noisy guest hurts dnsmasq through
 * the disk (its lease-file fsync), not through the CPU, and a busy vCPU in its own cgroup
 * barely delays dnsmasq thanks to CFS group scheduling. It is kept because it is cheap and
 * covers hosts where services and guests do compete for CPU. I/O priority (ionice, bfq
 * weights) is deliberately not touched: it measured no effect at all here. */
#pragma once
#include <stddef.h>
#include <sys/types.h>

struct vmg_svcprio;

/* cpu_root: the v1 cpu hierarchy or the cgroup2 root; version 1 or 2; proc_root for
 * /proc/PID/cgroup (NULL: /proc); state_dir for the record of original cgroups. Returns 0,
 * -ENOMEM, -errno of opening cpu_root. */
int vmg_svcprio_new(const char *cpu_root, int version, const char *proc_root,
                    const char *state_dir, struct vmg_svcprio **ret);
struct vmg_svcprio *vmg_svcprio_free(struct vmg_svcprio *s);

/* Puts the service's processes (pids) into vmguard.services/NAME with a weight for
 * priority 1..10 (v1 cpu.shares 1024 x priority, v2 cpu.weight 100 x priority). Processes
 * already there are left alone; a process that exited meanwhile is skipped. Returns how
 * many were moved, or -errno (logged with the file and value). */
int vmg_svcprio_raise(struct vmg_svcprio *s, const char *name, const pid_t *pids, size_t n,
                      int priority);

/* Moves every process vmguard moved back to where it came from (those still alive and
 * still in vmguard's group) and removes vmguard's groups. Also the record a killed vmguard
 * left. Returns the number moved back, or the first -errno. */
int vmg_svcprio_restore_all(struct vmg_svcprio *s);
