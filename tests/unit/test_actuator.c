/* The cgroup actuator on fake v1 and v2 trees under mkdtemp(), and the blkiotune worker
 * with injected libvirt calls. File contents are the kernel's: cpu.cfs_quota_us "-1",
 * cpu.cfs_period_us "100000" and empty blkio.throttle.* files as read on this machine;
 * cpu.max "max 100000" and io.max "8:16 rbps=2097152 wbps=max riops=max wiops=120" from
 * Documentation/admin-guide/cgroup-v2.rst. Regular files do not parse writes like cgroupfs,
 * so an injected write function plays the kernel's part (merge per-device lines, "0" or all
 * "max" removes a rule) and counts writes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/act/actuator.h"
#include "controller/act/blkiotune.h"
#include "controller/act/journal.h"
#include "tests/harness.h"

#define UUID_A "0b7ee6a2-55f4-4c1e-8d2a-8c3f4e5d6a01"
#define UUID_B "0b7ee6a2-55f4-4c1e-8d2a-8c3f4e5d6a02"
#define VM_DIR "machine/qemu-3-web1.libvirt-qemu"

/* ---- fake tree helpers ---- */

static char *make_dir(const char *what) {
        char tmpl[64];
        snprintf(tmpl, sizeof tmpl, "/tmp/vmg-act-%s-XXXXXX", what);
        char *d = mkdtemp(tmpl);
        return d ? strdup(d) : NULL;
}

static void rm_rf(const char *dir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", dir);
}

static void put(const char *root, const char *rel, const char *content) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", root, rel);
        for (char *s = path + strlen(root) + 1; *s; s++)
                if (*s == '/') {
                        *s = '\0';
                        mkdir(path, 0755);
                        *s = '/';
                }
        FILE *f = fopen(path, "we");
        if (!f) {
                fprintf(stderr, "cannot create %s\n", path);
                exit(2);
        }
        fputs(content, f);
        fclose(f);
}

static char *get(const char *root, const char *rel) {
        static char buf[4096];
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", root, rel);
        FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

/* ---- the fake kernel ---- */

struct fake_kernel {
        int writes;
        int fail; /* -errno to return from every write, 0 for none */
};

static bool all_max(const char *rest) {
        return strstr(rest, "rbps=max") && strstr(rest, "wbps=max") && strstr(rest, "riops=max") &&
               strstr(rest, "wiops=max");
}

/* io.max keeps keys not named in a write: merge them as the kernel does. */
static void merge_io_max(const char *old, const char *upd, char *out, size_t n) {
        static const char *const keys[4] = {"rbps", "wbps", "riops", "wiops"};
        char vals[4][32];
        for (int i = 0; i < 4; i++) {
                strcpy(vals[i], "max");
                for (int pass = 0; pass < 2; pass++) {
                        const char *src = pass ? upd : old;
                        char pat[16];
                        snprintf(pat, sizeof pat, "%s=", keys[i]);
                        const char *p = src ? strstr(src, pat) : NULL;
                        if (p && (p == src || p[-1] == ' '))
                                sscanf(p + strlen(pat), "%31[^ \n]", vals[i]);
                }
        }
        snprintf(out, n, "rbps=%s wbps=%s riops=%s wiops=%s", vals[0], vals[1], vals[2], vals[3]);
}

static int fake_write(int dirfd, const char *relpath, const char *value, void *userdata) {
        struct fake_kernel *k = userdata;
        k->writes++;
        if (k->fail)
                return k->fail;
        int fd = openat(dirfd, relpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        char old[4096] = "", out[4096] = "";
        ssize_t n = read(fd, old, sizeof old - 1);
        old[n > 0 ? n : 0] = '\0';
        const char *base = strrchr(relpath, '/');
        base = base ? base + 1 : relpath;
        bool v1dev = strncmp(base, "blkio.throttle.", 15) == 0, iomax = strcmp(base, "io.max") == 0;
        if (v1dev || iomax) {
                char key[32], rest[256] = "", prev[256] = "";
                if (sscanf(value, "%31s %255[^\n]", key, rest) < 1) {
                        close(fd);
                        return -EINVAL;
                }
                size_t kl = strlen(key);
                for (char *line = strtok(old, "\n"); line; line = strtok(NULL, "\n")) {
                        if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
                                snprintf(prev, sizeof prev, "%s", line + kl + 1);
                                continue;
                        }
                        strcat(out, line);
                        strcat(out, "\n");
                }
                char merged[256];
                if (iomax)
                        merge_io_max(prev, rest, merged, sizeof merged);
                else
                        snprintf(merged, sizeof merged, "%s", rest);
                bool remove = iomax ? all_max(merged) : strcmp(merged, "0") == 0;
                if (!remove) {
                        strcat(out, key);
                        strcat(out, " ");
                        strcat(out, merged);
                        strcat(out, "\n");
                }
        } else {
                snprintf(out, sizeof out, "%s\n", value);
        }
        int r = 0;
        if (ftruncate(fd, 0) < 0 || pwrite(fd, out, strlen(out), 0) < 0)
                r = -errno;
        close(fd);
        return r;
}

/* ---- fixtures ---- */

struct fixture {
        char *state, *cpu, *blkio;
        struct vmg_journal *j;
        struct vmg_actuator *a;
        struct fake_kernel k;
};

static void v1_tree(struct fixture *f) {
        put(f->cpu, VM_DIR "/cpu.cfs_quota_us", "-1\n");
        put(f->cpu, VM_DIR "/cpu.cfs_period_us", "100000\n");
        /* libvirt's children, with their own quotas. */
        put(f->cpu, VM_DIR "/vcpu0/cpu.cfs_quota_us", "-1\n");
        put(f->cpu, VM_DIR "/emulator/cpu.cfs_quota_us", "-1\n");
        put(f->blkio, VM_DIR "/blkio.throttle.read_bps_device", "");
        put(f->blkio, VM_DIR "/blkio.throttle.write_bps_device", "8:0 1048576\n");
        put(f->blkio, VM_DIR "/blkio.throttle.read_iops_device", "");
        put(f->blkio, VM_DIR "/blkio.throttle.write_iops_device", "");
}

static void v2_tree(struct fixture *f) {
        put(f->cpu, VM_DIR "/cpu.max", "max 100000\n");
        put(f->cpu, VM_DIR "/io.max",
            "8:16 rbps=2097152 wbps=max riops=max wiops=120\n"
            "254:0 rbps=max wbps=1048576 riops=max wiops=max\n");
}

static int fixture_open(struct fixture *f, int version) {
        struct vmg_actuator_config cfg = {
                .cgroup_version = version, .cpu_root = f->cpu, .blkio_root = f->blkio,
                .journal = f->j, .write_fn = fake_write, .write_userdata = &f->k,
        };
        int r = vmg_journal_open(f->state, &f->j);
        if (r < 0)
                return r;
        cfg.journal = f->j;
        return vmg_actuator_new(&cfg, &f->a);
}

static void fixture_init(struct fixture *f, int version) {
        memset(f, 0, sizeof *f);
        f->state = make_dir("state");
        f->cpu = make_dir("cpu");
        f->blkio = version == 1 ? make_dir("blkio") : NULL;
        if (version == 1)
                v1_tree(f);
        else
                v2_tree(f);
        int r = fixture_open(f, version);
        if (r < 0) {
                fprintf(stderr, "fixture: %s\n", strerror(-r));
                exit(2);
        }
}

static void fixture_close(struct fixture *f) {
        f->a = vmg_actuator_free(f->a);
        f->j = vmg_journal_free(f->j);
}

static void fixture_done(struct fixture *f) {
        fixture_close(f);
        rm_rf(f->state);
        rm_rf(f->cpu);
        if (f->blkio)
                rm_rf(f->blkio);
        free(f->state);
        free(f->cpu);
        free(f->blkio);
}

static const struct vmg_act_vm VM_A = {UUID_A, "web1", VM_DIR, VM_DIR};

/* ---- actuator tests ---- */

static void test_classify(void) {
        static const struct {
                int r;
                enum vmg_result_class c;
        } cases[] = {
                {0, VMG_RESULT_OK}, {1, VMG_RESULT_OK}, {-ENOENT, VMG_RESULT_GONE}, {-ENODEV, VMG_RESULT_GONE},
                {-EBUSY, VMG_RESULT_TRANSIENT}, {-EAGAIN, VMG_RESULT_TRANSIENT},
                {-ETIMEDOUT, VMG_RESULT_TRANSIENT}, {-EPERM, VMG_RESULT_PERMANENT},
                {-EROFS, VMG_RESULT_PERMANENT}, {-EINVAL, VMG_RESULT_PERMANENT},
                {-EACCES, VMG_RESULT_PERMANENT},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(strerror(cases[i].r < 0 ? -cases[i].r : 0));
                CHECK_INT(vmg_act_classify(cases[i].r), cases[i].c);
        }
        CHECK_STR(vmg_act_class_name(VMG_RESULT_PERMANENT), "permanent");
}

static void test_v1_cpu(void) {
        static const struct {
                const char *period;
                double cores;
                const char *want;
        } cases[] = {
                {"100000", 0.2, "20000"}, {"100000", 1.5, "150000"},
                {"50000", 0.2, "10000"},  {"100000", 0.001, "1000"}, /* kernel minimum 1 ms */
                {"100000", 0, "-1"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(cases[i].want);
                struct fixture f;
                fixture_init(&f, 1);
                put(f.cpu, VM_DIR "/cpu.cfs_period_us", cases[i].period);
                int want_r = strcmp(cases[i].want, "-1") != 0;
                CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, cases[i].cores), want_r);
                if (!want_r)
                        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "-1\n");
                if (want_r) {
                        char w[32];
                        snprintf(w, sizeof w, "%s\n", cases[i].want);
                        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), w);
                }
                CHECK_INT(f.k.writes, want_r);
                CHECK_INT(vmg_journal_count(f.j), want_r);
                fixture_done(&f);
        }
}

static void test_v1_cpu_cycle(void) {
        T_CASE("v1 cpu set, compare, change, release");
        struct fixture f;
        fixture_init(&f, 1);
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
        double cores = -1;
        CHECK_INT(vmg_act_get_cpu(f.a, &VM_A, &cores), 0);
        CHECK_NEAR(cores, 0.2, 1e-9);
        /* Same decision next tick: no write (each write walks the task-group tree). */
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 0);
        CHECK_INT(f.k.writes, 1);
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.5), 1);
        CHECK_INT(f.k.writes, 2);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "50000\n");
        /* The vCPU children keep their own -1: the domain quota bounds them all. */
        CHECK_STR(get(f.cpu, VM_DIR "/vcpu0/cpu.cfs_quota_us"), "-1\n");
        const struct vmg_knob k = {"cgroup", "cpu", VM_DIR "/cpu.cfs_quota_us", ""};
        const struct vmg_journal_entry *e = vmg_journal_find(f.j, UUID_A, &k);
        CHECK(e && strcmp(e->original, "-1") == 0 && strcmp(e->written, "50000") == 0);
        CHECK(e && e->previous == NULL); /* committed */
        CHECK_INT(vmg_act_release(f.a, UUID_A), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "-1\n");
        CHECK_INT(vmg_journal_count(f.j), 0);
        CHECK_INT(vmg_act_get_cpu(f.a, &VM_A, &cores), 0);
        CHECK_NEAR(cores, 0, 1e-9);
        fixture_done(&f);
}

static void test_v2_cpu(void) {
        T_CASE("v2 cpu.max");
        struct fixture f;
        fixture_init(&f, 2);
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.max"), "20000 100000\n");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 0);
        CHECK_INT(f.k.writes, 1);
        CHECK_INT(vmg_act_release(f.a, UUID_A), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.max"), "max 100000\n");

        T_CASE("v2 cpu.max keeps the period");
        put(f.cpu, VM_DIR "/cpu.max", "max 50000\n");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.5), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.max"), "25000 50000\n");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0), 1); /* explicit unlimit */
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.max"), "max 50000\n");
        CHECK_INT(vmg_act_release(f.a, UUID_A), 0); /* already the original */
        CHECK_INT(vmg_journal_count(f.j), 0);

        T_CASE("v2 cpu.max garbage");
        put(f.cpu, VM_DIR "/cpu.max", "banana\n");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.5), -EBADMSG);
        fixture_done(&f);
}

static void test_v1_io(void) {
        T_CASE("v1 blkio per-device files");
        struct fixture f;
        fixture_init(&f, 1);
        struct vmg_io_limit lim = {VMG_IO_KEEP, 20971520, VMG_IO_KEEP, VMG_IO_KEEP};
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 254, 0, &lim), 1);
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.write_bps_device"), "8:0 1048576\n254:0 20971520\n");
        CHECK_INT(f.k.writes, 1); /* KEEP touches no other file */
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 254, 0, &lim), 0);
        CHECK_INT(f.k.writes, 1);
        /* Unlimited where nothing is set: nothing to write. */
        struct vmg_io_limit lim2 = {VMG_IO_UNLIMITED, 20971520, VMG_IO_UNLIMITED, 500};
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 254, 0, &lim2), 1);
        CHECK_INT(f.k.writes, 2);
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.write_iops_device"), "254:0 500\n");
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.read_bps_device"), "");
        CHECK_INT(vmg_journal_count(f.j), 2);
        CHECK_INT(vmg_act_release(f.a, UUID_A), 2);
        /* The other device's rule (not ours) stays. */
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.write_bps_device"), "8:0 1048576\n");
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.write_iops_device"), "");

        T_CASE("v1 blkio admin rule on the same device is the original");
        struct vmg_io_limit lim3 = {VMG_IO_KEEP, 4096, VMG_IO_KEEP, VMG_IO_KEEP};
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 8, 0, &lim3), 1);
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.write_bps_device"), "8:0 4096\n");
        CHECK_INT(vmg_act_release(f.a, UUID_A), 1);
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.write_bps_device"), "8:0 1048576\n");
        fixture_done(&f);
}

static void test_v2_io(void) {
        T_CASE("v2 io.max several devices");
        struct fixture f;
        fixture_init(&f, 2);
        struct vmg_io_limit lim = {VMG_IO_KEEP, 20971520, VMG_IO_KEEP, VMG_IO_KEEP};
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 254, 0, &lim), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/io.max"),
                  "8:16 rbps=2097152 wbps=max riops=max wiops=120\n"
                  "254:0 rbps=max wbps=20971520 riops=max wiops=max\n");
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 254, 0, &lim), 0);
        CHECK_INT(f.k.writes, 1);
        /* A device with no line yet. */
        struct vmg_io_limit lim2 = {VMG_IO_UNLIMITED, 5242880, VMG_IO_UNLIMITED, 100};
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 8, 0, &lim2), 1);
        CHECK_CONTAINS(get(f.cpu, VM_DIR "/io.max"), "8:0 rbps=max wbps=5242880 riops=max wiops=100\n");
        /* One entry per key vmguard changed (wbps, wiops), none for the keys already so. */
        const struct vmg_knob k = {"cgroup", "unified", VM_DIR "/io.max", "8:0 wbps"};
        const struct vmg_journal_entry *e = vmg_journal_find(f.j, UUID_A, &k);
        CHECK(e && strcmp(e->original, "max") == 0 && strcmp(e->written, "5242880") == 0);
        const struct vmg_knob kr = {"cgroup", "unified", VM_DIR "/io.max", "8:0 rbps"};
        CHECK(vmg_journal_find(f.j, UUID_A, &kr) == NULL);
        CHECK_INT(vmg_act_release(f.a, UUID_A), 3);
        CHECK_STR(get(f.cpu, VM_DIR "/io.max"),
                  "8:16 rbps=2097152 wbps=max riops=max wiops=120\n"
                  "254:0 rbps=max wbps=1048576 riops=max wiops=max\n");
        fixture_done(&f);
}

static void test_v2_io_per_key(void) {
        T_CASE("v2 io.max: an admin's rbps set while vmguard holds wbps survives the release");
        struct fixture f;
        fixture_init(&f, 2);
        struct vmg_io_limit lim = {VMG_IO_KEEP, 20971520, VMG_IO_KEEP, VMG_IO_KEEP};
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 254, 0, &lim), 1);
        /* The admin: echo "254:0 rbps=4194304" > io.max. */
        put(f.cpu, VM_DIR "/io.max",
            "8:16 rbps=2097152 wbps=max riops=max wiops=120\n"
            "254:0 rbps=4194304 wbps=20971520 riops=max wiops=max\n");
        /* vmguard tightens wbps: rbps is not taken for a value of its own. */
        lim.wbps = 10485760;
        CHECK_INT(vmg_act_set_io(f.a, &VM_A, 254, 0, &lim), 1);
        CHECK_INT(vmg_act_release(f.a, UUID_A), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/io.max"),
                  "8:16 rbps=2097152 wbps=max riops=max wiops=120\n"
                  "254:0 rbps=4194304 wbps=1048576 riops=max wiops=max\n");
        CHECK_INT(vmg_journal_count(f.j), 0);
        fixture_done(&f);
}

static void test_v2_io_old_journal(void) {
        T_CASE("v2 io.max: a whole-line entry of an older journal is still restored");
        struct fixture f;
        fixture_init(&f, 2);
        const struct vmg_knob k = {"cgroup", "unified", VM_DIR "/io.max", "254:0"};
        CHECK_INT(vmg_journal_record(f.j, UUID_A, "a", &k, "rbps=max wbps=1048576 riops=max wiops=max",
                                     "rbps=max wbps=20971520 riops=max wiops=max"), 0);
        put(f.cpu, VM_DIR "/io.max", "254:0 rbps=max wbps=20971520 riops=max wiops=max\n");
        CHECK_INT(vmg_act_release(f.a, UUID_A), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/io.max"), "254:0 rbps=max wbps=1048576 riops=max wiops=max\n");
        fixture_done(&f);
}

static void test_drift(void) {
        T_CASE("drift at release: the admin's value stays");
        struct fixture f;
        fixture_init(&f, 1);
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
        put(f.cpu, VM_DIR "/cpu.cfs_quota_us", "30000\n"); /* an admin, or libvirt */
        CHECK_INT(vmg_act_release(f.a, UUID_A), 0);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "30000\n");
        CHECK_INT(vmg_journal_count(f.j), 0);

        T_CASE("drift while throttled: the admin's value becomes the original");
        put(f.cpu, VM_DIR "/cpu.cfs_quota_us", "-1\n");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
        put(f.cpu, VM_DIR "/cpu.cfs_quota_us", "70000\n");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.1), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "10000\n");
        CHECK_INT(vmg_act_release(f.a, UUID_A), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "70000\n");
        fixture_done(&f);
}

static void test_crash_recovery(void) {
        T_CASE("crash recovery");
        struct fixture f;
        fixture_init(&f, 1);
        fixture_close(&f);
        int pfd[2];
        CHECK_INT(pipe(pfd), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct fixture c = f;
                char ok = fixture_open(&c, 1) == 0 && vmg_act_set_cpu(c.a, &VM_A, 0.2) == 1;
                struct vmg_io_limit lim = {VMG_IO_KEEP, 20971520, VMG_IO_KEEP, VMG_IO_KEEP};
                ok = ok && vmg_act_set_io(c.a, &VM_A, 254, 0, &lim) == 1;
                if (write(pfd[1], &ok, 1) != 1)
                        _exit(2);
                pause();
                _exit(3);
        }
        close(pfd[1]);
        char ok = 0;
        CHECK_INT(read(pfd[0], &ok, 1), 1);
        CHECK_INT(ok, 1);
        close(pfd[0]);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st));
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "20000\n");

        CHECK_INT(fixture_open(&f, 1), 0);
        CHECK_INT(vmg_journal_count(f.j), 2);
        CHECK_INT(vmg_act_restore_all(f.a), 2);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "-1\n");
        CHECK_STR(get(f.blkio, VM_DIR "/blkio.throttle.write_bps_device"), "8:0 1048576\n");
        CHECK_INT(vmg_journal_count(f.j), 0);
        fixture_done(&f);
}

static void test_vanished(void) {
        T_CASE("vanished VM before a write");
        struct fixture f;
        fixture_init(&f, 1);
        const struct vmg_act_vm gone = {UUID_B, "gone", "machine/qemu-9-gone.libvirt-qemu",
                                        "machine/qemu-9-gone.libvirt-qemu"};
        int r = vmg_act_set_cpu(f.a, &gone, 0.2);
        CHECK_INT(r, -ENOENT);
        CHECK_INT(vmg_act_classify(r), VMG_RESULT_GONE);
        struct vmg_io_limit lim = {VMG_IO_KEEP, 1, VMG_IO_KEEP, VMG_IO_KEEP};
        CHECK_INT(vmg_act_set_io(f.a, &gone, 254, 0, &lim), -ENOENT);
        CHECK_INT(f.k.writes, 0);
        CHECK_INT(vmg_journal_count(f.j), 0);

        T_CASE("vanished VM while throttled");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
        char path[1024];
        snprintf(path, sizeof path, "%s/machine", f.cpu);
        rm_rf(path);
        CHECK_INT(vmg_act_release(f.a, UUID_A), 0);
        CHECK_INT(vmg_journal_count(f.j), 0);
        fixture_done(&f);
}

static void test_errors(void) {
        static const int errs[] = {-EPERM, -EROFS, -EINVAL, -EBUSY, -EAGAIN, -ENODEV};
        for (size_t i = 0; i < ARRAY_SIZE(errs); i++) {
                T_CASE(strerror(-errs[i]));
                struct fixture f;
                fixture_init(&f, 1);
                f.k.fail = errs[i];
                int r = vmg_act_set_cpu(f.a, &VM_A, 0.2);
                CHECK_INT(r, errs[i]);
                /* A failed write leaves nothing to restore. */
                CHECK_INT(vmg_journal_count(f.j), 0);
                CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "-1\n");
                /* A failed update keeps the previous throttle's entry intact. */
                f.k.fail = 0;
                CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
                f.k.fail = errs[i];
                CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.1), errs[i]);
                const struct vmg_knob k = {"cgroup", "cpu", VM_DIR "/cpu.cfs_quota_us", ""};
                const struct vmg_journal_entry *e = vmg_journal_find(f.j, UUID_A, &k);
                CHECK(e && strcmp(e->written, "20000") == 0 && !e->previous);
                f.k.fail = 0;
                fixture_done(&f);
        }

        /* As root the kernel never says EACCES (CAP_DAC_OVERRIDE): the case runs in a child
         * that owns its fixture and drops to nobody (65534) before acting; not root, it runs
         * in place. The child sends the result and its classification through a pipe. */
        T_CASE("real EACCES from a 0444 file (as an unprivileged user)");
        int res[2] = { 1, -1 }, fds[2];
        CHECK(pipe(fds) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                close(fds[0]);
                struct fixture f;
                fixture_init(&f, 1);
                vmg_actuator_free(f.a);
                f.a = NULL;
                char path[1024], cmd[1024];
                snprintf(cmd, sizeof cmd, "chown -R 65534:65534 '%s' '%s' '%s'", f.state, f.cpu, f.blkio);
                bool dropped = geteuid() != 0 ||
                               (system(cmd) == 0 && setresgid(65534, 65534, 65534) == 0 &&
                                setresuid(65534, 65534, 65534) == 0);
                struct vmg_actuator_config cfg = {.cgroup_version = 1, .cpu_root = f.cpu,
                                                  .blkio_root = f.blkio, .journal = f.j};
                res[0] = dropped && geteuid() != 0 ? vmg_actuator_new(&cfg, &f.a) : -EPERM;
                if (res[0] == 0) {
                        snprintf(path, sizeof path, "%s/%s/cpu.cfs_quota_us", f.cpu, VM_DIR);
                        chmod(path, 0444);
                        res[0] = vmg_act_set_cpu(f.a, &VM_A, 0.2);
                        res[1] = vmg_act_classify(res[0]);
                }
                if (write(fds[1], res, sizeof res) != sizeof res)
                        _exit(3);
                fixture_done(&f); /* nobody owns the trees now: it can remove them */
                _exit(0);
        }
        close(fds[1]);
        int st = -1;
        CHECK_MSG(read(fds[0], res, sizeof res) == sizeof res, "the child sent no result");
        close(fds[0]);
        if (pid > 0)
                waitpid(pid, &st, 0);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
        CHECK_INT(res[0], -EACCES);
        CHECK_INT(res[1], VMG_RESULT_PERMANENT);
}

static void test_journal_unwritable(void) {
        T_CASE("journal cannot be written: refuse to throttle");
        struct fixture f;
        fixture_init(&f, 1);
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", f.state, VMG_JOURNAL_FILE);
        CHECK_INT(mkdir(tmp, 0700), 0);
        CHECK(vmg_act_set_cpu(f.a, &VM_A, 0.2) < 0);
        CHECK_INT(f.k.writes, 0);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.cfs_quota_us"), "-1\n");
        rmdir(tmp);
        fixture_done(&f);
}

static void test_real_write_and_symlink(void) {
        T_CASE("default write and symlinked VM dir");
        struct fixture f;
        fixture_init(&f, 2);
        vmg_actuator_free(f.a);
        struct vmg_actuator_config cfg = {.cgroup_version = 2, .cpu_root = f.cpu, .journal = f.j};
        CHECK_INT(vmg_actuator_new(&cfg, &f.a), 0);
        /* A regular file takes the write as is; the string written is what cgroupfs gets. */
        put(f.cpu, VM_DIR "/cpu.max", "max 100000\n");
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
        CHECK_STR(get(f.cpu, VM_DIR "/cpu.max"), "20000 100000");
        char outside[1024], link[1024];
        snprintf(outside, sizeof outside, "%s/../", f.cpu);
        _cleanup_free_ char *elsewhere = make_dir("outside");
        put(elsewhere, "cpu.max", "max 100000\n");
        snprintf(link, sizeof link, "%s/evil", f.cpu);
        CHECK_INT(symlink(elsewhere, link), 0);
        const struct vmg_act_vm evil = {UUID_B, "evil", "evil", "evil"};
        CHECK(vmg_act_set_cpu(f.a, &evil, 0.2) < 0);
        CHECK_STR(get(elsewhere, "cpu.max"), "max 100000\n");
        rm_rf(elsewhere);
        fixture_done(&f);
}

static void test_mixed_journal(void) {
        T_CASE("cgroup restore leaves blkiotune entries alone");
        struct fixture f;
        fixture_init(&f, 1);
        const struct vmg_knob tune = {"blkiotune", "", "vda", "write_bytes_sec"};
        CHECK_INT(vmg_journal_record(f.j, UUID_A, "web1", &tune, "0", "5242880"), 0);
        CHECK_INT(vmg_act_set_cpu(f.a, &VM_A, 0.2), 1);
        CHECK_INT(vmg_act_restore_all(f.a), 1);
        CHECK_INT(vmg_journal_count(f.j), 1);
        CHECK(vmg_journal_find(f.j, UUID_A, &tune) != NULL);
        fixture_done(&f);
}

/* ---- blkiotune with injected libvirt calls ---- */

struct fake_virt {
        pthread_mutex_t mu;
        struct {
                const char *uuid, *disk;
                struct vmg_iotune s;
        } v[4];
        size_t n;
        int set_err, get_err;
        int sets;
        int block_fd; /* >= 0: calls wait for a byte on this fd (a domain stuck in a job) */
};

static int fv_find(struct fake_virt *fv, const char *uuid, const char *disk) {
        for (size_t i = 0; i < fv->n; i++)
                if (!strcmp(fv->v[i].uuid, uuid) && !strcmp(fv->v[i].disk, disk))
                        return (int) i;
        return -1;
}

static void fv_block(struct fake_virt *fv) {
        char c;
        if (fv->block_fd >= 0 && read(fv->block_fd, &c, 1) < 0)
                perror("block");
}

static int fv_get(void *ud, const char *uuid, const char *disk, struct vmg_iotune *ret) {
        struct fake_virt *fv = ud;
        fv_block(fv);
        pthread_mutex_lock(&fv->mu);
        int i = fv_find(fv, uuid, disk), r = 0;
        if (fv->get_err)
                r = fv->get_err;
        else if (i < 0)
                r = -ENOENT;
        else
                *ret = fv->v[i].s;
        pthread_mutex_unlock(&fv->mu);
        return r;
}

/* libvirt refuses a total beside a read or write limit of the same kind (the QEMU driver's
 * "total and read/write ... cannot be set at the same time"). */
static bool fv_conflict(const struct vmg_iotune *s) {
        return (s->v[VMG_IOTUNE_TOTAL_BYTES] && (s->v[VMG_IOTUNE_READ_BYTES] || s->v[VMG_IOTUNE_WRITE_BYTES])) ||
               (s->v[VMG_IOTUNE_TOTAL_IOPS] && (s->v[VMG_IOTUNE_READ_IOPS] || s->v[VMG_IOTUNE_WRITE_IOPS]));
}

static int fv_set(void *ud, const char *uuid, const char *disk, const struct vmg_iotune *value) {
        struct fake_virt *fv = ud;
        fv_block(fv);
        pthread_mutex_lock(&fv->mu);
        int i = fv_find(fv, uuid, disk), r = 0;
        if (fv->set_err)
                r = fv->set_err;
        else if (i < 0)
                r = -ENOENT;
        else if (fv_conflict(value))
                r = -EINVAL;
        else {
                fv->v[i].s = *value;
                fv->sets++;
        }
        pthread_mutex_unlock(&fv->mu);
        return r;
}

/* Disk i's field f (write_bytes_sec unless said). */
static unsigned long long fv_field(struct fake_virt *fv, int i, enum vmg_iotune_field f) {
        pthread_mutex_lock(&fv->mu);
        unsigned long long v = fv->v[i].s.v[f];
        pthread_mutex_unlock(&fv->mu);
        return v;
}

static unsigned long long fv_value(struct fake_virt *fv, int i) {
        pthread_mutex_lock(&fv->mu);
        unsigned long long v = fv->v[i].s.v[VMG_IOTUNE_WRITE_BYTES];
        pthread_mutex_unlock(&fv->mu);
        return v;
}

/* Polls and dispatches until one result arrives; bounded so a bug cannot hang the test. */
static int wait_one(struct vmg_blkiotune *bt, struct vmg_blkiotune_result *res) {
        for (int i = 0; i < 400; i++) {
                if (vmg_blkiotune_dispatch(bt, res, 1) == 1)
                        return 0;
                struct pollfd p = {.fd = vmg_blkiotune_fd(bt), .events = POLLIN};
                poll(&p, 1, 25);
        }
        return -ETIME;
}

#define MIB 1048576ULL

static void test_blkiotune(void) {
        _cleanup_free_ char *state = make_dir("bt");
        struct vmg_journal *j = NULL;
        struct vmg_blkiotune *bt = NULL;
        struct fake_virt fv = {.n = 1, .block_fd = -1};
        pthread_mutex_init(&fv.mu, NULL);
        fv.v[0].uuid = UUID_A;
        fv.v[0].disk = "vda";
        struct vmg_blkiotune_ops ops = {.get = fv_get, .set = fv_set, .userdata = &fv};
        CHECK_INT(vmg_journal_open(state, &j), 0);
        struct vmg_blkiotune_config cfg = {.journal = j, .ops = &ops, .timeout_ms = 200};
        CHECK_INT(vmg_blkiotune_new(&cfg, &bt), 0);
        struct vmg_blkiotune_result res;
        const struct vmg_knob k = {"blkiotune", "", "vda", VMG_IOTUNE_KEY};

        T_CASE("blkiotune throttle");
        int64_t id = vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5242880);
        CHECK(id > 0);
        CHECK_INT(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 1), -EBUSY);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_U64(res.id, (uint64_t) id);
        CHECK_INT(res.op, VMG_BT_THROTTLE);
        CHECK_INT(res.r, 1);
        CHECK_STR(res.disk, "vda");
        CHECK_U64(fv_value(&fv, 0), 5242880);
        const struct vmg_journal_entry *e = vmg_journal_find(j, UUID_A, &k);
        CHECK(e != NULL);
        if (e) {
                CHECK_STR(e->original, "total_bytes_sec=0 read_bytes_sec=0 write_bytes_sec=0 "
                                       "total_iops_sec=0 read_iops_sec=0 write_iops_sec=0");
                CHECK_STR(e->written, "total_bytes_sec=0 read_bytes_sec=0 write_bytes_sec=5242880 "
                                      "total_iops_sec=0 read_iops_sec=0 write_iops_sec=0");
        }
        CHECK_INT(vmg_blkiotune_pending(bt), 0);

        T_CASE("blkiotune unchanged: no set");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5242880) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, 0);
        CHECK_INT(fv.sets, 1);
        CHECK_INT(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "bogus_sec", 1), -EINVAL);

        T_CASE("blkiotune restore after a restart");
        vmg_blkiotune_free(bt);
        vmg_journal_free(j);
        CHECK_INT(vmg_journal_open(state, &j), 0);
        cfg.journal = j;
        CHECK_INT(vmg_blkiotune_new(&cfg, &bt), 0);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, NULL), 1);
        CHECK_U64(fv_value(&fv, 0), 0);
        CHECK_INT(vmg_journal_count(j), 0);

        T_CASE("blkiotune drift");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5242880) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, 1);
        pthread_mutex_lock(&fv.mu);
        fv.v[0].s.v[VMG_IOTUNE_WRITE_BYTES] = 1000; /* virsh blkdeviotune by an admin */
        pthread_mutex_unlock(&fv.mu);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, UUID_A), 0);
        CHECK_U64(fv_value(&fv, 0), 1000);
        CHECK_INT(vmg_journal_count(j), 0);

        T_CASE("blkiotune VM gone");
        CHECK_INT(vmg_journal_record(j, UUID_B, "gone", &k, "0", "77"), 0);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, NULL), 0);
        CHECK_INT(vmg_journal_count(j), 0);

        T_CASE("blkiotune permanent set failure");
        fv.v[0].s.v[VMG_IOTUNE_WRITE_BYTES] = 0;
        fv.set_err = -EPERM;
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 4096) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, -EPERM);
        CHECK_INT(vmg_journal_count(j), 0); /* nothing was written: nothing to remember */
        fv.set_err = 0;

        T_CASE("blkiotune transient restore failure keeps the entry");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 4096) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        fv.set_err = -EBUSY;
        CHECK_INT(vmg_blkiotune_restore_sync(bt, NULL), -EBUSY);
        CHECK_INT(vmg_journal_count(j), 1);
        fv.set_err = 0;
        CHECK_INT(vmg_blkiotune_restore_sync(bt, NULL), 1);
        CHECK_U64(fv_value(&fv, 0), 0);

        T_CASE("blkiotune timeout: a domain stuck in a job");
        int pfd[2];
        CHECK_INT(pipe(pfd), 0);
        fv.block_fd = pfd[0];
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 4096) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, -ETIMEDOUT);
        CHECK_INT(vmg_act_classify(res.r), VMG_RESULT_TRANSIENT);
        CHECK_INT(vmg_journal_count(j), 0); /* timed out while reading: nothing recorded */
        CHECK_INT(vmg_blkiotune_pending(bt), 0);
        /* A job queued behind the stuck call times out too, without ever running. */
        CHECK(vmg_blkiotune_set(bt, UUID_B, "b", "vdb", "write_iops_sec", 10) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, -ETIMEDOUT);
        /* The stuck call returns late: its result is ignored, the loop carries on. */
        fv.block_fd = -1;
        CHECK_INT(write(pfd[1], "x", 1), 1);
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 8192) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, 1);
        CHECK_U64(fv_value(&fv, 0), 8192);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, NULL), 1);
        close(pfd[0]);
        close(pfd[1]);

        /* An operator's <iotune> preset: the six fields are one set. */
        T_CASE("blkiotune: an operator's total_bytes_sec=50M survives a throttle and its release");
        fv.v[0].s = (struct vmg_iotune) {};
        fv.v[0].s.v[VMG_IOTUNE_TOTAL_BYTES] = 50 * MIB;
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5 * MIB) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, 1);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_WRITE_BYTES), 5 * MIB);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_READ_BYTES), 50 * MIB);
        CHECK_INT(vmg_journal_count(j), 1);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, UUID_A), 1);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_TOTAL_BYTES), 50 * MIB);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_READ_BYTES), 0);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_WRITE_BYTES), 0);
        CHECK_INT(vmg_journal_count(j), 0);

        T_CASE("blkiotune: a release (want 0) writes the operator's set back and forgets it");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5 * MIB) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 0) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, 1);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_TOTAL_BYTES), 50 * MIB);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_WRITE_BYTES), 0);
        CHECK_INT(vmg_journal_count(j), 0);

        T_CASE("blkiotune: an operator's stricter total is left alone, nothing journaled");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 100 * MIB) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, 0);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_TOTAL_BYTES), 50 * MIB);
        CHECK_INT(vmg_journal_count(j), 0);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, UUID_A), 0);

        T_CASE("blkiotune: read and write caps on one disk land together, in order");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5 * MIB) > 0);
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "read_bytes_sec", 1 * MIB) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_READ_BYTES), 1 * MIB);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_WRITE_BYTES), 5 * MIB);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, UUID_A), 1);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_TOTAL_BYTES), 50 * MIB);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_READ_BYTES), 0);

        T_CASE("blkiotune: an operator's change during the throttle is kept at release");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5 * MIB) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_INT(res.r, 1);
        pthread_mutex_lock(&fv.mu); /* virsh blkdeviotune web1 vda --total-bytes-sec 30M */
        fv.v[0].s = (struct vmg_iotune) {};
        fv.v[0].s.v[VMG_IOTUNE_TOTAL_BYTES] = 30 * MIB;
        pthread_mutex_unlock(&fv.mu);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, UUID_A), 0);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_TOTAL_BYTES), 30 * MIB);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_WRITE_BYTES), 0);
        CHECK_INT(vmg_journal_count(j), 0);

        T_CASE("blkiotune: a change during the throttle becomes the original of the next one");
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 5 * MIB) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        pthread_mutex_lock(&fv.mu);
        fv.v[0].s = (struct vmg_iotune) {};
        fv.v[0].s.v[VMG_IOTUNE_TOTAL_BYTES] = 40 * MIB;
        pthread_mutex_unlock(&fv.mu);
        CHECK(vmg_blkiotune_set(bt, UUID_A, "web1", "vda", "write_bytes_sec", 4 * MIB) > 0);
        CHECK_INT(wait_one(bt, &res), 0);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_READ_BYTES), 40 * MIB);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_WRITE_BYTES), 4 * MIB);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, UUID_A), 1);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_TOTAL_BYTES), 40 * MIB);

        T_CASE("blkiotune: an old journal's single-key entry still restores, that field alone");
        const struct vmg_knob old = {"blkiotune", "", "vda", "write_bytes_sec"};
        pthread_mutex_lock(&fv.mu);
        fv.v[0].s = (struct vmg_iotune) {};
        fv.v[0].s.v[VMG_IOTUNE_READ_BYTES] = 7 * MIB;
        fv.v[0].s.v[VMG_IOTUNE_WRITE_BYTES] = 5 * MIB;
        pthread_mutex_unlock(&fv.mu);
        CHECK_INT(vmg_journal_record(j, UUID_A, "web1", &old, "0", "5242880"), 0);
        vmg_blkiotune_free(bt);
        vmg_journal_free(j);
        CHECK_INT(vmg_journal_open(state, &j), 0);
        cfg.journal = j;
        CHECK_INT(vmg_blkiotune_new(&cfg, &bt), 0);
        CHECK_INT(vmg_blkiotune_restore_sync(bt, NULL), 1);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_WRITE_BYTES), 0);
        CHECK_U64(fv_field(&fv, 0, VMG_IOTUNE_READ_BYTES), 7 * MIB);
        CHECK_INT(vmg_journal_count(j), 0);

        vmg_blkiotune_free(bt);
        vmg_journal_free(j);
        pthread_mutex_destroy(&fv.mu);
        rm_rf(state);
}

/* ---- an operator's <iotune> preset: the six fields are one set ---- */

static void test_iotune_compose(void) {
        /* {total, read, write} bytes; iops alike. */
        static const struct {
                const char *name;
                unsigned long long op[3], want[3], out[3];
        } cases[] = {
                {"no preset: vmguard's write cap alone", {0, 0, 0}, {0, 0, 5 * MIB}, {0, 0, 5 * MIB}},
                {"total 50M, cap 5M: read keeps 50M, write 5M", {50 * MIB, 0, 0}, {0, 0, 5 * MIB},
                 {0, 50 * MIB, 5 * MIB}},
                {"total 50M stricter than a 100M cap: kept whole", {50 * MIB, 0, 0}, {0, 0, 100 * MIB},
                 {50 * MIB, 0, 0}},
                {"operator's write 2M stricter than a 5M cap", {0, 8 * MIB, 2 * MIB}, {0, 0, 5 * MIB},
                 {0, 8 * MIB, 2 * MIB}},
                {"operator's read kept beside the cap", {0, 8 * MIB, 0}, {0, 0, 5 * MIB}, {0, 8 * MIB, 5 * MIB}},
                {"no want: the operator's set, unchanged", {50 * MIB, 0, 0}, {0, 0, 0}, {50 * MIB, 0, 0}},
                {"read and write caps under a total", {50 * MIB, 0, 0}, {0, 1 * MIB, 5 * MIB},
                 {0, 1 * MIB, 5 * MIB}},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(cases[i].name);
                struct vmg_iotune op = {}, want = {}, out;
                for (int f = 0; f < 3; f++) {
                        op.v[f] = op.v[f + 3] = cases[i].op[f];
                        want.v[f] = want.v[f + 3] = cases[i].want[f];
                }
                vmg_iotune_compose(&op, &want, &out);
                for (int f = 0; f < 3; f++) {
                        CHECK_U64(out.v[f], cases[i].out[f]);
                        CHECK_U64(out.v[f + 3], cases[i].out[f]);
                }
        }
        T_CASE("iotune text round trip; junk refused");
        struct vmg_iotune s = {{1, 2, 3, 4, 5, 18446744073709551615ULL}}, back = {};
        char buf[192];
        CHECK(vmg_iotune_format(&s, buf, sizeof buf) > 0);
        CHECK_INT(vmg_iotune_parse(buf, &back), 0);
        CHECK(vmg_iotune_equal(&s, &back));
        CHECK_INT(vmg_iotune_format(&s, buf, 20), -ENOBUFS);
        CHECK_INT(vmg_iotune_parse("5242880", &back), -EINVAL);
        CHECK_INT(vmg_iotune_parse("total_bytes_sec=1 read_bytes_sec=2", &back), -EINVAL);
}


int main(void) {
        log_set_max_level(LOG_WARNING);
        test_classify();
        test_v1_cpu();
        test_v1_cpu_cycle();
        test_v2_cpu();
        test_v1_io();
        test_v2_io();
        test_v2_io_per_key();
        test_v2_io_old_journal();
        test_drift();
        test_crash_recovery();
        test_vanished();
        test_errors();
        test_journal_unwritable();
        test_real_write_and_symlink();
        test_mixed_journal();
        test_blkiotune();
        test_iotune_compose();
        return t_summary();
}
