/* What /metrics costs at fleet scale: builds a snapshot of N synthetic guests in the
 * layout vmg_manager_snapshot() produces (every field of a real guest, a CPU cap on
 * every guest, a disk-write noise limit on every tenth), renders it R times and prints
 * the exposition size, series count and the median render time.
 *
 *   metrics_cardinality [N=1000] [R=31] [--snapshot-out FILE] [--metrics-out FILE]
 *
 * --snapshot-out writes the synthetic snapshot (serve it with metrics_serve to time a
 * real scrape with curl); --metrics-out writes one rendering. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/daemon/metrics.h"

/* Guests per tenant: a fleet host carries a few dozen tenants, not one per guest. */
#define GUESTS_PER_TENANT 50
/* Share of guests with a noise limit in force: a busy host, not a calm one. */
#define THROTTLED_EVERY 10

static json_t *vm_json(unsigned i) {
        char name[32], uuid[40], tenant[32];
        snprintf(name, sizeof name, "guest-%05u", i);
        snprintf(uuid, sizeof uuid, "%08x-%04x-4%03x-8%03x-%012x", 0x5eed0000u + i, i & 0xffff, i & 0xfff, (i * 7) & 0xfff, i * 2654435761u);
        snprintf(tenant, sizeof tenant, "tenant-%03u", i / GUESTS_PER_TENANT);
        bool throttled = i % THROTTLED_EVERY == 0;
        /* Figures of the size a busy guest reaches after days: long integers print long. */
        double k = 1.0 + i;
        json_t *usage = json_pack(
                "{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                "cpu_cores", 0.25 + 0.001 * i, "vcpu_delay_frac", 0.0123, "disk_read_bytes_per_s", 4096.0 * k,
                "disk_write_bytes_per_s", 81920.0 * k, "disk_read_iops", 12.0, "disk_write_iops", 140.0,
                "net_tx_bits_per_s", 1.2e6, "net_rx_bits_per_s", 3.4e6, "net_tx_packets_per_s", 150.0,
                "net_rx_packets_per_s", 320.0, "cpu_seconds_total", 86400.123456 + i, "cpu_throttled_seconds_total",
                throttled ? 812.75 : 0.0, "vcpu_delay_seconds_total", 1234.5678 + i, "disk_read_bytes_total",
                (json_int_t) (35738123456LL + i), "disk_write_bytes_total", (json_int_t) (708123456789LL + i),
                "disk_read_ops_total", (json_int_t) (4123456 + i), "disk_write_ops_total", (json_int_t) (51234567 + i),
                "proc_write_bytes_total", (json_int_t) (98765432109LL + i), "net_tx_bytes_total",
                (json_int_t) (12345678901LL + i), "net_rx_bytes_total", (json_int_t) (23456789012LL + i),
                "net_tx_packets_total", (json_int_t) (34567890 + i), "net_rx_packets_total", (json_int_t) (45678901 + i));
        json_t *res = json_object();
        json_object_set_new(res, "cpu",
                            json_pack("{s:f, s:f, s:b, s:f, s:b, s:s}", "limit", 2.0, "cap", 2.0, "throttled", 0, "usage",
                                      0.25 + 0.001 * i, "suspect", 0, "reason", "hard cap 2.00 cores"));
        if (throttled)
                json_object_set_new(res, "disk_write",
                                    json_pack("{s:f, s:f, s:b, s:f, s:b, s:s, s:f}", "limit", 20e6, "cap", 100e6, "throttled", 1,
                                              "usage", 19.5e6, "suspect", 0, "reason",
                                              "disk writes 180.0MB/s over 40.0MB/s for 10s while dnsmasq run-queue delay 35ms > 10ms",
                                              "changed_s_ago", 95.5));
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:b, s:b, s:o, s:o, s:s}", "name", name, "uuid", uuid, "tenant", tenant,
                              "qemu_pid", (int) (10000 + i), "throttled", throttled, "unmanaged", 0, "usage", usage,
                              "resources", res, "sources", "cpu=cgroup-v2 disk=blkio net=netlink");
        if (throttled)
                json_object_set_new(o, "throttled_for_s", json_real(95.5));
        return o;
}

static json_t *snapshot(unsigned n) {
        json_t *vms = json_array();
        for (unsigned i = 0; i < n; i++)
                json_array_append_new(vms, vm_json(i));
        json_t *svc = json_array();
        json_array_append_new(svc, json_pack("{s:s, s:s, s:i, s:b, s:b, s:f, s:f, s:f, s:n, s:f, s:f, s:f}", "name", "dnsmasq",
                                             "match", "dnsmasq", "pids", 1, "up", 1, "healthy", 1, "cpu_cores", 0.001,
                                             "run_delay_avg_ms", 0.04, "run_delay_frac", 0.0002, "blkio_delay_frac",
                                             "max_run_delay_ms", 10.0, "run_delay_seconds_total", 0.79,
                                             "cpu_seconds_total", 12.5));
        json_array_append_new(svc, json_pack("{s:s, s:s, s:i, s:b, s:b, s:f, s:f, s:f, s:n, s:f, s:f, s:f}", "name", "unbound",
                                             "match", "unbound.service", "pids", 2, "up", 1, "healthy", 1, "cpu_cores", 0.01,
                                             "run_delay_avg_ms", 0.1, "run_delay_frac", 0.001, "blkio_delay_frac",
                                             "max_run_delay_ms", 20.0, "run_delay_seconds_total", 3.5,
                                             "cpu_seconds_total", 120.25));
        json_t *acts = json_pack("{s:i, s:i, s:i, s:i, s:i}", "throttle", 420, "tighten", 96, "relax", 300, "release", 320, "cap", (int) n);
        json_t *daemon = json_pack("{s:i, s:s, s:I, s:f, s:f, s:f, s:b, s:I, s:o, s:b, s:i, s:i}", "pid", 4242, "version", "0.1",
                                   "ticks", (json_int_t) 864000, "tick_seconds", 1.0, "last_tick_duration_seconds", 0.0606,
                                   "last_tick_age_seconds", 0.2, "dry_run", 0, "errors_total", (json_int_t) 3, "actions_total",
                                   acts, "libvirt_connected", 1, "tenants", (int) ((n + GUESTS_PER_TENANT - 1) / GUESTS_PER_TENANT),
                                   "guests_throttled", (int) ((n + THROTTLED_EVERY - 1) / THROTTLED_EVERY));
        json_t *host = json_pack("{s:f, s:f, s:f, s:f, s:f, s:b, s:s}", "psi_cpu_some", 0.09, "psi_io_some", 0.21, "psi_io_full",
                                 0.18, "cpu_busy_frac", 0.9, "iowait_frac", 0.3, "contended", 1, "contention",
                                 "host PSI io some 21% > 10%");
        return json_pack("{s:i, s:o, s:o, s:o, s:o}", "version", 1, "daemon", daemon, "host", host, "services", svc, "vms", vms);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double now_s(clockid_t clk) {
        struct timespec ts;
        clock_gettime(clk, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        unsigned n = 1000, runs = 31;
        const char *snap_out = NULL, *metrics_out = NULL;
        int pos = 0;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--snapshot-out") == 0 && i + 1 < argc)
                        snap_out = argv[++i];
                else if (strcmp(argv[i], "--metrics-out") == 0 && i + 1 < argc)
                        metrics_out = argv[++i];
                else if (pos == 0 && (pos = 1))
                        n = (unsigned) strtoul(argv[i], NULL, 10);
                else
                        runs = (unsigned) strtoul(argv[i], NULL, 10);
        }
        if (runs == 0)
                runs = 1;
        json_t *snap = snapshot(n);
        if (!snap) {
                fprintf(stderr, "cannot build the snapshot\n");
                return 1;
        }
        if (snap_out && json_dump_file(snap, snap_out, JSON_COMPACT | JSON_REAL_PRECISION(6)) < 0) {
                fprintf(stderr, "cannot write %s\n", snap_out);
                return 1;
        }
        char *status = json_dumps(snap, JSON_COMPACT | JSON_REAL_PRECISION(6));
        size_t status_len = status ? strlen(status) : 0;
        /* metrics_serve parses status.json on every scrape; the daemon does not (it builds
         * the snapshot from memory). Timed apart so scrape figures can be read both ways. */
        double *parse = calloc(runs, sizeof *parse);
        for (unsigned r = 0; status && r < runs; r++) {
                double t0 = now_s(CLOCK_MONOTONIC);
                json_t *j = json_loads(status, 0, NULL);
                parse[r] = now_s(CLOCK_MONOTONIC) - t0;
                json_decref(j);
        }
        qsort(parse, runs, sizeof *parse, cmp_double);
        free(status);

        /* Wall time is what the daemon's loop loses per scrape; CPU time of this thread is
         * the same work without the noise of other load on the machine. */
        double *t = calloc(runs, sizeof *t), *cpu = calloc(runs, sizeof *cpu);
        char *buf = NULL;
        size_t len = 0;
        for (unsigned r = 0; r < runs; r++) {
                free(buf);
                buf = NULL;
                double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
                int e = vmg_metrics_render_buf(snap, &buf, &len);
                t[r] = now_s(CLOCK_MONOTONIC) - t0;
                cpu[r] = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
                if (e < 0) {
                        fprintf(stderr, "render failed: %s\n", strerror(-e));
                        return 1;
                }
        }
        qsort(t, runs, sizeof *t, cmp_double);
        qsort(cpu, runs, sizeof *cpu, cmp_double);
        size_t series = 0, families = 0;
        for (const char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                if (*p != '#')
                        series++;
                else if (strncmp(p, "# TYPE ", 7) == 0)
                        families++;
        }
        if (metrics_out) {
                FILE *f = fopen(metrics_out, "we");
                if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
                        fprintf(stderr, "cannot write %s\n", metrics_out);
                        return 1;
                }
        }
        unsigned throttled = (n + THROTTLED_EVERY - 1) / THROTTLED_EVERY;
        printf("guests: %u (%u tenants, %u with a disk-write noise limit, all with a CPU cap)\n", n,
               (n + GUESTS_PER_TENANT - 1) / GUESTS_PER_TENANT, n ? throttled : 0);
        printf("exposition: %zu bytes, %zu series, %zu families; %.0f bytes and %.1f series per guest\n", len, series,
               families, n ? (double) len / n : 0.0, n ? (double) series / n : 0.0);
        printf("snapshot JSON (status.json): %zu bytes, parse median %.2f ms\n", status_len, parse[runs / 2] * 1e3);
        printf("render: median %.2f ms, min %.2f ms, max %.2f ms over %u runs\n", t[runs / 2] * 1e3, t[0] * 1e3,
               t[runs - 1] * 1e3, runs);
        printf("render CPU time: median %.2f ms, min %.2f ms\n", cpu[runs / 2] * 1e3, cpu[0] * 1e3);
        free(buf);
        free(t);
        free(cpu);
        free(parse);
        json_decref(snap);
        return 0;
}
