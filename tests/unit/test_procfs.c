/* procfs probes on fake /proc trees built from real captures, plus one live pass over
 * this host's /proc through the same code. */
#include "tests/fixtures/fake_tree.h"

#include <sys/prctl.h>
#include <sys/types.h>

#include "common/log.h"
#include "common/macros.h"
#include "probes/procfs.h"
#include "tests/harness.h"

static void test_psi_parse(void) {
        static const struct {
                const char *name, *text;
                int r;
                uint64_t some, full;
        } cases[] = {
                { "host cpu", FX_PRESSURE_CPU, 0, 11749648, 0 },
                { "host io", FX_PRESSURE_IO, 0, 3087655, 2839547 },
                { "host memory", FX_PRESSURE_MEM, 0, 0, 0 },
                { "cgroup io", FX_CG_IO_PRESSURE, 0, 20345, 20345 },
                /* kernels before 5.13 print no "full" line in cpu pressure */
                { "some only", "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n", 0, 42, 0 },
                { "empty", "", -EINVAL, 0, 0 },
                { "no total", "some avg10=0.00 avg60=0.00 avg300=0.00\n", -EINVAL, 0, 0 },
                { "garbage total", "some avg10=0.00 total=x\n", -EINVAL, 0, 0 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct vmg_psi psi = { .some_us = 777 };
                T_CASE(cases[i].name);
                CHECK_INT(vmg_psi_parse(cases[i].text, &psi), cases[i].r);
                if (cases[i].r == 0) {
                        CHECK(psi.valid);
                        CHECK_U64(psi.some_us, cases[i].some);
                        CHECK_U64(psi.full_us, cases[i].full);
                } else
                        CHECK_U64(psi.some_us, 777); /* untouched on failure */
        }
}

static void test_pid_stat_parse(void) {
        static const struct {
                const char *name, *text, *comm;
                int r;
                char state;
                uint64_t ut, st, blk;
        } cases[] = {
                { "plain", FX_PID_STAT_PLAIN, "process_api", 0, 'S', 232, 404, 57 },
                { "comm with spaces and parens", FX_PID_STAT_TRICKY, "qemu) S (x y", 0, 'S', 10, 27, 3 },
                { "no parens", "1 process_api S 0 0", NULL, -EINVAL, 0, 0, 0, 0 },
                { "cut after comm", "1 (x)", NULL, -EINVAL, 0, 0, 0, 0 },
                { "non-numeric utime", "1 (x) S 0 0 0 0 -1 4 7 1 0 7 u 4\n", NULL, -EINVAL, 0, 0, 0, 0 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct vmg_pid_stat st = { 0 };
                T_CASE(cases[i].name);
                CHECK_INT(vmg_parse_pid_stat(cases[i].text, &st), cases[i].r);
                if (cases[i].r != 0)
                        continue;
                CHECK_STR(st.comm, cases[i].comm);
                CHECK_INT(st.state, cases[i].state);
                CHECK_U64(st.utime_ticks, cases[i].ut);
                CHECK_U64(st.stime_ticks, cases[i].st);
                CHECK(st.has_blkio);
                CHECK_U64(st.blkio_ticks, cases[i].blk);
        }
}

static void test_vcpu_names(void) {
        static const struct {
                const char *comm;
                bool vcpu;
        } cases[] = {
                { "CPU 0/TCG", true }, { "CPU 12/KVM", true }, { "CPU 1/HVF", true },
                { "qemu-system-x86", false }, { "IO mon_iothread", false }, { "CPU /TCG", false },
                { "CPU 0", false }, { "worker", false },
        };
        T_CASE("vcpu thread names");
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
                CHECK_MSG(vmg_is_vcpu_thread_name(cases[i].comm) == cases[i].vcpu, "%s", cases[i].comm);
}

/* A QEMU process 4242 with two TCG vCPU threads, an I/O thread and its main thread. */
static void build_qemu(const char *root) {
        fx_write(root, "4242/comm", "qemu-system-x86\n");
        fx_write(root, "4242/stat", FX_PID_STAT_PLAIN);
        fx_write(root, "4242/io", FX_PID_IO);
        fx_write(root, "4242/schedstat", FX_SCHEDSTAT_1);
        fx_write(root, "4242/task/4242/comm", "qemu-system-x86\n");
        fx_write(root, "4242/task/4242/schedstat", FX_SCHEDSTAT_1);
        fx_write(root, "4242/task/4243/comm", "IO mon_iothread\n");
        fx_write(root, "4242/task/4243/schedstat", FX_SCHEDSTAT_SELF);
        fx_write(root, "4242/task/4250/comm", "CPU 0/TCG\n");
        fx_write(root, "4242/task/4250/schedstat", FX_SCHEDSTAT_1);
        fx_write(root, "4242/task/4251/comm", "CPU 1/TCG\n");
        fx_write(root, "4242/task/4251/schedstat", FX_SCHEDSTAT_BASH);
}

static void test_fake_host(void) {
        char tmp[PATH_MAX];
        struct vmg_procfs *p = NULL;
        struct vmg_host_counters h = { 0 };
        bool on = true;

        fx_tmpdir(tmp, sizeof(tmp));
        fx_write(tmp, "pressure/cpu", FX_PRESSURE_CPU);
        fx_write(tmp, "pressure/io", FX_PRESSURE_IO);
        fx_write(tmp, "pressure/memory", FX_PRESSURE_MEM);
        fx_write(tmp, "stat", FX_PROC_STAT);
        fx_write(tmp, "sys/kernel/task_delayacct", "0\n");

        T_CASE("host counters");
        CHECK_INT(vmg_procfs_new(tmp, &p), 0);
        CHECK_INT(vmg_procfs_read_host(p, &h), 0);
        CHECK(h.psi_cpu.valid && h.psi_io.valid && h.psi_mem.valid);
        CHECK_U64(h.psi_cpu.some_us, 11749648);
        CHECK_U64(h.psi_io.full_us, 2839547);
        CHECK(h.stat_valid);
        CHECK_U64(h.user, 3860);
        CHECK_U64(h.system, 3851);
        CHECK_U64(h.idle, 54171);
        CHECK_U64(h.iowait, 327);
        CHECK_U64(h.softirq, 137);

        T_CASE("kept-open host files follow new contents");
        fx_write(tmp, "pressure/io", "some avg10=0.12 avg60=0.10 avg300=0.39 total=3099999\n"
                                     "full avg10=0.00 avg60=0.07 avg300=0.35 total=2839999\n");
        CHECK_INT(vmg_procfs_read_host(p, &h), 0);
        CHECK_U64(h.psi_io.some_us, 3099999);

        T_CASE("task_delayacct");
        CHECK_INT(vmg_procfs_task_delayacct(p, &on), 0);
        CHECK(!on);
        fx_write(tmp, "sys/kernel/task_delayacct", "1\n");
        CHECK_INT(vmg_procfs_task_delayacct(p, &on), 0);
        CHECK(on);
        fx_rmtree(tmp, "sys");
        on = false;
        CHECK_INT(vmg_procfs_task_delayacct(p, &on), 0);
        CHECK(on); /* pre-5.14 kernels: always accounted */
        p = vmg_procfs_free(p);

        T_CASE("no PSI kernel, bad /proc/stat");
        fx_rmtree(tmp, "pressure");
        CHECK_INT(vmg_procfs_new(tmp, &p), 0);
        h = (struct vmg_host_counters) { 0 };
        CHECK_INT(vmg_procfs_read_host(p, &h), 0);
        CHECK(!h.psi_io.valid && h.stat_valid);
        p = vmg_procfs_free(p);
        fx_write(tmp, "stat", "intr 1 2 3\n");
        CHECK_INT(vmg_procfs_new(tmp, &p), 0);
        CHECK_INT(vmg_procfs_read_host(p, &h), -EINVAL);
        p = vmg_procfs_free(p);

        T_CASE("missing proc root");
        fx_rmtree(tmp, "");
        CHECK_INT(vmg_procfs_new(tmp, &p), -ENOENT);
}

static void test_fake_pid(void) {
        char tmp[PATH_MAX];
        struct vmg_procfs *p = NULL;
        struct vmg_pid_io io;
        struct vmg_schedstat ss;
        struct vmg_pid_stat st;
        char comm[32];
        pid_t *v = NULL;
        size_t n = 0;

        fx_tmpdir(tmp, sizeof(tmp));
        build_qemu(tmp);
        fx_write(tmp, "3805/comm", "bash\n");
        fx_write(tmp, "3805/stat", FX_PID_STAT_TRICKY);
        fx_mkdir(tmp, "self-not-a-pid");
        CHECK_INT(vmg_procfs_new(tmp, &p), 0);

        T_CASE("pid files");
        CHECK_INT(vmg_procfs_pid_io(p, 4242, &io), 0);
        CHECK_U64(io.rchar, 7272);
        CHECK_U64(io.wchar, 296);
        CHECK_U64(io.syscr, 12);
        CHECK_U64(io.syscw, 1);
        CHECK_INT(vmg_procfs_schedstat(p, 4242, 4251, &ss), 0);
        CHECK_U64(ss.run_ns, 377151616);
        CHECK_U64(ss.wait_ns, 400558940);
        CHECK_U64(ss.timeslices, 258);
        CHECK_INT(vmg_procfs_pid_stat(p, 3805, 0, &st), 0);
        CHECK_U64(st.stime_ticks, 27);
        CHECK_INT(vmg_procfs_comm(p, 4242, 4250, comm, sizeof(comm)), 0);
        CHECK_STR(comm, "CPU 0/TCG");
        CHECK_INT(vmg_procfs_pid_io(p, 999, &io), -ENOENT);
        CHECK_INT(vmg_procfs_schedstat(p, 4242, 999, &ss), -ENOENT);

        T_CASE("listing");
        CHECK_INT(vmg_procfs_list_pids(p, &v, &n), 0);
        CHECK_INT(n, 2);
        if (n == 2)
                CHECK(v[0] == 3805 && v[1] == 4242);
        free(v);
        CHECK_INT(vmg_procfs_list_tids(p, 4242, &v, &n), 0);
        CHECK_INT(n, 4);
        free(v);

        T_CASE("bad io content");
        fx_write(tmp, "3805/io", "rchar: 1\nwchar: x\n");
        CHECK_INT(vmg_procfs_pid_io(p, 3805, &io), -EINVAL);

        T_CASE("ticks");
        CHECK_U64(vmg_procfs_ticks_to_ns(100), (uint64_t) 100 * (NSEC_PER_SEC / (uint64_t) sysconf(_SC_CLK_TCK)));
        vmg_procfs_free(p);
        fx_rmtree(tmp, "");
}

static void test_qemu_handle(void) {
        char tmp[PATH_MAX];
        struct vmg_procfs *p = NULL;
        struct vmg_proc_qemu *q = NULL;
        struct vmg_vm_counters c = { 0 };

        fx_tmpdir(tmp, sizeof(tmp));
        build_qemu(tmp);
        CHECK_INT(vmg_procfs_new(tmp, &p), 0);

        T_CASE("qemu: io and vcpu run delay");
        CHECK_INT(vmg_proc_qemu_open(p, 4242, "noisy", &q), 0);
        CHECK_INT(vmg_proc_qemu_read(q, &c), 0);
        CHECK(c.proc_io_valid);
        CHECK_U64(c.proc_rchar, 7272);
        CHECK_U64(c.proc_wchar, 296);
        CHECK(c.vcpu_delay_valid);
        CHECK_INT(c.n_vcpus, 2);
        /* only the two "CPU n/TCG" threads: 34960317 + 400558940 */
        CHECK_U64(c.vcpu_run_delay_ns, 34960317ULL + 400558940ULL);

        T_CASE("qemu: kept-open files follow new contents");
        fx_write(tmp, "4242/task/4250/schedstat", "203608623 35000000 420\n");
        fx_write(tmp, "4242/io", "rchar: 8000\nwchar: 100000\nsyscr: 12\nsyscw: 5\nread_bytes: 0\n"
                                 "write_bytes: 4096\ncancelled_write_bytes: 0\n");
        CHECK_INT(vmg_proc_qemu_read(q, &c), 0);
        CHECK_U64(c.vcpu_run_delay_ns, 35000000ULL + 400558940ULL);
        CHECK_U64(c.proc_wchar, 100000);
        CHECK_U64(c.proc_write_bytes, 4096);

        T_CASE("qemu: a vCPU thread vanished -> rescan");
        fx_rmtree(tmp, "4242/task/4251");
        CHECK_INT(vmg_proc_qemu_read(q, &c), 0);
        CHECK(c.vcpu_delay_valid);
        CHECK_INT(c.n_vcpus, 1);
        CHECK_U64(c.vcpu_run_delay_ns, 35000000ULL);

        T_CASE("qemu: process vanished");
        fx_rmtree(tmp, "4242");
        c.proc_wchar = 12345;
        CHECK_INT(vmg_proc_qemu_read(q, &c), -ENOENT);
        CHECK_U64(c.proc_wchar, 12345); /* nothing written on failure */
        q = vmg_proc_qemu_free(q);
        CHECK_INT(vmg_proc_qemu_open(p, 4242, "noisy", &q), -ENOENT);
        CHECK(q == NULL);
        vmg_procfs_free(p);
        fx_rmtree(tmp, "");
}

/* This host's real /proc through the same code (root "/proc"). */
static void test_live(void) {
        struct vmg_procfs *p = NULL;
        struct vmg_host_counters h = { 0 };
        struct vmg_pid_stat st;
        struct vmg_pid_io io;
        struct vmg_schedstat ss;
        struct vmg_proc_qemu *q = NULL;
        struct vmg_vm_counters c = { 0 };
        char comm[32], self[17] = "";
        bool on;

        T_CASE("live /proc");
        /* Our comm as the kernel has it: "test_procfs", or "memcheck-amd64-" under
         * `make valgrind`, whose tool is the process that runs. */
        CHECK(prctl(PR_GET_NAME, self) == 0);
        CHECK_INT(vmg_procfs_new(NULL, &p), 0);
        if (!p)
                return;
        CHECK_STR(vmg_procfs_root(p), "/proc");
        CHECK_INT(vmg_procfs_read_host(p, &h), 0);
        CHECK(h.stat_valid);
        CHECK(h.user + h.system + h.idle > 0);
        if (t_require(access("/proc/pressure/io", R_OK) == 0, "this kernel has no PSI (/proc/pressure/io)"))
                CHECK(h.psi_io.valid && h.psi_cpu.valid);
        CHECK_INT(vmg_procfs_task_delayacct(p, &on), 0);
        CHECK_INT(vmg_procfs_pid_stat(p, getpid(), 0, &st), 0);
        CHECK_STR(st.comm, self);
        CHECK_INT(st.state, 'R');
        CHECK(st.has_blkio);
        CHECK_INT(vmg_procfs_comm(p, getpid(), getpid(), comm, sizeof(comm)), 0);
        CHECK_STR(comm, self);
        CHECK_INT(vmg_procfs_pid_io(p, getpid(), &io), 0);
        CHECK(io.rchar > 0); /* the dynamic loader read our libraries */
        CHECK_INT(vmg_procfs_schedstat(p, getpid(), 0, &ss), 0);
        CHECK(ss.run_ns > 0 && ss.timeslices > 0);
        CHECK_INT(vmg_proc_qemu_open(p, getpid(), "self", &q), 0);
        if (q) {
                CHECK_INT(vmg_proc_qemu_read(q, &c), 0);
                CHECK(c.proc_io_valid && c.proc_rchar > 0);
                CHECK(!c.vcpu_delay_valid); /* no "CPU n/…" thread in a test binary */
                vmg_proc_qemu_free(q);
        }
        vmg_procfs_free(p);
}

int main(void) {
        log_set_max_level(LOG_EMERG);
        test_psi_parse();
        test_pid_stat_parse();
        test_vcpu_names();
        test_fake_host();
        test_fake_pid();
        test_qemu_handle();
        test_live();
        return t_summary();
}
