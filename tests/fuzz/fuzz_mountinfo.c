/* Hierarchy discovery and domain lookup: vmg_cgroup_ctx_new() on a fuzzed mountinfo (mount
 * points are re-based onto a fake tree), then vmg_cgroup_find_domain() in every hierarchy,
 * which walks the tree and falls back to a fuzzed /proc/PID/cgroup. Input parts (cut at
 * NUL bytes): mountinfo, /proc/PID/cgroup, cgroup.controllers, cgroup.subtree_control. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/cgroup.h"
#include "tests/fuzz/fuzz.h"

#define PID 4242

/* Hierarchy directories as the hosts in tests/fixtures/fake_tree.h name them, each holding
 * a domain in libvirt's v1 layout; the root holds one in machined's layout. */
static const char *const hier_dirs[] = {
        "cg/cpu", "cg/cpuacct", "cg/blkio", "cg/net_cls", "cg/systemd", "cg/unified",
        "cg/cpu,cpuacct", "cg/net_cls,net_prio",
};

static void tree_once(const char *dir) {
        static bool done;
        if (done)
                return;
        for (size_t i = 0; i < sizeof(hier_dirs) / sizeof(hier_dirs[0]); i++) {
                char rel[256];
                snprintf(rel, sizeof(rel), "%s/machine/qemu-7-fuzz.libvirt-qemu/vcpu0", hier_dirs[i]);
                fz_mkdirs(dir, rel);
                snprintf(rel, sizeof(rel), "%s/machine/qemu-7-fuzz.libvirt-qemu/emulator", hier_dirs[i]);
                fz_mkdirs(dir, rel);
        }
        fz_mkdirs(dir, "cg/machine.slice/machine-qemu\\x2d7\\x2dfuzz.scope/libvirt/emulator");
        fz_mkdirs(dir, "cg/system.slice/dnsmasq.service");
        fz_mkdirs(dir, "proc/" "4242");
        done = true;
}

/* A mount point the input steered out of the fake tree ("..", possibly octal-escaped) is
 * opened by ctx_new like any other; walking it would wander over the real file system. */
static bool walkable(const char *path) {
        return path && !strstr(path, "/..");
}

int vmg_fuzz_mountinfo(const uint8_t *data, size_t size) {
        const char *dir = fz_dir("mountinfo");
        enum { P_MOUNTINFO, P_PROC_CGROUP, P_CONTROLLERS, P_SUBTREE, P_N };
        static const char *const rel[P_N] = { "mountinfo", "proc/4242/cgroup", NULL, NULL };
        struct fz_part parts[P_N];
        char *buf;
        size_t n = fz_split(data, size, &buf, parts, P_N);
        int r;

        tree_once(dir);
        for (int i = 0; i < P_N; i++) {
                const char *targets[2] = { rel[i], NULL };
                if (i == P_CONTROLLERS || i == P_SUBTREE) {
                        /* the cgroup2 root is cg/ on a pure v2 host, cg/unified on a hybrid one */
                        const char *f = i == P_CONTROLLERS ? "cgroup.controllers" : "cgroup.subtree_control";
                        static char a[2][64], b[2][64];
                        snprintf(a[i - P_CONTROLLERS], 64, "cg/%s", f);
                        snprintf(b[i - P_CONTROLLERS], 64, "cg/unified/%s", f);
                        targets[0] = a[i - P_CONTROLLERS];
                        targets[1] = b[i - P_CONTROLLERS];
                }
                for (int t = 0; t < 2 && targets[t]; t++) {
                        if (fz_absent(parts, n, (size_t) i))
                                fz_unlink(dir, targets[t]);
                        else
                                fz_write(dir, targets[t], parts[i].text, parts[i].len);
                }
        }

        char mi[4096], root[4096], proc[4096];
        snprintf(mi, sizeof(mi), "%s/mountinfo", dir);
        snprintf(root, sizeof(root), "%s/cg", dir);
        snprintf(proc, sizeof(proc), "%s/proc", dir);
        struct vmg_cgroup_paths paths = { .root = root, .mountinfo = mi, .proc = proc };
        struct vmg_cgroup_ctx *ctx = NULL;
        r = vmg_cgroup_ctx_new(&paths, &ctx);
        if (r < 0) {
                FZ_ASSERT(r == -ENOENT || r == -ENOMEM);
                FZ_ASSERT(!ctx);
                free(buf);
                return 0;
        }
        FZ_ASSERT(ctx);

        bool all_walkable = true, any = false;
        for (int h = 0; h < VMG_CG_N; h++) {
                const char *p = vmg_cgroup_hier_path(ctx, h);
                int fd = vmg_cgroup_hier_fd(ctx, h);
                FZ_ASSERT((p != NULL) == (fd >= 0));
                any |= p != NULL;
                if (p) {
                        FZ_ASSERT(strncmp(p, root, strlen(root)) == 0);
                        all_walkable &= walkable(p);
                }
        }
        FZ_ASSERT(any);
        (void) vmg_cgroup_is_pure_v2(ctx);
        (void) vmg_cgroup_v2_available(ctx, "cpu");
        (void) vmg_cgroup_v2_enabled(ctx, "io");

        if (all_walkable) {
                /* "fuzz" id 7 is in the tree; "ghost" is not, so /proc/PID/cgroup decides */
                const struct vmg_domain_ref doms[] = {
                        { .name = "fuzz", .id = 7, .uuid = "u", .qemu_pid = PID },
                        { .name = "ghost", .id = 9, .uuid = "u", .qemu_pid = PID },
                };
                for (size_t d = 0; d < sizeof(doms) / sizeof(doms[0]); d++) {
                        for (int h = 0; h < VMG_CG_N; h++) {
                                char *found = NULL;
                                r = vmg_cgroup_find_domain(ctx, &doms[d], h, &found);
                                FZ_ASSERT(r == 0 || r == -ENOENT);
                                if (r == 0) {
                                        FZ_ASSERT(found && found[0] != '/');
                                        free(found);
                                }
                        }
                        struct vmg_cgroup_vm *vm = NULL;
                        r = vmg_cgroup_vm_open(ctx, &doms[d], &vm);
                        /* a /proc/PID/cgroup path may name a missing dir or climb ".." */
                        FZ_ASSERT(r == 0 || r == -ENOENT || r == -ENOTDIR || r == -EINVAL ||
                                  r == -ELOOP || r == -ENAMETOOLONG);
                        if (r == 0) {
                                struct vmg_vm_counters c;
                                (void) vmg_cgroup_vm_read(vm, &c);
                                vmg_cgroup_vm_free(vm);
                        }
                }
                char *svc = NULL;
                r = vmg_cgroup_find_dir(ctx, VMG_CG_SYSTEMD, "dnsmasq.service", &svc);
                FZ_ASSERT(r == 0 || r == -ENOENT);
                free(svc);
        }

        vmg_cgroup_ctx_free(ctx);
        free(buf);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_mountinfo)
