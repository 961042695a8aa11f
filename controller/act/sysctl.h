/* Host-wide kernel switches vmguard turns on for itself (kernel.task_delayacct), with the
 * original journaled like every other value it replaces: a vmguard killed with SIGKILL
 * leaves the journal entry, and the next start puts the original back in its start-up
 * reconcile, before it turns the switch on again. Kept in memory only, the original was
 * lost with the process, and the restarted daemon read back its own "1" as the original.
 *
 * Journal entries: kind "sysctl", uuid "host", root "", path the name below
 * <proc_root>/sys ("kernel/task_delayacct"), key "", values trimmed of whitespace.
 *
 * Not thread-safe: one owner (the daemon's loop thread). */
#pragma once
#include "controller/act/journal.h"

#define VMG_SYSCTL_KIND "sysctl"
#define VMG_SYSCTL_UUID "host"

struct vmg_sysctl;

/* proc_root: NULL for /proc; journal: required, not owned. Returns 0 and *ret, or -errno
 * of opening proc_root. */
int vmg_sysctl_new(const char *proc_root, struct vmg_journal *journal, struct vmg_sysctl **ret);
/* Closes; never restores. Returns NULL. */
struct vmg_sysctl *vmg_sysctl_free(struct vmg_sysctl *s);

/* Reads name ("kernel/task_delayacct") below <proc_root>/sys into *ret (malloc'd, trimmed).
 * 0, -ENOENT when the kernel has no such switch, other -errno. */
int vmg_sysctl_read(struct vmg_sysctl *s, const char *name, char **ret);

/* Sets name to value, journaling the live value first (never written when it cannot be
 * journaled). Returns 1 written, 0 already so, -ENOENT no such switch, other -errno. */
int vmg_sysctl_set(struct vmg_sysctl *s, const char *name, const char *value);

/* Puts back every sysctl value in the journal (drift kept, see vmg_journal_restore()).
 * Returns the number restored or the first -errno. */
int vmg_sysctl_restore_all(struct vmg_sysctl *s);

/* The journal backend of kind "sysctl". */
void vmg_sysctl_journal_backend(struct vmg_sysctl *s, struct vmg_journal_backend *ret);
