/* The log helpers' contract: log_*_errno returns -abs(err), so "return log_error_errno(r,…)"
 * propagates; messages below the max level are dropped but still return the error. */
#include <errno.h>

#include "common/log.h"
#include "tests/harness.h"

int main(void) {
        log_set_max_level(LOG_EMERG); /* keep test output clean */
        T_CASE("errno propagation");
        CHECK_INT(log_error_errno(ENOENT, "x"), -ENOENT);
        CHECK_INT(log_error_errno(-EPERM, "x"), -EPERM);
        CHECK_INT(log_debug_errno(0, "x"), 0);
        T_CASE("errno preserved");
        errno = EAGAIN;
        (void) log_warning_errno(EINVAL, "y %m");
        CHECK_INT(errno, EAGAIN);
        return t_summary();
}
