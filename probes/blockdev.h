/* Map a guest disk's host source (image file or block device) to the host block device
 * whose MAJ:MIN the throttle files take (blkio.throttle.*_device, io.max).
 * Every sysfs access goes through sys_root ("/sys" when NULL) so tests use fake trees. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMG_BLOCKDEV_MAX_SLAVES 8

struct vmg_devnum {
        uint32_t major, minor;
};

struct vmg_blockdev {
        /* The throttle target: a whole disk, or a device-mapper device (dm devices take
         * throttles themselves, so an LV is not walked down to its disks). */
        uint32_t major, minor;
        char name[32];          /* kernel name: "vda", "dm-3", "nvme0n1" */
        bool is_dm;
        char dm_name[64];       /* /sys/block/dm-N/dm/name, "" if not dm */
        /* What the source sat on before mapping (a partition, or the same as above). */
        uint32_t src_major, src_minor;
        /* For dm devices: the whole disks under it (partitions mapped to their disk,
         * stacked dm walked down), deduplicated; for blkio v1 hosts that account the
         * physical queue rather than the dm one. */
        size_t n_slaves;
        struct vmg_devnum slaves[VMG_BLOCKDEV_MAX_SLAVES];
};

/* Resolves MAJ:MIN through <sys_root>/dev/block. Returns 0 and fills *ret; -ENODEV for
 * major 0 (anonymous device: overlayfs, tmpfs, btrfs) or when sysfs has no such device;
 * -EIO for unreadable sysfs contents; other -errno from sysfs. *ret untouched on error. */
int vmg_blockdev_resolve_devnum(const char *sys_root, uint32_t major, uint32_t minor,
                                struct vmg_blockdev *ret);

/* stat()s path: a block device resolves through its st_rdev, anything else (an image
 * file) through st_dev of the filesystem holding it. Returns as above, plus -errno of
 * stat() (-ENOENT for a missing image). Logs the path and device on failure. */
int vmg_blockdev_resolve_path(const char *sys_root, const char *path, struct vmg_blockdev *ret);
