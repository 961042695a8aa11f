/* The journal of original values: persistence, reload, restore verdicts (drift, vanished
 * VM, transient failure), crash recovery in a killed child, unwritable state dir. Runs on
 * a mkdtemp() state dir with an in-memory fake backend. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/act/journal.h"
#include "tests/harness.h"

/* A fake "live" store: knob (path+key) -> value, or an error for read/write. */
struct fake_knob {
        const char *path, *key;
        char value[64];
        int read_err, write_err;
        int writes;
};
struct fake {
        struct fake_knob k[8];
        size_t n;
};

static struct fake_knob *fake_find(struct fake *f, const struct vmg_journal_entry *e) {
        for (size_t i = 0; i < f->n; i++)
                if (strcmp(f->k[i].path, e->path) == 0 && strcmp(f->k[i].key, e->key) == 0)
                        return &f->k[i];
        return NULL;
}

static int fake_read(void *ud, const struct vmg_journal_entry *e, char **ret) {
        struct fake_knob *k = fake_find(ud, e);
        if (!k)
                return -ENOENT;
        if (k->read_err)
                return k->read_err;
        *ret = strdup(k->value);
        return *ret ? 0 : -ENOMEM;
}

static int fake_write(void *ud, const struct vmg_journal_entry *e, const char *value) {
        struct fake_knob *k = fake_find(ud, e);
        if (!k)
                return -ENOENT;
        if (k->write_err)
                return k->write_err;
        snprintf(k->value, sizeof k->value, "%s", value);
        k->writes++;
        return 0;
}

static char *make_dir(void) {
        char tmpl[] = "/tmp/vmg-journal-XXXXXX";
        char *d = mkdtemp(tmpl);
        return d ? strdup(d) : NULL;
}

static char *slurp(const char *dir, const char *name) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        static char buf[65536];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void rm_rf(const char *dir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", dir);
}

#define UUID_A "6f1c4c1e-0c4e-4bde-9a51-3b4f5a0d1a01"
#define UUID_B "6f1c4c1e-0c4e-4bde-9a51-3b4f5a0d1a02"

static const struct vmg_knob K_QUOTA = {"cgroup", "cpu", "machine/qemu-1-a.libvirt-qemu/cpu.cfs_quota_us", ""};
static const struct vmg_knob K_WBPS = {"cgroup", "blkio", "machine/qemu-1-a.libvirt-qemu/blkio.throttle.write_bps_device", "254:0"};
static const struct vmg_knob K_TUNE = {"blkiotune", "", "vda", "write_bytes_sec"};

static void test_persist_reload(void) {
        T_CASE("persist and reload");
        _cleanup_free_ char *dir = make_dir();
        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_count(j), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "-1", "20000"), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_WBPS, "0", "20971520"), 0);
        CHECK_INT(vmg_journal_record(j, UUID_B, "b", &K_TUNE, "0", "5242880"), 0);
        /* A second change keeps the first original and remembers the value it replaces. */
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "20000", "10000"), 0);
        const struct vmg_journal_entry *e = vmg_journal_find(j, UUID_A, &K_QUOTA);
        CHECK(e != NULL);
        if (e) {
                CHECK_STR(e->original, "-1");
                CHECK_STR(e->written, "10000");
                CHECK_STR(e->previous, "20000");
        }
        CHECK_INT(vmg_journal_count(j), 3);
        const char *text = slurp(dir, VMG_JOURNAL_FILE);
        CHECK_CONTAINS(text, "\"version\": 1");
        CHECK_CONTAINS(text, "blkio.throttle.write_bps_device");
        CHECK_CONTAINS(text, "\"original\": \"-1\"");
        CHECK(access(dir, F_OK) == 0);
        j = vmg_journal_free(j);

        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_count(j), 3);
        e = vmg_journal_find(j, UUID_B, &K_TUNE);
        CHECK(e != NULL);
        if (e) {
                CHECK_STR(e->name, "b");
                CHECK_STR(e->original, "0");
                CHECK_STR(e->written, "5242880");
                CHECK(e->previous == NULL);
        }
        e = vmg_journal_find(j, UUID_A, &K_QUOTA);
        CHECK(e && e->previous && strcmp(e->previous, "20000") == 0);
        vmg_journal_committed(j, UUID_A, &K_QUOTA);
        CHECK(e && e->previous == NULL);
        /* The temp file never stays behind. */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, VMG_JOURNAL_FILE);
        CHECK(access(tmp, F_OK) < 0);
        vmg_journal_free(j);
        rm_rf(dir);
}

static void test_unrecord_drop(void) {
        T_CASE("unrecord and drop");
        _cleanup_free_ char *dir = make_dir();
        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "-1", "20000"), 0);
        CHECK_INT(vmg_journal_unrecord(j, UUID_A, &K_QUOTA), 0);
        CHECK(vmg_journal_find(j, UUID_A, &K_QUOTA) == NULL);

        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "-1", "20000"), 0);
        vmg_journal_committed(j, UUID_A, &K_QUOTA);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "20000", "5000"), 0);
        CHECK_INT(vmg_journal_unrecord(j, UUID_A, &K_QUOTA), 0);
        const struct vmg_journal_entry *e = vmg_journal_find(j, UUID_A, &K_QUOTA);
        CHECK(e && strcmp(e->written, "20000") == 0 && strcmp(e->original, "-1") == 0 && !e->previous);

        CHECK_INT(vmg_journal_drop(j, UUID_A, &K_QUOTA), 0);
        CHECK_INT(vmg_journal_drop(j, UUID_A, &K_QUOTA), 0); /* absent: still fine */
        CHECK_INT(vmg_journal_count(j), 0);
        j = vmg_journal_free(j);
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_count(j), 0);
        vmg_journal_free(j);
        rm_rf(dir);
}

static void test_judge(void) {
        static const struct {
                const char *original, *written, *previous, *live;
                enum vmg_journal_verdict want;
        } cases[] = {
                {"-1", "20000", NULL, "20000", VMG_JV_RESTORE},
                {"-1", "20000", "40000", "40000", VMG_JV_RESTORE}, /* crash mid-update */
                {"-1", "20000", NULL, "-1", VMG_JV_ORIGINAL},      /* crash before the write */
                {"-1", "20000", NULL, "50000", VMG_JV_DRIFT},      /* admin changed it */
                {"max 100000", "20000 100000", NULL, "max 100000", VMG_JV_ORIGINAL},
                {"rbps=max wbps=max riops=max wiops=max", "rbps=max wbps=20971520 riops=max wiops=max",
                 NULL, "rbps=max wbps=1048576 riops=max wiops=max", VMG_JV_DRIFT},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(cases[i].live);
                struct vmg_journal_entry e = {
                        .original = (char *) cases[i].original, .written = (char *) cases[i].written,
                        .previous = (char *) cases[i].previous,
                };
                CHECK_INT(vmg_journal_judge(&e, cases[i].live), cases[i].want);
        }
}

static void test_restore(void) {
        T_CASE("restore verdicts");
        _cleanup_free_ char *dir = make_dir();
        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        const struct vmg_knob k_drift = {"cgroup", "blkio", "d/blkio.throttle.read_bps_device", "254:0"};
        const struct vmg_knob k_gone = {"cgroup", "cpu", "gone/cpu.cfs_quota_us", ""};
        const struct vmg_knob k_busy = {"cgroup", "blkio", "d/blkio.throttle.write_iops_device", "254:0"};
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "-1", "20000"), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &k_drift, "0", "1000"), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &k_gone, "-1", "30000"), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &k_busy, "0", "50"), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_TUNE, "0", "5242880"), 0);
        CHECK_INT(vmg_journal_record(j, UUID_B, "b", &K_WBPS, "0", "777"), 0);

        struct fake f = {.n = 4};
        f.k[0] = (struct fake_knob) {.path = K_QUOTA.path, .key = "", .value = "20000"};
        f.k[1] = (struct fake_knob) {.path = k_drift.path, .key = "254:0", .value = "4096"};
        f.k[2] = (struct fake_knob) {.path = k_busy.path, .key = "254:0", .value = "50", .write_err = -EBUSY};
        f.k[3] = (struct fake_knob) {.path = K_WBPS.path, .key = "254:0", .value = "777"};
        struct vmg_journal_backend b = {.kind = "cgroup", .read = fake_read, .write = fake_write, .userdata = &f};

        /* Only VM A, only kind cgroup: the blkiotune entry and VM B's stay. */
        CHECK_INT(vmg_journal_restore(j, UUID_A, NULL, &b, 1), -EBUSY);
        CHECK_STR(f.k[0].value, "-1");   /* restored */
        CHECK_INT(f.k[0].writes, 1);
        CHECK_STR(f.k[1].value, "4096"); /* drift: the admin's value stays */
        CHECK_INT(f.k[1].writes, 0);
        CHECK(vmg_journal_find(j, UUID_A, &K_QUOTA) == NULL);
        CHECK(vmg_journal_find(j, UUID_A, &k_drift) == NULL);
        CHECK(vmg_journal_find(j, UUID_A, &k_gone) == NULL);   /* vanished: dropped */
        CHECK(vmg_journal_find(j, UUID_A, &k_busy) != NULL);   /* transient: kept */
        CHECK(vmg_journal_find(j, UUID_A, &K_TUNE) != NULL);   /* no backend: kept */
        CHECK(vmg_journal_find(j, UUID_B, &K_WBPS) != NULL);   /* other VM: kept */
        CHECK_STR(f.k[3].value, "777");

        /* The drops are on disk too. */
        j = vmg_journal_free(j);
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_count(j), 3);

        /* One knob only. */
        CHECK_INT(vmg_journal_restore(j, NULL, &K_WBPS, &b, 1), 1);
        CHECK_STR(f.k[3].value, "0");
        CHECK_INT(vmg_journal_count(j), 2);

        /* Everything, once the device is no longer busy. */
        f.k[2].write_err = 0;
        CHECK_INT(vmg_journal_restore(j, NULL, NULL, &b, 1), 1);
        CHECK_STR(f.k[2].value, "0");
        CHECK_INT(vmg_journal_count(j), 1);
        vmg_journal_free(j);
        rm_rf(dir);
}

/* A vmguard killed while holding a throttle: the next one finds the original and puts it
 * back; the value live when it died is the one it wrote, so it is no drift. */
static void test_crash_recovery(void) {
        T_CASE("crash recovery");
        _cleanup_free_ char *dir = make_dir();
        int pfd[2];
        CHECK_INT(pipe(pfd), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct vmg_journal *j = NULL;
                char ok = 0;
                if (vmg_journal_open(dir, &j) == 0 &&
                    vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "-1", "20000") == 0 &&
                    vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "20000", "10000") == 0)
                        ok = 1;
                if (write(pfd[1], &ok, 1) != 1)
                        _exit(2);
                pause(); /* killed here, holding everything */
                _exit(3);
        }
        close(pfd[1]);
        char ok = 0;
        CHECK_INT(read(pfd[0], &ok, 1), 1);
        CHECK_INT(ok, 1);
        close(pfd[0]);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        /* Crashed between persisting 10000 and writing it: 20000 is still live. */
        struct fake f = {.n = 1};
        f.k[0] = (struct fake_knob) {.path = K_QUOTA.path, .key = "", .value = "20000"};
        struct vmg_journal_backend b = {.kind = "cgroup", .read = fake_read, .write = fake_write, .userdata = &f};
        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_count(j), 1);
        CHECK_INT(vmg_journal_restore(j, NULL, NULL, &b, 1), 1);
        CHECK_STR(f.k[0].value, "-1");
        CHECK_INT(vmg_journal_count(j), 0);
        vmg_journal_free(j);
        rm_rf(dir);
}

static void test_unwritable(void) {
        T_CASE("unwritable state dir");
        _cleanup_free_ char *dir = make_dir();
        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_check_writable(j), 0);
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "-1", "20000"), 0);
        /* A directory where the temp file must go makes every save fail, even for root
         * (a real read-only /run is in tests/integration/test_actuator_real.sh). */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, VMG_JOURNAL_FILE);
        CHECK_INT(mkdir(tmp, 0700), 0);
        CHECK(vmg_journal_check_writable(j) < 0);
        CHECK(vmg_journal_record(j, UUID_A, "a", &K_WBPS, "0", "100") < 0);
        CHECK(vmg_journal_find(j, UUID_A, &K_WBPS) == NULL); /* nothing remembered in memory */
        CHECK(vmg_journal_record(j, UUID_A, "a", &K_QUOTA, "20000", "5000") < 0);
        const struct vmg_journal_entry *e = vmg_journal_find(j, UUID_A, &K_QUOTA);
        CHECK(e && strcmp(e->written, "20000") == 0 && !e->previous);
        vmg_journal_free(j);
        rmdir(tmp);
        rm_rf(dir);
}

static void test_bad_files(void) {
        T_CASE("corrupt journal");
        _cleanup_free_ char *dir = make_dir();
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, VMG_JOURNAL_FILE);
        FILE *f = fopen(path, "we");
        fputs("{\"version\": 1, \"entries\": [ {\"uuid\": ", f);
        fclose(f);
        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(dir, &j), -EBADMSG);
        CHECK_CONTAINS(slurp(dir, VMG_JOURNAL_FILE), "\"uuid\": "); /* left as it was */

        T_CASE("unsafe and malformed entries dropped");
        f = fopen(path, "we");
        fputs("{\"version\": 1, \"entries\": ["
              "{\"uuid\":\"u1\",\"name\":\"x\",\"kind\":\"cgroup\",\"root\":\"cpu\",\"path\":\"../../etc/passwd\","
              "\"key\":\"\",\"original\":\"a\",\"written\":\"b\"},"
              "{\"uuid\":\"u2\",\"name\":\"x\",\"kind\":\"cgroup\",\"root\":\"cpu\",\"path\":\"/abs/cpu.max\","
              "\"key\":\"\",\"original\":\"a\",\"written\":\"b\"},"
              "{\"uuid\":\"u3\",\"name\":\"x\",\"kind\":\"cgroup\"},"
              "{\"uuid\":\"u4\",\"name\":\"ok\",\"kind\":\"cgroup\",\"root\":\"cpu\",\"path\":\"vm..1/cpu.max\","
              "\"key\":\"\",\"original\":\"max 100000\",\"written\":\"20000 100000\",\"previous\":null}]}\n", f);
        fclose(f);
        CHECK_INT(vmg_journal_open(dir, &j), 0);
        CHECK_INT(vmg_journal_count(j), 1);
        CHECK_STR(vmg_journal_get(j, 0)->uuid, "u4");
        const struct vmg_knob up = {"cgroup", "cpu", "a/../../x", ""};
        CHECK_INT(vmg_journal_record(j, UUID_A, "a", &up, "1", "2"), -EINVAL);
        vmg_journal_free(j);

        T_CASE("state dir is a file");
        CHECK_INT(vmg_journal_open(path, &j), -ENOTDIR);
        rm_rf(dir);
}

int main(void) {
        log_set_max_level(LOG_WARNING);
        test_persist_reload();
        test_unrecord_drop();
        test_judge();
        test_restore();
        test_crash_recovery();
        test_unwritable();
        test_bad_files();
        return t_summary();
}
