/* The cgroup actuator: writes CPU and disk limits on a VM's cgroup directory and remembers
 * every original value in the journal first (controller/journal.h), so that release and
 * restore put it back.
 *
 * Files written:
 *   v1 CPU   <cpu_root>/<cpu_dir>/cpu.cfs_quota_us   quota = cores x cpu.cfs_period_us, -1 none
 *   v2 CPU   <root>/<cpu_dir>/cpu.max                "QUOTA PERIOD" or "max PERIOD"
 *   v1 disk  <blkio_root>/<blkio_dir>/blkio.throttle.{read,write}_{bps,iops}_device
 *            "MAJ:MIN VALUE", VALUE 0 removes the rule
 *   v2 disk  <root>/<blkio_dir>/io.max               "MAJ:MIN rbps=… wbps=… riops=… wiops=…"
 *
 * v1 CPU and libvirt's vcpuN/ children (measured on this machine by
 * tests/integration/test_actuator_real.sh): a quota on the domain directory bounds the sum
 * of all its children, whose own quota stays -1; but v1 refuses (EINVAL) a parent quota
 * smaller than a child's quota (per period), so a domain with <cputune><vcpu_quota> larger
 * than the cap we want cannot be capped at the domain level: that write fails as permanent.
 *
 * Every value is read first and written only when it differs (each cpu.max or
 * cfs_quota_us write walks the task-group tree). Errors are classified with
 * vmg_act_classify(). */
#pragma once
#include <stdint.h>

#include "controller/act/journal.h"

enum vmg_result_class {
        VMG_RESULT_OK = 0,
        VMG_RESULT_GONE,      /* -ENOENT/-ENODEV: the VM (or device) vanished; expected, quiet */
        VMG_RESULT_TRANSIENT, /* -EBUSY/-EAGAIN/-EINTR/-ENOMEM: try again next tick */
        VMG_RESULT_PERMANENT, /* anything else (-EPERM, -EROFS, -EINVAL, -EACCES…): stop managing
                            * that VM and raise an alert */
};
/* Class of a return value of this module (>= 0 is VMG_RESULT_OK). */
enum vmg_result_class vmg_act_classify(int r);
const char *vmg_act_class_name(enum vmg_result_class c);

/* Writes value (one write(2)) to relpath under dirfd. 0 or -errno (-EIO on a short
 * write). The default; tests inject their own to count writes or fail them. */
int vmg_act_write_default(int dirfd, const char *relpath, const char *value, void *userdata);

struct vmg_actuator_config {
        int cgroup_version;          /* 1 or 2 */
        const char *cpu_root;        /* v1: the cpu hierarchy, e.g. /sys/fs/cgroup/cpu;
                                      * v2: the unified root */
        const char *blkio_root;      /* v1: the blkio hierarchy; v2: unused */
        struct vmg_journal *journal; /* required (never write what we cannot remember);
                                      * not owned */
        int (*write_fn)(int dirfd, const char *relpath, const char *value, void *userdata);
        void *write_userdata;        /* write_fn NULL: vmg_act_write_default */
};

struct vmg_actuator;

/* Opens the hierarchy roots. 0 and *ret, or -errno (a root that cannot be opened). */
int vmg_actuator_new(const struct vmg_actuator_config *cfg, struct vmg_actuator **ret);
/* Closes; never restores (the caller decides: vmg_act_restore_all() at stop). Returns NULL. */
struct vmg_actuator *vmg_actuator_free(struct vmg_actuator *a);

/* A VM's cgroup directories, relative to the roots (v2: both are the same directory). */
struct vmg_act_vm {
        const char *uuid;
        const char *name;
        const char *cpu_dir;
        const char *blkio_dir;
};

/* CPU cap in cores (e.g. 0.2); cores <= 0 removes the cap. A quota below the kernel's
 * 1 ms minimum is raised to it. Returns 1 when written, 0 when already so, -errno. */
int vmg_act_set_cpu(struct vmg_actuator *a, const struct vmg_act_vm *vm, double cores);
/* Current CPU cap in cores, 0 for none. 0 and *ret_cores, or -errno. */
int vmg_act_get_cpu(struct vmg_actuator *a, const struct vmg_act_vm *vm, double *ret_cores);

#define VMG_IO_UNLIMITED UINT64_C(0)
#define VMG_IO_KEEP UINT64_MAX /* leave this limit as it is */
struct vmg_io_limit {
        uint64_t rbps, wbps, riops, wiops; /* bytes/s and IO/s; VMG_IO_UNLIMITED or VMG_IO_KEEP */
};
/* Disk limits of one host block device MAJ:MIN. Returns 1 when any file was written, 0
 * when all were already so, -errno (the first failure; later files are not tried). */
int vmg_act_set_io(struct vmg_actuator *a, const struct vmg_act_vm *vm, unsigned major,
                   unsigned minor, const struct vmg_io_limit *lim);

/* Puts back every cgroup value of the VM recorded in the journal (see
 * vmg_journal_restore() for drift and vanished VMs). Returns the number restored or the
 * first -errno. */
int vmg_act_release(struct vmg_actuator *a, const char *uuid);
/* The same for every VM in the journal: at stop, and at start before the first tick. */
int vmg_act_restore_all(struct vmg_actuator *a);

/* The journal backend for kind "cgroup" (reads and writes through this actuator's roots),
 * to pass to vmg_journal_restore() together with other kinds' backends. */
void vmg_act_journal_backend(struct vmg_actuator *a, struct vmg_journal_backend *ret);
