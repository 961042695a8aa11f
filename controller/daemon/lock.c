#include "controller/daemon/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macros.h"

int vmg_lock_take(const char *path, pid_t *ret_holder) {
        /* No O_TRUNC: the holder's pid must still be there for the refusal's message. */
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                char buf[32];
                long pid = 0;
                if (r == -EBUSY && vmg_pread_text(fd, buf, sizeof buf) > 0)
                        pid = strtol(buf, NULL, 10);
                if (ret_holder)
                        *ret_holder = pid > 0 ? (pid_t) pid : 0;
                return r;
        }
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", (long) getpid());
        if (ftruncate(fd, 0) < 0)
                return -errno;
        ssize_t n = pwrite(fd, buf, (size_t) len, 0);
        if (n < 0)
                return -errno;
        if (n != len)
                return -EIO;
        return TAKE_FD(fd);
}
