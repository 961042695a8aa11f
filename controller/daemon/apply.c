#include "controller/daemon/apply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>

#include "common/log.h"
struct vmg_applied *vmg_applied_get(struct vmg_applied_set *set, const char *uuid, bool create) {
        for (size_t i = 0; i < set->n; i++)
                if (strcmp(set->v[i].uuid, uuid) == 0)
                        return &set->v[i];
        if (!create)
                return NULL;
        struct vmg_applied *p = realloc(set->v, (set->n + 1) * sizeof *p);
        if (!p)
                return NULL;
        set->v = p;
        struct vmg_applied *a = &set->v[set->n++];
        memset(a, 0, sizeof *a);
        snprintf(a->uuid, sizeof a->uuid, "%s", uuid);
        return a;
}

const struct vmg_applied *vmg_applied_find(const struct vmg_applied_set *set, const char *uuid) {
        for (size_t i = 0; i < set->n; i++)
                if (strcmp(set->v[i].uuid, uuid) == 0)
                        return &set->v[i];
        return NULL;
}

void vmg_applied_forget(struct vmg_applied_set *set, const char *uuid) {
        for (size_t i = 0; i < set->n; i++)
                if (strcmp(set->v[i].uuid, uuid) == 0) {
                        set->v[i] = set->v[--set->n];
                        return;
                }
}


static int tap_netns(const struct vmg_levers *lv, const char *tap, const char **ret) {
        const char *ns = NULL;
        int r = vmg_netlink_tap_netns(lv->nl, tap, &ns);
        if (r < 0)
                return r;
        *ret = ns && *ns ? ns : NULL;
        return 0;
}

void vmg_unshape_vm(const struct vmg_levers *lv, const struct vmg_vm *vm) {
        for (size_t j = 0; j < vm->dom->n_ifaces; j++) {
                const char *tap = vm->dom->ifaces[j].tap, *ns = NULL;
                if (!*tap || tap_netns(lv, tap, &ns) < 0)
                        continue;
                int r = vmg_shaper_clear(lv->shaper, ns, tap);
                if (r < 0 && r != -ENODEV && r != -ENOENT)
                        log_warning_errno(r, "guest %s: cannot remove shaping of tap %s: %m",
                                          vm->dom->name, tap);
        }
}


static const char *blkiotune_param(enum vmg_resource r) {
        switch (r) {
        case VMG_RES_DISK_READ_BPS: return "read_bytes_sec";
        case VMG_RES_DISK_WRITE_BPS: return "write_bytes_sec";
        case VMG_RES_DISK_READ_IOPS: return "read_iops_sec";
        case VMG_RES_DISK_WRITE_IOPS: return "write_iops_sec";
        default: return NULL;
        }
}

static int resource_of_param(const char *param) {
        for (int k = 0; k < VMG_RES_COUNT; k++) {
                const char *p = blkiotune_param(k);
                if (p && strcmp(p, param) == 0)
                        return k;
        }
        return -1;
}

/* Whether the guest's writes to this disk bypass the host page cache, so the host block
 * layer sees them in QEMU's cgroup. With cache=writeback/unsafe (and libvirt's default,
 * QEMU's writeback) the flusher writes them back charged to the root group, and a blkio
 * limit only throttles the flush QEMU itself issues at pause or fsync: measured on a
 * writeback guest, a blkio v1 write limit did not hold its writes back, but at pause ~2.2 GB
 * of dirty pages drained at the 10-20 MB/s limit with host PSI io "some" at 53-99%, which
 * vmguard then read as contention it had caused itself. writethrough goes through the page
 * cache too. */
static bool disk_direct_io(const struct vmg_dom_disk *d) {
        return strcmp(d->cache, "none") == 0 || strcmp(d->cache, "directsync") == 0;
}

/* *queued: block I/O tune jobs queued, whose completion confirms their part. */
static int apply_disk(const struct vmg_levers *lv, const struct vmg_vm *vm, const struct vmg_act_vm *avm,
                      enum vmg_resource res, double limit, unsigned *queued) {
        int ret = 0;
        unsigned long long v = limit > 0 ? (unsigned long long) limit : 0;
        for (size_t i = 0; i < vm->dom->n_disks; i++) {
                const struct vmg_dom_disk *d = &vm->dom->disks[i];
                /* QEMU's own throttle, on every disk: the lever that also reaches
                 * cache=writeback disks, whose writes the host flusher charges to the root
                 * cgroup (blkio read 0 for a writeback guest writing +11.5 GB per 10 s on the
                 * lab host, docs/LAB.md). */
                if (lv->bt) {
                        int64_t id = vmg_blkiotune_set(lv->bt, vm->dom->uuid, vm->dom->name, d->target,
                                                       blkiotune_param(res), v);
                        if (id > 0)
                                (*queued)++;
                        else {
                                /* -EBUSY: the previous job on this disk is still running (a
                                 * libvirt call stuck on the domain's job lock): retried. */
                                if (id != -EBUSY)
                                        log_warning_errno((int) id, "guest %s: block I/O tune of %s %s=%llu not queued: %m",
                                                          vm->dom->name, d->target, blkiotune_param(res), v);
                                if (!ret)
                                        ret = (int) id;
                        }
                }
                /* The cgroup throttle as well only where it holds (direct I/O): there it
                 * needs no libvirt call, so it holds even while the domain's job lock is
                 * taken (a suspend held it 37-78 s on a fresh machine). */
                if (d->dev_error || !d->dev.major || !avm->blkio_dir || !disk_direct_io(d))
                        continue;
                struct vmg_io_limit lim = { VMG_IO_KEEP, VMG_IO_KEEP, VMG_IO_KEEP, VMG_IO_KEEP };
                uint64_t *slot = res == VMG_RES_DISK_READ_BPS    ? &lim.rbps
                                 : res == VMG_RES_DISK_WRITE_BPS ? &lim.wbps
                                 : res == VMG_RES_DISK_READ_IOPS ? &lim.riops
                                                                 : &lim.wiops;
                *slot = v;
                int r = vmg_act_set_io(lv->act, avm, d->dev.major, d->dev.minor, &lim);
                if (r < 0 && !ret)
                        ret = r;
        }
        return ret;
}

static int apply_net(const struct vmg_levers *lv, const struct vmg_vm *vm, struct vmg_applied *ap) {
        int ret = 0;
        for (size_t j = 0; j < vm->dom->n_ifaces; j++) {
                const char *tap = vm->dom->ifaces[j].tap, *ns = NULL;
                if (!*tap)
                        continue;
                int r = tap_netns(lv, tap, &ns);
                if (r < 0) {
                        log_warning_errno(r, "guest %s: tap %s not found in any namespace: %m", vm->dom->name, tap);
                        continue;
                }
                r = vmg_shaper_set(lv->shaper, ns, tap, ap->limit[VMG_RES_NET_TX_BPS],
                                   ap->limit[VMG_RES_NET_RX_BPS]);
                if (r < 0) {
                        log_warning_errno(r, "guest %s: shaping tap %s%s%s to tx %.0f rx %.0f bit/s failed: %m",
                                          vm->dom->name, tap, ns ? " in netns " : "", ns ? ns : "",
                                          ap->limit[VMG_RES_NET_TX_BPS], ap->limit[VMG_RES_NET_RX_BPS]);
                        if (!ret)
                                ret = r;
                } else {
                        ap->shaped = true;
                        if (j < VMG_MAX_IFACES)
                                ap->tap_gen[j] = vmg_netlink_tap_generation(lv->nl, tap);
                }
        }
        return ret;
}

/* A tap that vanishes takes vmguard's pieces on it along (ingress qdisc and filter, the ifb
 * too when its namespace is deleted: issue #9). The engine still holds the guest's limit, so
 * when a tap of that name turns up again as a new device (namespace made again, tap made
 * again) the limit is put back on it and the kernel agrees with the engine again. Once per
 * loss and per return, so a tap that stays away or a refused set logs one line, not one a
 * tick. */
unsigned vmg_reshape_returned_taps(const struct vmg_levers *lv, struct vmg_applied_set *set,
                                   struct vmg_monitor *mon) {
        unsigned failed = 0;
        if (!lv->shaper)
                return 0;
        for (size_t i = 0; i < vmg_monitor_n_vms(mon); i++) {
                const struct vmg_vm *vm = vmg_monitor_vm(mon, i);
                struct vmg_applied *ap = vmg_applied_get(set, vm->dom->uuid, false);
                double tx = ap ? ap->limit[VMG_RES_NET_TX_BPS] : 0, rx = ap ? ap->limit[VMG_RES_NET_RX_BPS] : 0;
                if (!ap || ap->unmanaged || !(tx > 0 || rx > 0))
                        continue;
                for (size_t j = 0; j < vm->dom->n_ifaces && j < VMG_MAX_IFACES; j++) {
                        const char *tap = vm->dom->ifaces[j].tap, *ns = NULL;
                        if (!*tap)
                                continue;
                        if (tap_netns(lv, tap, &ns) < 0) {
                                if (!ap->tap_lost[j])
                                        log_notice("guest %s: tap %s is gone (its network namespace deleted, or the "
                                                   "tap removed), with the shaping on it; put back if it returns",
                                                   vm->dom->name, tap);
                                ap->tap_lost[j] = true;
                                continue;
                        }
                        unsigned long gen = vmg_netlink_tap_generation(lv->nl, tap);
                        if (gen == ap->tap_gen[j])
                                continue;
                        ap->tap_gen[j] = gen;
                        ap->tap_lost[j] = false;
                        int r = vmg_shaper_set(lv->shaper, ns, tap, tx, rx);
                        if (r < 0) {
                                failed++;
                                log_warning_errno(r, "guest %s: tap %s%s%s is back, putting its limit back (tx %.0f "
                                                  "rx %.0f bit/s) failed: %m", vm->dom->name, tap,
                                                  ns ? " in netns " : "", ns ? ns : "", tx, rx);
                        } else
                                log_notice("guest %s: tap %s%s%s is back as a new device: limit put back, tx %.0f "
                                           "rx %.0f bit/s", vm->dom->name, tap, ns ? " in netns " : "",
                                           ns ? ns : "", tx, rx);
                }
        }
        return failed;
}

void vmg_log_action(const struct vmg_vm *vm, const struct vmg_action *a, const char *tenant,
                    bool dry_run, int r) {
        char oldv[48], newv[48];
        vmg_resource_format(a->resource, a->old_limit, oldv, sizeof oldv);
        vmg_resource_format(a->resource, a->new_limit, newv, sizeof newv);
        if (a->old_limit <= 0)
                snprintf(oldv, sizeof oldv, "unlimited");
        if (a->new_limit <= 0)
                snprintf(newv, sizeof newv, "unlimited");
        const char *mode = dry_run ? "dry-run, not applied: " : r < 0 ? "FAILED: " : "";
        if (log_to_journal())
                sd_journal_send("MESSAGE=%s%s %s %s -> %s: %s", mode, vmg_action_kind_name(a->kind),
                                vmg_resource_name(a->resource), oldv, newv, a->reason,
                                "PRIORITY=%d", r < 0 ? LOG_WARNING : LOG_NOTICE,
                                "VMGUARD_VM=%s", vm ? vm->dom->name : a->vm, "VMGUARD_UUID=%s", a->uuid,
                                "VMGUARD_TENANT=%s", tenant, "VMGUARD_RESOURCE=%s",
                                vmg_resource_name(a->resource), "VMGUARD_ACTION=%s",
                                vmg_action_kind_name(a->kind), "VMGUARD_OLD=%s", oldv,
                                "VMGUARD_NEW=%s", newv, "VMGUARD_REASON=%s", a->reason,
                                r < 0 ? "ERRNO=%d" : NULL, -r, NULL);
        else
                fprintf(stderr, "vmguard: %sguest %s tenant %s: %s %s %s -> %s: %s%s%s\n", mode,
                        a->vm, tenant, vmg_action_kind_name(a->kind), vmg_resource_name(a->resource),
                        oldv, newv, a->reason, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
}

static void sync_failed(struct vmg_sync *sy, int r, uint64_t now_ns) {
        if (!sy->out) {
                sy->out = true;
                sy->since_ns = now_ns;
        }
        if (!sy->backoff_ns)
                sy->backoff_ns = VMG_SYNC_BACKOFF_MIN_NS;
        sy->error = r;
        sy->next_ns = now_ns + sy->backoff_ns;
        sy->backoff_ns = sy->backoff_ns * 2 < VMG_SYNC_BACKOFF_MAX_NS ? sy->backoff_ns * 2 : VMG_SYNC_BACKOFF_MAX_NS;
}

static void sync_confirmed(struct vmg_sync *sy) {
        unsigned pending = sy->bt_pending;
        *sy = (struct vmg_sync){ .bt_pending = pending };
}

/* Puts the desired limit of one resource in force and updates what is known of it. */
static int put_in_force(const struct vmg_levers *lv, struct vmg_applied *ap, struct vmg_vm *vm,
                        enum vmg_resource res, uint64_t now_ns) {
        struct vmg_act_vm avm = {
                .uuid = vm->dom->uuid,
                .name = vm->dom->name,
                .cpu_dir = vm->cg ? vmg_cgroup_vm_dir(vm->cg, lv->cgroup_version == 2 ? VMG_CG_UNIFIED : VMG_CG_CPU) : NULL,
                .blkio_dir = vm->cg ? vmg_cgroup_vm_dir(vm->cg, lv->cgroup_version == 2 ? VMG_CG_UNIFIED : VMG_CG_BLKIO) : NULL,
        };
        int r = 0;
        unsigned queued = 0;
        switch (res) {
        case VMG_RES_CPU:
                /* Its cgroup not found yet (a guest just started): retried, not forgotten. */
                if (!avm.cpu_dir)
                        r = log_warning_errno(-ENOENT, "guest %s: no cpu cgroup found yet: CPU limit not in force",
                                              vm->dom->name);
                else
                        r = vmg_act_set_cpu(lv->act, &avm, ap->limit[res]);
                break;
        case VMG_RES_DISK_READ_BPS:
        case VMG_RES_DISK_WRITE_BPS:
        case VMG_RES_DISK_READ_IOPS:
        case VMG_RES_DISK_WRITE_IOPS:
                r = apply_disk(lv, vm, &avm, res, ap->limit[res], &queued);
                break;
        case VMG_RES_NET_RX_BPS:
        case VMG_RES_NET_TX_BPS:
                r = apply_net(lv, vm, ap);
                break;
        default:
                return -EINVAL;
        }
        struct vmg_sync *sy = &ap->sync[res];
        sy->bt_pending += queued;
        if (r < 0)
                sync_failed(sy, r, now_ns);
        else if (queued) {
                /* Not believed until the jobs say so. */
                if (!sy->out)
                        sy->since_ns = now_ns;
                sy->out = true;
                sy->error = 0;
                sy->next_ns = 0;
        } else
                sync_confirmed(sy);
        return r;
}

static void stop_managing(const struct vmg_levers *lv, struct vmg_applied *ap, struct vmg_vm *vm,
                          enum vmg_resource res, int r) {
        /* Stop managing this guest: restore what we changed and alert, rather than retry a
         * write the kernel refuses every tick. */
        ap->unmanaged = true;
        memset(ap->sync, 0, sizeof ap->sync);
        log_error_errno(r, "guest %s: permanent error applying %s: vmguard stops managing it: %m",
                        vm->dom->name, vmg_resource_name(res));
        (void) vmg_act_release(lv->act, vm->dom->uuid);
        if (lv->bt)
                (void) vmg_blkiotune_restore(lv->bt, vm->dom->uuid);
        vmg_unshape_vm(lv, vm);
}

int vmg_apply_action(const struct vmg_levers *lv, struct vmg_applied_set *set, struct vmg_vm *vm,
                     const struct vmg_action *a, uint64_t now_ns) {
        if (a->resource < 0 || a->resource >= VMG_RES_COUNT)
                return -EINVAL;
        struct vmg_applied *ap = vmg_applied_get(set, a->uuid, true);
        if (!ap)
                return -ENOMEM;
        if (ap->unmanaged)
                return 0;
        ap->limit[a->resource] = a->new_limit;
        /* A new decision is tried now, whatever the backoff of the previous one. */
        ap->sync[a->resource].backoff_ns = 0;
        int r = put_in_force(lv, ap, vm, a->resource, now_ns);
        if (r < 0 && vmg_act_classify(r) == VMG_RESULT_PERMANENT)
                stop_managing(lv, ap, vm, a->resource, r);
        return r < 0 ? r : 0;
}

unsigned vmg_apply_reconcile(const struct vmg_levers *lv, struct vmg_applied_set *set,
                             struct vmg_monitor *mon, uint64_t now_ns) {
        unsigned failed = 0;
        for (size_t i = 0; i < set->n; i++) {
                struct vmg_applied *ap = &set->v[i];
                struct vmg_vm *vm = ap->unmanaged ? NULL : vmg_monitor_find(mon, ap->uuid);
                for (int k = 0; vm && k < VMG_RES_COUNT && !ap->unmanaged; k++) {
                        struct vmg_sync *sy = &ap->sync[k];
                        if (!sy->out || sy->bt_pending || !sy->next_ns || now_ns < sy->next_ns)
                                continue;
                        char want[48];
                        vmg_resource_format(k, ap->limit[k], want, sizeof want);
                        if (ap->limit[k] <= 0)
                                snprintf(want, sizeof want, "unlimited");
                        int r = put_in_force(lv, ap, vm, k, now_ns);
                        if (r < 0 && vmg_act_classify(r) == VMG_RESULT_PERMANENT) {
                                stop_managing(lv, ap, vm, k, r);
                                failed++;
                        } else if (r < 0) {
                                failed++;
                                log_warning_errno(r, "guest %s: %s %s still not in force after %.0f s: %m; next try in %.0f s",
                                                  vm->dom->name, vmg_resource_name(k), want,
                                                  (double) (now_ns - sy->since_ns) / 1e9,
                                                  (double) (sy->next_ns - now_ns) / 1e9);
                        } else if (!sy->out)
                                log_notice("guest %s: %s %s in force again (retried)", vm->dom->name,
                                           vmg_resource_name(k), want);
                }
        }
        return failed;
}

void vmg_apply_blkiotune_done(struct vmg_applied_set *set, const struct vmg_blkiotune_result *res,
                              uint64_t now_ns) {
        int k = resource_of_param(res->param);
        struct vmg_applied *ap = vmg_applied_get(set, res->uuid, false);
        if (res->op != VMG_BT_THROTTLE || k < 0 || !ap || ap->unmanaged)
                return;
        struct vmg_sync *sy = &ap->sync[k];
        if (sy->bt_pending)
                sy->bt_pending--;
        if (res->r < 0)
                sync_failed(sy, res->r, now_ns);
        else if (!sy->bt_pending && sy->out && !sy->error)
                sync_confirmed(sy);
}

size_t vmg_applied_out_of_sync(const struct vmg_applied_set *set, uint64_t *ret_oldest_since_ns) {
        size_t n = 0;
        uint64_t oldest = 0;
        for (size_t i = 0; i < set->n; i++)
                for (int k = 0; k < VMG_RES_COUNT && !set->v[i].unmanaged; k++) {
                        const struct vmg_sync *sy = &set->v[i].sync[k];
                        if (!sy->out)
                                continue;
                        if (!n++ || sy->since_ns < oldest)
                                oldest = sy->since_ns;
                }
        if (ret_oldest_since_ns)
                *ret_oldest_since_ns = oldest;
        return n;
}
