/* The journal of original values: every value vmguard replaces is remembered here, on disk,
 * before it is replaced, so that release, stop (SIGTERM/SIGINT) and the next start after a
 * crash or SIGKILL can put it back. A guest must never stay throttled by a vmguard that is no
 * longer running.
 *
 * File: <state_dir>/journal.json (state_dir defaults to VMG_STATE_DIR), written
 * atomically (journal.json.tmp, fsync, rename, fsync of the directory). Format (jansson):
 *
 *   {"version": 1,
 *    "entries": [
 *      {"uuid": "…", "name": "web1", "kind": "cgroup", "root": "cpu",
 *       "path": "machine/qemu-3-web1.libvirt-qemu/cpu.cfs_quota_us", "key": "",
 *       "original": "-1", "written": "20000", "previous": null},
 *      {"uuid": "…", "name": "web1", "kind": "cgroup", "root": "blkio",
 *       "path": "machine/qemu-3-web1.libvirt-qemu/blkio.throttle.write_bps_device",
 *       "key": "254:0", "original": "0", "written": "20971520", "previous": null},
 *      {"uuid": "…", "name": "web1", "kind": "blkiotune", "root": "",
 *       "path": "vda", "key": "iotune",
 *       "original": "total_bytes_sec=52428800 read_bytes_sec=0 write_bytes_sec=0 total_iops_sec=0 read_iops_sec=0 write_iops_sec=0",
 *       "written": "total_bytes_sec=0 read_bytes_sec=52428800 write_bytes_sec=5242880 total_iops_sec=0 read_iops_sec=0 write_iops_sec=0",
 *       "previous": null}]}
 *
 * kind "cgroup": root names the hierarchy ("cpu", "blkio" for v1, "unified" for v2), path
 * is the file relative to that hierarchy's root, key the "MAJ:MIN" of per-device files; for
 * io.max "MAJ:MIN KEY" (e.g. "254:0 wbps"), one entry per key, so an admin's change to
 * another key of the same line is theirs (a whole-line "MAJ:MIN" entry of an older journal is
 * still restored as a line).
 * kind "blkiotune": path is the disk target, key "iotune", values the six byte/iops fields as
 * one set, judged as a set (libvirt clears conflicting fields, so one field alone cannot be
 * put back faithfully; see blkiotune.h). An older journal's entry keyed by one libvirt
 * parameter, value in decimal, is still restored, that field alone.
 * kind "sysctl": uuid "host", path the switch below /proc/sys ("kernel/task_delayacct").
 * "previous" is the value vmguard wrote before "written" while an update is in flight: a
 * crash between persisting the new value and writing it leaves the old one live, which is
 * still ours and must still be restored.
 *
 * Values are opaque strings compared exactly; the backend that reads and writes a kind
 * normalises them (e.g. an io.max key's value, "max" when the line lacks it).
 *
 * Not thread-safe: one owner (the daemon's loop thread). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "common/paths.h"


struct vmg_journal;

/* What a value is: identity of an entry together with the VM uuid. */
struct vmg_knob {
        const char *kind; /* "cgroup", "blkiotune", "sysctl" */
        const char *root;
        const char *path;
        const char *key;  /* "" when the file holds one value */
};

struct vmg_journal_entry {
        char *uuid, *name;
        char *kind, *root, *path, *key;
        char *original, *written;
        char *previous; /* NULL unless an update may be half done */
};

/* How to read and write the live value of one kind of knob (implemented by the actuator
 * for "cgroup" and by blkiotune for "blkiotune"; by fakes in tests).
 * read: 0 and *ret (malloc'd, caller frees) on success; -ENOENT/-ENODEV when the VM or its
 * device is gone; other -errno on failure. write: 0 or -errno. */
struct vmg_journal_backend {
        const char *kind;
        int (*read)(void *userdata, const struct vmg_journal_entry *e, char **ret);
        int (*write)(void *userdata, const struct vmg_journal_entry *e, const char *value);
        void *userdata;
};

/* Opens (creates 0700 if missing) state_dir (NULL: the default) and loads its journal, if
 * any. Entries that fail validation (missing fields, ".." in a path) are dropped with an
 * error log naming them. Returns 0 and *ret, or -errno: a journal that exists but cannot be
 * read or parsed (-EBADMSG) is an error, never silently replaced, because it holds values
 * nobody else remembers. A read-only state dir is NOT an error here (restore still works
 * from a loaded journal); recording then fails, see vmg_journal_record(). */
int vmg_journal_open(const char *state_dir, struct vmg_journal **ret);
/* Frees memory only; never touches the file. Returns NULL. */
struct vmg_journal *vmg_journal_free(struct vmg_journal *j);

/* Checks that the journal can be persisted now (writes it). 0 or -errno (-EROFS,
 * -EACCES…): the caller must then refuse to throttle. Logs the reason. */
int vmg_journal_check_writable(struct vmg_journal *j);

size_t vmg_journal_count(const struct vmg_journal *j);
/* The i-th entry (i < count), valid until the next change of the journal. */
const struct vmg_journal_entry *vmg_journal_get(const struct vmg_journal *j, size_t i);
/* The entry of (uuid, knob), or NULL. */
const struct vmg_journal_entry *vmg_journal_find(const struct vmg_journal *j, const char *uuid,
                                                 const struct vmg_knob *k);

/* To be called BEFORE writing `value` to a knob whose live value is `live`. If the knob has
 * no entry, records live as its original; if it has one, the entry's written value becomes
 * `value` (the old one kept as "previous"). Persists before returning. 0 on success; -errno
 * when it cannot be persisted (nothing changed in memory then): do not write the knob. */
int vmg_journal_record(struct vmg_journal *j, const char *uuid, const char *name,
                       const struct vmg_knob *k, const char *live, const char *value);
/* Undoes the last vmg_journal_record() of a knob after the write itself failed: drops a
 * fresh entry, or puts "previous" back as written. Persists. 0 or -errno. */
int vmg_journal_unrecord(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k);
/* Marks a completed write: forgets "previous". Does not persist (a stale "previous" on
 * disk is harmless). */
void vmg_journal_committed(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k);
/* Drops the entry of (uuid, knob) and persists. 0 (also when absent) or -errno. */
int vmg_journal_drop(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k);

enum vmg_journal_verdict {
        VMG_JV_RESTORE,   /* live is what vmguard wrote: write the original back */
        VMG_JV_ORIGINAL,  /* live already is the original: drop */
        VMG_JV_DRIFT,     /* someone else changed it: keep their value, drop */
};
/* Decides what restoring e means given its live value. Pure. */
enum vmg_journal_verdict vmg_journal_judge(const struct vmg_journal_entry *e, const char *live);

/* Restores entries and drops those that are done. Restores (uuid, knob) only when k is not
 * NULL; all entries of uuid when uuid is not NULL; everything otherwise. Entries whose kind
 * has no backend in `backends` are left alone. Per entry: VM gone -> dropped quietly;
 * drift -> logged, admin's value kept, dropped; restored or already original -> dropped;
 * transient or permanent write error -> logged, KEPT for a later attempt.
 * Returns the number of entries restored (>= 0) if none failed, else the first -errno. */
int vmg_journal_restore(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k,
                        const struct vmg_journal_backend *backends, size_t n_backends);
