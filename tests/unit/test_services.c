/* Host-service probes: PIDs by comm on a fake /proc, by systemd unit on a fake cgroup tree,
 * counters summed over processes and threads; live: libproc2's scan agrees with ours. */
#include "tests/fixtures/fake_tree.h"

#include <sys/prctl.h>

#include "common/log.h"
#include "common/macros.h"
#include "probes/services.h"
#include "tests/harness.h"

/* dnsmasq 101 (two threads), dnsmasq 102 (helper), and an unrelated bash. */
static void build_proc(const char *root) {
        fx_write(root, "proc/101/comm", "dnsmasq\n");
        fx_write(root, "proc/101/stat", "101 (dnsmasq) S 1 101 101 0 -1 4194560 6806 100852 0 35 "
                                        "10 27 319 359 20 0 1 0 29925 5365760 1057 18446744073709551615 "
                                        "1 1 0 0 0 0 65536 4 1132560123 1 0 0 17 1 0 0 3 0 0\n");
        fx_write(root, "proc/101/task/101/stat", "101 (dnsmasq) S 1 101 101 0 -1 4194560 6806 100852 0 "
                                                 "35 6 20 319 359 20 0 1 0 29925 5365760 1057 "
                                                 "18446744073709551615 1 1 0 0 0 0 65536 4 1132560123 1 "
                                                 "0 0 17 1 0 0 3 0 0\n");
        fx_write(root, "proc/101/task/101/schedstat", FX_SCHEDSTAT_BASH);
        fx_write(root, "proc/101/task/105/stat", "105 (dnsmasq) S 1 101 101 0 -1 4194560 0 0 0 0 4 7 0 0 "
                                                 "20 0 1 0 29925 5365760 1057 18446744073709551615 1 1 0 0 0 "
                                                 "0 65536 4 1132560123 1 0 0 17 1 0 0 2 0 0\n");
        fx_write(root, "proc/101/task/105/schedstat", FX_SCHEDSTAT_SELF);
        fx_write(root, "proc/102/comm", "dnsmasq\n");
        fx_write(root, "proc/102/stat", FX_PID_STAT_PLAIN);
        fx_write(root, "proc/102/task/102/stat", FX_PID_STAT_PLAIN);
        fx_write(root, "proc/102/task/102/schedstat", FX_SCHEDSTAT_1);
        /* The owner's marks: the binary root installed, run as root (the lab's --user=root). */
        fx_symlink(root, "/usr/sbin/dnsmasq", "proc/101/exe");
        fx_write(root, "proc/101/status", FX_STATUS_ROOT);
        fx_symlink(root, "/usr/sbin/dnsmasq (deleted)", "proc/102/exe");
        fx_write(root, "proc/102/status", FX_STATUS_ROOT);
        fx_write(root, "proc/3805/comm", "bash\n");
        fx_write(root, "proc/3805/stat", FX_PID_STAT_TRICKY);
        fx_write(root, "proc/3805/task/3805/schedstat", FX_SCHEDSTAT_BASH);
}

static void test_by_comm_and_read(void) {
        char tmp[PATH_MAX], proc[PATH_MAX + 8];
        struct vmg_procfs *p = NULL;
        pid_t *pids = NULL;
        size_t n = 0;
        struct vmg_service_counters c = { .ts_ns = 77 };

        fx_tmpdir(tmp, sizeof(tmp));
        build_proc(tmp);
        snprintf(proc, sizeof(proc), "%s/proc", tmp);
        CHECK_INT(vmg_procfs_new(proc, &p), 0);
        if (!p)
                return;

        T_CASE("pids by comm");
        CHECK_INT(vmg_service_pids_by_comm(p, "dnsmasq", &pids, &n), 0);
        CHECK_INT(n, 2);
        if (n == 2)
                CHECK(pids[0] == 101 && pids[1] == 102);
        free(pids);
        CHECK_INT(vmg_service_pids_by_comm(p, "unbound", &pids, &n), 0);
        CHECK_INT(n, 0);
        free(pids);
        T_CASE("comm compared on 15 bytes");
        fx_write(tmp, "proc/103/comm", "systemd-resolve\n");
        CHECK_INT(vmg_service_pids_by_comm(p, "systemd-resolved", &pids, &n), 0);
        CHECK_INT(n, 1);
        free(pids);
        fx_rmtree(tmp, "proc/103");

        T_CASE("sum over processes and threads, delayacct on");
        pid_t want[] = { 101, 102 };
        CHECK_INT(vmg_service_read(p, want, 2, 0, &c), 0);
        CHECK(c.valid);
        CHECK_INT(c.n_pids, 2);
        CHECK_U64(c.ts_ns, 77);
        /* process utime+stime: (10+27) + (232+404) ticks */
        CHECK_U64(c.cpu_ns, vmg_procfs_ticks_to_ns(10 + 27 + 232 + 404));
        CHECK_U64(c.run_delay_ns, 400558940ULL + 351496ULL + 34960317ULL);
        CHECK_U64(c.nr_timeslices, 258 + 3 + 418);
        /* field 42 per thread: 3 + 2 (pid 101) + 57 (pid 102) */
        CHECK(c.blkio_delay_valid);
        CHECK_U64(c.blkio_delay_ns, vmg_procfs_ticks_to_ns(3 + 2 + 57));

        T_CASE("delayacct turned on after a service process started: its I/O wait is unknown");
        /* field 22: pid 101's threads started at tick 29925, pid 102 at tick 18 */
        CHECK_INT(vmg_service_read(p, want, 2, 20000, &c), 0);
        CHECK(c.valid);
        CHECK(!c.blkio_delay_valid);
        CHECK_U64(c.blkio_delay_ns, 0);
        CHECK_INT(vmg_service_read(p, want, 2, 10, &c), 0);
        CHECK(c.blkio_delay_valid);
        CHECK_U64(c.blkio_delay_ns, vmg_procfs_ticks_to_ns(3 + 2 + 57));

        T_CASE("delayacct off, a pid vanished");
        pid_t some[] = { 101, 4444 };
        CHECK_INT(vmg_service_read(p, some, 2, VMG_DELAYACCT_OFF, &c), 0);
        CHECK(c.valid);
        CHECK_INT(c.n_pids, 1);
        CHECK(!c.blkio_delay_valid);
        CHECK_U64(c.blkio_delay_ns, 0);

        T_CASE("all gone");
        pid_t gone[] = { 4444 };
        CHECK_INT(vmg_service_read(p, gone, 1, 0, &c), 0);
        CHECK(!c.valid);
        CHECK_INT(c.n_pids, 0);

        T_CASE("unparsable schedstat");
        fx_write(tmp, "proc/102/task/102/schedstat", "garbage\n");
        CHECK_INT(vmg_service_read(p, want, 2, 0, &c), -EINVAL);
        vmg_procfs_free(p);
        fx_rmtree(tmp, "");
}

static void test_by_unit(void) {
        char tmp[PATH_MAX], mi[PATH_MAX + 16], root[PATH_MAX + 16];
        struct vmg_cgroup_ctx *ctx = NULL;
        pid_t *pids = NULL;
        size_t n = 0;

        fx_tmpdir(tmp, sizeof(tmp));
        snprintf(mi, sizeof(mi), "%s/mountinfo", tmp);
        snprintf(root, sizeof(root), "%s/cg", tmp);
        fx_write(tmp, "mountinfo", FX_MOUNTINFO_HYBRID);
        fx_mkdir(tmp, "cg/cpu");
        fx_mkdir(tmp, "cg/unified/system.slice/dnsmasq.service");
        fx_write(tmp, "cg/systemd/system.slice/dnsmasq.service/cgroup.procs", "101\n102\n");
        fx_write(tmp, "cg/systemd/system.slice/dnsmasq.service/helper/cgroup.procs", "110\n");
        fx_write(tmp, "cg/systemd/system.slice/unbound.service/cgroup.procs", "");
        fx_write(tmp, "cg/systemd/user.slice/cgroup.procs", "3805\n");
        /* Deeper than the domain lookup's depth limit: a unit's sub-cgroups count at any depth. */
        fx_write(tmp, "cg/systemd/system.slice/openvpn.service/a/b/c/d/e/cgroup.procs", "120\n");
        fx_write(tmp, "cg/systemd/system.slice/openvpn.service/cgroup.procs", "119\n");
        /* A symlinked sub-cgroup is not followed out of the unit. */
        char target[PATH_MAX + 32];
        snprintf(target, sizeof(target), "%s/cg/systemd/user.slice", tmp);
        fx_symlink(tmp, target, "cg/systemd/system.slice/openvpn.service/escape");
        struct vmg_cgroup_paths paths = { .root = root, .mountinfo = mi, .proc = tmp };
        CHECK_INT(vmg_cgroup_ctx_new(&paths, &ctx), 0);
        if (!ctx)
                return;

        T_CASE("pids by unit, sub-cgroups included");
        CHECK_INT(vmg_service_pids_by_unit(ctx, "dnsmasq.service", &pids, &n), 0);
        CHECK_INT(n, 3);
        if (n == 3)
                CHECK(pids[0] == 101 && pids[1] == 102 && pids[2] == 110);
        free(pids);
        T_CASE("sub-cgroups at any depth, symlinks not followed");
        CHECK_INT(vmg_service_pids_by_unit(ctx, "openvpn.service", &pids, &n), 0);
        CHECK_INT(n, 2);
        if (n == 2)
                CHECK(pids[0] == 119 && pids[1] == 120);
        free(pids);
        T_CASE("stopped unit: cgroup with no processes");
        CHECK_INT(vmg_service_pids_by_unit(ctx, "unbound.service", &pids, &n), 0);
        CHECK_INT(n, 0);
        free(pids);
        T_CASE("unknown unit");
        CHECK_INT(vmg_service_pids_by_unit(ctx, "named.service", &pids, &n), -ENOENT);
        T_CASE("dispatch on the policy kind");
        const struct vmg_service unit = { .kind = VMG_SERVICE_UNIT, .match = "dnsmasq.service" };
        CHECK_INT(vmg_service_find(NULL, ctx, &unit, false, &pids, &n), 0);
        CHECK_INT(n, 3);
        free(pids);
        CHECK_INT(vmg_service_find(NULL, NULL, &unit, false, &pids, &n), -EINVAL);
        vmg_cgroup_ctx_free(ctx);
        fx_rmtree(tmp, "");
}

/* The attack: local users start processes named dnsmasq (a renamed copy of sleep, the real
 * /usr/sbin/dnsmasq under their own uid, a setuid trick leaving only the effective uid at 0).
 * None of them may be taken as the service: their delays would count as the service's harm
 * and, without systemd, vmguard would move them as root into vmguard.services. */
static void test_impostors(void) {
        char tmp[PATH_MAX], proc[PATH_MAX + 8];
        struct vmg_procfs *p = NULL;
        pid_t *pids = NULL;
        size_t n = 0;
        const struct vmg_service dns = { .name = "dnsmasq", .kind = VMG_SERVICE_PROCESS,
                                         .match = "dnsmasq", .exe = "/usr/sbin/dnsmasq", .uid = 0 };

        fx_tmpdir(tmp, sizeof(tmp));
        build_proc(tmp);
        /* 201: a copy of sleep renamed dnsmasq, run by nobody */
        fx_write(tmp, "proc/201/comm", "dnsmasq\n");
        fx_symlink(tmp, "/tmp/x/dnsmasq", "proc/201/exe");
        fx_write(tmp, "proc/201/status", FX_STATUS_NOBODY);
        /* 202: the real binary, started by nobody */
        fx_write(tmp, "proc/202/comm", "dnsmasq\n");
        fx_symlink(tmp, "/usr/sbin/dnsmasq", "proc/202/exe");
        fx_write(tmp, "proc/202/status", FX_STATUS_NOBODY);
        /* 203: the real binary, effective uid 0 but real uid nobody */
        fx_write(tmp, "proc/203/comm", "dnsmasq\n");
        fx_symlink(tmp, "/usr/sbin/dnsmasq", "proc/203/exe");
        fx_write(tmp, "proc/203/status", "Name:\tdnsmasq\nUmask:\t0022\nState:\tS (sleeping)\n"
                                        "Uid:\t65534\t0\t0\t0\nGid:\t0\t0\t0\t0\n");
        /* 204: a path that only starts like the service's */
        fx_write(tmp, "proc/204/comm", "dnsmasq\n");
        fx_symlink(tmp, "/usr/sbin/dnsmasq.evil", "proc/204/exe");
        fx_write(tmp, "proc/204/status", FX_STATUS_ROOT);
        /* 205: exe unreadable (no symlink): not the service either */
        fx_write(tmp, "proc/205/comm", "dnsmasq\n");
        fx_write(tmp, "proc/205/status", FX_STATUS_ROOT);
        snprintf(proc, sizeof(proc), "%s/proc", tmp);
        CHECK_INT(vmg_procfs_new(proc, &p), 0);
        if (!p)
                return;

        T_CASE("impostors named dnsmasq are not the service");
        CHECK_INT(vmg_service_find(p, NULL, &dns, false, &pids, &n), 0);
        CHECK_INT(n, 2);
        if (n == 2)
                CHECK(pids[0] == 101 && pids[1] == 102);
        for (size_t i = 0; i < n; i++)
                CHECK_MSG(pids[i] < 200, "pid %d (an impostor) taken as the service", (int) pids[i]);
        free(pids);
        T_CASE("the service's uid is the host file's: dnsmasq as nobody");
        const struct vmg_service as_nobody = { .kind = VMG_SERVICE_PROCESS, .match = "dnsmasq",
                                               .exe = "/usr/sbin/dnsmasq", .uid = 65534 };
        CHECK_INT(vmg_service_find(p, NULL, &as_nobody, false, &pids, &n), 0);
        CHECK_INT(n, 1);
        if (n == 1)
                CHECK_INT(pids[0], 202);
        free(pids);
        T_CASE("owner check needs a proc root");
        CHECK_INT(vmg_service_find(NULL, NULL, &dns, false, &pids, &n), -EINVAL);
        vmg_procfs_free(p);
        fx_rmtree(tmp, "");
}

/* libproc2 reads the real /proc: it must find this very process, as our scan does. */
static void test_live(void) {
        struct vmg_procfs *p = NULL;
        pid_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        struct vmg_service_counters c = { 0 };
        pid_t self = getpid();
        bool found_a = false, found_b = false;

        T_CASE("live: libproc2 and readdir scans agree on ourselves");
        /* "test_services", or "memcheck-amd64-" under `make valgrind` */
        char comm[17] = "";
        CHECK(prctl(PR_GET_NAME, comm) == 0);
        CHECK_INT(vmg_procfs_new(NULL, &p), 0);
        CHECK_INT(vmg_service_pids_by_comm_live(comm, &a, &na), 0);
        CHECK_INT(vmg_service_pids_by_comm(p, comm, &b, &nb), 0);
        for (size_t i = 0; i < na; i++)
                found_a |= a[i] == self;
        for (size_t i = 0; i < nb; i++)
                found_b |= b[i] == self;
        CHECK(found_a);
        CHECK(found_b);
        T_CASE("live: our own counters");
        CHECK_INT(vmg_service_read(p, &self, 1, VMG_DELAYACCT_OFF, &c), 0);
        CHECK(c.valid && c.n_pids == 1 && c.nr_timeslices > 0);
        free(a);
        free(b);
        vmg_procfs_free(p);
}

int main(void) {
        log_set_max_level(LOG_EMERG);
        test_by_comm_and_read();
        test_by_unit();
        test_impostors();
        test_live();
        return t_summary();
}
