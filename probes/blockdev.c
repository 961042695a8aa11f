#include "probes/blockdev.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"

/* dm on dm (LV on LUKS on MD...) rarely goes deeper than 3; the bound stops a loop in a
 * corrupt or fake tree. */
#define MAX_DM_DEPTH 6

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static bool exists(const char *dir, const char *name) {
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int) sizeof p)
                return false;
        return access(p, F_OK) == 0;
}

/* Reads a one-line sysfs file into buf without the newline. */
static int read_line(const char *dir, const char *name, char *buf, size_t size) {
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int) sizeof p)
                return -ENAMETOOLONG;
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return -errno;
        if (!fgets(buf, (int) size, f))
                return ferror(f) ? -EIO : -ENODATA;
        buf[strcspn(buf, "\n")] = 0;
        return 0;
}

static int read_devnum(const char *dir, struct vmg_devnum *ret) {
        char line[64];
        int r = read_line(dir, "dev", line, sizeof line);
        if (r < 0)
                return log_debug_errno(r, "cannot read %s/dev: %m", dir);
        unsigned ma, mi;
        char extra;
        if (sscanf(line, "%u:%u%c", &ma, &mi, &extra) != 2)
                return log_warning_errno(EIO, "%s/dev: unexpected contents \"%s\"", dir, line);
        ret->major = ma;
        ret->minor = mi;
        return 0;
}

static const char *base_name(const char *p) {
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

static void strcpy_trunc(char *dst, size_t size, const char *src) {
        size_t n = strnlen(src, size - 1);
        memcpy(dst, src, n);
        dst[n] = 0;
}

/* The whole-disk directory for a device directory: a partition's parent, else itself. */
static void whole_disk_dir(char *dir) {
        if (exists(dir, "partition")) {
                char *s = strrchr(dir, '/');
                if (s && s != dir)
                        *s = 0;
        }
}

static void add_slave(struct vmg_blockdev *b, struct vmg_devnum d) {
        for (size_t i = 0; i < b->n_slaves; i++)
                if (b->slaves[i].major == d.major && b->slaves[i].minor == d.minor)
                        return;
        if (b->n_slaves >= VMG_BLOCKDEV_MAX_SLAVES) {
                log_debug("%s: more than %d slaves, ignoring %u:%u", b->name,
                          VMG_BLOCKDEV_MAX_SLAVES, d.major, d.minor);
                return;
        }
        b->slaves[b->n_slaves++] = d;
}

static int collect_slaves(const char *dir, struct vmg_blockdev *b, int depth) {
        if (depth > MAX_DM_DEPTH)
                return log_warning_errno(ELOOP, "%s: device-mapper stack deeper than %d",
                                         dir, MAX_DM_DEPTH);
        char sp[PATH_MAX];
        if (snprintf(sp, sizeof sp, "%s/slaves", dir) >= (int) sizeof sp)
                return -ENAMETOOLONG;
        _cleanup_(closedirp) DIR *d = opendir(sp);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char lp[PATH_MAX], real[PATH_MAX];
                if (snprintf(lp, sizeof lp, "%s/%s", sp, de->d_name) >= (int) sizeof lp)
                        continue;
                if (!realpath(lp, real)) {
                        log_debug("%s: cannot resolve slave %s: %m", dir, lp);
                        continue;
                }
                if (exists(real, "dm")) {
                        int r = collect_slaves(real, b, depth + 1);
                        if (r < 0)
                                return r;
                        continue;
                }
                whole_disk_dir(real);
                struct vmg_devnum dn;
                if (read_devnum(real, &dn) < 0)
                        continue;
                add_slave(b, dn);
        }
        return 0;
}

int vmg_blockdev_resolve_devnum(const char *sys_root, uint32_t major, uint32_t minor,
                                struct vmg_blockdev *ret) {
        if (!sys_root)
                sys_root = "/sys";
        if (major == 0)
                return log_warning_errno(ENODEV,
                                         "device 0:%u is anonymous (overlayfs, tmpfs, btrfs "
                                         "or another virtual filesystem): no block device "
                                         "to throttle", minor);

        char lp[PATH_MAX], dir[PATH_MAX];
        if (snprintf(lp, sizeof lp, "%s/dev/block/%u:%u", sys_root, major, minor) >= (int) sizeof lp)
                return -ENAMETOOLONG;
        if (!realpath(lp, dir)) {
                int r = -errno;
                if (r == -ENOENT)
                        return log_warning_errno(ENODEV, "block device %u:%u not in %s",
                                                 major, minor, lp);
                return log_warning_errno(r, "cannot resolve %s: %m", lp);
        }

        struct vmg_blockdev b = {
                .src_major = major,
                .src_minor = minor,
        };
        whole_disk_dir(dir);
        struct vmg_devnum whole;
        int r = read_devnum(dir, &whole);
        if (r < 0)
                return r;
        b.major = whole.major;
        b.minor = whole.minor;
        strcpy_trunc(b.name, sizeof b.name, base_name(dir));

        if (exists(dir, "dm")) {
                b.is_dm = true;
                char dmdir[PATH_MAX];
                if (snprintf(dmdir, sizeof dmdir, "%s/dm", dir) >= (int) sizeof dmdir)
                        return -ENAMETOOLONG;
                if (read_line(dmdir, "name", b.dm_name, sizeof b.dm_name) < 0)
                        b.dm_name[0] = 0;
                r = collect_slaves(dir, &b, 0);
                if (r < 0)
                        return r;
        }
        *ret = b;
        return 0;
}

int vmg_blockdev_resolve_path(const char *sys_root, const char *path, struct vmg_blockdev *ret) {
        struct stat st;
        if (stat(path, &st) < 0)
                return log_warning_errno(errno, "disk source %s: %m", path);
        dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
        if (major(dev) == 0)
                return log_warning_errno(ENODEV,
                                         "disk source %s lives on anonymous device 0:%u "
                                         "(overlayfs, tmpfs, btrfs?): no block device to "
                                         "throttle", path, minor(dev));
        int r = vmg_blockdev_resolve_devnum(sys_root, major(dev), minor(dev), ret);
        if (r < 0)
                return log_warning_errno(r, "disk source %s (device %u:%u): cannot map to a "
                                         "host block device: %m", path, major(dev), minor(dev));
        return 0;
}
