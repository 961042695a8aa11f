/* The applier keeps each desired limit until it is seen in force (issue 14 item 3): a write
 * that fails with -EBUSY twice is retried with backoff (1 s, then 2 s) and ends in sync, and
 * the out-of-sync count shows it meanwhile; a block I/O tune job that fails is not believed
 * either; a writeback disk gets QEMU's throttle only, a cache=none disk the blkio one too.
 * Fake hybrid cgroup tree, the actuator's write seam and fake libvirt calls. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "controller/act/actuator.h"
#include "controller/act/blkiotune.h"
#include "controller/act/journal.h"
#include "controller/daemon/apply.h"
#include "probes/domxml.h"
#include "probes/monitor.h"
#include "tests/fixtures/fake_tree.h"
#include "tests/harness.h"

#define S NSEC_PER_SEC
#define UUID "0f8fad5b-d9cb-469f-a165-70867728950e"

/* cpu.cfs_quota_us refuses its first busy_left writes with -EBUSY. */
static int busy_left, quota_writes, blkio_writes;
static int flaky_write(int dirfd, const char *relpath, const char *value, void *userdata) {
        if (strstr(relpath, "blkio.throttle."))
                blkio_writes++;
        if (strstr(relpath, "cpu.cfs_quota_us")) {
                quota_writes++;
                if (busy_left > 0) {
                        busy_left--;
                        return -EBUSY;
                }
        }
        return vmg_act_write_default(dirfd, relpath, value, userdata);
}

/* libvirt: one disk, whose set fails set_busy_left times. */
static unsigned long long bt_value;
static int set_busy_left, bt_sets;
static int fake_get(void *ud, const char *uuid, const char *disk, struct vmg_iotune *ret) {
        (void) ud, (void) uuid, (void) disk;
        *ret = (struct vmg_iotune) {};
        ret->v[VMG_IOTUNE_WRITE_BYTES] = bt_value;
        return 0;
}
static int fake_set(void *ud, const char *uuid, const char *disk, const struct vmg_iotune *s) {
        (void) ud, (void) uuid, (void) disk;
        bt_sets++;
        if (set_busy_left > 0) {
                set_busy_left--;
                return -EBUSY;
        }
        bt_value = s->v[VMG_IOTUNE_WRITE_BYTES];
        return 0;
}

/* Waits for the block I/O tune jobs and hands their results to the applier. */
static void bt_settle(struct vmg_blkiotune *bt, struct vmg_applied_set *set, uint64_t now) {
        for (int i = 0; i < 200 && vmg_blkiotune_pending(bt); i++) {
                struct pollfd p = { .fd = vmg_blkiotune_fd(bt), .events = POLLIN };
                (void) poll(&p, 1, 10);
                struct vmg_blkiotune_result res[8];
                size_t n = vmg_blkiotune_dispatch(bt, res, ARRAY_SIZE(res));
                for (size_t k = 0; k < n; k++)
                        vmg_apply_blkiotune_done(set, &res[k], now);
        }
}

static struct vmg_action action(enum vmg_resource res, double limit) {
        struct vmg_action a = { .tenant = 0, .resource = res, .new_limit = limit, .kind = VMG_ACT_THROTTLE };
        snprintf(a.uuid, sizeof a.uuid, "%s", UUID);
        snprintf(a.vm, sizeof a.vm, "web-1");
        return a;
}

int main(void) {
        struct fx_host h;
        char cpu_root[PATH_MAX + 16], blkio_root[PATH_MAX + 16], buf[256];
        fx_host_init(&h);
        const char *cg = h.cg, *proc = h.proc, *state = h.state, *mi = h.mountinfo;
        snprintf(cpu_root, sizeof cpu_root, "%s/cpu", cg);
        snprintf(blkio_root, sizeof blkio_root, "%s/blkio", cg);
        fx_write(cg, "cpu/" FX_WEB1_DOM "/cpu.cfs_period_us", "100000\n");
        fx_write(cg, "cpu/" FX_WEB1_DOM "/cpu.cfs_quota_us", "-1\n");
        fx_write(cg, "blkio/" FX_WEB1_DOM "/blkio.throttle.write_bps_device", "");

        struct vmg_monitor_paths paths = {
                .cgroup = { .root = cg, .mountinfo = mi, .proc = proc },
                .proc_root = proc,
                .netns_dir = "/nonexistent-netns-dir",
        };
        struct vmg_monitor *mon = NULL;
        CHECK_INT(vmg_monitor_new(&paths, &mon), 0);
        const char *xml = "<domain type='qemu' id='7'><name>web-1</name><uuid>" UUID "</uuid><vcpu>1</vcpu>"
                          "<devices><disk type='file' device='disk'><driver name='qemu' cache='writeback'/>"
                          "<source file='/nonexistent/web-1.qcow2'/><target dev='vda'/></disk></devices></domain>";
        struct vmg_domxml *d = NULL;
        CHECK_INT(vmg_domxml_parse(xml, strlen(xml), &d), 0);
        pid_t pid = 4242;
        CHECK_INT(vmg_monitor_set_domains(mon, &d, &pid, 1), 0);
        struct vmg_vm *vm = vmg_monitor_find(mon, UUID);
        CHECK(vm && vm->cg);
        if (!vm || !vm->cg)
                return t_summary();

        struct vmg_journal *j = NULL;
        CHECK_INT(vmg_journal_open(state, &j), 0);
        struct vmg_actuator_config ac = { .cgroup_version = 1, .cpu_root = cpu_root, .blkio_root = blkio_root,
                                          .journal = j, .write_fn = flaky_write };
        struct vmg_actuator *act = NULL;
        CHECK_INT(vmg_actuator_new(&ac, &act), 0);
        const struct vmg_blkiotune_ops ops = { .get = fake_get, .set = fake_set };
        struct vmg_blkiotune_config bc = { .journal = j, .ops = &ops, .timeout_ms = 2000 };
        struct vmg_blkiotune *bt = NULL;
        CHECK_INT(vmg_blkiotune_new(&bc, &bt), 0);
        struct vmg_levers lv = { .act = act, .bt = bt, .nl = vmg_monitor_netlink(mon), .cgroup_version = 1 };
        struct vmg_applied_set set = {};
        uint64_t oldest = 0;

        T_CASE("a CPU cap refused with -EBUSY twice: out of sync, retried at 1 s then 2 s, then in force");
        busy_left = 2;
        struct vmg_action a = action(VMG_RES_CPU, 0.5);
        CHECK_INT(vmg_apply_action(&lv, &set, vm, &a, 10 * S), -EBUSY);
        CHECK_STR(fx_read(cg, "cpu/" FX_WEB1_DOM "/cpu.cfs_quota_us", buf, sizeof buf), "-1");
        CHECK_INT(vmg_applied_out_of_sync(&set, &oldest), 1);
        CHECK_U64(oldest, 10 * S);
        CHECK_INT(vmg_apply_reconcile(&lv, &set, mon, 10 * S + S / 2), 0); /* not due yet */
        CHECK_INT(quota_writes, 1);
        CHECK_INT(vmg_apply_reconcile(&lv, &set, mon, 11 * S), 1); /* second -EBUSY */
        CHECK_INT(quota_writes, 2);
        CHECK_INT(vmg_applied_out_of_sync(&set, &oldest), 1);
        CHECK_U64(oldest, 10 * S);
        CHECK_INT(vmg_apply_reconcile(&lv, &set, mon, 12 * S), 0); /* backoff: next at 13 s */
        CHECK_INT(quota_writes, 2);
        CHECK_INT(vmg_apply_reconcile(&lv, &set, mon, 13 * S), 0);
        CHECK_INT(quota_writes, 3);
        CHECK_STR(fx_read(cg, "cpu/" FX_WEB1_DOM "/cpu.cfs_quota_us", buf, sizeof buf), "50000");
        CHECK_INT(vmg_applied_out_of_sync(&set, &oldest), 0);
        CHECK_INT(vmg_apply_reconcile(&lv, &set, mon, 100 * S), 0);
        CHECK_INT(quota_writes, 3); /* in sync: nothing more written */

        T_CASE("a block I/O tune set that fails is not believed: retried until libvirt confirms");
        set_busy_left = 1;
        a = action(VMG_RES_DISK_WRITE_BPS, 10485760);
        CHECK_INT(vmg_apply_action(&lv, &set, vm, &a, 20 * S), 0); /* queued */
        CHECK_INT(vmg_applied_out_of_sync(&set, NULL), 1);         /* unconfirmed */
        bt_settle(bt, &set, 20 * S);
        CHECK_INT(bt_sets, 1);
        CHECK_U64(bt_value, 0);
        CHECK_INT(vmg_applied_out_of_sync(&set, &oldest), 1);
        CHECK_U64(oldest, 20 * S);
        CHECK_INT(vmg_apply_reconcile(&lv, &set, mon, 21 * S), 0);
        CHECK_INT(vmg_applied_out_of_sync(&set, NULL), 1); /* queued again, unconfirmed */
        bt_settle(bt, &set, 21 * S);
        CHECK_INT(bt_sets, 2);
        CHECK_U64(bt_value, 10485760);
        CHECK_INT(vmg_applied_out_of_sync(&set, NULL), 0);

        T_CASE("a release that fails is retried too: status never says released while the limit holds");
        set_busy_left = 1;
        a = action(VMG_RES_DISK_WRITE_BPS, 0);
        CHECK_INT(vmg_apply_action(&lv, &set, vm, &a, 30 * S), 0);
        bt_settle(bt, &set, 30 * S);
        CHECK_U64(bt_value, 10485760);
        CHECK_INT(vmg_applied_out_of_sync(&set, NULL), 1);
        CHECK_INT(vmg_apply_reconcile(&lv, &set, mon, 31 * S), 0);
        bt_settle(bt, &set, 31 * S);
        CHECK_U64(bt_value, 0);
        CHECK_INT(vmg_applied_out_of_sync(&set, NULL), 0);

        T_CASE("cache=writeback: QEMU's throttle only, never a blkio limit that would delay its flush");
        struct vmg_dom_disk *disk = &vm->dom->disks[0];
        disk->dev_error = 0;
        disk->dev.major = 254;
        disk->dev.minor = 0;
        a = action(VMG_RES_DISK_WRITE_BPS, 5242880);
        CHECK_INT(vmg_apply_action(&lv, &set, vm, &a, 40 * S), 0);
        bt_settle(bt, &set, 40 * S);
        CHECK_U64(bt_value, 5242880);
        CHECK_INT(blkio_writes, 0);
        CHECK_STR(fx_read(cg, "blkio/" FX_WEB1_DOM "/blkio.throttle.write_bps_device", buf, sizeof buf), "");

        T_CASE("cache=none (direct I/O): the blkio throttle as well");
        snprintf(disk->cache, sizeof disk->cache, "none");
        a = action(VMG_RES_DISK_WRITE_BPS, 4194304);
        CHECK_INT(vmg_apply_action(&lv, &set, vm, &a, 50 * S), 0);
        bt_settle(bt, &set, 50 * S);
        CHECK_U64(bt_value, 4194304);
        CHECK_INT(blkio_writes, 1);
        CHECK_STR(fx_read(cg, "blkio/" FX_WEB1_DOM "/blkio.throttle.write_bps_device", buf, sizeof buf),
                  "254:0 4194304");
        CHECK_INT(vmg_applied_out_of_sync(&set, NULL), 0);

        vmg_blkiotune_free(bt);
        vmg_actuator_free(act);
        vmg_journal_free(j);
        vmg_monitor_free(mon);
        free(set.v);
        fx_rmtree(h.tmp, "");
        return t_summary();
}
