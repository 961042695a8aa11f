/* The control socket's client side and the monitoring-plugin logic. No daemon state here:
 * everything is judged from the snapshot the daemon sends (or left in status.json). About
 * 770 lines, one file on purpose: the plugin and `vmguard status` share the status-file
 * freshness rules (read_status_file, wait_status_rewrite: a file dated in the future counts
 * only once rewritten), which stay private here rather than become API. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/macros.h"
#include "common/paths.h"
#include "controller/cli/ctlclient.h"

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline. Returns 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline) {
        for (;;) {
                int64_t left = deadline - mono_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = fd, .events = events };
                int n = poll(&p, 1, (int) (left > INT32_MAX ? INT32_MAX : left));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ETIMEDOUT;
                return 0;
        }
}

int vmg_ctl_call(const char *path, const json_t *request, unsigned timeout_ms, json_t **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int64_t deadline = mono_ms() + (timeout_ms ? timeout_ms : 10000);
        _cleanup_free_ char *req = NULL, *buf = NULL;
        size_t len = 0, cap = 0;
        int r;

        if (!path || !request || !ret)
                return -EINVAL;
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        req = json_dumps(request, JSON_COMPACT);
        if (!req)
                return -ENOMEM;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A full backlog answers EAGAIN on a non-blocking UNIX connect: retry until the
         * deadline rather than fail a check because the daemon was busy for a moment. */
        while (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                if (mono_ms() >= deadline)
                        return -ETIMEDOUT;
                (void) poll(NULL, 0, 10);
        }

        size_t rlen = strlen(req), off = 0;
        char *line = malloc(rlen + 1);
        if (!line)
                return -ENOMEM;
        memcpy(line, req, rlen);
        line[rlen] = '\n';
        free(req);
        req = line;
        rlen++;
        while (off < rlen) {
                ssize_t n = send(fd, req + off, rlen - off, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        if ((r = wait_fd(fd, POLLOUT, deadline)) < 0)
                                return r;
                        continue;
                }
                if (n < 0) {
                        /* The server may have refused us and closed before reading: its
                         * reply is still there to read. */
                        if (errno == EPIPE || errno == ECONNRESET)
                                break;
                        return -errno;
                }
                off += (size_t) n;
        }

        for (;;) {
                if (len > 0 && memchr(buf, '\n', len))
                        break;
                if (cap - len < 4096) {
                        if (cap >= VMG_CTL_MAX_REPLY)
                                return -EMSGSIZE;
                        size_t ncap = cap ? cap * 2 : 16384;
                        char *nb = realloc(buf, ncap);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap = ncap;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        if ((r = wait_fd(fd, POLLIN, deadline)) < 0)
                                return r;
                        continue;
                }
                if (n < 0 && errno == ECONNRESET && len == 0)
                        return -EBADMSG;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len == 0)
                return -EBADMSG; /* closed without a word */
        char *nl = memchr(buf, '\n', len);
        json_t *reply = json_loadb(buf, nl ? (size_t) (nl - buf) : len, JSON_REJECT_DUPLICATES, NULL);
        if (!reply || !json_is_object(reply)) {
                json_decref(reply);
                return -EBADMSG;
        }
        *ret = reply;
        return 0;
}

const char *vmg_ctl_reply_error(const json_t *reply, const char **code) {
        const char *msg = json_string_value(json_object_get(reply, "error"));
        if (!msg)
                return NULL;
        if (code) {
                const char *c = json_string_value(json_object_get(reply, "code"));
                *code = c ? c : "";
        }
        return msg;
}

int vmg_ctl_check_snapshot(const json_t *reply, char *why, size_t len) {
        json_t *v = json_object_get(reply, "version");
        const char *msg = NULL;
        char tmp[128];

        if (!json_is_object(reply))
                msg = "the reply is not a JSON object";
        else if (!json_is_integer(v))
                msg = "the reply has no protocol \"version\"";
        else if (json_integer_value(v) != 1) {
                snprintf(tmp, sizeof tmp, "the daemon speaks protocol version %lld, this client version 1",
                         (long long) json_integer_value(v));
                msg = tmp;
        } else if (!json_is_object(json_object_get(reply, "daemon")) ||
                   !json_is_object(json_object_get(reply, "host")) ||
                   !json_is_array(json_object_get(reply, "services")) ||
                   !json_is_array(json_object_get(reply, "vms")))
                msg = "the snapshot lacks \"daemon\", \"host\", \"services\" or \"vms\"";
        if (!msg)
                return 0;
        if (why && len)
                snprintf(why, len, "%s", msg);
        return -EPROTO;
}

json_t *vmg_ctl_find_vm(const json_t *snap, const char *id) {
        json_t *vm;
        size_t i;
        if (!id)
                return NULL;
        json_array_foreach(json_object_get(snap, "vms"), i, vm) {
                const char *name = json_string_value(json_object_get(vm, "name"));
                const char *uuid = json_string_value(json_object_get(vm, "uuid"));
                if ((name && strcmp(name, id) == 0) || (uuid && strcasecmp(uuid, id) == 0))
                        return vm;
        }
        return NULL;
}

bool vmg_ctl_is_stale(double age_s, double tick_s) {
        if (!(tick_s > 0) || !isfinite(tick_s))
                tick_s = 1.0;
        return age_s > VMG_CTL_STALE_TICKS * tick_s;
}

/* Reads a status file and its age. Returns 0, -errno of open/stat, or -EBADMSG. */
static int read_status_file(const char *file, json_t **ret, double *ret_age) {
        struct stat st;
        if (stat(file, &st) < 0)
                return -errno;
        json_error_t err;
        json_t *j = json_load_file(file, JSON_REJECT_DUPLICATES, &err);
        if (!j) {
                /* jansson hides errno: tell "unreadable" from "garbage" ourselves. */
                if (access(file, R_OK) < 0)
                        return -errno;
                return -EBADMSG;
        }
        if (!json_is_object(j)) {
                json_decref(j);
                return -EBADMSG;
        }
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double age = (double) (now.tv_sec - st.st_mtim.tv_sec) + (double) (now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
        *ret = j;
        *ret_age = age;
        return 0;
}

/* Clock skew between the writer's and the reader's view of "now" that still counts as now. */
#define FUTURE_SLACK_S 0.5

/* For a status file dated in the future: polls for up to two ticks (at most 5 s) for the
 * daemon to rewrite it. Rewritten: the fresh file, age 0. Not: the old file with an age of
 * infinity (stale). Returns what read_status_file() returns. */
static int wait_status_rewrite(const char *file, double tick_s, json_t **ret, double *ret_age) {
        struct stat st0, st;
        if (stat(file, &st0) < 0)
                return -errno;
        double wait_s = isfinite(tick_s) && tick_s > 0 ? fmin(2 * tick_s + 0.2, 5.0) : 5.0;
        for (double waited = 0; waited < wait_s; waited += 0.1) {
                (void) nanosleep(&(struct timespec) { .tv_nsec = 100 * 1000 * 1000 }, NULL);
                if (stat(file, &st) < 0)
                        return -errno;
                if (st.st_mtim.tv_sec != st0.st_mtim.tv_sec || st.st_mtim.tv_nsec != st0.st_mtim.tv_nsec ||
                    st.st_ino != st0.st_ino) {
                        int r = read_status_file(file, ret, ret_age);
                        if (r == 0)
                                *ret_age = 0;
                        return r;
                }
        }
        int r = read_status_file(file, ret, ret_age);
        if (r == 0)
                *ret_age = INFINITY;
        return r;
}

int vmg_ctl_fetch(const char *socket_path, const char *state_dir, const json_t *request,
                  unsigned timeout_ms, struct vmg_ctl_view *ret) {
        json_t *reply = NULL;
        const char *code = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = vmg_ctl_call(socket_path, request, timeout_ms, &reply);
        if (r == 0 && vmg_ctl_reply_error(reply, &code) && strcmp(code, "permission_denied") == 0) {
                json_decref(reply);
                reply = NULL;
                r = -EPERM;
        }
        if (r == 0) {
                *ret = (struct vmg_ctl_view) { .reply = reply };
                return 0;
        }
        if (r != -ENOENT && r != -ECONNREFUSED && r != -EACCES && r != -EPERM && r != -ETIMEDOUT &&
            r != -ENOTDIR)
                return r; /* a daemon answering garbage must not be hidden behind an old file */

        struct vmg_ctl_view v = { .from_file = true, .socket_error = r };
        double age = 0;
        snprintf(v.file, sizeof v.file, "%s/%s", state_dir ? state_dir : VMG_STATE_DIR,
                 VMG_STATUS_FILE);
        int rf = read_status_file(v.file, &v.reply, &age);
        if (rf < 0)
                return rf == -ENOENT ? r : rf;
        double tick = json_number_value(json_object_get(json_object_get(v.reply, "daemon"), "tick_seconds"));
        if (age < -FUTURE_SLACK_S) {
                /* Written "in the future": the wall clock was stepped back since. A running
                 * daemon rewrites the file within a tick; a dead one never does, and taking
                 * the file as fresh would call a dead daemon fine for as long as the step. */
                json_decref(v.reply);
                v.reply = NULL;
                rf = wait_status_rewrite(v.file, tick, &v.reply, &age);
                if (rf < 0)
                        return rf == -ENOENT ? r : rf;
        }
        v.file_age_s = age < 0 ? 0 : age;
        v.stale = vmg_ctl_is_stale(age, tick);
        *ret = v;
        return 0;
}

void vmg_ctl_view_done(struct vmg_ctl_view *v) {
        if (!v)
                return;
        json_decref(v->reply);
        v->reply = NULL;
}

/* ---- Monitoring-plugin helpers ---- */

const char *vmg_plugin_state_name(int state) {
        switch (state) {
        case VMG_PLUGIN_OK: return "OK";
        case VMG_PLUGIN_WARNING: return "WARNING";
        case VMG_PLUGIN_CRITICAL: return "CRITICAL";
        default: return "UNKNOWN";
        }
}

/* A plain decimal: the guidelines' performance data has no exponents. */
static int parse_number(const char *s, size_t n, double *ret) {
        char tmp[64];
        if (n == 0 || n >= sizeof tmp)
                return -EINVAL;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        for (size_t i = 0; i < n; i++)
                if (!strchr("0123456789.-+", tmp[i]))
                        return -EINVAL;
        char *end;
        errno = 0;
        double v = strtod(tmp, &end);
        if (errno || *end || !isfinite(v))
                return -EINVAL;
        *ret = v;
        return 0;
}

int vmg_range_parse(const char *s, struct vmg_range *ret) {
        struct vmg_range r = { .set = true };
        if (!s || !*s || strlen(s) >= sizeof r.text || !ret)
                return -EINVAL;
        snprintf(r.text, sizeof r.text, "%s", s);
        if (*s == '@') {
                r.inside = true;
                s++;
        }
        const char *colon = strchr(s, ':');
        if (!colon) {
                r.start = 0;
                if (parse_number(s, strlen(s), &r.end) < 0)
                        return -EINVAL;
        } else {
                size_t sl = (size_t) (colon - s);
                if (sl == 1 && s[0] == '~')
                        r.no_start = true;
                else if (sl == 0)
                        r.start = 0;
                else if (parse_number(s, sl, &r.start) < 0)
                        return -EINVAL;
                const char *e = colon + 1;
                if (!*e)
                        r.no_end = true;
                else if (parse_number(e, strlen(e), &r.end) < 0)
                        return -EINVAL;
        }
        if (!r.no_start && !r.no_end && r.start > r.end)
                return -EINVAL;
        *ret = r;
        return 0;
}

bool vmg_range_alert(const struct vmg_range *r, double v) {
        if (!r || !r->set)
                return false;
        bool in = (r->no_start || v >= r->start) && (r->no_end || v <= r->end);
        return r->inside ? in : !in;
}

int vmg_range_state(const struct vmg_range *warn, const struct vmg_range *crit, double value) {
        if (vmg_range_alert(crit, value))
                return VMG_PLUGIN_CRITICAL;
        if (vmg_range_alert(warn, value))
                return VMG_PLUGIN_WARNING;
        return VMG_PLUGIN_OK;
}

static void fmt_num(double v, char *buf, size_t len) {
        if (!isfinite(v)) {
                snprintf(buf, len, "U");
                return;
        }
        snprintf(buf, len, "%.6f", v);
        char *dot = strchr(buf, '.');
        if (dot) {
                char *e = buf + strlen(buf) - 1;
                while (e > dot && *e == '0')
                        *e-- = '\0';
                if (e == dot)
                        *e = '\0';
        }
        if (strcmp(buf, "-0") == 0)
                snprintf(buf, len, "0");
}

int vmg_perfdata_append(char *buf, size_t len, const char *label, double value, const char *uom,
                        const char *warn, const char *crit, const double *min, const double *max) {
        char item[512], lab[256], v[64], mn[64] = "", mx[64] = "";
        size_t used = strlen(buf), k = 0;
        bool quote = strpbrk(label, " ='") != NULL;

        if (quote)
                lab[k++] = '\'';
        for (const char *p = label; *p && k + 3 < sizeof lab; p++) {
                if (*p == '\'')
                        lab[k++] = '\'';
                lab[k++] = *p;
        }
        if (quote)
                lab[k++] = '\'';
        lab[k] = '\0';
        fmt_num(value, v, sizeof v);
        if (min)
                fmt_num(*min, mn, sizeof mn);
        if (max)
                fmt_num(*max, mx, sizeof mx);
        const char *fields[4] = { warn ? warn : "", crit ? crit : "", mn, mx };
        int last = -1;
        for (int i = 0; i < 4; i++)
                if (*fields[i])
                        last = i;
        int n = snprintf(item, sizeof item, "%s=%s%s", lab, v, isfinite(value) && uom ? uom : "");
        for (int i = 0; i <= last && n > 0 && (size_t) n < sizeof item; i++)
                n += snprintf(item + n, sizeof item - (size_t) n, ";%s", fields[i]);
        if (n < 0 || (size_t) n >= sizeof item)
                return -ENOBUFS;
        if (used + (used ? 1 : 0) + (size_t) n + 1 > len)
                return -ENOBUFS;
        snprintf(buf + used, len - used, "%s%s", used ? " " : "", item);
        return 0;
}

int vmg_check_mode_parse(const char *s, enum vmg_check_mode *ret) {
        static const char *const names[] = { "daemon", "services", "throttled" };
        for (size_t i = 0; s && i < ARRAY_SIZE(names); i++)
                if (strcmp(s, names[i]) == 0) {
                        *ret = (enum vmg_check_mode) i;
                        return 0;
                }
        return -EINVAL;
}

/* Appends to a fixed buffer, truncating quietly: a cut detail beats no status line. */
static void appendf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...) {
        size_t used = strlen(buf);
        if (used + 1 >= len)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf + used, len - used, fmt, ap);
        va_end(ap);
}

static double num(const json_t *o, const char *key, double dflt) {
        json_t *v = json_object_get(o, key);
        return json_is_number(v) ? json_number_value(v) : dflt;
}

static const char *str(const json_t *o, const char *key, const char *dflt) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : dflt;
}

struct report {
        int state;
        char text[2048];
        char perf[4096];
        char details[8192];
};

static void raise_state(struct report *rep, int state) {
        if (state > rep->state)
                rep->state = state;
}

static void check_daemon(const struct vmg_check_opts *o, const json_t *snap, double extra_age,
                         struct report *rep) {
        json_t *d = json_object_get(snap, "daemon");
        double tick = num(d, "tick_seconds", 1.0);
        double age = num(d, "last_tick_age_seconds", -1.0);
        long long ticks = (long long) num(d, "ticks", 0);
        struct vmg_range w = o->warn, c = o->crit;
        char buf[64];

        if (!(tick > 0))
                tick = 1.0;
        /* Default: late by 3 ticks is a warning (the status file's staleness rule), by 10 a
         * hang. */
        if (!w.set) {
                fmt_num(3 * tick, buf, sizeof buf);
                (void) vmg_range_parse(buf, &w);
        }
        if (!c.set) {
                fmt_num(10 * tick, buf, sizeof buf);
                (void) vmg_range_parse(buf, &c);
        }
        if (!isfinite(extra_age)) {
                rep->state = VMG_PLUGIN_CRITICAL;
                snprintf(rep->text, sizeof rep->text,
                         "vmguardd pid %lld is not running: its status file is dated in the future and was not "
                         "rewritten within two ticks (the wall clock was stepped back since it last wrote)",
                         (long long) num(d, "pid", 0));
                return;
        }
        if (ticks == 0 || age < 0) {
                rep->state = VMG_PLUGIN_WARNING;
                snprintf(rep->text, sizeof rep->text, "vmguardd pid %lld started but has not ticked yet",
                         (long long) num(d, "pid", 0));
                age = extra_age;
        } else {
                age += extra_age;
                rep->state = vmg_range_state(&w, &c, age);
                snprintf(rep->text, sizeof rep->text,
                         "vmguardd pid %lld: last tick %.1f s ago (every %g s), %lld ticks, %zu guest(s), "
                         "%lld throttled, %lld errors",
                         (long long) num(d, "pid", 0), age, tick, ticks,
                         json_array_size(json_object_get(snap, "vms")), (long long) num(d, "guests_throttled", 0),
                         (long long) num(d, "errors_total", 0));
        }
        if (json_is_false(json_object_get(d, "libvirt_connected"))) {
                raise_state(rep, VMG_PLUGIN_WARNING);
                appendf(rep->text, sizeof rep->text, "; libvirt disconnected");
        }
        if (json_is_true(json_object_get(d, "dry_run")))
                appendf(rep->text, sizeof rep->text, "; dry run (changes nothing)");
        double zero = 0;
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "last_tick_age", age, "s", w.text, c.text, &zero, NULL);
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "tick_duration",
                                   num(d, "last_tick_duration_seconds", NAN), "s", NULL, NULL, &zero, NULL);
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "errors", num(d, "errors_total", 0), "c", NULL,
                                   NULL, NULL, NULL);
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "guests_throttled", num(d, "guests_throttled", 0),
                                   NULL, NULL, NULL, &zero, NULL);
        if (o->verbose) {
                json_t *acts = json_object_get(d, "actions_total");
                const char *k;
                json_t *v;
                appendf(rep->details, sizeof rep->details, "actions:");
                json_object_foreach(acts, k, v)
                        appendf(rep->details, sizeof rep->details, " %s=%lld", k, (long long) json_integer_value(v));
                appendf(rep->details, sizeof rep->details, "\nhost: %s\n",
                        json_is_true(json_object_get(json_object_get(snap, "host"), "contended"))
                                ? str(json_object_get(snap, "host"), "contention", "contended")
                                : "calm");
        }
}

static void check_services(const struct vmg_check_opts *o, const json_t *snap, struct report *rep) {
        json_t *svcs = json_object_get(snap, "services"), *sv;
        size_t i, down = 0, bad = 0, total = json_array_size(svcs);
        char problems[1024] = "", fine[1024] = "", crit[64], label[160];
        double zero = 0;

        rep->state = VMG_PLUGIN_OK;
        json_array_foreach(svcs, i, sv) {
                const char *name = str(sv, "name", "?");
                bool up = json_is_true(json_object_get(sv, "up"));
                bool healthy = json_is_true(json_object_get(sv, "healthy"));
                json_t *dj = json_object_get(sv, "run_delay_avg_ms");
                double delay = json_is_number(dj) ? json_number_value(dj) : NAN;
                double maxd = num(sv, "max_run_delay_ms", NAN);
                int st;
                char what[256];

                if (!up) {
                        st = VMG_PLUGIN_CRITICAL;
                        down++;
                        snprintf(what, sizeof what, "%s down (no process matches '%s')", name, str(sv, "match", "?"));
                } else if (isnan(delay)) {
                        /* Up but not sampled over a whole interval yet (first tick): no
                         * verdict, not an alarm. */
                        st = VMG_PLUGIN_OK;
                        snprintf(what, sizeof what, "%s up (not sampled yet)", name);
                } else if (!healthy) {
                        st = VMG_PLUGIN_CRITICAL;
                        bad++;
                        if (isfinite(maxd))
                                snprintf(what, sizeof what, "%s unhealthy (run delay %.2f ms, limit %g ms)", name, delay, maxd);
                        else
                                snprintf(what, sizeof what, "%s unhealthy (run delay %.2f ms)", name, delay);
                } else {
                        st = vmg_range_state(&o->warn, &o->crit, delay);
                        snprintf(what, sizeof what, "%s %s (run delay %.2f ms)", name,
                                 st == VMG_PLUGIN_OK ? "ok" : "slow", delay);
                }
                raise_state(rep, st);
                if (st == VMG_PLUGIN_OK)
                        appendf(fine, sizeof fine, "%s%s", *fine ? ", " : "", what);
                else
                        appendf(problems, sizeof problems, "%s%s", *problems ? "; " : "", what);
                if (o->crit.set)
                        snprintf(crit, sizeof crit, "%s", o->crit.text);
                else if (isfinite(maxd))
                        fmt_num(maxd, crit, sizeof crit);
                else
                        crit[0] = '\0';
                snprintf(label, sizeof label, "%s_run_delay", name);
                (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, label, delay, "ms",
                                           o->warn.set ? o->warn.text : NULL, crit, &zero, NULL);
                if (o->verbose)
                        appendf(rep->details, sizeof rep->details, "%s: %s, pids %lld, cpu %.3f cores\n", name, what,
                                (long long) num(sv, "pids", 0), num(sv, "cpu_cores", 0));
        }
        double tot = (double) total;
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "services_down", (double) down, NULL, NULL, NULL,
                                   &zero, &tot);
        if (total == 0)
                snprintf(rep->text, sizeof rep->text, "no protected services configured");
        else if (rep->state == VMG_PLUGIN_OK)
                snprintf(rep->text, sizeof rep->text, "%zu protected service(s) fine: %s", total, fine);
        else
                snprintf(rep->text, sizeof rep->text, "%zu of %zu protected service(s) down, %zu unhealthy: %s%s%s",
                         down, total, bad, problems, *fine ? "; " : "", fine);
}

static void check_throttled(const struct vmg_check_opts *o, const json_t *snap, struct report *rep) {
        json_t *vms = json_object_get(snap, "vms"), *vm;
        size_t i, total = 0, thr = 0, unmanaged = 0, listed = 0;
        double longest = 0, zero = 0;
        char who[1024] = "", lost[512] = "";

        json_array_foreach(vms, i, vm) {
                const char *tenant = json_string_value(json_object_get(vm, "tenant"));
                if (o->tenant && (!tenant || strcmp(tenant, o->tenant) != 0))
                        continue;
                total++;
                const char *name = str(vm, "name", "?");
                if (json_is_true(json_object_get(vm, "unmanaged"))) {
                        unmanaged++;
                        appendf(lost, sizeof lost, "%s%s", *lost ? ", " : "", name);
                }
                if (!json_is_true(json_object_get(vm, "throttled")))
                        continue;
                thr++;
                double for_s = num(vm, "throttled_for_s", 0);
                if (for_s > longest)
                        longest = for_s;
                char res[256] = "";
                const char *k;
                json_t *rv;
                json_object_foreach(json_object_get(vm, "resources"), k, rv)
                        if (json_is_true(json_object_get(rv, "throttled")))
                                appendf(res, sizeof res, "%s%s", *res ? ", " : "", k);
                /* The status line stays readable with a hundred guests: -v lists them all. */
                if (listed++ < 5)
                        appendf(who, sizeof who, "%s%s for %.0f s (%s)", *who ? ", " : "", name, for_s, res);
                if (o->verbose)
                        appendf(rep->details, sizeof rep->details, "%s (tenant %s): throttled for %.0f s: %s\n", name,
                                tenant ? tenant : "-", for_s, res);
        }
        rep->state = vmg_range_state(&o->warn, &o->crit, (double) thr);
        snprintf(rep->text, sizeof rep->text, "%zu of %zu guest(s)%s%s%s throttled", thr, total,
                 o->tenant ? " of tenant " : "", o->tenant ? o->tenant : "", "");
        if (thr)
                appendf(rep->text, sizeof rep->text, ": %s%s", who, listed > 5 ? ", ..." : "");
        if (unmanaged) {
                /* vmguard gave up on these after a permanent error: someone must look. */
                raise_state(rep, VMG_PLUGIN_WARNING);
                appendf(rep->text, sizeof rep->text, "; %zu unmanaged after errors: %s", unmanaged, lost);
        }
        json_t *host = json_object_get(snap, "host");
        if (json_is_true(json_object_get(host, "contended")))
                appendf(rep->text, sizeof rep->text, "; host contended: %s", str(host, "contention", "?"));
        double tot = (double) total;
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "throttled", (double) thr, NULL,
                                   o->warn.set ? o->warn.text : NULL, o->crit.set ? o->crit.text : NULL, &zero, &tot);
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "longest_throttle", longest, "s", NULL, NULL, &zero,
                                   NULL);
        (void) vmg_perfdata_append(rep->perf, sizeof rep->perf, "unmanaged", (double) unmanaged, NULL, NULL, NULL,
                                   &zero, &tot);
}

static int render(const struct report *rep, char *out, size_t len) {
        snprintf(out, len, "VMGUARD %s - %s%s%s\n%s", vmg_plugin_state_name(rep->state), rep->text,
                 *rep->perf ? " | " : "", rep->perf, rep->details);
        return rep->state;
}

static int unknown(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int unknown(char *out, size_t len, const char *fmt, ...) {
        struct report *rep = calloc(1, sizeof *rep);
        if (!rep) {
                snprintf(out, len, "VMGUARD UNKNOWN - out of memory\n");
                return VMG_PLUGIN_UNKNOWN;
        }
        rep->state = VMG_PLUGIN_UNKNOWN;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rep->text, sizeof rep->text, fmt, ap);
        va_end(ap);
        int st = render(rep, out, len);
        free(rep);
        return st;
}

int vmg_check_evaluate(const struct vmg_check_opts *o, const json_t *snap, double extra_age_s,
                       char *out, size_t len) {
        char why[160];
        if (vmg_ctl_check_snapshot(snap, why, sizeof why) < 0)
                return unknown(out, len, "cannot judge the daemon's answer: %s", why);
        _cleanup_free_ struct report *rep = calloc(1, sizeof *rep);
        if (!rep)
                return unknown(out, len, "out of memory");
        switch (o->mode) {
        case VMG_CHECK_DAEMON: check_daemon(o, snap, extra_age_s, rep); break;
        case VMG_CHECK_SERVICES: check_services(o, snap, rep); break;
        case VMG_CHECK_THROTTLED: check_throttled(o, snap, rep); break;
        default: return unknown(out, len, "unknown check mode %d", (int) o->mode);
        }
        return render(rep, out, len);
}

int vmg_check_run(const struct vmg_check_opts *o, const char *socket_path, const char *status_file,
                  unsigned timeout_ms, char *out, size_t len) {
        json_t *reply = NULL;
        double extra = 0;
        int r;

        if (status_file) {
                r = read_status_file(status_file, &reply, &extra);
                if (r == 0 && extra < -FUTURE_SLACK_S) {
                        double tick = json_number_value(json_object_get(json_object_get(reply, "daemon"), "tick_seconds"));
                        json_decref(reply);
                        reply = NULL;
                        r = wait_status_rewrite(status_file, tick, &reply, &extra);
                }
                if (r == -EBADMSG)
                        return unknown(out, len, "%s is not a vmguard status file (not JSON)", status_file);
                if (r < 0)
                        return unknown(out, len, "cannot read %s: %s", status_file, strerror(-r));
                if (extra < 0)
                        extra = 0;
        } else {
                const char *path = socket_path ? socket_path : VMG_CONTROL_SOCKET;
                json_t *req = json_pack("{s:s}", "cmd", "status");
                r = req ? vmg_ctl_call(path, req, timeout_ms, &reply) : -ENOMEM;
                json_decref(req);
                if (r == -EBADMSG)
                        return unknown(out, len, "vmguardd at %s answered garbage (not one JSON object per line)", path);
                if (r == -ETIMEDOUT)
                        return unknown(out, len, "vmguardd at %s did not answer within %u ms", path, timeout_ms);
                if (r < 0)
                        return unknown(out, len, "cannot reach vmguardd at %s: %s%s", path, strerror(-r),
                                       r == -ENOENT || r == -ECONNREFUSED ? " (is it running?)"
                                       : r == -EACCES                     ? " (the socket is root only: run as root or use --status-file)"
                                                                          : "");
                const char *msg = vmg_ctl_reply_error(reply, NULL);
                if (msg) {
                        int st = unknown(out, len, "vmguardd at %s refused: %s", path, msg);
                        json_decref(reply);
                        return st;
                }
        }
        int st = vmg_check_evaluate(o, reply, extra, out, len);
        json_decref(reply);
        return st;
}
