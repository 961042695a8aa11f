/* `vmguard top`: one row per guest with what it uses right now, the limits vmguardd holds on
 * it, the host's pressure and the protected services' health. Reads the same probes the
 * daemon ticks with, so what an admin sees here is what vmguard decides on; the limits come
 * from the daemon itself (control socket, else its status file), since only it knows which
 * of the values in cgroupfs, libvirt's block I/O tune and the taps' qdiscs are its own. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"
#include "controller/cli/commands.h"
#include "controller/cli/ctlclient.h"
#include "controller/daemon/ctlsock.h"
#include "probes/monitor.h"
#include "controller/cli/top.h"
#include "probes/libvirt.h"

/* Short: top asks once per refresh and must not stall its own display on a daemon caught in
 * a slow tick; the next refresh asks again. */
#define LIMITS_TIMEOUT_MS 1000

/* Where the LIMITS column comes from this refresh. */
struct limits_src {
        struct vmg_ctl_view view; /* owns the daemon's snapshot when ok */
        bool ok;
        char why[1024]; /* when !ok: why only the cgroup's CPU cap is shown */
};

static void limits_fetch(const char *socket_path, const char *state_dir, struct limits_src *ls) {
        *ls = (struct limits_src){};
        json_t *req = json_pack("{s:s}", "cmd", "status");
        int r = req ? vmg_ctl_fetch(socket_path, state_dir, req, LIMITS_TIMEOUT_MS, &ls->view) : -ENOMEM;
        json_decref(req);
        const char *code = NULL, *msg = r < 0 ? NULL : vmg_ctl_reply_error(ls->view.reply, &code);
        char why[160];
        if (r < 0)
                snprintf(ls->why, sizeof ls->why, "cannot ask vmguardd at %s (%s) and no status file in %s",
                         socket_path, strerror(-r), state_dir);
        else if (msg)
                snprintf(ls->why, sizeof ls->why, "vmguardd at %s answered: %s", socket_path, msg);
        else if (vmg_ctl_check_snapshot(ls->view.reply, why, sizeof why) < 0)
                snprintf(ls->why, sizeof ls->why, "cannot read %s: %s",
                         ls->view.from_file ? ls->view.file : "vmguardd's answer", why);
        else if (ls->view.stale)
                /* Limits it left may no longer be in force, or be someone else's by now. */
                snprintf(ls->why, sizeof ls->why, "vmguardd is not running (%s is %.0f s old)", ls->view.file,
                         ls->view.file_age_s);
        else
                ls->ok = true;
        if (!ls->ok)
                vmg_ctl_view_done(&ls->view);
}

/* The guest's entry in the daemon's snapshot (by uuid: names can be reused), or NULL. */
static const json_t *limits_vm(const struct limits_src *ls, const struct vmg_vm *vm) {
        return ls->ok ? vmg_ctl_find_vm(ls->view.reply, vm->dom->uuid) : NULL;
}

static uint64_t now_mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

/* The live CPU cap of a guest, read from its cgroup (whoever set it), in cores; 0 = none. */
static double live_cpu_cap(struct vmg_monitor *m, const struct vmg_vm *vm) {
        if (!vm->cg)
                return 0;
        int fd = vmg_cgroup_vm_dir_fd(vm->cg, VMG_CG_CPU);
        char buf[64];
        if (fd >= 0) {
                long long quota = -1, period = 0;
                _cleanup_fclose_ FILE *fq = NULL, *fp = NULL;
                int qfd = openat(fd, "cpu.cfs_quota_us", O_RDONLY | O_CLOEXEC);
                int pfd = openat(fd, "cpu.cfs_period_us", O_RDONLY | O_CLOEXEC);
                if (qfd >= 0)
                        fq = fdopen(qfd, "r");
                if (pfd >= 0)
                        fp = fdopen(pfd, "r");
                if (fq && fp && fscanf(fq, "%lld", &quota) == 1 && fscanf(fp, "%lld", &period) == 1 &&
                    quota > 0 && period > 0)
                        return (double) quota / (double) period;
                return 0;
        }
        fd = vmg_cgroup_vm_dir_fd(vm->cg, VMG_CG_UNIFIED);
        if (fd < 0 || !vmg_cgroup_v2_enabled(vmg_monitor_cgroup(m), "cpu"))
                return 0;
        int cfd = openat(fd, "cpu.max", O_RDONLY | O_CLOEXEC);
        if (cfd < 0)
                return 0;
        ssize_t n = read(cfd, buf, sizeof buf - 1);
        close(cfd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        long long q, p;
        if (sscanf(buf, "%lld %lld", &q, &p) == 2 && q > 0 && p > 0)
                return (double) q / (double) p;
        return 0;
}

static json_t *vm_json(struct vmg_monitor *m, const struct vmg_vm *vm, const struct limits_src *ls) {
        const struct vmg_vm_rates *r = &vm->rates;
        char src[128];
        json_t *o = json_pack("{s:s, s:s, s:i, s:s?, s:i}", "name", vm->dom->name, "uuid",
                              vm->dom->uuid, "id", vm->dom->id, "tenant", vm->dom->tenant,
                              "qemu_pid", (int) vm->qemu_pid);
        json_object_set_new(o, "sources", json_string(vmg_vm_sources(vm, src, sizeof src)));
        if (vm->error)
                json_object_set_new(o, "error", json_string(strerror(-vm->error)));
        double cap = live_cpu_cap(m, vm);
        json_object_set_new(o, "cpu_limit_cores", cap > 0 ? json_real(cap) : json_null());
        /* null: vmguardd not reachable (see "limits_error"); {}: it holds none on this guest. */
        json_object_set_new(o, "limits", ls->ok ? vmg_top_limits_json(limits_vm(ls, vm)) : json_null());
        if (!vm->have_rates) {
                json_object_set_new(o, "rates", json_null());
                return o;
        }
        json_t *jr = json_object();
        if (r->cpu_valid) {
                json_object_set_new(jr, "cpu_cores", json_real(r->cpu_cores));
                json_object_set_new(jr, "cpu_throttled_frac", json_real(r->cpu_throttled_frac));
        }
        if (r->vcpu_delay_valid)
                json_object_set_new(jr, "vcpu_delay_frac", json_real(r->vcpu_delay_frac));
        if (r->disk_valid) {
                json_object_set_new(jr, "disk_read_bytes_per_s", json_real(r->disk_read_Bps));
                json_object_set_new(jr, "disk_write_bytes_per_s", json_real(r->disk_write_Bps));
                json_object_set_new(jr, "disk_read_iops", json_real(r->disk_read_iops));
                json_object_set_new(jr, "disk_write_iops", json_real(r->disk_write_iops));
                json_object_set_new(jr, "disk_source", json_string(vmg_source_name(r->disk_source)));
        }
        if (r->net_valid) {
                json_object_set_new(jr, "net_tx_bits_per_s", json_real(r->net_tx_bps));
                json_object_set_new(jr, "net_rx_bits_per_s", json_real(r->net_rx_bps));
                json_object_set_new(jr, "net_tx_packets_per_s", json_real(r->net_tx_pps));
                json_object_set_new(jr, "net_rx_packets_per_s", json_real(r->net_rx_pps));
        }
        if (r->psi_valid) {
                json_object_set_new(jr, "psi_cpu_some", json_real(r->psi_cpu_some));
                json_object_set_new(jr, "psi_io_some", json_real(r->psi_io_some));
        }
        json_object_set_new(jr, "interval_s", json_real(r->interval_s));
        json_object_set_new(o, "rates", jr);

        json_t *devs = json_array();
        for (size_t i = 0; i < vm->dom->n_disks; i++) {
                const struct vmg_dom_disk *d = &vm->dom->disks[i];
                json_t *jd = json_pack("{s:s, s:s?, s:s}", "target", d->target, "source", d->source,
                                       "cache", d->cache);
                if (d->dev_error == 0 && d->dev.major)
                        json_object_set_new(jd, "host_device",
                                            json_sprintf("%u:%u", d->dev.major, d->dev.minor));
                json_array_append_new(devs, jd);
        }
        json_object_set_new(o, "disks", devs);
        json_t *taps = json_array();
        for (size_t i = 0; i < vm->cur.n_ifaces; i++)
                json_array_append_new(taps, json_pack("{s:s, s:b}", "tap", vm->cur.ifaces[i].tap,
                                                      "found", vm->cur.ifaces[i].found));
        json_object_set_new(o, "taps", taps);
        return o;
}

static void fmt_num(char *buf, size_t len, bool valid, double v, double scale, int prec) {
        if (!valid)
                snprintf(buf, len, "-");
        else
                snprintf(buf, len, "%.*f", prec, v / scale);
}

static void print_table(struct vmg_monitor *m, const struct limits_src *ls, FILE *out) {
        size_t n = vmg_monitor_n_vms(m);
        char (*lim)[160] = calloc(n ? n : 1, sizeof *lim);
        if (!lim) {
                fprintf(out, "vmguard top: out of memory\n");
                return;
        }
        int width = (int) strlen("LIMITS");
        bool marked = false;
        for (size_t i = 0; i < n; i++) {
                const struct vmg_vm *vm = vmg_monitor_vm(m, i);
                if (ls->ok) {
                        vmg_top_format_limits(limits_vm(ls, vm), lim[i], sizeof lim[i]);
                } else {
                        /* Without the daemon, the one limit readable in one place. */
                        double c = live_cpu_cap(m, vm);
                        if (c > 0)
                                snprintf(lim[i], sizeof lim[i], "cpu %.2f", c);
                        else
                                snprintf(lim[i], sizeof lim[i], "-");
                }
                marked |= strstr(lim[i], VMG_TOP_THROTTLED_MARK) != NULL;
                if ((int) strlen(lim[i]) > width)
                        width = (int) strlen(lim[i]);
        }
        fprintf(out, "%-20s %-10s %6s %5s %8s %8s %7s %9s %9s %8s  %-*s  %s\n", "VM", "TENANT", "CPU",
                "READY", "RD-MB/s", "WR-MB/s", "IOPS", "TX-Mbit/s", "RX-Mbit/s", "TX-pkt/s", width, "LIMITS",
                "SOURCES");
        for (size_t i = 0; i < n; i++) {
                const struct vmg_vm *vm = vmg_monitor_vm(m, i);
                const struct vmg_vm_rates *r = &vm->rates;
                bool ok = vm->have_rates;
                char cpu[16], rdy[16], rd[16], wr[16], iops[16], tx[16], rx[16], txp[16], src[128];
                fmt_num(cpu, sizeof cpu, ok && r->cpu_valid, r->cpu_cores, 1, 2);
                fmt_num(rdy, sizeof rdy, ok && r->vcpu_delay_valid, r->vcpu_delay_frac * 100, 1, 0);
                fmt_num(rd, sizeof rd, ok && r->disk_valid, r->disk_read_Bps, 1e6, 1);
                fmt_num(wr, sizeof wr, ok && r->disk_valid, r->disk_write_Bps, 1e6, 1);
                fmt_num(iops, sizeof iops, ok && r->disk_valid, r->disk_read_iops + r->disk_write_iops, 1, 0);
                fmt_num(tx, sizeof tx, ok && r->net_valid, r->net_tx_bps, 1e6, 2);
                fmt_num(rx, sizeof rx, ok && r->net_valid, r->net_rx_bps, 1e6, 2);
                fmt_num(txp, sizeof txp, ok && r->net_valid, r->net_tx_pps, 1, 0);
                if (vm->error && !vm->have_rates)
                        snprintf(src, sizeof src, "error: %s", strerror(-vm->error));
                else
                        vmg_vm_sources(vm, src, sizeof src);
                fprintf(out, "%-20.20s %-10.10s %6s %4s%% %8s %8s %7s %9s %9s %8s  %-*s  %s\n",
                        vm->dom->name, vm->dom->tenant ? vm->dom->tenant : "-", cpu, rdy, rd, wr,
                        iops, tx, rx, txp, width, lim[i], src);
        }
        free(lim);
        if (marked)
                fprintf(out, "%s held below its cap while the guest's noise hurts others (released when calm)\n",
                        VMG_TOP_THROTTLED_MARK);
        if (!ls->ok)
                fprintf(out, "limits: %s; LIMITS shows only the CPU quota read from each guest's cgroup\n", ls->why);
        else if (ls->view.from_file)
                fprintf(out, "limits: from %s (%.0f s old): the control socket said %s\n", ls->view.file,
                        ls->view.file_age_s, strerror(-ls->view.socket_error));
        struct vmg_host_rates h;
        if (vmg_monitor_host_rates(m, &h))
                fprintf(out, "\nhost: cpu busy %.0f%%, iowait %.1f%%, PSI cpu some %.1f%%, io some %.1f%%, io full %.1f%%\n",
                        h.cpu_busy_frac * 100, h.iowait_frac * 100, h.psi_cpu_some * 100,
                        h.psi_io_some * 100, h.psi_io_full * 100);
        if (vmg_monitor_n_services(m) > 0) {
                fprintf(out, "\n%-16s %5s %6s %14s %9s\n", "SERVICE", "PIDS", "CPU",
                        "RUNQ-DELAY-ms", "IO-DELAY");
                for (size_t i = 0; i < vmg_monitor_n_services(m); i++) {
                        const struct vmg_svc *sv = vmg_monitor_service(m, i);
                        if (!sv->have_rates) {
                                fprintf(out, "%-16s %5s\n", sv->name, sv->n_pids ? "-" : "down");
                                continue;
                        }
                        char io[16];
                        fmt_num(io, sizeof io, sv->rates.blkio_delay_valid,
                                sv->rates.blkio_delay_frac * 100, 1, 1);
                        fprintf(out, "%-16s %5u %6.2f %14.3f %8s%%\n", sv->name, sv->rates.n_pids,
                                sv->rates.cpu_cores, sv->rates.run_delay_avg_ms, io);
                }
        }
}

static json_t *snapshot_json(struct vmg_monitor *m, const struct limits_src *ls) {
        json_t *vms = json_array();
        for (size_t i = 0; i < vmg_monitor_n_vms(m); i++)
                json_array_append_new(vms, vm_json(m, vmg_monitor_vm(m, i), ls));
        json_t *root = json_pack("{s:o}", "vms", vms);
        json_object_set_new(root, "limits_source",
                            !ls->ok ? json_null() : json_string(ls->view.from_file ? "status-file" : "socket"));
        if (!ls->ok)
                json_object_set_new(root, "limits_error", json_string(ls->why));
        struct vmg_host_rates h;
        if (vmg_monitor_host_rates(m, &h))
                json_object_set_new(root, "host",
                                    json_pack("{s:f, s:f, s:f, s:f, s:f}", "cpu_busy_frac",
                                              h.cpu_busy_frac, "iowait_frac", h.iowait_frac,
                                              "psi_cpu_some", h.psi_cpu_some, "psi_io_some",
                                              h.psi_io_some, "psi_io_full", h.psi_io_full));
        json_t *svcs = json_array();
        for (size_t i = 0; i < vmg_monitor_n_services(m); i++) {
                const struct vmg_svc *sv = vmg_monitor_service(m, i);
                json_t *o = json_pack("{s:s, s:s, s:i}", "name", sv->name, "match", sv->match,
                                      "pids", (int) sv->n_pids);
                if (sv->have_rates) {
                        json_object_set_new(o, "cpu_cores", json_real(sv->rates.cpu_cores));
                        json_object_set_new(o, "run_delay_avg_ms", json_real(sv->rates.run_delay_avg_ms));
                        json_object_set_new(o, "run_delay_frac", json_real(sv->rates.run_delay_frac));
                        if (sv->rates.blkio_delay_valid)
                                json_object_set_new(o, "blkio_delay_frac",
                                                    json_real(sv->rates.blkio_delay_frac));
                }
                json_array_append_new(svcs, o);
        }
        json_object_set_new(root, "services", svcs);
        return root;
}

/* Services an admin expects watched when no host policy names any. */
static const struct vmg_service default_services[] = {
        { .name = "dnsmasq", .kind = VMG_SERVICE_PROCESS, .match = "dnsmasq" },
        { .name = "unbound", .kind = VMG_SERVICE_PROCESS, .match = "unbound" },
        { .name = "named", .kind = VMG_SERVICE_PROCESS, .match = "named" },
        { .name = "openvpn", .kind = VMG_SERVICE_PROCESS, .match = "openvpn" },
};

static int load_domains(struct vmg_libvirt *lv, struct vmg_monitor *m) {
        struct vmg_domain *doms = NULL;
        size_t n = 0;
        int r = vmg_libvirt_list(lv, &doms, &n);
        return r < 0 ? r : vmg_monitor_set_listed(m, doms, n);
}

static void note_event(const struct vmg_libvirt_event *ev, void *userdata) {
        (void) ev;
        *(bool *) userdata = true;
}

static void top_usage(FILE *out) {
        fprintf(out, "Usage: vmguard top [--once] [--json] [--interval SEC] [--connect URI]\n"
                     "                   [--cgroup-root DIR] [--proc-root DIR] [--service NAME]...\n"
                     "                   [--socket PATH] [--state-dir DIR]\n");
}

int cmd_top(int argc, char **argv) {
        static const struct option opts[] = {
                { "once", no_argument, NULL, '1' },        { "json", no_argument, NULL, 'j' },
                { "interval", required_argument, NULL, 'i' }, { "connect", required_argument, NULL, 'c' },
                { "cgroup-root", required_argument, NULL, 'C' }, { "proc-root", required_argument, NULL, 'P' },
                { "service", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' },
                { "socket", required_argument, NULL, 'S' }, { "state-dir", required_argument, NULL, 'D' },
                {},
        };
        bool once = false, json = false, socket_given = false;
        double interval = 1.0;
        const char *uri = NULL;
        const char *socket_path = VMG_CONTROL_SOCKET, *state_dir = VMG_STATE_DIR;
        struct vmg_monitor_paths paths = {};
        struct vmg_service extra[16];
        size_t n_extra = 0;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "1ji:c:h", opts, NULL)) != -1) {
                switch (c) {
                case '1': once = true; break;
                case 'j': json = true; break;
                case 'i':
                        interval = strtod(optarg, NULL);
                        if (!(interval >= 0.05 && interval <= 3600)) {
                                fprintf(stderr, "vmguard top: --interval: '%s' is not a number of seconds in [0.05, 3600]\n", optarg);
                                return 2;
                        }
                        break;
                case 'c': uri = optarg; break;
                case 'C': paths.cgroup.root = optarg; break;
                case 'P': paths.proc_root = optarg; paths.cgroup.proc = optarg; break;
                case 's':
                        if (n_extra == ARRAY_SIZE(extra)) {
                                fprintf(stderr, "vmguard top: at most %zu --service\n", ARRAY_SIZE(extra));
                                return 2;
                        }
                        extra[n_extra++] = (struct vmg_service){ .name = optarg, .kind = VMG_SERVICE_PROCESS, .match = optarg };
                        break;
                case 'S': socket_path = optarg; socket_given = true; break;
                case 'D': state_dir = optarg; break;
                case 'h': top_usage(stdout); return 0;
                default: top_usage(stderr); return 2;
                }
        }
        /* vmguardd puts its socket in its state dir unless told otherwise: so do we. */
        char sock_in_state_dir[108]; /* sun_path: longer cannot be a socket anyway */
        if (!socket_given && strcmp(state_dir, VMG_STATE_DIR) != 0 &&
            snprintf(sock_in_state_dir, sizeof sock_in_state_dir, "%s/control.sock", state_dir) <
                    (int) sizeof sock_in_state_dir)
                socket_path = sock_in_state_dir;

        struct vmg_monitor *m = NULL;
        struct vmg_libvirt *lv = NULL;
        int r = vmg_monitor_new(&paths, &m);
        if (r < 0) {
                fprintf(stderr, "vmguard top: cannot open the kernel's counters: %s\n", strerror(-r));
                return 1;
        }
        if (n_extra)
                r = vmg_monitor_set_services(m, extra, n_extra);
        else
                r = vmg_monitor_set_services(m, default_services, ARRAY_SIZE(default_services));
        struct vmg_libvirt_config lc = { .uri = uri };
        if (r >= 0)
                r = vmg_libvirt_new(&lc, &lv);
        if (r >= 0) {
                r = vmg_libvirt_start(lv);
                if (r == 0)
                        r = -ENOTCONN;
        }
        if (r >= 0)
                r = load_domains(lv, m);
        if (r < 0) {
                fprintf(stderr, "vmguard top: cannot list domains from libvirt at %s: %s\n",
                        uri ? uri : "qemu:///system", strerror(-r));
                vmg_libvirt_free(lv);
                vmg_monitor_free(m);
                return 1;
        }

        int ret = 0;
        r = vmg_monitor_sample(m, now_mono_ns());
        for (unsigned tick = 0; r >= 0; tick++) {
                struct timespec ts = { .tv_sec = (time_t) interval,
                                       .tv_nsec = (long) ((interval - (double) (time_t) interval) * 1e9) };
                nanosleep(&ts, NULL);
                /* Pick up guests that started or stopped; the listing is libvirt's work,
                 * the figures are read from the kernel. */
                bool changed = false;
                if (!once && vmg_libvirt_drain_events(lv, note_event, &changed) >= 0 && changed)
                        (void) load_domains(lv, m);
                r = vmg_monitor_sample(m, now_mono_ns());
                if (r < 0)
                        break;
                struct limits_src ls;
                limits_fetch(socket_path, state_dir, &ls);
                if (json) {
                        json_t *snap = snapshot_json(m, &ls);
                        json_dumpf(snap, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
                        fputc('\n', stdout);
                        json_decref(snap);
                } else {
                        if (!once)
                                fputs("\033[H\033[2J", stdout);
                        print_table(m, &ls, stdout);
                }
                vmg_ctl_view_done(&ls.view);
                fflush(stdout);
                if (once)
                        break;
        }
        if (r < 0) {
                fprintf(stderr, "vmguard top: sampling failed: %s\n", strerror(-r));
                ret = 1;
        }
        vmg_libvirt_free(lv);
        vmg_monitor_free(m);
        return ret;
}
