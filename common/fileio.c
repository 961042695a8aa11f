#define _GNU_SOURCE
#include "common/fileio.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

static bool has_dotdot(const char *p) {
        for (const char *c = p; *c;) {
                size_t n = strcspn(c, "/");
                if (n == 2 && c[0] == '.' && c[1] == '.')
                        return true;
                c += n;
                c += strspn(c, "/");
        }
        return false;
}

int vmg_open_beneath(int dirfd, const char *relpath, int flags) {
        if (relpath[0] == '/' || has_dotdot(relpath))
                return -EINVAL;
        if (!*relpath)
                relpath = ".";
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC | O_NOFOLLOW),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int) syscall(SYS_openat2, dirfd, relpath, &how, sizeof how);
        if (fd >= 0)
                return fd;
        if (errno == ENOTDIR) {
                /* O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR; name the real reason */
                struct stat st;
                if (fstatat(dirfd, relpath, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                        return -ELOOP;
                return -ENOTDIR;
        }
        if (errno != ENOSYS)
                return -errno;
        /* No openat2. O_NOFOLLOW alone covers only the last component, so a symlinked
         * directory on the way would be followed: walk one component at a time. */
        char copy[PATH_MAX];
        if (snprintf(copy, sizeof copy, "%s", relpath) >= (int) sizeof copy)
                return -ENAMETOOLONG;
        int cur = dirfd, r;
        char *comp = copy, *slash;
        while ((slash = strchr(comp, '/'))) {
                *slash = '\0';
                if (*comp && strcmp(comp, ".") != 0) {
                        int nfd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (nfd < 0) {
                                struct stat st;
                                r = -errno;
                                /* O_DIRECTORY reports a symlink as ENOTDIR; openat2 says ELOOP */
                                if (r == -ENOTDIR && fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                                    S_ISLNK(st.st_mode))
                                        r = -ELOOP;
                                goto out;
                        }
                        if (cur != dirfd)
                                close(cur);
                        cur = nfd;
                }
                comp = slash + 1;
        }
        fd = openat(cur, *comp ? comp : ".", flags | O_CLOEXEC | O_NOFOLLOW);
        r = fd >= 0 ? fd : -errno;
        if (r == -ENOTDIR && *comp) {
                struct stat st;
                if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                        r = -ELOOP;
        }
out:
        if (cur != dirfd)
                close(cur);
        return r;
}
