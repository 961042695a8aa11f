/* PSI trigger strings, and arming one for real on this host's /proc/pressure (root). */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "controller/daemon/psitrigger.h"
#include "tests/harness.h"

int main(void) {
        char buf[64];
        T_CASE("format");
        CHECK_INT(vmg_psi_trigger_format(0.1, 1000000, buf, sizeof buf), 19);
        CHECK_STR(buf, "some 100000 1000000");
        CHECK(vmg_psi_trigger_format(0.2, 500000, buf, sizeof buf) > 0);
        CHECK_STR(buf, "some 100000 500000");
        CHECK_INT(vmg_psi_trigger_format(0, 1000000, buf, sizeof buf), -EINVAL);
        CHECK_INT(vmg_psi_trigger_format(1.5, 1000000, buf, sizeof buf), -EINVAL);
        CHECK_INT(vmg_psi_trigger_format(0.1, 100000, buf, sizeof buf), -EINVAL);
        CHECK_INT(vmg_psi_trigger_format(0.1, 20000000, buf, sizeof buf), -EINVAL);
        CHECK_INT(vmg_psi_trigger_format(0.1, 1000000, buf, 8), -ENOBUFS);
        CHECK_INT(vmg_psi_trigger_open("/nonexistent/pressure", 0.1, 1000000), -ENOENT);

        T_CASE("arm on the real kernel");
        if (t_require(access("/proc/pressure/io", F_OK) == 0, "this kernel has no PSI (/proc/pressure/io)") &&
            t_require(geteuid() == 0, "needs root to arm a PSI trigger")) {
                int fd = vmg_psi_trigger_open("/proc/pressure/io", 0.1, 1000000);
                CHECK_MSG(fd >= 0, "arming failed: %d", fd);
                if (fd >= 0) {
                        /* Armed: the kernel polls the fd as a trigger (POLLPRI when it fires,
                         * which depends on load, not tested). A second trigger on the same fd
                         * is refused with EBUSY only when the first one was accepted. */
                        struct pollfd p = { .fd = fd, .events = POLLPRI };
                        int n = poll(&p, 1, 0);
                        CHECK_MSG(n == 0 || (n == 1 && (p.revents & POLLPRI)), "poll: %d, revents %#x", n, p.revents);
                        CHECK_MSG(!(p.revents & (POLLERR | POLLNVAL)), "revents %#x", p.revents);
                        const char again[] = "some 100000 1000000";
                        errno = 0;
                        CHECK_MSG(write(fd, again, sizeof again) < 0 && errno == EBUSY,
                                  "a second trigger on the fd: errno %d, expected EBUSY", errno);
                        close(fd);
                }
        }
        return t_summary();
}
