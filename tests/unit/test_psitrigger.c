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
        if (access("/proc/pressure/io", F_OK) < 0) {
                fprintf(stderr, "this kernel has no PSI\n");
        } else if (geteuid() != 0) {
                fprintf(stderr, "not root: real trigger not armed\n");
        } else {
                int fd = vmg_psi_trigger_open("/proc/pressure/io", 0.1, 1000000);
                CHECK_MSG(fd >= 0, "arming failed: %d", fd);
                if (fd >= 0) {
                        struct pollfd p = { .fd = fd, .events = POLLPRI };
                        /* Armed and pollable; whether it fires depends on load, not tested. */
                        CHECK(poll(&p, 1, 0) >= 0);
                        close(fd);
                }
        }
        return t_summary();
}
