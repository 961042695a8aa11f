/* Synthetic libvirt-like guests in real cgroups, for tests and benchmarks that need the
 * daemon to really sample N guests without N QEMUs (root only).
 *
 * A guest is laid out as libvirt 9 without machined lays out a domain (docs/LAB.md):
 * DIR = machine/qemu-ID-NAME.libvirt-qemu with vcpu0/ and emulator/ in cpu, cpuset and the
 * unified tree (threaded children there), the bare DIR in memory, freezer and blkio. Its
 * "QEMU" is a forked child that only sleeps, with a thread named "CPU 0/TCG", so the monitor
 * finds one vCPU thread as with a real guest (without one it would rescan /proc/PID/task
 * every tick). Children die with the thread that forked them (PR_SET_PDEATHSIG), so a
 * SIGKILLed caller leaves only empty directories: synguest_cleanup_leftovers() removes them.
 *
 * Fork from a single-threaded process only: the child calls pthread_create(). */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#define SYNGUEST_N_HIERS 6
#define SYNGUEST_DIR_MAX 160

struct synguest_host {
        const char *root;                     /* cgroup mount root; NULL: /sys/fs/cgroup */
        bool present[SYNGUEST_N_HIERS];       /* hierarchy mounted here */
        bool made_machine[SYNGUEST_N_HIERS];  /* we created machine/ there */
};

struct synguest {
        pid_t pid, vcpu_tid;                  /* 0 when not running */
        char dir[SYNGUEST_DIR_MAX];           /* relative to each hierarchy root */
        bool made[SYNGUEST_N_HIERS];
};

/* Finds the hierarchies and creates machine/ where missing. Returns 0 or -errno (logged). */
int synguest_host_init(struct synguest_host *h, const char *root);

/* Removes machine/ where we created it and it is empty again (busy: left, silently). */
void synguest_host_done(struct synguest_host *h);

/* Forks the guest's process (process name comm), creates dir in every hierarchy and moves
 * the process and its vCPU thread there. On failure everything made is undone. Returns 0
 * and *g, or -errno (logged with the path). */
int synguest_spawn(struct synguest_host *h, const char *dir, const char *comm, struct synguest *g);

/* Renames the guest's directory in every hierarchy (same parent). Returns 0 or -errno
 * (logged); on failure the hierarchies already renamed are renamed back. */
int synguest_rename(struct synguest_host *h, struct synguest *g, const char *newdir);

/* SIGKILLs and reaps the process, removes the directories. Returns 0, or -EBUSY when a
 * directory could not be removed (logged). Idempotent; g is zeroed. */
int synguest_kill(struct synguest_host *h, struct synguest *g);

/* Removes machine/qemu-*<match>* directories (empty ones: their tasks died with their
 * parent) in every hierarchy. Returns how many were removed, or -EBUSY if some could not
 * be. */
int synguest_cleanup_leftovers(struct synguest_host *h, const char *match);

/* How many machine/qemu-*<match>* directories exist, summed over hierarchies. */
int synguest_count_dirs(struct synguest_host *h, const char *match);

/* snprintf for paths built from bounded parts; a cut path fails its open()/mkdir() loudly,
 * so callers need no separate truncation check. */
void synguest_pathf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
