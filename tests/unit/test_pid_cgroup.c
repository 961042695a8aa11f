/* /proc/PID/cgroup, the one parser (cgroup discovery and svcprio use it), on a fake /proc. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "common/log.h"
#include "probes/cgroup.h"
#include "tests/fixtures/fake_tree.h"
#include "tests/harness.h"

static void check_line(const char *proc, int pid, const char *ctrl, int want_r, const char *want) {
        char *cg = NULL;
        int r = vmg_pid_cgroup(proc, pid, ctrl, &cg);
        CHECK_MSG(r == want_r, "pid %d %s: %d, expected %d", pid, ctrl ? ctrl : "v2", r, want_r);
        if (want)
                CHECK_STR(cg, want);
        free(cg);
}

int main(void) {
        log_set_max_level(LOG_EMERG);
        char proc[PATH_MAX];
        fx_tmpdir(proc, sizeof proc);
        /* Hybrid: libvirt's QEMU in its emulator/ child; cpu comounted with cpuacct. */
        fx_write(proc, "4242/cgroup",
                 "12:blkio:/machine/qemu-7-web-1.libvirt-qemu\n"
                 "4:cpu,cpuacct:/machine/qemu-7-web-1.libvirt-qemu/emulator\n"
                 "1:name=systemd:/\n"
                 "0::/machine/qemu-7-web-1.libvirt-qemu/emulator\n");
        fx_write(proc, "777/cgroup", "0::/system.slice/dnsmasq.service\n");
        fx_write(proc, "9/cgroup", "garbage without colons\n3:cpuset:/\n");

        T_CASE("v1 line by controller, comounts included");
        check_line(proc, 4242, "cpu", 0, "machine/qemu-7-web-1.libvirt-qemu/emulator");
        check_line(proc, 4242, "cpuacct", 0, "machine/qemu-7-web-1.libvirt-qemu/emulator");
        check_line(proc, 4242, "blkio", 0, "machine/qemu-7-web-1.libvirt-qemu");
        check_line(proc, 4242, "name=systemd", 0, "");
        check_line(proc, 4242, "cpu,cpuacct", -ENOENT, NULL); /* one word, not a list */
        T_CASE("cgroup2 line");
        check_line(proc, 4242, NULL, 0, "machine/qemu-7-web-1.libvirt-qemu/emulator");
        check_line(proc, 777, NULL, 0, "system.slice/dnsmasq.service");
        check_line(proc, 777, "cpu", -ENOENT, NULL);
        T_CASE("malformed lines skipped, gone process");
        check_line(proc, 9, NULL, -ENOENT, NULL);
        check_line(proc, 9, "cpuset", 0, "");
        check_line(proc, 31337, "cpu", -ESRCH, NULL);
        fx_rmtree(proc, "");
        return t_summary();
}
