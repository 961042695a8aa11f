#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/macros.h"

ssize_t vmg_pread_text(int fd, char *buf, size_t size) {
        size_t len = 0;
        while (len < size - 1) {
                ssize_t n = pread(fd, buf + len, size - 1 - len, (off_t) len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        return (ssize_t) len;
}

ssize_t vmg_read_text_at(int dirfd, const char *path, int flags, char *buf, size_t size) {
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | flags);
        if (fd < 0)
                return -errno;
        return vmg_pread_text(fd, buf, size);
}
