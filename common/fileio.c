#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
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

static int write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t w = write(fd, buf, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += w;
                len -= (size_t) w;
        }
        return 0;
}

int vmg_write_file_atomic(int dirfd, const char *name, const void *data, size_t len, mode_t mode) {
        char tmp[NAME_MAX + 1];
        if (snprintf(tmp, sizeof tmp, "%s.tmp", name) >= (int) sizeof tmp)
                return -ENAMETOOLONG;
        if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT && errno != EISDIR)
                return -errno;
        int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        int r = write_all(fd, data, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        /* The rename is durable only once the directory itself is on disk. */
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

int vmg_write_file_atomic_path(const char *path, const void *data, size_t len, mode_t mode) {
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX];
        const char *base = slash ? slash + 1 : path;
        if (!*base)
                return -EISDIR;
        if (!slash)
                snprintf(dir, sizeof dir, ".");
        else if (slash == path)
                snprintf(dir, sizeof dir, "/");
        else if ((size_t) (slash - path) >= sizeof dir)
                return -ENAMETOOLONG;
        else
                snprintf(dir, sizeof dir, "%.*s", (int) (slash - path), path);
        _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        return vmg_write_file_atomic(dirfd, base, data, len, mode);
}
