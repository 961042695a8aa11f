/* `vmguard status` and `vmguard explain VM`: ask the daemon over its control socket (or read
 * the status file it leaves when the socket is out of reach) and say in words what vmguard
 * is doing and why. The explanation is built here from the snapshot, so the daemon only
 * hands out data. Exit status: 0 ok, 1 error (no daemon, no usable status, a stale one),
 * 2 usage, 3 no such guest. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>

#include "controller/cli/commands.h"
#include "controller/cli/ctlclient.h"
#include "controller/daemon/ctlsock.h"
#include "policies/policy.h"
#include "common/paths.h"

#define EXIT_NO_VM 3
/* Long enough for a daemon in the middle of a slow tick (the socket is served between
 * ticks), short enough that an admin is not left staring at a hung prompt. */
#define CLI_TIMEOUT_MS 5000

struct cli_opts {
        bool json;
        const char *socket;
        const char *state_dir;
        const char *vm;
};

static int parse_opts(int argc, char **argv, bool want_vm, struct cli_opts *o) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 'S' },
                { "state-dir", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static char sock_in_state_dir[108]; /* sun_path: longer cannot be a socket anyway */
        bool socket_given = false;
        int c;
        *o = (struct cli_opts) { .socket = VMG_CONTROL_SOCKET, .state_dir = VMG_STATE_DIR };
        optind = 1;
        while ((c = getopt_long(argc, argv, "jS:s:h", opts, NULL)) != -1) {
                switch (c) {
                case 'j': o->json = true; break;
                case 'S': o->socket = optarg; socket_given = true; break;
                case 's': o->state_dir = optarg; break;
                case 'h': return 1;
                default: return -EINVAL;
                }
        }
        /* vmguardd puts its socket in its state dir unless told otherwise: so do we. */
        if (!socket_given && strcmp(o->state_dir, VMG_STATE_DIR) != 0 &&
            snprintf(sock_in_state_dir, sizeof sock_in_state_dir, "%s/control.sock", o->state_dir) <
                    (int) sizeof sock_in_state_dir)
                o->socket = sock_in_state_dir;
        if (want_vm) {
                if (optind >= argc) {
                        fprintf(stderr, "vmguard explain: which guest? give its name or uuid\n");
                        return -EINVAL;
                }
                o->vm = argv[optind++];
        }
        if (optind < argc) {
                fprintf(stderr, "vmguard: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

static double num(const json_t *o, const char *key, double dflt) {
        json_t *v = json_object_get(o, key);
        return json_is_number(v) ? json_number_value(v) : dflt;
}

static const char *str(const json_t *o, const char *key, const char *dflt) {
        const char *s = json_string_value(json_object_get(o, key));
        return s && *s ? s : dflt;
}

/* A value of the named resource in human units. */
static const char *fmt_res(const char *res, double v, char *buf, size_t len) {
        enum vmg_resource k = vmg_resource_from_name(res);
        if (!isfinite(v)) {
                snprintf(buf, len, "n/a");
                return buf;
        }
        if (k == VMG_RES_COUNT) {
                snprintf(buf, len, "%g", v);
                return buf;
        }
        return vmg_resource_format(k, v, buf, len);
}

static const char *fmt_dur(double s, char *buf, size_t len) {
        if (!isfinite(s) || s < 0)
                snprintf(buf, len, "?");
        else if (s < 120)
                snprintf(buf, len, "%.0f s", s);
        else if (s < 7200)
                snprintf(buf, len, "%.0f min %.0f s", floor(s / 60), fmod(s, 60));
        else
                snprintf(buf, len, "%.0f h %.0f min", floor(s / 3600), fmod(s, 3600) / 60);
        return buf;
}

/* Says where the data came from when it is not the live daemon. Returns the exit status
 * the command should end with (1 when the daemon is not running). */
static int report_source(const struct cli_opts *o, const struct vmg_ctl_view *v) {
        char d[32];
        if (!v->from_file)
                return 0;
        fprintf(stderr, "vmguard: cannot ask vmguardd at %s (%s); showing %s, written %s ago\n", o->socket,
                v->socket_error == -EPERM ? "the daemon answers root only" : strerror(-v->socket_error), v->file,
                fmt_dur(v->file_age_s, d, sizeof d));
        if (v->stale) {
                fprintf(stderr, "vmguard: that is more than %d ticks old: vmguardd is not running; below is the last "
                                "state it left\n",
                        VMG_CTL_STALE_TICKS);
                return 1;
        }
        return 0;
}

/* Fetches a snapshot (or the daemon's error). Returns 0 or the exit status to end with. */
static int fetch(const struct cli_opts *o, const char *cmd, struct vmg_ctl_view *v) {
        json_t *req = json_pack("{s:s}", "cmd", cmd);
        if (req && o->vm)
                json_object_set_new(req, "vm", json_string(o->vm));
        int r = req ? vmg_ctl_fetch(o->socket, o->state_dir, req, CLI_TIMEOUT_MS, v) : -ENOMEM;
        json_decref(req);
        if (r == -EBADMSG) {
                fprintf(stderr, "vmguard: vmguardd at %s answered something that is not JSON\n", o->socket);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "vmguard: cannot ask vmguardd at %s: %s, and no status file in %s: is vmguardd running?\n",
                        o->socket, strerror(-r), o->state_dir);
                return 1;
        }
        const char *code = "";
        const char *msg = vmg_ctl_reply_error(v->reply, &code);
        if (msg && strcmp(code, "unknown_command") == 0 && strcmp(cmd, "status") != 0) {
                /* An older daemon without this command: its status has all we need. */
                vmg_ctl_view_done(v);
                struct cli_opts o2 = *o;
                o2.vm = NULL;
                return fetch(&o2, "status", v);
        }
        if (msg) {
                fprintf(stderr, "vmguard: vmguardd: %s\n", msg);
                return strcmp(code, "no_such_vm") == 0 ? EXIT_NO_VM : 1;
        }
        char why[160];
        if (vmg_ctl_check_snapshot(v->reply, why, sizeof why) < 0) {
                fprintf(stderr, "vmguard: cannot read %s: %s\n", v->from_file ? v->file : "the daemon's answer", why);
                return 1;
        }
        return 0;
}

static void print_limits(const json_t *vm, char *buf, size_t len) {
        const char *k;
        json_t *r;
        char v[48];
        buf[0] = '\0';
        json_object_foreach(json_object_get(vm, "resources"), k, r) {
                double limit = num(r, "limit", 0), cap = num(r, "cap", 0);
                if (!(limit > 0))
                        continue;
                bool thr = json_is_true(json_object_get(r, "throttled"));
                size_t used = strlen(buf);
                snprintf(buf + used, len - used, "%s%s %s%s", used ? ", " : "", k, fmt_res(k, limit, v, sizeof v),
                         thr ? " (noise)" : cap > 0 && limit >= cap ? " (cap)" : "");
        }
        if (!buf[0])
                snprintf(buf, len, "-");
}

static void print_header(const json_t *snap) {
        json_t *d = json_object_get(snap, "daemon"), *h = json_object_get(snap, "host");
        char a[32];
        printf("vmguardd %s, pid %lld: %lld ticks every %g s, last %s ago; libvirt %s; %lld errors%s\n",
               str(d, "version", "?"), (long long) num(d, "pid", 0), (long long) num(d, "ticks", 0),
               num(d, "tick_seconds", 0), fmt_dur(num(d, "last_tick_age_seconds", -1), a, sizeof a),
               json_is_false(json_object_get(d, "libvirt_connected")) ? "DISCONNECTED" : "connected",
               (long long) num(d, "errors_total", 0),
               json_is_true(json_object_get(d, "dry_run")) ? " (dry run: decides and logs, changes nothing)" : "");
        if (json_is_true(json_object_get(h, "contended")))
                printf("Host: CONTENDED: %s\n", str(h, "contention", "(no reason given)"));
        else
                printf("Host: calm\n");
}

int cmd_status(int argc, char **argv) {
        struct cli_opts o;
        struct vmg_ctl_view v = {};
        int r = parse_opts(argc, argv, false, &o);
        if (r != 0) {
                fprintf(r > 0 ? stdout : stderr, "Usage: vmguard status [--json] [--socket PATH] [--state-dir DIR]\n");
                return r > 0 ? 0 : 2;
        }
        r = fetch(&o, "status", &v);
        if (r) {
                vmg_ctl_view_done(&v);
                return r;
        }
        int rc = report_source(&o, &v);
        json_t *snap = v.reply;
        if (o.json) {
                json_dumpf(snap, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
                putchar('\n');
                vmg_ctl_view_done(&v);
                return rc;
        }

        print_header(snap);
        json_t *svcs = json_object_get(snap, "services"), *sv, *vms = json_object_get(snap, "vms"), *vm;
        size_t i;
        printf("Services:%s\n", json_array_size(svcs) ? "" : " none protected");
        json_array_foreach(svcs, i, sv) {
                json_t *dj = json_object_get(sv, "run_delay_avg_ms");
                char delay[64] = "", maxd[48] = "";
                if (json_is_number(dj))
                        snprintf(delay, sizeof delay, "run delay %.2f ms", json_number_value(dj));
                if (json_is_number(json_object_get(sv, "max_run_delay_ms")))
                        snprintf(maxd, sizeof maxd, " (max %g ms)", num(sv, "max_run_delay_ms", 0));
                bool up = json_is_true(json_object_get(sv, "up"));
                printf("  %-14s %-5s %-10s %s%s\n", str(sv, "name", "?"), up ? "up" : "DOWN",
                       !up ? "" : json_is_true(json_object_get(sv, "healthy")) ? "healthy"
                                 : json_is_number(dj)                          ? "UNHEALTHY"
                                                                              : "(no sample yet)",
                       delay, maxd);
        }
        size_t thr = 0;
        json_array_foreach(vms, i, vm) thr += json_is_true(json_object_get(vm, "throttled"));
        printf("Guests: %zu, %zu throttled\n", json_array_size(vms), thr);
        if (json_array_size(vms))
                printf("  %-24s %-12s %-18s %s\n", "NAME", "TENANT", "STATE", "LIMITS IN FORCE");
        json_array_foreach(vms, i, vm) {
                char state[48], limits[512], d[32];
                if (json_is_true(json_object_get(vm, "unmanaged")))
                        snprintf(state, sizeof state, "UNMANAGED");
                else if (json_is_true(json_object_get(vm, "throttled")))
                        snprintf(state, sizeof state, "THROTTLED %s", fmt_dur(num(vm, "throttled_for_s", -1), d, sizeof d));
                else if (json_object_get(vm, "error"))
                        snprintf(state, sizeof state, "error: %.30s", str(vm, "error", "?"));
                else
                        snprintf(state, sizeof state, "ok");
                print_limits(vm, limits, sizeof limits);
                printf("  %-24s %-12s %-18s %s\n", str(vm, "name", "?"), str(vm, "tenant", "-"), state, limits);
        }
        vmg_ctl_view_done(&v);
        return rc;
}

static void explain_resource(const char *k, const json_t *r, const json_t *rule, const json_t *pol) {
        char a[48], b[48], c[48], d[32], e[32];
        double limit = num(r, "limit", 0), cap = num(r, "cap", 0), usage = num(r, "usage", NAN);
        bool thr = json_is_true(json_object_get(r, "throttled"));

        if (limit > 0)
                printf("  %s: limit %s%s", k, fmt_res(k, limit, a, sizeof a),
                       thr ? ", THROTTLED (below its cap because of noise)" : cap > 0 && limit >= cap ? " (its hard cap, always applied)" : "");
        else
                printf("  %s: no limit in force", k);
        if (cap > 0 && !(limit >= cap))
                printf("; hard cap %s", fmt_res(k, cap, b, sizeof b));
        putchar('\n');
        const char *why = str(r, "reason", NULL);
        if (why)
                printf("      why: %s\n", why);
        if (json_is_number(json_object_get(r, "changed_s_ago")))
                printf("      last changed %s ago\n", fmt_dur(num(r, "changed_s_ago", 0), d, sizeof d));
        if (isfinite(usage)) {
                printf("      usage at the last tick: %s", fmt_res(k, usage, a, sizeof a));
                if (json_is_number(json_object_get(rule, "noisy_above")))
                        printf("; noisy above %s for %s while the host is contended", fmt_res(k, num(rule, "noisy_above", 0), b, sizeof b),
                               fmt_dur(num(rule, "for_s", 0), d, sizeof d));
                if (json_is_number(json_object_get(rule, "throttle_to")))
                        printf("; then limited to %s", fmt_res(k, num(rule, "throttle_to", 0), c, sizeof c));
                if (json_is_number(json_object_get(rule, "floor")))
                        printf(", never below %s", fmt_res(k, num(rule, "floor", 0), c, sizeof c));
                putchar('\n');
        }
        if (json_is_true(json_object_get(r, "suspect")))
                printf("      suspect for %s: over its threshold (or at its limit) while the host is contended%s\n",
                       fmt_dur(num(r, "suspect_for_s", 0), d, sizeof d),
                       thr ? ": the limit may tighten further" : ": throttled once that lasts long enough");
        if (!thr)
                return;
        json_t *need = json_object_get(rule, "calm_for_s");
        bool calm = json_is_number(json_object_get(r, "calm_for_s"));
        double so_far = num(r, "calm_for_s", 0);
        /* Release is stepwise: after each calm period the engine raises the limit by step_up
         * until it passes noisy_above, then lifts it. We state the next step, not a clock
         * time: calm may end any moment. */
        char steps[160] = "";
        if (pol && json_is_number(json_object_get(pol, "step_up")) && json_is_number(json_object_get(rule, "noisy_above")))
                snprintf(steps, sizeof steps, "; each step raises the limit x%g (steps at least %s apart) until it passes %s, then it is lifted",
                         num(pol, "step_up", 0), fmt_dur(num(pol, "min_hold_s", 0), e, sizeof e),
                         fmt_res(k, num(rule, "noisy_above", 0), c, sizeof c));
        if (json_is_number(need)) {
                double n = json_number_value(need);
                json_int_t strikes = json_integer_value(json_object_get(r, "repeat_offences"));
                if (strikes > 0 && strikes < 16) {
                        n *= (double) (1 << strikes);
                        printf("      repeat offender: noisy again soon after a release %lld time(s), so its release needs %s of calm, not %s\n",
                               (long long) strikes, fmt_dur(n, d, sizeof d), fmt_dur(json_number_value(need), e, sizeof e));
                }
                if (calm)
                        printf("      release: calm for %s of the %s needed: next step after %s more of calm%s\n",
                               fmt_dur(so_far, d, sizeof d), fmt_dur(n, e, sizeof e),
                               fmt_dur(n > so_far ? n - so_far : 0, a, sizeof a), steps);
                else
                        printf("      release: not calm yet; next step after %s of calm (usage under its limit, or no contention)%s\n",
                               fmt_dur(n, e, sizeof e), steps);
        } else if (pol) {
                printf("      release: the policy in force sets no calm period for %s (its noise rule is gone?)%s%s\n", k,
                       calm ? "; calm so far " : "", calm ? fmt_dur(so_far, d, sizeof d) : "");
        } else if (calm) {
                printf("      release: calm for %s so far; released after the tenant's calm_for of calm (the policy is not "
                       "in this answer)\n",
                       fmt_dur(so_far, d, sizeof d));
        } else {
                printf("      release: not calm yet; released after the tenant's calm_for of calm (the policy is not in "
                       "this answer)\n");
        }
}

int cmd_explain(int argc, char **argv) {
        struct cli_opts o;
        struct vmg_ctl_view v = {};
        int r = parse_opts(argc, argv, true, &o);
        if (r != 0) {
                fprintf(r > 0 ? stdout : stderr, "Usage: vmguard explain VM [--json] [--socket PATH] [--state-dir DIR]\n");
                return r > 0 ? 0 : 2;
        }
        r = fetch(&o, "explain", &v);
        if (r) {
                vmg_ctl_view_done(&v);
                return r;
        }
        int rc = report_source(&o, &v);
        json_t *snap = v.reply, *vm = vmg_ctl_find_vm(snap, o.vm);
        if (!vm) {
                fprintf(stderr, "vmguard: no guest named '%s' (by name or uuid)%s\n", o.vm,
                        v.from_file ? " in the status file" : "");
                vmg_ctl_view_done(&v);
                return EXIT_NO_VM;
        }
        if (o.json) {
                json_t *out = json_pack("{s:i, s:s, s:O, s:O, s:O}", "version", 1, "source",
                                        v.from_file ? "file" : "socket", "vm", vm, "host",
                                        json_object_get(snap, "host"), "daemon", json_object_get(snap, "daemon"));
                if (out)
                        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
                putchar('\n');
                json_decref(out);
                vmg_ctl_view_done(&v);
                return out ? rc : 1;
        }

        char d[32];
        const char *tenant = str(vm, "tenant", NULL);
        printf("Guest %s (uuid %s, tenant %s, qemu pid %lld)\n", str(vm, "name", "?"), str(vm, "uuid", "?"),
               tenant ? tenant : "none", (long long) num(vm, "qemu_pid", 0));
        if (json_is_true(json_object_get(vm, "unmanaged")))
                printf("  UNMANAGED: vmguard hit a permanent error on this guest, put its values back and stopped "
                       "managing it%s%s\n",
                       json_object_get(vm, "error") ? ": " : "", str(vm, "error", ""));
        else if (json_is_true(json_object_get(vm, "throttled")))
                printf("  THROTTLED for %s\n", fmt_dur(num(vm, "throttled_for_s", -1), d, sizeof d));
        else
                printf("  not throttled\n");
        if (!tenant)
                printf("  no tenant policy claims it: vmguard watches it and counts it as a victim, never limits it\n");
        print_header(snap);

        json_t *pol = json_object_get(vm, "policy"), *rules = json_object_get(pol, "rules");
        json_t *res = json_object_get(vm, "resources");
        const char *k;
        json_t *rv;
        if (json_object_size(res) == 0)
                printf("Limits: none; vmguard has changed nothing for this guest\n");
        else
                printf("Limits:\n");
        json_object_foreach(res, k, rv) explain_resource(k, rv, json_object_get(rules, k), pol);

        json_t *u = json_object_get(vm, "usage");
        char a[48], b[48], c[48], e[48];
        printf("Usage at the last tick: cpu %s; disk read %s, write %s; net tx %s, rx %s\n",
               fmt_res("cpu", num(u, "cpu_cores", NAN), a, sizeof a),
               fmt_res("disk_read", num(u, "disk_read_bytes_per_s", NAN), b, sizeof b),
               fmt_res("disk_write", num(u, "disk_write_bytes_per_s", NAN), c, sizeof c),
               fmt_res("net_tx", num(u, "net_tx_bits_per_s", NAN), e, sizeof e),
               fmt_res("net_rx", num(u, "net_rx_bits_per_s", NAN), d, sizeof d));
        printf("Sources: %s\n", str(vm, "sources", "?"));
        if (!pol && tenant)
                printf("(the daemon sent no policy for tenant %s: thresholds and calm periods are not shown; see "
                       "`vmguard policy check`)\n",
                       tenant);
        vmg_ctl_view_done(&v);
        return rc;
}
