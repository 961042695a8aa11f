/* The daemon's start-up order (issue 14 items 5 and 6), on a fake hybrid cgroup and /proc
 * tree and a mkdtemp() state dir, libvirt never reached:
 * - a vmguard killed while throttling, restarted with a broken tenant file: every original
 *   is back (cgroup quota, kernel.task_delayacct) although the start fails on the policy;
 * - a second vmguardd, on the same host lock or the same state dir: refused with the running
 *   instance's pid, and nothing changed (the journal and the quota stay as the first left
 *   them). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/act/journal.h"
#include "controller/daemon/lock.h"
#include "controller/daemon/manager.h"
#include "tests/fixtures/fake_tree.h"
#include "tests/harness.h"

#define QUOTA FX_WEB1_DOM "/cpu.cfs_quota_us"
#define WEB1_UUID "0f8fad5b-d9cb-469f-a165-70867728950e"

static struct fx_host h;
static const char *tmp = h.tmp, *cg = h.cg, *proc = h.proc, *state = h.state, *mountinfo = h.mountinfo;
static char lockfile[PATH_MAX + 32], tenants[PATH_MAX + 16];

/* What a vmguard killed with SIGKILL while throttling web-1 leaves: the limits in the
 * kernel, their originals in the journal. The original quota (an admin's 1-core cap) is as
 * long as the throttle's file content: a fake file is overwritten in place, not replaced as
 * cgroupfs does. */
static void killed_daemon_left(void) {
        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(state, &j), 0);
        const struct vmg_knob quota = { .kind = "cgroup", .root = "cpu", .path = QUOTA, .key = "" };
        const struct vmg_knob delay = { .kind = "sysctl", .root = "", .path = "kernel/task_delayacct", .key = "" };
        CHECK_INT(vmg_journal_record(j, WEB1_UUID, "web-1", &quota, "100000", "20000"), 0);
        CHECK_INT(vmg_journal_record(j, "host", "host", &delay, "0", "1"), 0);
        vmg_journal_free(j);
        fx_write(cg, "cpu/" QUOTA, "20000\n");
        fx_write(proc, "sys/kernel/task_delayacct", "1\n");
}

static size_t journal_entries(void) {
        struct vmg_journal *j = NULL;
        if (vmg_journal_open(state, &j) < 0)
                return (size_t) -1;
        size_t n = vmg_journal_count(j);
        vmg_journal_free(j);
        return n;
}

/* vmg_manager_new with stderr captured into buf. */
static int manager_new_captured(const struct vmg_manager_config *cfg, struct vmg_manager **m, char *buf,
                                size_t len) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/stderr", tmp);
        fflush(stderr);
        int saved = dup(STDERR_FILENO);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        dup2(fd, STDERR_FILENO);
        close(fd);
        int r = vmg_manager_new(cfg, m);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        fx_read(tmp, "stderr", buf, len);
        fputs(buf, stderr);
        return r;
}

int main(void) {
        char buf[4096], out[8192];
        fx_host_init(&h);
        snprintf(lockfile, sizeof lockfile, "%s/host.lock", tmp);
        snprintf(tenants, sizeof tenants, "%s/tenants.d", tmp);
        /* A tenant file with a syntax error: a trailing comma on line 3. */
        fx_write(tmp, "tenants.d/acme.json", "{\n  \"tenant\": \"acme\",\n  \"vms\": { \"names\": [\"web-*\"], },\n}\n");
        struct vmg_manager_config cfg = {
                .host_file = "tests/fixtures/policy/good/host.json",
                .tenants_dir = tenants,
                .uri = "test:///default",
                .state_dir = state,
                .cgroup_root = cg,
                .proc_root = proc,
                .mountinfo = mountinfo,
                .netns_dir = "/nonexistent-netns-dir",
                .lock_file = lockfile,
        };
        struct vmg_manager *m = NULL;

        T_CASE("killed while throttling, restarted with a broken tenant file: originals back first");
        killed_daemon_left();
        CHECK_INT(journal_entries(), 2);
        int r = manager_new_captured(&cfg, &m, out, sizeof out);
        CHECK(r < 0);
        CHECK(m == NULL);
        CHECK_STR(fx_read(cg, "cpu/" QUOTA, buf, sizeof buf), "100000");
        CHECK_STR(fx_read(proc, "sys/kernel/task_delayacct", buf, sizeof buf), "0");
        CHECK_INT(journal_entries(), 0);
        CHECK_CONTAINS(out, "acme.json:3:");

        T_CASE("another vmguardd holds the host lock: refused with its pid, nothing changed");
        killed_daemon_left();
        fx_write(tmp, "tenants.d/acme.json", "{ \"tenant\": \"acme\", \"vms\": { \"names\": [\"web-*\"] } }\n");
        pid_t holder = 0;
        int first = vmg_lock_take(lockfile, &holder);
        CHECK(first >= 0);
        m = NULL;
        r = manager_new_captured(&cfg, &m, out, sizeof out);
        CHECK_INT(r, -EBUSY);
        CHECK(m == NULL);
        char want[PATH_MAX + 128];
        snprintf(want, sizeof want, "another vmguardd is running (pid %ld, holding %s", (long) getpid(), lockfile);
        CHECK_CONTAINS(out, want);
        CHECK_STR(fx_read(cg, "cpu/" QUOTA, buf, sizeof buf), "20000");
        CHECK_STR(fx_read(proc, "sys/kernel/task_delayacct", buf, sizeof buf), "1");
        CHECK_INT(journal_entries(), 2);
        close(first);

        T_CASE("another vmguardd on the same state dir, another host lock path: refused too");
        char statelock[PATH_MAX + 32];
        snprintf(statelock, sizeof statelock, "%s/vmguardd.lock", state);
        first = vmg_lock_take(statelock, &holder);
        CHECK(first >= 0);
        r = manager_new_captured(&cfg, &m, out, sizeof out);
        CHECK_INT(r, -EBUSY);
        CHECK_CONTAINS(out, statelock);
        CHECK_STR(fx_read(cg, "cpu/" QUOTA, buf, sizeof buf), "20000");
        CHECK_INT(journal_entries(), 2);

        T_CASE("the lock holder's pid is read back from the file");
        CHECK_INT(vmg_lock_take(statelock, &holder), -EBUSY);
        CHECK_INT(holder, getpid());
        close(first);

        fx_rmtree(tmp, "");
        return t_summary();
}
