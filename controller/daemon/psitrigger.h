/* PSI triggers: the kernel wakes us (POLLPRI) as soon as a pressure file's stall time in a
 * window crosses a threshold, so a noisy guest is seen within the window rather than at the
 * next tick. Documented in the kernel's Documentation/accounting/psi.rst. */
#pragma once
#include <stdint.h>

/* The kernel's bounds on a trigger's window. */
#define VMG_PSI_WINDOW_MIN_US 500000u
#define VMG_PSI_WINDOW_MAX_US 10000000u

/* Formats "some STALL_US WINDOW_US" for a stall fraction of the window. Returns its length,
 * or -EINVAL (fraction outside (0, 1], window outside the kernel's bounds) / -ENOBUFS. */
int vmg_psi_trigger_format(double fraction, uint64_t window_us, char *buf, int len);

/* Opens path (e.g. /proc/pressure/io) and arms a "some" trigger for fraction of window_us.
 * Returns the fd to poll for EPOLLPRI (close it to disarm), or -errno: -ENOENT without PSI,
 * -EINVAL, -EPERM without CAP_SYS_RESOURCE for a window that is not a multiple of 2 s. */
int vmg_psi_trigger_open(const char *path, double fraction, uint64_t window_us);
