/* One vmguardd per host. Two daemons on one host undo each other: the second restores every
 * original and rewrites the journal while the first still believes its throttles hold, and
 * with another state dir both would throttle the same guests. So the daemon takes, before it
 * touches anything, an exclusive flock(2) on a host-wide file (VMG_LOCK_FILE, outside any
 * state dir) and one on its state dir's VMG_STATE_LOCK_NAME. flock, not a pid file alone: the
 * kernel drops the lock when the holder dies, SIGKILL included, so a stale file never blocks
 * a restart. */
#pragma once
#include <sys/types.h>

/* Takes an exclusive non-blocking flock on path (created 0644 when missing) and writes this
 * process's pid into it, for the message a second instance prints. Returns the fd (>= 0;
 * the lock lasts while it stays open, close it to release), -EBUSY when another process
 * holds it (*ret_holder: its pid as written in the file, 0 when unreadable), or another
 * -errno of open or flock. */
int vmg_lock_take(const char *path, pid_t *ret_holder);
