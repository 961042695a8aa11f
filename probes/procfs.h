/* procfs probes: host PSI and CPU time, per-process and per-thread accounting of QEMU and
 * of protected host services. Every path is relative to an injectable /proc root, so tests
 * run on fake trees. Errors are negative errno; a process or thread that exited is reported
 * as -ENOENT (the kernel says ESRCH or the directory is gone: both mean "vanished"). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/sample.h"

struct vmg_procfs;

/* root: the proc mount, NULL for "/proc". Returns 0, -ENOMEM, or the -errno of opening
 * root. Host files (pressure, stat) are opened lazily and kept open. */
int vmg_procfs_new(const char *root, struct vmg_procfs **ret);
/* Returns NULL. */
struct vmg_procfs *vmg_procfs_free(struct vmg_procfs *p);
const char *vmg_procfs_root(const struct vmg_procfs *p);

/* Parses the text of a pressure file ("some avg10=… total=N" and, optional, "full …").
 * Returns 0 with ret->valid set, -EINVAL when there is no parsable "some" line. */
int vmg_psi_parse(const char *text, struct vmg_psi *ret);

/* Host PSI (pressure/{cpu,io,memory}) and the /proc/stat "cpu" line. A kernel without
 * PSI leaves the psi_* invalid and still returns 0; an unreadable /proc/stat is an error
 * (-errno, -EINVAL on bad content). ret->ts_ns is not touched. */
int vmg_procfs_read_host(struct vmg_procfs *p, struct vmg_host_counters *ret);

/* kernel.task_delayacct: false when off, so blkio delay (stat field 42) stays 0. Kernels
 * before 5.14 have no such sysctl and account always: a missing file reads as true.
 * Returns 0 or -errno/-EINVAL. */
int vmg_procfs_task_delayacct(struct vmg_procfs *p, bool *ret);

struct vmg_pid_stat {
        char comm[64];
        char state;
        uint64_t utime_ticks, stime_ticks; /* USER_HZ */
        uint64_t start_ticks;              /* field 22: start, clock ticks since boot */
        bool has_blkio;                    /* field 42 present */
        uint64_t blkio_ticks;              /* delayacct_blkio_ticks */
};
/* Parses /proc/PID/stat text; comm may hold spaces and ')' so the fields after it are
 * found from the LAST ')'. Returns 0 or -EINVAL. */
int vmg_parse_pid_stat(const char *text, struct vmg_pid_stat *ret);

struct vmg_pid_io {
        uint64_t rchar, wchar, syscr, syscw, read_bytes, write_bytes;
};
struct vmg_schedstat {
        uint64_t run_ns, wait_ns, timeslices;
};

/* One-shot readers. tid 0 means the process itself (/proc/PID/…), otherwise
 * /proc/PID/task/TID/…. Return 0, -ENOENT when the process/thread vanished, -EACCES,
 * -EINVAL on unparsable content. */
int vmg_procfs_pid_stat(struct vmg_procfs *p, pid_t pid, pid_t tid, struct vmg_pid_stat *ret);
int vmg_procfs_pid_io(struct vmg_procfs *p, pid_t pid, struct vmg_pid_io *ret);
int vmg_procfs_schedstat(struct vmg_procfs *p, pid_t pid, pid_t tid, struct vmg_schedstat *ret);
/* comm without its trailing newline, truncated to len-1. */
int vmg_procfs_comm(struct vmg_procfs *p, pid_t pid, pid_t tid, char *buf, size_t len);
/* The target of /proc/PID/exe (the kernel appends " (deleted)" to a replaced binary; that
 * suffix is kept), NUL-terminated. Returns 0, -ENOENT (vanished, or a kernel thread, which
 * has no exe), -EACCES (another user's process, unreadable without CAP_SYS_PTRACE),
 * -ENAMETOOLONG when it does not fit in len. */
int vmg_procfs_exe(struct vmg_procfs *p, pid_t pid, char *buf, size_t len);
/* The real and effective uid from the "Uid:" line of /proc/PID/status. Returns 0, -ENOENT,
 * -EINVAL when there is no parsable Uid line. */
int vmg_procfs_uids(struct vmg_procfs *p, pid_t pid, uid_t *ruid, uid_t *euid);

/* The numeric entries of /proc (processes) or of /proc/PID/task (threads), sorted.
 * *ret is malloc'ed (possibly NULL with *n == 0). Returns 0, -ENOENT, -ENOMEM. */
int vmg_procfs_list_pids(struct vmg_procfs *p, pid_t **ret, size_t *n);
int vmg_procfs_list_tids(struct vmg_procfs *p, pid_t pid, pid_t **ret, size_t *n);

/* USER_HZ ticks to nanoseconds. */
uint64_t vmg_procfs_ticks_to_ns(uint64_t ticks);

/* true for QEMU vCPU thread names: "CPU 0/KVM", "CPU 12/TCG". */
bool vmg_is_vcpu_thread_name(const char *comm);

/* A QEMU process watched every tick: /proc/PID/io and the vCPU threads' schedstat stay
 * open and are pread() at offset 0. vm_name is only used in logs. Returns 0, -ENOENT when
 * the process is gone, -ENOMEM, -errno. A process with no vCPU thread yet is accepted
 * (threads are looked for again on each read until found). */
struct vmg_proc_qemu;
int vmg_proc_qemu_open(struct vmg_procfs *p, pid_t pid, const char *vm_name,
                       struct vmg_proc_qemu **ret);
/* Returns NULL. */
struct vmg_proc_qemu *vmg_proc_qemu_free(struct vmg_proc_qemu *q);
/* Fills proc_io_valid, proc_* and vcpu_delay_valid, vcpu_run_delay_ns, n_vcpus of c; the
 * other fields are left alone and nothing is written on failure. Returns 0, -ENOENT when
 * the process exited, -EINVAL on unparsable content. A vanished vCPU thread (hot-unplug)
 * triggers a rescan rather than an error. */
int vmg_proc_qemu_read(struct vmg_proc_qemu *q, struct vmg_vm_counters *c);
