/* blockdev: MAJ:MIN and paths to the host device a throttle file takes, on the fake sysfs
 * tree in tests/fixtures/sys (see its README) and, for the path cases, on real files. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "probes/blockdev.h"
#include "tests/harness.h"

#define SYS "tests/fixtures/sys"

static void test_devnum_table(void) {
        static const struct {
                const char *name;
                uint32_t major, minor;
                int r;
                uint32_t want_major, want_minor;
                const char *want_name;
                bool dm;
                const char *dm_name;
                size_t n_slaves;
                struct vmg_devnum slaves[2];
        } cases[] = {
                { "whole virtio disk", 254, 0, 0, 254, 0, "vda", false, "", 0, {} },
                { "virtio partition -> disk", 254, 1, 0, 254, 0, "vda", false, "", 0, {} },
                { "second partition -> disk", 254, 2, 0, 254, 0, "vda", false, "", 0, {} },
                { "nvme partition -> namespace", 259, 1, 0, 259, 0, "nvme0n1", false, "", 0, {} },
                { "loop device", 7, 0, 0, 7, 0, "loop0", false, "", 0, {} },
                { "LV on a partition stays dm", 252, 0, 0, 252, 0, "dm-0", true, "vg0-guest1",
                  1, { { 254, 0 } } },
                { "LUKS on nvme partition", 252, 1, 0, 252, 1, "dm-1", true, "nvme0n1p2_crypt",
                  1, { { 259, 0 } } },
                { "LV on LUKS: slaves walked down", 252, 2, 0, 252, 2, "dm-2", true,
                  "vg1-guest2", 1, { { 259, 0 } } },
                { "anonymous device (tmpfs)", 0, 22, -ENODEV, 0, 0, NULL, false, NULL, 0, {} },
                { "unknown device", 8, 0, -ENODEV, 0, 0, NULL, false, NULL, 0, {} },
                { "dangling sysfs link", 1, 98, -ENODEV, 0, 0, NULL, false, NULL, 0, {} },
                { "malformed dev file", 1, 99, -EIO, 0, 0, NULL, false, NULL, 0, {} },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                T_CASE(cases[i].name);
                struct vmg_blockdev b;
                memset(&b, 0xaa, sizeof b);
                int r = vmg_blockdev_resolve_devnum(SYS, cases[i].major, cases[i].minor, &b);
                CHECK_INT(r, cases[i].r);
                if (r < 0) {
                        CHECK_INT(b.major, 0xaaaaaaaa); /* untouched on error */
                        continue;
                }
                CHECK_INT(b.major, cases[i].want_major);
                CHECK_INT(b.minor, cases[i].want_minor);
                CHECK_INT(b.src_major, cases[i].major);
                CHECK_INT(b.src_minor, cases[i].minor);
                CHECK_STR(b.name, cases[i].want_name);
                CHECK_INT(b.is_dm, cases[i].dm);
                CHECK_STR(b.dm_name, cases[i].dm_name);
                CHECK_INT(b.n_slaves, cases[i].n_slaves);
                for (size_t s = 0; s < cases[i].n_slaves && s < b.n_slaves; s++) {
                        CHECK_INT(b.slaves[s].major, cases[i].slaves[s].major);
                        CHECK_INT(b.slaves[s].minor, cases[i].slaves[s].minor);
                }
        }
}

/* Block device nodes made with mknod resolve through st_rdev, not the filesystem. */
static void test_block_nodes(void) {
        T_CASE("block device nodes (mknod)");
        if (!t_require(geteuid() == 0, "needs root for mknod"))
                return;
        char tmp[] = "/tmp/vmg-blockdev-XXXXXX";
        if (!mkdtemp(tmp)) {
                CHECK_MSG(0, "mkdtemp: %m");
                return;
        }
        static const struct {
                const char *name;
                uint32_t major, minor;
                uint32_t want_major, want_minor;
        } cases[] = {
                { "node of a partition", 254, 1, 254, 0 },
                { "node of an LV", 252, 0, 252, 0 },
                { "node of a whole nvme", 259, 0, 259, 0 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                T_CASE(cases[i].name);
                char p[256];
                snprintf(p, sizeof p, "%s/node%zu", tmp, i);
                if (mknod(p, S_IFBLK | 0600, makedev(cases[i].major, cases[i].minor)) < 0) {
                        CHECK_MSG(0, "mknod %s: %m", p);
                        continue;
                }
                struct vmg_blockdev b = {};
                CHECK_INT(vmg_blockdev_resolve_path(SYS, p, &b), 0);
                CHECK_INT(b.major, cases[i].want_major);
                CHECK_INT(b.minor, cases[i].want_minor);
                unlink(p);
        }
        rmdir(tmp);
}

static void test_paths_real(void) {
        struct vmg_blockdev b = {};

        T_CASE("missing image");
        CHECK_INT(vmg_blockdev_resolve_path(SYS, "/nonexistent/vmguard/disk.qcow2", &b), -ENOENT);

        T_CASE("file on procfs: anonymous device");
        CHECK_INT(vmg_blockdev_resolve_path(NULL, "/proc/self/stat", &b), -ENODEV);

        /* A real image-like file on this machine's filesystem, against the real /sys:
         * the answer must be a whole disk (no "partition" file) named in /sys/block. */
        T_CASE("real file on real sysfs");
        struct stat st;
        const char *f = SYS "/README";
        if (stat(f, &st) < 0 || major(st.st_dev) == 0) {
                fprintf(stderr, "note: %s is on an anonymous device, real case not run\n", f);
                return;
        }
        int r = vmg_blockdev_resolve_path(NULL, f, &b);
        CHECK_INT(r, 0);
        if (r < 0)
                return;
        CHECK_INT(b.src_major, major(st.st_dev));
        CHECK_INT(b.src_minor, minor(st.st_dev));
        char p[512], line[64] = "";
        snprintf(p, sizeof p, "/sys/block/%s/dev", b.name);
        FILE *fp = fopen(p, "re");
        CHECK_MSG(fp != NULL, "%s: %m", p);
        if (fp) {
                if (fgets(line, sizeof line, fp))
                        line[strcspn(line, "\n")] = 0;
                fclose(fp);
        }
        char want[64];
        snprintf(want, sizeof want, "%u:%u", b.major, b.minor);
        CHECK_STR(line, want);
}

int main(void) {
        log_set_max_level(LOG_ERR);
        test_devnum_table();
        test_block_nodes();
        test_paths_real();
        return t_summary();
}
