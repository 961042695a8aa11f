/* A VM's cgroup counter files (v1 cpuacct.usage, cpu.stat, blkio.throttle.*, net_cls; v2
 * cpu.stat, io.stat, *.pressure) on a fake hybrid tree laid out as libvirt does on the dev
 * host. The input holds the files' contents cut at NUL bytes in the order of `files`; a
 * missing part or "-" is an absent file (so io.stat is read only when blkio is absent, as
 * on a pure v2 host). The VM handle is opened per input, so which files exist is part of
 * the input too; each input is read twice, as two ticks would. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/cgroup.h"
#include "tests/fuzz/fuzz.h"

#define DOM "machine/qemu-1-fuzz.libvirt-qemu"

/* The dev host's mountinfo, cgroup part (tests/fixtures/fake_tree.h), plus net_cls as a
 * host that mounts it would list it. */
static const char mountinfo[] =
        "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
        "37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
        "38 30 0:35 / /sys/fs/cgroup/net_cls rw,relatime - cgroup cgroup rw,net_cls\n"
        "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static const struct {
        const char *hier;
        const char *file;
} files[] = {
        { "cpuacct", "cpuacct.usage" },
        { "cpu", "cpu.stat" },
        { "unified", "cpu.stat" },
        { "blkio", "blkio.throttle.io_service_bytes" },
        { "blkio", "blkio.throttle.io_serviced" },
        { "unified", "io.stat" },
        { "unified", "cpu.pressure" },
        { "unified", "io.pressure" },
        { "unified", "memory.pressure" },
        { "net_cls", "net_cls.classid" },
};
enum { N_FILES = sizeof(files) / sizeof(files[0]) };

static struct vmg_cgroup_ctx *ctx_once(const char *dir) {
        static struct vmg_cgroup_ctx *ctx;
        if (ctx)
                return ctx;
        char mi[4096], root[4096], proc[4096];
        snprintf(mi, sizeof(mi), "%s/mountinfo", dir);
        snprintf(root, sizeof(root), "%s/cg", dir);
        snprintf(proc, sizeof(proc), "%s/proc", dir);
        fz_write(dir, "mountinfo", mountinfo, sizeof(mountinfo) - 1);
        fz_mkdirs(dir, "proc");
        static const char *const hiers[] = { "cpu", "cpuacct", "blkio", "net_cls", "unified" };
        for (size_t i = 0; i < sizeof(hiers) / sizeof(hiers[0]); i++) {
                char rel[256];
                snprintf(rel, sizeof(rel), "cg/%s/" DOM, hiers[i]);
                fz_mkdirs(dir, rel);
        }
        fz_write(dir, "cg/unified/cgroup.controllers", "", 0);
        fz_write(dir, "cg/unified/cgroup.subtree_control", "", 0);
        struct vmg_cgroup_paths paths = { .root = root, .mountinfo = mi, .proc = proc };
        int r = vmg_cgroup_ctx_new(&paths, &ctx);
        FZ_ASSERT(r == 0 && ctx);
        return ctx;
}

int vmg_fuzz_cgroup_files(const uint8_t *data, size_t size) {
        const char *dir = fz_dir("cgroup_files");
        struct vmg_cgroup_ctx *ctx = ctx_once(dir);
        struct fz_part parts[N_FILES];
        char *buf;
        size_t n = fz_split(data, size, &buf, parts, N_FILES);
        int r;

        for (size_t i = 0; i < N_FILES; i++) {
                char rel[512];
                snprintf(rel, sizeof(rel), "cg/%s/" DOM "/%s", files[i].hier, files[i].file);
                if (fz_absent(parts, n, i))
                        fz_unlink(dir, rel);
                else
                        fz_write(dir, rel, parts[i].text, parts[i].len);
        }

        const char *dirs[VMG_CG_N] = {
                [VMG_CG_CPU] = DOM, [VMG_CG_CPUACCT] = DOM, [VMG_CG_BLKIO] = DOM,
                [VMG_CG_NET_CLS] = DOM, [VMG_CG_UNIFIED] = DOM,
        };
        struct vmg_cgroup_vm *vm = NULL;
        r = vmg_cgroup_vm_open_dirs(ctx, "fuzz", dirs, &vm);
        FZ_ASSERT(r == 0 && vm);

        for (int tick = 0; tick < 2; tick++) {
                struct vmg_vm_counters c;
                memset(&c, 0x5A, sizeof(c));
                r = vmg_cgroup_vm_read(vm, &c);
                FZ_ASSERT(r == 0 || r == -EINVAL);
                if (r == 0) {
                        FZ_ASSERT(c.n_devs <= VMG_MAX_DEVS);
                        FZ_ASSERT(c.cpu_valid == (c.cpu_source != VMG_SRC_NONE));
                        FZ_ASSERT(c.io_source == VMG_SRC_NONE || c.io_source == VMG_SRC_CGROUP_V1 ||
                                  c.io_source == VMG_SRC_CGROUP_V2);
                } else {
                        FZ_ASSERT(c.n_devs == 0x5A5A5A5A5A5A5A5Aull); /* nothing written */
                }
        }

        vmg_cgroup_vm_free(vm);
        free(buf);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_cgroup_files)
