#include "controller/daemon/psitrigger.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int vmg_psi_trigger_format(double fraction, uint64_t window_us, char *buf, int len) {
        if (!(fraction > 0 && fraction <= 1) || window_us < VMG_PSI_WINDOW_MIN_US ||
            window_us > VMG_PSI_WINDOW_MAX_US)
                return -EINVAL;
        uint64_t stall = (uint64_t) llround(fraction * (double) window_us);
        if (stall == 0)
                stall = 1;
        int n = snprintf(buf, (size_t) len, "some %llu %llu", (unsigned long long) stall,
                         (unsigned long long) window_us);
        if (n < 0 || n >= len)
                return -ENOBUFS;
        return n;
}

int vmg_psi_trigger_open(const char *path, double fraction, uint64_t window_us) {
        char buf[64];
        int n = vmg_psi_trigger_format(fraction, window_us, buf, sizeof buf);
        if (n < 0)
                return n;
        int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* The trigger string must be written in one write, NUL included (psi.rst). */
        if (write(fd, buf, (size_t) n + 1) >= 0)
                return fd;
        int r = -errno;
        /* Without CAP_SYS_RESOURCE the kernel takes only windows that are whole multiples
         * of 2 s (and says EINVAL): seen here in a sandbox that drops it even for root. */
        uint64_t w2 = (window_us + 1999999) / 2000000 * 2000000;
        if (r == -EINVAL && w2 != window_us && w2 <= VMG_PSI_WINDOW_MAX_US &&
            (n = vmg_psi_trigger_format(fraction, w2, buf, sizeof buf)) > 0 &&
            write(fd, buf, (size_t) n + 1) >= 0) {
                log_debug("PSI trigger on %s armed with a 2 s-multiple window: \"%s\"", path, buf);
                return fd;
        }
        r = -errno;
        close(fd);
        return log_debug_errno(r, "cannot arm PSI trigger \"%s\" on %s: %m", buf, path);
}
