/* cgroup probes: which hierarchies are mounted where (v1, hybrid, pure v2), where a libvirt
 * domain's cgroup lives in each of them (found by walking, never by one assumed layout),
 * and a per-VM handle that keeps the hot counter files open and pread()s them each tick.
 * All paths are injectable (cgroup root, mountinfo, /proc) so tests run on fake trees.
 * Errors are negative errno; -ENOENT/-ENODEV mean "the VM's cgroup vanished": expected. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/sample.h"

enum vmg_cg_hier {
        VMG_CG_CPU,     /* v1 cpu: cpu.stat, cpu.cfs_quota_us */
        VMG_CG_CPUACCT, /* v1 cpuacct: cpuacct.usage */
        VMG_CG_BLKIO,   /* v1 blkio: blkio.throttle.* */
        VMG_CG_NET_CLS, /* v1 net_cls: net_cls.classid */
        VMG_CG_SYSTEMD, /* v1 name=systemd: the unit tree on hybrid hosts */
        VMG_CG_UNIFIED, /* cgroup2, at the root (pure v2) or at unified/ (hybrid) */
        VMG_CG_N,
};

/* The cgroup of process pid in one hierarchy, from PROC_ROOT/PID/cgroup (proc_root NULL:
 * /proc): the line whose controller list names controller on v1 (a comount lists
 * "cpu,cpuacct"), the "0::" line of cgroup2 when controller is NULL. *ret is relative to the
 * hierarchy's root, without the leading '/' ("" for the root group). Returns 0, -ESRCH when
 * the process is gone, -ENOENT when no line matches, -ENOMEM, or -errno of reading. */
int vmg_pid_cgroup(const char *proc_root, pid_t pid, const char *controller, char **ret);

struct vmg_cgroup_paths {
        const char *root;      /* NULL: /sys/fs/cgroup */
        const char *mountinfo; /* NULL: /proc/self/mountinfo */
        const char *proc;      /* NULL: /proc (for /proc/PID/cgroup) */
};

struct vmg_cgroup_ctx;

/* Reads mountinfo and opens each cgroup hierarchy found. Mount points under
 * /sys/fs/cgroup are re-based onto paths->root, so a fake tree can be driven by a real
 * mountinfo. Returns 0, -ENOENT when no cgroup hierarchy is mounted (or none of them
 * exists under root), -ENOMEM, or the -errno of reading mountinfo. */
int vmg_cgroup_ctx_new(const struct vmg_cgroup_paths *paths, struct vmg_cgroup_ctx **ret);
/* Returns NULL. */
struct vmg_cgroup_ctx *vmg_cgroup_ctx_free(struct vmg_cgroup_ctx *c);

/* The hierarchy's directory (re-based), or NULL when not mounted. */
const char *vmg_cgroup_hier_path(const struct vmg_cgroup_ctx *c, enum vmg_cg_hier h);
/* An O_PATH directory fd of the hierarchy root owned by c, or -1 when not mounted. */
int vmg_cgroup_hier_fd(const struct vmg_cgroup_ctx *c, enum vmg_cg_hier h);
/* cgroup2 mounted at the cgroup root with no v1 controller hierarchy. */
bool vmg_cgroup_is_pure_v2(const struct vmg_cgroup_ctx *c);
/* Controller listed in the cgroup2 root's cgroup.controllers (available) / in its
 * cgroup.subtree_control (enabled for children). false when cgroup2 is not mounted. */
bool vmg_cgroup_v2_available(const struct vmg_cgroup_ctx *c, const char *controller);
bool vmg_cgroup_v2_enabled(const struct vmg_cgroup_ctx *c, const char *controller);

/* systemd's unit-name escaping: '/' -> '-', a leading '.', '-', '\' and every byte
 * outside [A-Za-z0-9:_.] -> \xNN. Returns 0 or -ENOMEM; *ret is malloc'ed. */
int vmg_cgroup_unit_escape(const char *s, char **ret);
/* libvirt's machine name "DRIVER-ID-NAME": NAME keeps [A-Za-z0-9], single '-'/'.' between
 * them, the whole truncated at 64 bytes, trailing '-'/'.' trimmed. Returns 0 or -ENOMEM. */
int vmg_cgroup_machine_name(const char *driver, int id, const char *name, char **ret);

/* Identity of a running libvirt domain. uuid is only logged; qemu_pid (0 = unknown)
 * enables the /proc/PID/cgroup fallback. */
struct vmg_domain_ref {
        const char *name;
        int id;
        const char *uuid;
        pid_t qemu_pid;
};

/* Finds the domain's directory in hierarchy h, as a path relative to the hierarchy root
 * without a leading '/': first by walking the tree (symlinks never followed) for
 * "qemu-ID-NAME.libvirt-qemu" (libvirt without machined) or
 * "machine-qemu\x2dID\x2dNAME.scope" (with machined), then from /proc/QEMU_PID/cgroup
 * (ignored when that says the root). Returns 0, -ENOENT when not found, -ENOMEM. */
int vmg_cgroup_find_domain(struct vmg_cgroup_ctx *c, const struct vmg_domain_ref *d,
                           enum vmg_cg_hier h, char **ret);

struct vmg_cgroup_vm;

/* Finds the domain in every mounted hierarchy and opens its counter files. Returns 0,
 * -ENOENT when it is in none, -ELOOP when a found path holds a symlink, -ENOMEM. */
int vmg_cgroup_vm_open(struct vmg_cgroup_ctx *c, const struct vmg_domain_ref *d,
                       struct vmg_cgroup_vm **ret);
/* Same with explicit relative directories per hierarchy (NULL entries: not there). Each
 * component is opened with O_NOFOLLOW: a symlink anywhere gives -ELOOP (or -ENOTDIR).
 * Returns 0, -ENOENT (a directory is missing, or all entries are NULL), -ELOOP, -ENOMEM. */
int vmg_cgroup_vm_open_dirs(struct vmg_cgroup_ctx *c, const char *vm_name,
                            const char *const dirs[VMG_CG_N], struct vmg_cgroup_vm **ret);
/* Returns NULL. */
struct vmg_cgroup_vm *vmg_cgroup_vm_free(struct vmg_cgroup_vm *vm);

/* The VM's directory in h relative to the hierarchy root, or NULL. */
const char *vmg_cgroup_vm_dir(const struct vmg_cgroup_vm *vm, enum vmg_cg_hier h);
/* Its O_PATH directory fd (owned by vm; actors openat() their control files there), or -1. */
int vmg_cgroup_vm_dir_fd(const struct vmg_cgroup_vm *vm, enum vmg_cg_hier h);

/* Reads the VM's cgroup counters into c: cpu_valid/cpu_source/cpu_usage_ns (v1
 * cpuacct.usage, else v2 cpu.stat usage_usec), cpu_nr_periods/nr_throttled/throttled_ns
 * (v1 cpu.stat, else v2 cpu.stat), io_source/n_devs/devs (v1 blkio.throttle.* preferring
 * _recursive, else v2 io.stat), psi_cpu/io/mem (v2 *.pressure). Other fields are left
 * alone; nothing is written on failure. Returns 0, -ENOENT/-ENODEV when the cgroup
 * vanished, -EINVAL on unparsable content. */
int vmg_cgroup_vm_read(struct vmg_cgroup_vm *vm, struct vmg_vm_counters *c);

/* Finds a directory named name in hierarchy h by the same symlink-refusing walk (e.g. a
 * systemd unit "dnsmasq.service" under system.slice/). *ret is relative to the hierarchy
 * root. Returns 0, -ENOENT, -ENOMEM. */
int vmg_cgroup_find_dir(struct vmg_cgroup_ctx *c, enum vmg_cg_hier h, const char *name, char **ret);

/* The one walk over cgroup directories (domain lookup, vmg_cgroup_find_dir, a unit's
 * sub-cgroups in services.c). visit is called for each directory below the start, depth
 * first, parents before children, with an fd of it (valid during the call only), its path
 * relative to the start and its depth (1 = a child of the start). It returns 0 to go on
 * (into its children while depth < max_depth), VMG_CG_WALK_PRUNE to skip its children,
 * VMG_CG_WALK_STOP to end the walk there, or -errno to end it with that error. */
enum { VMG_CG_WALK_PRUNE = 1, VMG_CG_WALK_STOP = 2 };
typedef int (*vmg_cgroup_walk_fn)(int dirfd, const char *rel, unsigned depth, void *userdata);

/* Walks below dirfd (an O_PATH fd is fine; the start itself is not visited). Entries are
 * opened with O_NOFOLLOW: a symlinked directory is neither entered nor visited. At most
 * max_dirs entries are looked at (counted before opening, so unreadable ones count too) and
 * a path longer than 4 KiB is skipped, so a hostile or huge tree cannot make it run long.
 * Returns 0 when the walk ended without a stop (all seen, or max_dirs reached),
 * VMG_CG_WALK_STOP when visit stopped it (then *ret_path, when ret_path is not NULL, is a
 * malloc'ed copy of that directory's relative path), or -errno (visit's, -ENOMEM). */
int vmg_cgroup_walk(int dirfd, unsigned max_depth, unsigned max_dirs, vmg_cgroup_walk_fn visit,
                    void *userdata, char **ret_path);
