/* cgroup probes on fake trees (hybrid v1 as on the dev host, pure v2, comounts), both
 * libvirt layouts, systemd escaping, the /proc/PID/cgroup fallback, vanished and
 * symlinked cgroups; plus a live pass over this host's real hierarchies. */
#include "tests/fixtures/fake_tree.h"

#include "common/log.h"
#include "common/macros.h"
#include "probes/cgroup.h"
#include "tests/harness.h"

struct fake {
        char root[PATH_MAX];
        char mi[PATH_MAX + 16];
        char proc[PATH_MAX + 16];
        struct vmg_cgroup_ctx *ctx;
};

static void fake_init(struct fake *f, const char *mountinfo, const char *const *dirs) {
        fx_tmpdir(f->root, sizeof(f->root));
        snprintf(f->mi, sizeof(f->mi), "%s/mountinfo", f->root);
        snprintf(f->proc, sizeof(f->proc), "%s/proc", f->root);
        fx_write(f->root, "mountinfo", mountinfo);
        fx_mkdir(f->root, "proc");
        for (; *dirs; dirs++)
                fx_mkdir(f->root, *dirs);
        f->ctx = NULL;
}

static int fake_ctx(struct fake *f, const char *sub) {
        char r[PATH_MAX + 16];
        snprintf(r, sizeof(r), "%s/%s", f->root, sub);
        struct vmg_cgroup_paths paths = { .root = r, .mountinfo = f->mi, .proc = f->proc };
        return vmg_cgroup_ctx_new(&paths, &f->ctx);
}

static void fake_done(struct fake *f) {
        f->ctx = vmg_cgroup_ctx_free(f->ctx);
        fx_rmtree(f->root, "");
}

static const char *const hybrid_dirs[] = {
        "cg/cpu", "cg/cpuacct", "cg/cpuset", "cg/memory", "cg/devices", "cg/freezer",
        "cg/blkio", "cg/pids", "cg/systemd", "cg/unified", NULL,
};

static void test_discovery(void) {
        struct fake f;

        T_CASE("hybrid v1 as on the dev host");
        fake_init(&f, FX_MOUNTINFO_HYBRID, hybrid_dirs);
        fx_write(f.root, "cg/unified/cgroup.controllers", "");
        fx_write(f.root, "cg/unified/cgroup.subtree_control", "");
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        if (f.ctx) {
                char want[PATH_MAX + 32];
                snprintf(want, sizeof(want), "%s/cg/cpu", f.root);
                CHECK_STR(vmg_cgroup_hier_path(f.ctx, VMG_CG_CPU), want);
                snprintf(want, sizeof(want), "%s/cg/unified", f.root);
                CHECK_STR(vmg_cgroup_hier_path(f.ctx, VMG_CG_UNIFIED), want);
                snprintf(want, sizeof(want), "%s/cg/systemd", f.root);
                CHECK_STR(vmg_cgroup_hier_path(f.ctx, VMG_CG_SYSTEMD), want);
                CHECK(vmg_cgroup_hier_path(f.ctx, VMG_CG_CPUACCT) != NULL);
                CHECK(vmg_cgroup_hier_path(f.ctx, VMG_CG_BLKIO) != NULL);
                CHECK(vmg_cgroup_hier_path(f.ctx, VMG_CG_NET_CLS) == NULL); /* not mounted here */
                CHECK(vmg_cgroup_hier_fd(f.ctx, VMG_CG_NET_CLS) < 0);
                CHECK(!vmg_cgroup_is_pure_v2(f.ctx));
                CHECK(!vmg_cgroup_v2_available(f.ctx, "cpu"));
                CHECK(!vmg_cgroup_v2_enabled(f.ctx, "io"));
        }
        fake_done(&f);

        T_CASE("pure v2");
        static const char *const v2_dirs[] = { "cg", NULL };
        fake_init(&f, FX_MOUNTINFO_PURE_V2, v2_dirs);
        fx_write(f.root, "cg/cgroup.controllers", FX_V2_CONTROLLERS);
        fx_write(f.root, "cg/cgroup.subtree_control", FX_V2_SUBTREE);
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        if (f.ctx) {
                CHECK(vmg_cgroup_is_pure_v2(f.ctx));
                CHECK(vmg_cgroup_hier_path(f.ctx, VMG_CG_CPU) == NULL);
                CHECK(vmg_cgroup_v2_available(f.ctx, "io"));
                CHECK(vmg_cgroup_v2_available(f.ctx, "cpu"));
                CHECK(!vmg_cgroup_v2_available(f.ctx, "cpuacct"));
                CHECK(vmg_cgroup_v2_enabled(f.ctx, "cpu"));
                CHECK(!vmg_cgroup_v2_enabled(f.ctx, "cpuset"));
        }
        fake_done(&f);

        T_CASE("comounted cpu,cpuacct and net_cls,net_prio");
        static const char *const co_dirs[] = { "cg/cpu,cpuacct", "cg/net_cls,net_prio", "cg/blkio", NULL };
        fake_init(&f, FX_MOUNTINFO_COMOUNT, co_dirs);
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        if (f.ctx) {
                CHECK_STR(vmg_cgroup_hier_path(f.ctx, VMG_CG_CPU), vmg_cgroup_hier_path(f.ctx, VMG_CG_CPUACCT));
                CHECK_CONTAINS(vmg_cgroup_hier_path(f.ctx, VMG_CG_NET_CLS), "/cg/net_cls,net_prio");
                CHECK(vmg_cgroup_hier_path(f.ctx, VMG_CG_UNIFIED) == NULL);
        }
        fake_done(&f);

        T_CASE("mount points missing under root");
        static const char *const none[] = { NULL };
        fake_init(&f, FX_MOUNTINFO_HYBRID, none);
        CHECK_INT(fake_ctx(&f, "cg"), -ENOENT);
        CHECK(f.ctx == NULL);
        fake_done(&f);

        T_CASE("no cgroup mount at all");
        fake_init(&f, "21 26 0:20 / /proc rw,relatime - proc proc rw\n", hybrid_dirs);
        CHECK_INT(fake_ctx(&f, "cg"), -ENOENT);
        fake_done(&f);
}

static void test_names(void) {
        static const struct {
                const char *in, *out;
        } esc[] = {
                { "qemu-3-web-01", "qemu\\x2d3\\x2dweb\\x2d01" },
                { "qemu-1-db.prod", "qemu\\x2d1\\x2ddb.prod" },
                { "a/b", "a-b" },
                { ".hidden", "\\x2ehidden" },
                { "a b\\c", "a\\x20b\\x5cc" },
                { "caf\xc3\xa9", "caf\\xc3\\xa9" },
                { "x:y_z", "x:y_z" },
        };
        T_CASE("systemd unit escaping");
        for (size_t i = 0; i < ARRAY_SIZE(esc); i++) {
                _cleanup_free_ char *out = NULL;
                CHECK_INT(vmg_cgroup_unit_escape(esc[i].in, &out), 0);
                CHECK_STR(out, esc[i].out);
        }

        static const struct {
                int id;
                const char *name, *out;
        } mn[] = {
                { 3, "web-01", "qemu-3-web-01" },
                { 1, "my vm.test", "qemu-1-myvm.test" },
                { 2, "--a..b--", "qemu-2-a.b" },
                { 7, "tenant_a:db\xc3\xa9", "qemu-7-tenantadb" },
                { 12, "-.", "qemu-12" },
                /* 64 bytes in all: libvirt truncates long names */
                { 5, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  "qemu-5-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
        };
        T_CASE("libvirt machine names");
        for (size_t i = 0; i < ARRAY_SIZE(mn); i++) {
                _cleanup_free_ char *out = NULL;
                CHECK_INT(vmg_cgroup_machine_name("qemu", mn[i].id, mn[i].name, &out), 0);
                CHECK_STR(out, mn[i].out);
        }
        _cleanup_free_ char *lng = NULL;
        CHECK_INT(vmg_cgroup_machine_name("qemu", 5, mn[5].name, &lng), 0);
        CHECK_INT(lng ? strlen(lng) : 0, 64);
}

/* libvirt 9.0 without machined, as seen on the dev host (docs/LAB.md). */
static void build_libvirt_v1(const char *root, const char *dom) {
        static const char *const with_children[] = { "cg/cpu", "cg/cpuset", "cg/unified" };
        static const char *const bare[] = { "cg/memory", "cg/blkio", "cg/freezer" };
        char p[PATH_MAX];
        for (size_t i = 0; i < ARRAY_SIZE(with_children); i++) {
                const char *kids[] = { "vcpu0", "vcpu1", "emulator" };
                for (size_t k = 0; k < ARRAY_SIZE(kids); k++) {
                        snprintf(p, sizeof(p), "%s/machine/%s/%s", with_children[i], dom, kids[k]);
                        fx_mkdir(root, p);
                }
        }
        for (size_t i = 0; i < ARRAY_SIZE(bare); i++) {
                snprintf(p, sizeof(p), "%s/machine/%s", bare[i], dom);
                fx_mkdir(root, p);
        }
        /* a neighbour whose name shares a prefix must not match */
        fx_mkdir(root, "cg/cpu/machine/qemu-40-noisy.libvirt-qemu");
        snprintf(p, sizeof(p), "cg/cpu/machine/%s/cpu.stat", dom);
        fx_write(root, p, FX_V1_CPU_STAT_THROTTLED);
        snprintf(p, sizeof(p), "cg/unified/machine/%s/cpu.stat", dom);
        fx_write(root, p, FX_V2_CPU_STAT_THROTTLED);
        snprintf(p, sizeof(p), "cg/unified/machine/%s/io.pressure", dom);
        fx_write(root, p, FX_CG_IO_PRESSURE);
        snprintf(p, sizeof(p), "cg/unified/machine/%s/cpu.pressure", dom);
        fx_write(root, p, FX_CG_CPU_PRESSURE);
        snprintf(p, sizeof(p), "cg/unified/machine/%s/memory.pressure", dom);
        fx_write(root, p, FX_CG_MEM_PRESSURE);
        snprintf(p, sizeof(p), "cg/blkio/machine/%s/blkio.throttle.io_service_bytes_recursive", dom);
        fx_write(root, p, FX_BLKIO_BYTES);
        snprintf(p, sizeof(p), "cg/blkio/machine/%s/blkio.throttle.io_serviced_recursive", dom);
        fx_write(root, p, FX_BLKIO_IOS);
        /* the non-recursive files say nothing: the reader must prefer _recursive */
        snprintf(p, sizeof(p), "cg/blkio/machine/%s/blkio.throttle.io_service_bytes", dom);
        fx_write(root, p, FX_BLKIO_EMPTY);
        snprintf(p, sizeof(p), "cg/blkio/machine/%s/blkio.throttle.io_serviced", dom);
        fx_write(root, p, FX_BLKIO_EMPTY);
}

static void test_libvirt_v1(void) {
        struct fake f;
        struct vmg_domain_ref d = { .name = "noisy", .id = 4, .uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809" };
        struct vmg_cgroup_vm *vm = NULL;
        struct vmg_vm_counters c = { 0 };
        char *dir = NULL;

        fake_init(&f, FX_MOUNTINFO_HYBRID, hybrid_dirs);
        build_libvirt_v1(f.root, "qemu-4-noisy.libvirt-qemu");
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        if (!f.ctx)
                return;

        T_CASE("libvirt without machined: find per hierarchy");
        static const struct {
                enum vmg_cg_hier h;
                int r;
                const char *dir;
        } want[] = {
                { VMG_CG_CPU, 0, "machine/qemu-4-noisy.libvirt-qemu" },
                { VMG_CG_UNIFIED, 0, "machine/qemu-4-noisy.libvirt-qemu" },
                { VMG_CG_BLKIO, 0, "machine/qemu-4-noisy.libvirt-qemu" },
                { VMG_CG_CPUACCT, -ENOENT, NULL }, /* QEMU stays in root there */
                { VMG_CG_NET_CLS, -ENOENT, NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
                dir = NULL;
                CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, want[i].h, &dir), want[i].r);
                if (want[i].dir)
                        CHECK_STR(dir, want[i].dir);
                free(dir);
        }

        T_CASE("libvirt without machined: counters");
        CHECK_INT(vmg_cgroup_vm_open(f.ctx, &d, &vm), 0);
        if (vm) {
                CHECK_STR(vmg_cgroup_vm_dir(vm, VMG_CG_CPU), "machine/qemu-4-noisy.libvirt-qemu");
                CHECK(vmg_cgroup_vm_dir(vm, VMG_CG_CPUACCT) == NULL);
                CHECK(vmg_cgroup_vm_dir_fd(vm, VMG_CG_BLKIO) >= 0);
                CHECK_INT(vmg_cgroup_vm_read(vm, &c), 0);
                CHECK(c.cpu_valid);
                CHECK_INT(c.cpu_source, VMG_SRC_CGROUP_V2); /* no per-domain cpuacct here */
                CHECK_U64(c.cpu_usage_ns, 115424ULL * 1000);
                CHECK_U64(c.cpu_nr_periods, 11);
                CHECK_U64(c.cpu_nr_throttled, 11);
                CHECK_U64(c.cpu_throttled_ns, 872726970ULL);
                CHECK_INT(c.io_source, VMG_SRC_CGROUP_V1);
                CHECK_INT(c.n_devs, 1);
                CHECK_INT(c.devs[0].major, 254);
                CHECK_INT(c.devs[0].minor, 0);
                CHECK_U64(c.devs[0].rbytes, 13107200);
                CHECK_U64(c.devs[0].wbytes, 13107200);
                CHECK_U64(c.devs[0].rios, 200);
                CHECK_U64(c.devs[0].wios, 200);
                CHECK(c.psi_io.valid && c.psi_cpu.valid);
                CHECK_U64(c.psi_io.some_us, 20345);
                CHECK_U64(c.psi_cpu.full_us, 565);

                T_CASE("kept-open files follow new contents");
                char p[PATH_MAX];
                snprintf(p, sizeof(p), "cg/unified/machine/qemu-4-noisy.libvirt-qemu/cpu.stat");
                fx_write(f.root, p, "usage_usec 2115424\nuser_usec 111817\nsystem_usec 3607\nnice_usec 0\n");
                CHECK_INT(vmg_cgroup_vm_read(vm, &c), 0);
                CHECK_U64(c.cpu_usage_ns, 2115424ULL * 1000);

                T_CASE("VM cgroup vanished between open and read");
                fx_rmtree(f.root, "cg/cpu/machine/qemu-4-noisy.libvirt-qemu");
                fx_rmtree(f.root, "cg/unified/machine/qemu-4-noisy.libvirt-qemu");
                fx_rmtree(f.root, "cg/blkio/machine/qemu-4-noisy.libvirt-qemu");
                c.cpu_usage_ns = 1;
                CHECK_INT(vmg_cgroup_vm_read(vm, &c), -ENOENT);
                CHECK_U64(c.cpu_usage_ns, 1); /* nothing written on failure */
                vm = vmg_cgroup_vm_free(vm);
        }

        T_CASE("cpuacct group present -> cpuacct.usage wins");
        build_libvirt_v1(f.root, "qemu-4-noisy.libvirt-qemu");
        fx_write(f.root, "cg/cpuacct/machine/qemu-4-noisy.libvirt-qemu/cpuacct.usage", FX_CPUACCT_USAGE);
        CHECK_INT(vmg_cgroup_vm_open(f.ctx, &d, &vm), 0);
        if (vm) {
                CHECK_INT(vmg_cgroup_vm_read(vm, &c), 0);
                CHECK_INT(c.cpu_source, VMG_SRC_CGROUP_V1);
                CHECK_U64(c.cpu_usage_ns, 78491065586ULL);
                vm = vmg_cgroup_vm_free(vm);
        }

        T_CASE("unparsable counter file");
        fx_write(f.root, "cg/cpu/machine/qemu-4-noisy.libvirt-qemu/cpu.stat", "nr_periods x\n");
        CHECK_INT(vmg_cgroup_vm_open(f.ctx, &d, &vm), 0);
        if (vm) {
                CHECK_INT(vmg_cgroup_vm_read(vm, &c), -EINVAL);
                vm = vmg_cgroup_vm_free(vm);
        }

        T_CASE("another domain id: not found");
        d.id = 5;
        CHECK_INT(vmg_cgroup_vm_open(f.ctx, &d, &vm), -ENOENT);
        CHECK(vm == NULL);
        fake_done(&f);
}

/* systemd-machined on a pure v2 host: machine.slice/machine-qemu\x2dID\x2dNAME.scope with
 * the QEMU threads below libvirt/. */
static void test_machined_v2(void) {
        struct fake f;
        static const char *const v2_dirs[] = { "cg", NULL };
        struct vmg_domain_ref d = { .name = "web-01", .id = 3 };
        struct vmg_cgroup_vm *vm = NULL;
        struct vmg_vm_counters c = { 0 };
        char *dir = NULL;
        const char *scope = "machine.slice/machine-qemu\\x2d3\\x2dweb\\x2d01.scope";
        char p[PATH_MAX];

        fake_init(&f, FX_MOUNTINFO_PURE_V2, v2_dirs);
        fx_write(f.root, "cg/cgroup.controllers", FX_V2_CONTROLLERS);
        fx_write(f.root, "cg/cgroup.subtree_control", FX_V2_SUBTREE);
        fx_mkdir(f.root, "cg/system.slice/dnsmasq.service");
        fx_mkdir(f.root, "cg/machine.slice/machine-qemu\\x2d30\\x2dweb\\x2d01.scope/libvirt");
        snprintf(p, sizeof(p), "cg/%s/libvirt/vcpu0", scope);
        fx_mkdir(f.root, p);
        snprintf(p, sizeof(p), "cg/%s/libvirt/emulator", scope);
        fx_mkdir(f.root, p);
        snprintf(p, sizeof(p), "cg/%s/cpu.stat", scope);
        fx_write(f.root, p, FX_V2_CPU_STAT_CTRL);
        snprintf(p, sizeof(p), "cg/%s/io.stat", scope);
        fx_write(f.root, p, FX_V2_IO_STAT);
        snprintf(p, sizeof(p), "cg/%s/io.pressure", scope);
        fx_write(f.root, p, FX_CG_IO_PRESSURE);
        snprintf(p, sizeof(p), "cg/%s/cpu.pressure", scope);
        fx_write(f.root, p, FX_CG_CPU_PRESSURE);
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        if (!f.ctx)
                return;

        T_CASE("machined: escaped scope name found");
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_UNIFIED, &dir), 0);
        CHECK_STR(dir, scope);
        free(dir);

        T_CASE("machined: v2 counters");
        CHECK_INT(vmg_cgroup_vm_open(f.ctx, &d, &vm), 0);
        if (vm) {
                CHECK_INT(vmg_cgroup_vm_read(vm, &c), 0);
                CHECK_INT(c.cpu_source, VMG_SRC_CGROUP_V2);
                CHECK_U64(c.cpu_usage_ns, 1500000000ULL * 1000);
                CHECK_U64(c.cpu_nr_periods, 1000);
                CHECK_U64(c.cpu_nr_throttled, 250);
                CHECK_U64(c.cpu_throttled_ns, 20000000ULL * 1000);
                CHECK_INT(c.io_source, VMG_SRC_CGROUP_V2);
                CHECK_INT(c.n_devs, 2);
                CHECK_INT(c.devs[1].major, 8);
                CHECK_INT(c.devs[1].minor, 0);
                CHECK_U64(c.devs[1].rbytes, 90430464);
                CHECK_U64(c.devs[1].wios, 1252);
                CHECK_U64(c.devs[0].wbytes, 314773504);
                CHECK(c.psi_io.valid && c.psi_cpu.valid);
                vm = vmg_cgroup_vm_free(vm);
        }
        fake_done(&f);
}

/* Older machined hosts with v1: the scope holds vcpuN directly. */
static void test_machined_v1_old(void) {
        struct fake f;
        struct vmg_domain_ref d = { .name = "old", .id = 6 };
        char *dir = NULL;
        fake_init(&f, FX_MOUNTINFO_HYBRID, hybrid_dirs);
        fx_mkdir(f.root, "cg/cpu/machine.slice/machine-qemu\\x2d6\\x2dold.scope/vcpu0");
        fx_mkdir(f.root, "cg/cpu/machine.slice/machine-qemu\\x2d6\\x2dold.scope/emulator");
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        T_CASE("machined v1: scope with vcpuN");
        if (f.ctx) {
                CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_CPU, &dir), 0);
                CHECK_STR(dir, "machine.slice/machine-qemu\\x2d6\\x2dold.scope");
                free(dir);
        }
        fake_done(&f);
}

static void test_proc_fallback(void) {
        struct fake f;
        struct vmg_domain_ref d = { .name = "custom", .id = 9, .qemu_pid = 4242 };
        char *dir = NULL;

        fake_init(&f, FX_MOUNTINFO_HYBRID, hybrid_dirs);
        fx_mkdir(f.root, "cg/cpu/tenants/acme/vm-custom/emulator");
        fx_mkdir(f.root, "cg/unified/tenants/acme/vm-custom/libvirt/emulator");
        /* format of the dev host's /proc/self/cgroup */
        fx_write(f.root, "proc/4242/cgroup",
                 "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n"
                 "4:memory:/process_api/b154567e4d2ccae8f8b12992e84a3c30\n3:cpuset:/\n2:cpuacct:/\n"
                 "1:cpu:/tenants/acme/vm-custom/emulator\n0::/tenants/acme/vm-custom/libvirt/emulator\n");
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        if (!f.ctx)
                return;
        T_CASE("fallback: /proc/PID/cgroup, libvirt children stripped");
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_CPU, &dir), 0);
        CHECK_STR(dir, "tenants/acme/vm-custom");
        free(dir);
        dir = NULL;
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_UNIFIED, &dir), 0);
        CHECK_STR(dir, "tenants/acme/vm-custom");
        free(dir);
        T_CASE("fallback: the root group is not the VM's");
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_CPUACCT, &dir), -ENOENT);
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_BLKIO, &dir), -ENOENT);
        T_CASE("fallback: no pid given");
        d.qemu_pid = 0;
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_CPU, &dir), -ENOENT);
        fake_done(&f);
}

static void test_symlinks(void) {
        struct fake f;
        struct vmg_domain_ref d = { .name = "evil", .id = 2 };
        struct vmg_cgroup_vm *vm = NULL;
        char *dir = NULL;

        fake_init(&f, FX_MOUNTINFO_HYBRID, hybrid_dirs);
        fx_mkdir(f.root, "elsewhere/qemu-2-evil.libvirt-qemu");
        fx_write(f.root, "elsewhere/qemu-2-evil.libvirt-qemu/cpu.stat", FX_V1_CPU_STAT);
        fx_mkdir(f.root, "cg/cpu/machine");
        char target[PATH_MAX + 64];
        snprintf(target, sizeof(target), "%s/elsewhere/qemu-2-evil.libvirt-qemu", f.root);
        fx_symlink(f.root, target, "cg/cpu/machine/qemu-2-evil.libvirt-qemu");
        snprintf(target, sizeof(target), "%s/elsewhere", f.root);
        fx_symlink(f.root, target, "cg/unified/machine");
        CHECK_INT(fake_ctx(&f, "cg"), 0);
        if (!f.ctx)
                return;

        T_CASE("symlinked domain dir is not found by the walk");
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_CPU, &dir), -ENOENT);
        CHECK_INT(vmg_cgroup_find_domain(f.ctx, &d, VMG_CG_UNIFIED, &dir), -ENOENT);
        CHECK_INT(vmg_cgroup_vm_open(f.ctx, &d, &vm), -ENOENT);

        T_CASE("symlinked component refused on open");
        const char *dirs[VMG_CG_N] = { NULL };
        dirs[VMG_CG_CPU] = "machine/qemu-2-evil.libvirt-qemu";
        CHECK_INT(vmg_cgroup_vm_open_dirs(f.ctx, "evil", dirs, &vm), -ELOOP);
        dirs[VMG_CG_CPU] = NULL;
        dirs[VMG_CG_UNIFIED] = "machine/qemu-2-evil.libvirt-qemu";
        CHECK_INT(vmg_cgroup_vm_open_dirs(f.ctx, "evil", dirs, &vm), -ELOOP);
        dirs[VMG_CG_UNIFIED] = "../../elsewhere/qemu-2-evil.libvirt-qemu";
        CHECK_INT(vmg_cgroup_vm_open_dirs(f.ctx, "evil", dirs, &vm), -EINVAL);
        CHECK(vm == NULL);
        fake_done(&f);
}

struct walk_rec {
        char seen[16][64];
        size_t n;
        const char *prune, *stop;
        int fail; /* -errno returned at the first directory, 0: none */
        unsigned marks;
};

static int record(int dirfd, const char *rel, unsigned depth, void *userdata) {
        struct walk_rec *w = userdata;
        if (w->fail)
                return w->fail;
        if (w->n < ARRAY_SIZE(w->seen))
                snprintf(w->seen[w->n++], sizeof(w->seen[0]), "%s@%u", rel, depth);
        /* The fd is the directory itself: files in it open relative to it. */
        int fd = openat(dirfd, "mark", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                w->marks++;
                close(fd);
        }
        if (w->prune && strcmp(rel, w->prune) == 0)
                return VMG_CG_WALK_PRUNE;
        if (w->stop && strcmp(rel, w->stop) == 0)
                return VMG_CG_WALK_STOP;
        return 0;
}

static ssize_t rec_index(const struct walk_rec *w, const char *entry) {
        for (size_t i = 0; i < w->n; i++)
                if (strcmp(w->seen[i], entry) == 0)
                        return (ssize_t) i;
        return -1;
}

/* The walker behind the domain lookup, vmg_cgroup_find_dir and a unit's sub-cgroups. */
static void test_walk(void) {
        char root[PATH_MAX], target[PATH_MAX + 8];
        fx_tmpdir(root, sizeof(root));
        fx_mkdir(root, "t/a/b/c/d");
        fx_mkdir(root, "t/x/y");
        fx_write(root, "t/x/y/mark", "");
        fx_write(root, "t/a/b/mark", "");
        fx_write(root, "t/file", "not a directory");
        fx_mkdir(root, "outside/secret");
        snprintf(target, sizeof(target), "%s/outside", root);
        fx_symlink(root, target, "t/link");
        snprintf(target, sizeof(target), "%s/t", root);
        int fd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
        CHECK(fd >= 0);
        if (fd < 0)
                return;
        static const struct {
                const char *name;
                unsigned max_depth, max_dirs;
                const char *prune, *stop;
                int fail;
                int want_r;
                const char *want[8]; /* exactly these, in any order between siblings */
                unsigned want_marks;
                const char *want_path;
        } cases[] = {
                { "everything below the start, no symlink, no file", 99, 100, NULL, NULL, 0, 0,
                  { "a@1", "a/b@2", "a/b/c@3", "a/b/c/d@4", "x@1", "x/y@2" }, 2, NULL },
                { "max_depth 2", 2, 100, NULL, NULL, 0, 0, { "a@1", "a/b@2", "x@1", "x/y@2" }, 2, NULL },
                { "max_depth 0 visits nothing", 0, 100, NULL, NULL, 0, 0, { NULL }, 0, NULL },
                { "prune skips the children only", 99, 100, "a", NULL, 0, 0, { "a@1", "x@1", "x/y@2" }, 1, NULL },
                { "stop returns the path", 99, 100, NULL, "a/b/c", 0, VMG_CG_WALK_STOP,
                  { "a@1", "a/b@2", "a/b/c@3" }, 1, "a/b/c" },
                { "visit's error ends the walk", 99, 100, NULL, NULL, -EIO, -EIO, { NULL }, 0, NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(cases[i].name);
                struct walk_rec w = { .prune = cases[i].prune, .stop = cases[i].stop, .fail = cases[i].fail };
                char *path = NULL;
                CHECK_INT(vmg_cgroup_walk(fd, cases[i].max_depth, cases[i].max_dirs, record, &w, &path),
                          cases[i].want_r);
                size_t nw = 0;
                while (nw < ARRAY_SIZE(cases[i].want) && cases[i].want[nw])
                        nw++;
                /* "stop" may or may not have seen x/ first: readdir's order is the fs's. */
                if (cases[i].stop) {
                        CHECK(rec_index(&w, "a/b/c/d@4") < 0);
                        CHECK(w.n >= nw);
                } else {
                        CHECK_INT(w.n, nw);
                }
                for (size_t k = 0; k < nw; k++)
                        CHECK_MSG(rec_index(&w, cases[i].want[k]) >= 0, "%s not visited", cases[i].want[k]);
                if (rec_index(&w, "a/b@2") >= 0) /* parents first */
                        CHECK(rec_index(&w, "a@1") < rec_index(&w, "a/b@2"));
                if (!cases[i].stop)
                        CHECK_INT(w.marks, cases[i].want_marks);
                if (cases[i].want_path)
                        CHECK_STR(path, cases[i].want_path);
                else
                        CHECK(path == NULL);
                free(path);
        }

        T_CASE("max_dirs bounds the entries looked at");
        struct walk_rec w = { 0 };
        CHECK_INT(vmg_cgroup_walk(fd, 99, 3, record, &w, NULL), 0);
        CHECK_INT(w.n, 3);
        w = (struct walk_rec){ 0 };
        CHECK_INT(vmg_cgroup_walk(fd, 99, 0, record, &w, NULL), 0);
        CHECK_INT(w.n, 0);

        T_CASE("stop without ret_path");
        w = (struct walk_rec){ .stop = "x" };
        CHECK_INT(vmg_cgroup_walk(fd, 99, 100, record, &w, NULL), VMG_CG_WALK_STOP);
        close(fd);
        fx_rmtree(root, "");
}

/* This host's real hierarchies through the same code. Creating a cgroup needs root. */
static void test_live(void) {
        struct vmg_cgroup_ctx *ctx = NULL;
        T_CASE("live: discover this host");
        CHECK_INT(vmg_cgroup_ctx_new(NULL, &ctx), 0);
        if (!ctx)
                return;
        CHECK(vmg_cgroup_hier_path(ctx, VMG_CG_UNIFIED) || vmg_cgroup_hier_path(ctx, VMG_CG_CPU));
        const char *u = vmg_cgroup_hier_path(ctx, VMG_CG_UNIFIED);
        char path[PATH_MAX], name[64];
        snprintf(name, sizeof(name), "vmg-test-%d", (int) getpid());
        T_CASE("live: real cgroup read, then removed");
        if (!t_require(u != NULL, "needs a cgroup2 (unified) hierarchy") ||
            !t_require(geteuid() == 0, "needs root to create a cgroup")) {
                vmg_cgroup_ctx_free(ctx);
                return;
        }
        snprintf(path, sizeof(path), "%s/%s", u, name);
        if (mkdir(path, 0755) < 0) {
                CHECK_MSG(0, "mkdir %s: %m", path);
                vmg_cgroup_ctx_free(ctx);
                return;
        }
        const char *dirs[VMG_CG_N] = { NULL };
        dirs[VMG_CG_UNIFIED] = name;
        struct vmg_cgroup_vm *vm = NULL;
        struct vmg_vm_counters c = { 0 };
        CHECK_INT(vmg_cgroup_vm_open_dirs(ctx, "live", dirs, &vm), 0);
        if (vm) {
                CHECK_INT(vmg_cgroup_vm_read(vm, &c), 0);
                CHECK(c.cpu_valid);
                CHECK_INT(c.cpu_source, VMG_SRC_CGROUP_V2);
                CHECK(c.psi_io.valid);
        }
        CHECK_INT(rmdir(path), 0);
        if (vm) {
                int r = vmg_cgroup_vm_read(vm, &c);
                CHECK_MSG(r == -ENODEV || r == -ENOENT, "read after rmdir = %d", r);
                vmg_cgroup_vm_free(vm);
        }
        vmg_cgroup_ctx_free(ctx);
}

int main(void) {
        log_set_max_level(LOG_EMERG);
        test_discovery();
        test_names();
        test_libvirt_v1();
        test_machined_v2();
        test_machined_v1_old();
        test_proc_fallback();
        test_symlinks();
        test_walk();
        test_live();
        return t_summary();
}
