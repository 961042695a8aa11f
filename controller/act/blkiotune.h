/* QEMU's own block I/O throttle through libvirt (virDomainGetBlockIoTune /
 * virDomainSetBlockIoTune, VIR_DOMAIN_AFFECT_LIVE: what `virsh blkdeviotune DOM vda
 * --write-bytes-sec N --live` does). The one lever measured on the lab host that also reaches a
 * cache=writeback guest, because QEMU holds writes back before the page cache: 5 MiB/s took
 * the victim's DHCP back to calm, 20 MiB/s to ~1.2x calm (docs/LAB.md).
 *
 * libvirt calls can block for tens of seconds (a domain stuck in a job: "cannot acquire
 * state change lock"), so they never run on the daemon's loop: one worker thread takes
 * calls from a queue and signals completions on an eventfd the loop polls. Each job is a
 * read (get), then - on the loop thread, which alone owns the journal - a journal record,
 * then a write (set). A job still unfinished timeout_ms after submission completes with
 * -ETIMEDOUT; a libvirt call already running cannot be cancelled, its late result is
 * logged and ignored (the journal entry stays, so restore still covers a late write).
 *
 * vmg_blkiotune_free() waits at most one timeout for a call in progress: a libvirtd that
 * never answers cannot hang the daemon's stop.
 *
 * The six byte/iops fields (total, read, write) are one set: libvirt clears the fields that
 * conflict with the ones a call sets (total_bytes_sec vs read/write_bytes_sec, the same for
 * iops), so setting write_bytes_sec alone would wipe an operator's <iotune><total_bytes_sec>
 * and a restore of write_bytes_sec alone would never bring it back. So each job reads the
 * whole set, computes the set to write from the operator's set and vmguard's wants
 * (vmg_iotune_compose()), and writes all six in one call.
 *
 * Originals go to the same journal as cgroup values: kind "blkiotune", path = disk target,
 * key "iotune", original/written = the whole set (vmg_iotune_format()), judged as a set: any
 * field changed by someone else while vmguard held the disk is drift, and their set is kept.
 * Journals written before (key = one parameter name, value in decimal) are still restored,
 * that field alone. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/act/journal.h"

#include "controller/act/iotune.h"

/* The calls the worker makes; the default talks to libvirt. Both run on the worker thread
 * only. get: 0 and *ret (all six fields); set: 0 (all six fields in one
 * virDomainSetBlockIoTune call). Both: -ENOENT when the domain is gone or not running,
 * -ENODEV when it has no such disk, -EBUSY when it is busy in another job, -EAGAIN when
 * libvirtd cannot be reached, other -errno otherwise. */
struct vmg_blkiotune_ops {
        int (*get)(void *userdata, const char *uuid, const char *disk, struct vmg_iotune *ret);
        int (*set)(void *userdata, const char *uuid, const char *disk, const struct vmg_iotune *s);
        void *userdata;
};

struct vmg_blkiotune_config {
        struct vmg_journal *journal; /* required, not owned */
        const char *uri;             /* libvirt URI; NULL: "qemu:///system" */
        const struct vmg_blkiotune_ops *ops; /* NULL: libvirt */
        unsigned timeout_ms;         /* 0: VMG_BLKIOTUNE_TIMEOUT_MS */
};
/* libvirt's QEMU driver waits 30 s for a job lock before failing; a throttle that late is
 * useless to a victim, so give up well before and retry on a later tick. */
#define VMG_BLKIOTUNE_TIMEOUT_MS 5000

enum vmg_blkiotune_op { VMG_BT_THROTTLE, VMG_BT_RESTORE };

/* A finished job. r: 1 set written (throttled or restored), 0 nothing to do (already so,
 * VM gone, drift left alone), -errno (-ETIMEDOUT, …; classify with vmg_act_classify()).
 * param: the parameter of a throttle job; the journal key of a restore job. */
struct vmg_blkiotune_result {
        uint64_t id;
        enum vmg_blkiotune_op op;
        char uuid[40];
        char disk[32];
        char param[32];
        int r;
};

struct vmg_blkiotune;

/* Starts the worker thread (the libvirt connection opens lazily on it). 0 or -errno. */
int vmg_blkiotune_new(const struct vmg_blkiotune_config *cfg, struct vmg_blkiotune **ret);
/* Stops the worker: waits up to the timeout for a libvirt call in progress to return (past
 * it, the worker is detached and its state left allocated). Never restores.
 * Returns NULL. */
struct vmg_blkiotune *vmg_blkiotune_free(struct vmg_blkiotune *bt);

/* The eventfd to poll for POLLIN; then call vmg_blkiotune_dispatch(). */
int vmg_blkiotune_fd(const struct vmg_blkiotune *bt);

/* Records vmguard's want "param of disk at most value" (0 = no want: release) and queues a
 * job that writes the composed set (vmg_iotune_compose()) if it differs from the live one;
 * once no want is left on the disk, the operator's set is written back and its journal entry
 * dropped. Jobs on one disk run one after the other, in order. Returns the job id (> 0),
 * -EBUSY when a job on the same (uuid, disk, param) is unfinished, -EINVAL for an unknown
 * parameter. The journal records the original set before the set is written. */
int64_t vmg_blkiotune_set(struct vmg_blkiotune *bt, const char *uuid, const char *name,
                          const char *disk, const char *param, unsigned long long value);
/* Forgets vmguard's wants of uuid (NULL: of all VMs) and queues the restore of every
 * blkiotune journal entry of uuid that has no job running. Returns the number queued. */
int vmg_blkiotune_restore(struct vmg_blkiotune *bt, const char *uuid);

/* Advances jobs (completions, next stage, timeouts) and copies up to n finished ones to
 * out. Call when the fd is readable AND once per tick (timeouts need no fd event).
 * Returns the number copied (finished jobs beyond n wait for the next call). */
size_t vmg_blkiotune_dispatch(struct vmg_blkiotune *bt, struct vmg_blkiotune_result *out,
                              size_t n);
/* Number of unfinished jobs. */
size_t vmg_blkiotune_pending(const struct vmg_blkiotune *bt);

/* For stop and start-up (before the first tick), when blocking is acceptable: queues the
 * restore of uuid (NULL: all) and waits until every job finished or timed out. Returns
 * the number of values restored, or the first -errno. */
int vmg_blkiotune_restore_sync(struct vmg_blkiotune *bt, const char *uuid);
