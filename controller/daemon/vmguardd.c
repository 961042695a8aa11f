/* vmguardd: watches guests and host services, throttles the noisy guest while it hurts
 * others, and puts every value back when it stops. sd-event drives the loop: the tick
 * timer, signals, libvirt lifecycle events and block I/O tune completions. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"
#include "controller/daemon/ctlsock.h"
#include "controller/daemon/httpd.h"
#include "controller/daemon/metrics.h"
#include "controller/daemon/psitrigger.h"
#include "controller/daemon/manager.h"
#include "policies/policy.h"

struct daemon {
        struct vmg_manager *mgr;
        sd_event *ev;
        sd_event_source *timer;
        uint64_t next_usec;
        struct vmg_ctl_server *ctl;
        struct vmg_httpd *httpd;
        const char *textfile; /* node_exporter textfile collector output, or NULL */
        const char *proc_root;
        uint64_t last_tick_usec;
        sd_event_source *psi_src[2]; /* io, cpu */
        int psi_fd[2];
};

/* An early tick is at most this often: a PSI trigger fires once per window while pressure
 * lasts, but two files may fire together and a tick costs a full sample. */
#define EARLY_TICK_MIN_GAP_USEC 200000u

/* The control socket's requests: a fresh snapshot, which ctlsock turns into the answer. */
static json_t *on_ctl_request(const json_t *req, void *userdata) {
        struct daemon *d = userdata;
        uint64_t now;
        (void) sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
        return vmg_ctl_answer(req, vmg_manager_snapshot(d->mgr, now * 1000), vmg_manager_policy(d->mgr));
}

static int on_ctl(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) s;
        (void) fd;
        (void) revents;
        (void) vmg_ctl_server_dispatch(((struct daemon *) userdata)->ctl);
        return 0;
}

static void run_tick(struct daemon *d, uint64_t usec) {
        d->last_tick_usec = usec;
        (void) vmg_manager_tick(d->mgr, usec * 1000);
        (void) sd_notifyf(false, "STATUS=%s", vmg_manager_status_line(d->mgr));
        /* The tick's own snapshot, rendered once here: a scrape only hands out this text. */
        const json_t *snap = vmg_manager_last_snapshot(d->mgr);
        if (d->httpd && snap)
                (void) vmg_httpd_publish(d->httpd, snap);
        if (d->textfile) {
                int r = snap ? vmg_metrics_write_textfile(snap, d->textfile) : -ENOMEM;
                if (r < 0)
                        log_warning_errno(r, "cannot write metrics to %s: %m", d->textfile);
        }
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        struct daemon *d = userdata;
        run_tick(d, usec);
        /* Fixed rate, not fixed delay: a slow tick does not stretch the interval; a tick that
         * fell behind by more than one interval skips ahead instead of bursting. */
        uint64_t step = vmg_manager_tick_ns(d->mgr) / 1000;
        d->next_usec += step;
        if (d->next_usec <= usec)
                d->next_usec = usec + step;
        (void) sd_event_source_set_time(s, d->next_usec);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* Host pressure crossed a contention threshold: decide now instead of at the next tick, so
 * reaction time is bounded by the trigger's window, not the tick. */
static int on_psi(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct daemon *d = userdata;
        (void) fd;
        if (revents & (EPOLLERR | EPOLLHUP)) {
                log_warning("PSI trigger reported an error: falling back to ticks only");
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        uint64_t now;
        if (sd_event_now(d->ev, CLOCK_MONOTONIC, &now) < 0 || now - d->last_tick_usec < EARLY_TICK_MIN_GAP_USEC)
                return 0;
        log_debug("host pressure over a threshold: early tick");
        run_tick(d, now);
        /* The next regular tick comes one full interval after this one. */
        d->next_usec = now + vmg_manager_tick_ns(d->mgr) / 1000;
        (void) sd_event_source_set_time(d->timer, d->next_usec);
        return 0;
}

static void psi_disarm(struct daemon *d) {
        for (int i = 0; i < 2; i++) {
                d->psi_src[i] = sd_event_source_disable_unref(d->psi_src[i]);
                if (d->psi_fd[i] >= 0)
                        close(d->psi_fd[i]);
                d->psi_fd[i] = -1;
        }
}

/* Arms a trigger per PSI threshold of the host policy (io, cpu) with a window of one tick. */
static void psi_arm(struct daemon *d) {
        const struct vmg_policy *p = vmg_manager_policy(d->mgr);
        const double frac[2] = { p->host.psi_io_some, p->host.psi_cpu_some };
        const char *file[2] = { "io", "cpu" };
        uint64_t window = vmg_manager_tick_ns(d->mgr) / 1000;
        if (window < VMG_PSI_WINDOW_MIN_US)
                window = VMG_PSI_WINDOW_MIN_US;
        if (window > VMG_PSI_WINDOW_MAX_US)
                window = VMG_PSI_WINDOW_MAX_US;
        psi_disarm(d);
        for (int i = 0; i < 2; i++) {
                if (frac[i] <= 0)
                        continue;
                char path[512];
                snprintf(path, sizeof path, "%s/pressure/%s", d->proc_root ? d->proc_root : VMG_PROC_ROOT, file[i]);
                int fd = vmg_psi_trigger_open(path, frac[i], window);
                if (fd < 0) {
                        log_info("no PSI trigger on %s (%s): reacting at tick boundaries", path, strerror(-fd));
                        continue;
                }
                if (sd_event_add_io(d->ev, &d->psi_src[i], fd, EPOLLPRI, on_psi, d) < 0) {
                        close(fd);
                        continue;
                }
                d->psi_fd[i] = fd;
        }
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct daemon *d = userdata;
        (void) s;
        (void) si;
        (void) sd_notify(false, "RELOADING=1");
        if (vmg_manager_reload(d->mgr) >= 0)
                psi_arm(d);
        (void) sd_notify(false, "READY=1");
        return 0;
}

static int on_libvirt(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) s;
        (void) fd;
        (void) revents;
        (void) vmg_manager_on_libvirt(((struct daemon *) userdata)->mgr);
        return 0;
}

static int on_blkiotune(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) s;
        (void) fd;
        (void) revents;
        vmg_manager_on_blkiotune(((struct daemon *) userdata)->mgr);
        return 0;
}

static void usage(FILE *out) {
        fprintf(out,
                "Usage: vmguardd [OPTIONS]\n"
                "  --host FILE          host policy (default /etc/vmguard/host.json)\n"
                "  --tenants DIR        tenant policies (default /etc/vmguard/tenants.d)\n"
                "  --connect URI        libvirt URI (default qemu:///system)\n"
                "  --state-dir DIR      where original values are remembered (default /run/vmguard)\n"
                "  --socket PATH        control socket (default STATE_DIR/control.sock)\n"
                "  --metrics ADDR:PORT  serve Prometheus /metrics there (e.g. 127.0.0.1:9877)\n"
                "  --metrics-textfile PATH.prom   write metrics for node_exporter's textfile collector\n"
                "  --tick SEC           override the host policy's tick\n"
                "  --dry-run            decide and log everything, change nothing\n"
                "  --cgroup-root DIR, --proc-root DIR, --netns-dir DIR   kernel paths (tests)\n"
                "  --libvirt-run-dir DIR   QEMU pid files NAME.pid (default /run/libvirt/qemu; tests)\n"
                "  --lock-file PATH     the one-instance-per-host lock (default " VMG_LOCK_FILE "; tests)\n"
                "  -v, --verbose        debug logging\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "host", required_argument, NULL, 'H' },     { "tenants", required_argument, NULL, 'T' },
                { "connect", required_argument, NULL, 'c' },  { "state-dir", required_argument, NULL, 's' },
                { "tick", required_argument, NULL, 't' },     { "dry-run", no_argument, NULL, 'n' },
                { "cgroup-root", required_argument, NULL, 'C' }, { "proc-root", required_argument, NULL, 'P' },
                { "netns-dir", required_argument, NULL, 'N' }, { "libvirt-run-dir", required_argument, NULL, 'R' }, { "lock-file", required_argument, NULL, 'L' }, { "socket", required_argument, NULL, 'S' },
                { "metrics", required_argument, NULL, 'M' }, { "metrics-textfile", required_argument, NULL, 'X' }, { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },           {},
        };
        struct vmg_manager_config cfg = {};
        const char *ctl_path = NULL, *metrics_addr = NULL, *textfile = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
                switch (c) {
                case 'H': cfg.host_file = optarg; break;
                case 'T': cfg.tenants_dir = optarg; break;
                case 'c': cfg.uri = optarg; break;
                case 's': cfg.state_dir = optarg; break;
                case 't': {
                        uint64_t ns;
                        if (vmg_parse_duration(optarg, &ns) < 0 || ns < 50 * NSEC_PER_MSEC) {
                                fprintf(stderr, "vmguardd: --tick: '%s' is not a duration of at least 50ms (e.g. 1s, 500ms)\n", optarg);
                                return 2;
                        }
                        cfg.tick_ns = ns;
                        break;
                }
                case 'n': cfg.dry_run = true; break;
                case 'C': cfg.cgroup_root = optarg; break;
                case 'P': cfg.proc_root = optarg; break;
                case 'N': cfg.netns_dir = optarg; break;
                case 'R': cfg.libvirt_run_dir = optarg; break;
                case 'L': cfg.lock_file = optarg; break;
                case 'S': ctl_path = optarg; break;
                case 'M': metrics_addr = optarg; break;
                case 'X': textfile = optarg; break;
                case 'v': log_set_max_level(LOG_DEBUG); break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "vmguardd: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (geteuid() != 0 && !cfg.dry_run) {
                fprintf(stderr, "vmguardd: must run as root to write cgroup limits and tc rules (or use --dry-run)\n");
                return 1;
        }

        /* The monitor keeps ~13 counter files open per guest (pread each tick instead of
         * open/read/close): 1000 guests need more than the usual soft limit of 1024. */
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &nofile);
        }

        struct daemon d = { .textfile = textfile, .proc_root = cfg.proc_root, .psi_fd = { -1, -1 } };
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* A closed pipe to a client must not kill the daemon while guests are throttled. */
        signal(SIGPIPE, SIG_IGN);

        int r = vmg_manager_new(&cfg, &d.mgr);
        if (r < 0) {
                fprintf(stderr, "vmguardd: cannot start: %s\n", strerror(-r));
                return 1;
        }
        r = sd_event_default(&d.ev);
        if (r < 0)
                goto out;
        /* SIGTERM/SIGINT end the loop; the manager's free restores every original value. */
        if ((r = sd_event_add_signal(d.ev, NULL, SIGTERM, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(d.ev, NULL, SIGINT, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(d.ev, NULL, SIGHUP, on_sighup, &d)) < 0)
                goto out;
        if (metrics_addr) {
                r = vmg_httpd_new(metrics_addr, &d.httpd);
                if (r >= 0)
                        r = vmg_httpd_attach(d.httpd, d.ev);
                if (r < 0) {
                        log_error_errno(r, "cannot serve /metrics on %s: %m", metrics_addr);
                        goto out;
                }
        }
        char ctl_default[512];
        snprintf(ctl_default, sizeof ctl_default, "%s/" VMG_CONTROL_SOCKET_NAME, cfg.state_dir ? cfg.state_dir : VMG_STATE_DIR);
        r = vmg_ctl_server_new(ctl_path ? ctl_path : ctl_default, on_ctl_request, &d, &d.ctl);
        if (r < 0)
                goto out;
        /* A --dry-run daemon of an unprivileged user answers that user. */
        (void) vmg_ctl_server_set_allowed_uid(d.ctl, geteuid());
        r = sd_event_add_io(d.ev, NULL, vmg_ctl_server_fd(d.ctl), EPOLLIN, on_ctl, &d);
        if (r < 0)
                goto out;
        r = sd_event_add_io(d.ev, NULL, vmg_manager_libvirt_fd(d.mgr), EPOLLIN, on_libvirt, &d);
        if (r < 0)
                goto out;
        if (vmg_manager_blkiotune_fd(d.mgr) >= 0) {
                r = sd_event_add_io(d.ev, NULL, vmg_manager_blkiotune_fd(d.mgr), EPOLLIN, on_blkiotune, &d);
                if (r < 0)
                        goto out;
        }
        uint64_t now;
        sd_event_now(d.ev, CLOCK_MONOTONIC, &now);
        d.next_usec = now;
        r = sd_event_add_time(d.ev, &d.timer, CLOCK_MONOTONIC, now, 0, on_tick, &d);
        if (r < 0)
                goto out;
        psi_arm(&d);
        (void) sd_event_set_watchdog(d.ev, true);
        (void) sd_notify(false, "READY=1\nSTATUS=watching guests");
        r = sd_event_loop(d.ev);
out:
        if (r < 0)
                log_error_errno(r, "event loop failed: %m");
        (void) sd_notify(false, "STOPPING=1\nSTATUS=restoring original values");
        sd_event_source_unref(d.timer);
        psi_disarm(&d);
        vmg_httpd_free(d.httpd);
        sd_event_unref(d.ev);
        vmg_ctl_server_free(d.ctl);
        vmg_manager_free(d.mgr);
        log_info("vmguard stopped; every value it changed was put back");
        return r < 0 ? 1 : 0;
}
