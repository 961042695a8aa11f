#define _GNU_SOURCE
/* Snapshot JSON -> Prometheus text exposition 0.0.4. Counters come from the snapshot's
 * cumulative *_total fields, never from its per-tick rates: Prometheus computes rates
 * itself with rate(), over whatever window the dashboard asks for, and a counter survives
 * missed scrapes where a rate would not. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "controller/daemon/metrics.h"

struct fam {
        const char *name;
        const char *type;
        const char *help;
};

struct label {
        const char *name;
        const char *value; /* NULL: label left out (Prometheus treats "" and absent alike) */
};

/* More than the families below; a new family past this is a -EINVAL the tests catch. */
#define MAX_FAMILIES 96

/* Output goes to a plain growing buffer, not a FILE: glibc's open_memstream() zeroes and
 * copies on every growth, which was half the render time at 1000 guests. */
struct writer {
        char *buf;
        size_t len, cap;
        const struct fam *cur;
        const struct fam *done[MAX_FAMILIES];
        size_t n_done;
        int error;
};

static void put_n(struct writer *w, const char *s, size_t n) {
        if (w->error < 0)
                return;
        if (w->cap - w->len < n + 1) {
                size_t cap = w->cap ? w->cap : 64 * 1024;
                while (cap - w->len < n + 1)
                        cap *= 2;
                char *b = realloc(w->buf, cap);
                if (!b) {
                        w->error = -ENOMEM;
                        return;
                }
                w->buf = b;
                w->cap = cap;
        }
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = 0;
}

static void put(struct writer *w, const char *s) { put_n(w, s, strlen(s)); }

/* Label values escape \, " and newline; HELP text escapes \ and newline only (format
 * 0.0.4). Anything else, UTF-8 included, goes through as it is. */
static void put_escaped(struct writer *w, const char *s, bool label_value) {
        const char *special = label_value ? "\\\n\"" : "\\\n";
        for (;;) {
                size_t n = strcspn(s, special);
                put_n(w, s, n);
                s += n;
                if (!*s)
                        return;
                put(w, *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : "\\\"");
                s++;
        }
}

/* Shortest form that reads back as the same double, so 0.1 prints as 0.1, not
 * 0.10000000000000001, and integral values print without a fraction. */
static void format_double(double v, char *buf, size_t len) {
        if (isnan(v)) {
                snprintf(buf, len, "NaN");
                return;
        }
        if (isinf(v)) {
                snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
                return;
        }
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, len, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                        return;
        }
}

/* A JSON number or boolean as a sample value; false for null, missing, strings and, when
 * nonneg is set (counters, ages), negative figures, which are "unknown" markers. */
static bool json_value(const json_t *v, bool nonneg, char *buf, size_t len) {
        if (json_is_integer(v)) {
                if (nonneg && json_integer_value(v) < 0)
                        return false;
                snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return true;
        }
        if (json_is_real(v)) {
                double d = json_real_value(v);
                if (nonneg && !(d >= 0))
                        return false;
                format_double(d, buf, len);
                return true;
        }
        if (json_is_boolean(v)) {
                snprintf(buf, len, "%d", json_is_true(v) ? 1 : 0);
                return true;
        }
        return false;
}

static void sample(struct writer *w, const struct fam *f, const struct label *labels, size_t n,
                   const char *value) {
        if (w->error < 0)
                return;
        if (w->cur != f) {
                /* A family may appear once; samples split across two blocks would make
                 * Prometheus reject the scrape. */
                for (size_t i = 0; i < w->n_done; i++)
                        if (w->done[i] == f) {
                                w->error = log_error_errno(EINVAL, "metrics: family %s written twice", f->name);
                                return;
                        }
                if (w->n_done >= MAX_FAMILIES) {
                        w->error = log_error_errno(EINVAL, "metrics: more than %d families", MAX_FAMILIES);
                        return;
                }
                w->done[w->n_done++] = f;
                w->cur = f;
                put(w, "# HELP ");
                put(w, f->name);
                put(w, " ");
                put_escaped(w, f->help, false);
                put(w, "\n# TYPE ");
                put(w, f->name);
                put(w, " ");
                put(w, f->type);
                put(w, "\n");
        }
        put(w, f->name);
        bool first = true;
        for (size_t i = 0; i < n; i++) {
                if (!labels[i].value)
                        continue;
                put(w, first ? "{" : ",");
                first = false;
                put(w, labels[i].name);
                put(w, "=\"");
                put_escaped(w, labels[i].value, true);
                put(w, "\"");
        }
        if (!first)
                put(w, "}");
        put(w, " ");
        put(w, value);
        put(w, "\n");
}

static void sample_json(struct writer *w, const struct fam *f, const struct label *labels, size_t n,
                        const json_t *v) {
        char buf[64];
        /* Counters and ages are never negative; a negative one is a "not yet" marker
         * (last_tick_age_seconds is -1 before the first tick). */
        bool nonneg = strcmp(f->type, "counter") == 0 || strstr(f->name, "_age_") || strstr(f->name, "_for_seconds");
        if (json_value(v, nonneg, buf, sizeof buf))
                sample(w, f, labels, n, buf);
}

static void sample_double(struct writer *w, const struct fam *f, const struct label *labels, size_t n, double v) {
        char buf[64];
        format_double(v, buf, sizeof buf);
        sample(w, f, labels, n, buf);
}

/* ---- daemon ---- */

static const struct fam F_BUILD = { "vmguard_build_info", "gauge", "vmguard version; always 1." };
static const struct fam F_TICKS = { "vmguard_ticks_total", "counter", "Ticks (sample, decide, act) completed." };
static const struct fam F_TICK_INTERVAL = { "vmguard_tick_interval_seconds", "gauge",
                                            "Configured time between two ticks." };
static const struct fam F_TICK_DURATION = { "vmguard_tick_duration_seconds", "gauge",
                                            "Wall time the last tick took (sample, decide, act)." };
static const struct fam F_TICK_AGE = { "vmguard_last_tick_age_seconds", "gauge",
                                       "Seconds since the last tick finished, when the snapshot was taken; absent before the first tick." };
static const struct fam F_ERRORS = { "vmguard_errors_total", "counter",
                                     "Ticks or actions that failed (probe failures, refused writes)." };
static const struct fam F_ACTIONS = { "vmguard_actions_total", "counter",
                                      "Limit changes decided, by kind (throttle, tighten, relax, release, cap); in dry-run mode decided but not applied." };
static const struct fam F_DRY_RUN = { "vmguard_dry_run", "gauge", "1 when vmguard decides but changes nothing (--dry-run)." };
static const struct fam F_LIBVIRT = { "vmguard_libvirt_connected", "gauge", "1 while the libvirt connection is up." };
static const struct fam F_TENANTS = { "vmguard_tenants", "gauge", "Tenant policies loaded." };
static const struct fam F_VMS = { "vmguard_vms", "gauge", "Guests seen on this host." };
static const struct fam F_VMS_THROTTLED = { "vmguard_vms_throttled", "gauge",
                                            "Guests with at least one noise limit in force." };
static const struct fam F_OUT_OF_SYNC = { "vmguard_limits_out_of_sync", "gauge",
                                          "Desired limits (guest x resource) not seen in force yet: a write failed or is unconfirmed; retried with backoff." };
static const struct fam F_OUT_OF_SYNC_AGE = { "vmguard_limits_out_of_sync_oldest_seconds", "gauge",
                                              "How long the oldest out-of-sync limit has been out of sync; 0 when none." };

static void render_daemon(struct writer *w, const json_t *snap) {
        const json_t *d = json_object_get(snap, "daemon");
        const char *version = json_string_value(json_object_get(d, "version"));
        struct label lv[] = { { "version", version ? version : "unknown" } };
        sample(w, &F_BUILD, lv, 1, "1");
        if (!json_is_object(d))
                return;
        sample_json(w, &F_TICKS, NULL, 0, json_object_get(d, "ticks"));
        sample_json(w, &F_TICK_INTERVAL, NULL, 0, json_object_get(d, "tick_seconds"));
        sample_json(w, &F_TICK_DURATION, NULL, 0, json_object_get(d, "last_tick_duration_seconds"));
        sample_json(w, &F_TICK_AGE, NULL, 0, json_object_get(d, "last_tick_age_seconds"));
        sample_json(w, &F_ERRORS, NULL, 0, json_object_get(d, "errors_total"));
        const char *key;
        json_t *v;
        json_object_foreach((json_t *) json_object_get(d, "actions_total"), key, v) {
                struct label la[] = { { "action", key } };
                sample_json(w, &F_ACTIONS, la, 1, v);
        }
        sample_json(w, &F_DRY_RUN, NULL, 0, json_object_get(d, "dry_run"));
        sample_json(w, &F_LIBVIRT, NULL, 0, json_object_get(d, "libvirt_connected"));
        sample_json(w, &F_TENANTS, NULL, 0, json_object_get(d, "tenants"));
        const json_t *vms = json_object_get(snap, "vms");
        if (json_is_array(vms))
                sample_double(w, &F_VMS, NULL, 0, (double) json_array_size(vms));
        sample_json(w, &F_VMS_THROTTLED, NULL, 0, json_object_get(d, "guests_throttled"));
        sample_json(w, &F_OUT_OF_SYNC, NULL, 0, json_object_get(d, "limits_out_of_sync"));
        sample_json(w, &F_OUT_OF_SYNC_AGE, NULL, 0, json_object_get(d, "limits_out_of_sync_oldest_seconds"));
}

/* ---- host ---- */

static const struct fam F_PSI = { "vmguard_host_pressure_ratio", "gauge",
                                  "Share of the last tick in which tasks stalled on the resource (host PSI, /proc/pressure; kind some or full)." };
static const struct fam F_CPU_BUSY = { "vmguard_host_cpu_busy_ratio", "gauge",
                                       "Share of host CPU time busy during the last tick (/proc/stat)." };
static const struct fam F_IOWAIT = { "vmguard_host_iowait_ratio", "gauge",
                                     "Share of host CPU time in iowait during the last tick (/proc/stat)." };
static const struct fam F_CONTENDED = { "vmguard_host_contended", "gauge",
                                        "1 while a protected service, host PSI or another guest's steal says the host is contended." };

static void render_host(struct writer *w, const json_t *snap) {
        const json_t *h = json_object_get(snap, "host");
        if (!json_is_object(h))
                return;
        const char *key;
        json_t *v;
        /* Any psi_<resource>_<kind> key, so memory or cpu full pressure shows up here the
         * day the snapshot carries it. */
        json_object_foreach((json_t *) h, key, v) {
                if (strncmp(key, "psi_", 4) != 0)
                        continue;
                const char *us = strrchr(key + 4, '_');
                if (!us || us == key + 4 || !us[1])
                        continue;
                char res[32];
                snprintf(res, sizeof res, "%.*s", (int) (us - (key + 4)), key + 4);
                struct label l[] = { { "resource", res }, { "kind", us + 1 } };
                sample_json(w, &F_PSI, l, 2, v);
        }
        sample_json(w, &F_CPU_BUSY, NULL, 0, json_object_get(h, "cpu_busy_frac"));
        sample_json(w, &F_IOWAIT, NULL, 0, json_object_get(h, "iowait_frac"));
        sample_json(w, &F_CONTENDED, NULL, 0, json_object_get(h, "contended"));
}

/* ---- protected services ---- */

static const struct fam F_SVC_UP = { "vmguard_service_up", "gauge", "1 while at least one process of the protected service runs." };
static const struct fam F_SVC_HEALTHY = { "vmguard_service_healthy", "gauge",
                                          "1 while the protected service is within its policy thresholds (run delay, I/O delay)." };
static const struct fam F_SVC_PROCS = { "vmguard_service_processes", "gauge", "Processes matched for the protected service." };
static const struct fam F_SVC_DELAY_TOTAL = { "vmguard_service_run_delay_seconds_total", "counter",
                                              "Time the service's tasks waited runnable for a CPU (schedstat run delay)." };
static const struct fam F_SVC_CPU_TOTAL = { "vmguard_service_cpu_seconds_total", "counter", "CPU time the service's tasks used." };
static const struct fam F_SVC_DELAY_AVG = { "vmguard_service_run_delay_average_seconds", "gauge",
                                            "Mean run-queue wait per timeslice during the last tick (what the policy's max_run_delay is compared with)." };
static const struct fam F_SVC_DELAY_MAX = { "vmguard_service_run_delay_threshold_seconds", "gauge",
                                            "The policy's max_run_delay for the service; absent when not judged." };
static const struct fam F_SVC_IO_DELAY = { "vmguard_service_io_delay_ratio", "gauge",
                                           "Share of the last tick the service's tasks waited on block I/O (delay accounting)." };

static double ms_to_s(double ms) { return ms / 1000.0; }

static void sample_ms(struct writer *w, const struct fam *f, const struct label *l, size_t n, const json_t *v) {
        if (json_is_number(v) && json_number_value(v) >= 0)
                sample_double(w, f, l, n, ms_to_s(json_number_value(v)));
}

static void render_services(struct writer *w, const json_t *snap) {
        const json_t *svcs = json_object_get(snap, "services");
        size_t n = json_array_size(svcs);
        if (n == 0)
                return;
        _cleanup_free_ const char **names = calloc(n, sizeof *names);
        if (!names) {
                w->error = -ENOMEM;
                return;
        }
        /* Duplicate names would be duplicate series: keep the first. */
        for (size_t i = 0; i < n; i++) {
                names[i] = json_string_value(json_object_get(json_array_get(svcs, i), "name"));
                for (size_t j = 0; names[i] && j < i; j++)
                        if (names[j] && strcmp(names[i], names[j]) == 0) {
                                log_debug("metrics: service %s listed twice in the snapshot, second one skipped", names[i]);
                                names[i] = NULL;
                        }
        }
#define EACH_SERVICE(body)                                                                  \
        for (size_t i = 0; i < n; i++) {                                                    \
                if (!names[i])                                                              \
                        continue;                                                           \
                const json_t *s = json_array_get(svcs, i);                                  \
                struct label l[] = { { "service", names[i] } };                             \
                body;                                                                       \
        }
        EACH_SERVICE(sample_json(w, &F_SVC_UP, l, 1, json_object_get(s, "up")));
        EACH_SERVICE(sample_json(w, &F_SVC_HEALTHY, l, 1, json_object_get(s, "healthy")));
        EACH_SERVICE(sample_json(w, &F_SVC_PROCS, l, 1, json_object_get(s, "pids")));
        EACH_SERVICE(sample_json(w, &F_SVC_DELAY_TOTAL, l, 1, json_object_get(s, "run_delay_seconds_total")));
        EACH_SERVICE(sample_json(w, &F_SVC_CPU_TOTAL, l, 1, json_object_get(s, "cpu_seconds_total")));
        EACH_SERVICE(sample_ms(w, &F_SVC_DELAY_AVG, l, 1, json_object_get(s, "run_delay_avg_ms")));
        EACH_SERVICE(sample_ms(w, &F_SVC_DELAY_MAX, l, 1, json_object_get(s, "max_run_delay_ms")));
        EACH_SERVICE(sample_json(w, &F_SVC_IO_DELAY, l, 1, json_object_get(s, "blkio_delay_frac")));
#undef EACH_SERVICE
}

/* ---- guests ---- */

/* Cumulative counters of usage{}. Names follow cAdvisor's container_* and
 * prometheus-libvirt-exporter's libvirt_domain_* where the meaning is the same
 * (docs/FLEET.md has the table). Direction is the guest's: transmit = what it sent. */
static const struct fam F_VM_COUNTERS[] = {
        { "vmguard_vm_cpu_seconds_total", "counter", "CPU time used by the guest (vCPUs and QEMU's own threads, from its cgroup)." },
        { "vmguard_vm_cpu_throttled_seconds_total", "counter", "Time the guest's tasks were held back by a CPU quota (cgroup throttled time)." },
        { "vmguard_vm_vcpu_wait_seconds_total", "counter", "Time the guest's vCPU threads waited runnable for a host CPU: the steal the guest sees." },
        { "vmguard_vm_disk_read_bytes_total", "counter", "Bytes the guest read from its disks." },
        { "vmguard_vm_disk_write_bytes_total", "counter", "Bytes the guest wrote to its disks." },
        { "vmguard_vm_disk_read_requests_total", "counter", "Read requests the guest completed on its disks." },
        { "vmguard_vm_disk_write_requests_total", "counter", "Write requests the guest completed on its disks." },
        { "vmguard_vm_qemu_write_syscall_bytes_total", "counter", "Bytes QEMU passed to write() syscalls (/proc/PID/io wchar): sees buffered guest writes that blkio charges to the root group." },
        { "vmguard_vm_network_transmit_bytes_total", "counter", "Bytes the guest sent on its network interfaces." },
        { "vmguard_vm_network_receive_bytes_total", "counter", "Bytes the guest received on its network interfaces." },
        { "vmguard_vm_network_transmit_packets_total", "counter", "Packets the guest sent on its network interfaces." },
        { "vmguard_vm_network_receive_packets_total", "counter", "Packets the guest received on its network interfaces." },
};
static const char *const VM_COUNTER_KEYS[ARRAY_SIZE(F_VM_COUNTERS)] = {
        "cpu_seconds_total",      "cpu_throttled_seconds_total", "vcpu_delay_seconds_total",
        "disk_read_bytes_total",  "disk_write_bytes_total",      "disk_read_ops_total",
        "disk_write_ops_total",   "proc_write_bytes_total",      "net_tx_bytes_total",
        "net_rx_bytes_total",     "net_tx_packets_total",        "net_rx_packets_total",
};

static const struct fam F_VM_INFO = { "vmguard_vm_info", "gauge", "A guest vmguard watches; always 1. tenant is absent for guests no tenant policy matches." };
static const struct fam F_VM_UNMANAGED = { "vmguard_vm_unmanaged", "gauge",
                                           "1 when vmguard gave up managing the guest after a permanent error (its limits were put back)." };
static const struct fam F_VM_THROTTLED_FOR = { "vmguard_vm_throttled_for_seconds", "gauge",
                                               "Seconds since the oldest noise limit in force on the guest was set; absent when not throttled." };

/* Per resource (label resource = cpu, disk_read, disk_write, disk_read_iops,
 * disk_write_iops, net_rx, net_tx), in base units: cores, bytes/s, ops/s, bits/s. */
static const struct fam F_VM_LIMIT = { "vmguard_vm_limit", "gauge",
                                       "Limit in force (cores, bytes/s, ops/s or bits/s by resource); absent when unlimited." };
static const struct fam F_VM_CAP = { "vmguard_vm_cap", "gauge", "Hard cap from the tenant policy (base units as vmguard_vm_limit); absent when none." };
static const struct fam F_VM_THROTTLED = { "vmguard_vm_throttled", "gauge", "1 while a noise limit below the cap is in force on the resource." };
static const struct fam F_VM_SUSPECT = { "vmguard_vm_suspect", "gauge",
                                         "1 while the guest uses more than its noisy threshold while others suffer (before the throttle)." };
static const struct fam F_VM_USAGE = { "vmguard_vm_resource_usage", "gauge",
                                       "Usage the engine judged in the last tick (base units as vmguard_vm_limit)." };

struct vmref {
        const json_t *o;
        const char *name, *uuid, *tenant;
};

static int cmp_vmref(const void *a, const void *b) {
        const struct vmref *x = a, *y = b;
        return strcmp(x->uuid, y->uuid);
}

static void render_vms(struct writer *w, const json_t *snap) {
        const json_t *vms = json_object_get(snap, "vms");
        size_t n_all = json_array_size(vms), n = 0;
        if (n_all == 0)
                return;
        _cleanup_free_ struct vmref *v = calloc(n_all, sizeof *v);
        if (!v) {
                w->error = -ENOMEM;
                return;
        }
        for (size_t i = 0; i < n_all; i++) {
                const json_t *o = json_array_get(vms, i);
                const char *uuid = json_string_value(json_object_get(o, "uuid"));
                if (!uuid || !*uuid) {
                        log_debug("metrics: guest %s has no uuid in the snapshot, left out",
                                  json_string_value(json_object_get(o, "name")) ?: "(unnamed)");
                        continue;
                }
                const char *name = json_string_value(json_object_get(o, "name"));
                const char *tenant = json_string_value(json_object_get(o, "tenant"));
                v[n++] = (struct vmref) { o, name ? name : uuid, uuid, tenant && *tenant ? tenant : NULL };
        }
        /* Sorted by uuid: stable output, and repeats become neighbours. */
        qsort(v, n, sizeof *v, cmp_vmref);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (k > 0 && strcmp(v[k - 1].uuid, v[i].uuid) == 0) {
                        log_debug("metrics: guest uuid %s listed twice in the snapshot, second one (%s) left out",
                                  v[i].uuid, v[i].name);
                        continue;
                }
                v[k++] = v[i];
        }
        n = k;

#define EACH_VM(body)                                                                                 \
        for (size_t i = 0; i < n; i++) {                                                              \
                struct label l[4] = { { "domain", v[i].name }, { "uuid", v[i].uuid },                 \
                                      { "tenant", v[i].tenant }, { "resource", NULL } };              \
                const json_t *o = v[i].o;                                                             \
                (void) o;                                                                             \
                body;                                                                                 \
        }
        EACH_VM(sample(w, &F_VM_INFO, l, 3, "1"));
        EACH_VM(sample_json(w, &F_VM_UNMANAGED, l, 3, json_object_get(o, "unmanaged")));
        EACH_VM(sample_json(w, &F_VM_THROTTLED_FOR, l, 3, json_object_get(o, "throttled_for_s")));
        for (size_t c = 0; c < ARRAY_SIZE(F_VM_COUNTERS); c++)
                EACH_VM(sample_json(w, &F_VM_COUNTERS[c], l, 3,
                                    json_object_get(json_object_get(o, "usage"), VM_COUNTER_KEYS[c])));

        static const struct {
                const struct fam *f;
                const char *key;
                bool positive_only; /* 0 means "none" for limits and caps */
        } per_res[] = {
                { &F_VM_LIMIT, "limit", true },         { &F_VM_CAP, "cap", true },
                { &F_VM_THROTTLED, "throttled", false }, { &F_VM_SUSPECT, "suspect", false },
                { &F_VM_USAGE, "usage", false },
        };
        for (size_t p = 0; p < ARRAY_SIZE(per_res); p++)
                EACH_VM({
                        const char *res;
                        json_t *r;
                        json_object_foreach((json_t *) json_object_get(o, "resources"), res, r) {
                                const json_t *x = json_object_get(r, per_res[p].key);
                                if (per_res[p].positive_only && !(json_is_number(x) && json_number_value(x) > 0))
                                        continue;
                                l[3].value = res;
                                sample_json(w, per_res[p].f, l, 4, x);
                        }
                });
#undef EACH_VM
}

static int render(const json_t *snapshot, struct writer *w) {
        if (!json_is_object(snapshot))
                return -EINVAL;
        render_daemon(w, snapshot);
        render_host(w, snapshot);
        render_services(w, snapshot);
        render_vms(w, snapshot);
        put_n(w, "", 0); /* a buffer even for an empty rendering */
        if (w->error < 0) {
                free(w->buf);
                return w->error;
        }
        return 0;
}

int vmg_metrics_render(const json_t *snapshot, FILE *out) {
        if (!out)
                return -EINVAL;
        struct writer w = {};
        int r = render(snapshot, &w);
        if (r < 0)
                return r;
        bool ok = fwrite(w.buf, 1, w.len, out) == w.len && fflush(out) == 0 && !ferror(out);
        free(w.buf);
        return ok ? 0 : -EIO;
}

int vmg_metrics_render_buf(const json_t *snapshot, char **ret, size_t *ret_len) {
        struct writer w = {};
        int r = render(snapshot, &w);
        if (r < 0)
                return r;
        *ret = w.buf;
        *ret_len = w.len;
        return 0;
}

int vmg_metrics_write_textfile(const json_t *snapshot, const char *path) {
        size_t len = path ? strlen(path) : 0;
        if (len <= 5 || strcmp(path + len - 5, ".prom") != 0)
                return log_error_errno(EINVAL, "metrics textfile %s: name must end in .prom, or node_exporter ignores it",
                                       path ? path : "(null)");
        char *text = NULL;
        size_t text_len = 0;
        int r = vmg_metrics_render_buf(snapshot, &text, &text_len);
        if (r >= 0)
                r = vmg_write_file_atomic_path(path, text, text_len, 0644);
        free(text);
        if (r < 0)
                return log_error_errno(r, "metrics textfile: cannot write %s: %m", path);
        return 0;
}
