/* Rates from counter snapshots; see rates.h for the contracts. */
#include <errno.h>
#include <string.h>

#include "probes/rates.h"

const char *vmg_source_name(enum vmg_source s) {
        switch (s) {
        case VMG_SRC_NONE: return "none";
        case VMG_SRC_CGROUP_V1: return "cgroup-v1";
        case VMG_SRC_CGROUP_V2: return "cgroup-v2";
        case VMG_SRC_PROC: return "proc";
        case VMG_SRC_NETLINK: return "netlink";
        case VMG_SRC_SYSFS: return "sysfs";
        }
        return "?";
}

/* Counter delta; sets *back when the counter went backwards. */
static uint64_t delta(uint64_t prev, uint64_t cur, bool *back) {
        if (cur < prev) {
                *back = true;
                return 0;
        }
        return cur - prev;
}

/* A ratio of two intervals measured by different clocks can overshoot by a hair. */
static double frac01(double x) {
        return x < 0 ? 0 : x > 1 ? 1 : x;
}

static const struct vmg_dev_io *find_dev(const struct vmg_vm_counters *c, uint32_t maj, uint32_t min) {
        for (size_t i = 0; i < c->n_devs && i < VMG_MAX_DEVS; i++)
                if (c->devs[i].major == maj && c->devs[i].minor == min)
                        return &c->devs[i];
        return NULL;
}

static const struct vmg_iface_counters *find_iface(const struct vmg_vm_counters *c, const char *tap) {
        for (size_t i = 0; i < c->n_ifaces && i < VMG_MAX_IFACES; i++)
                if (c->ifaces[i].found && strncmp(c->ifaces[i].tap, tap, IF_NAMESIZE) == 0)
                        return &c->ifaces[i];
        return NULL;
}

struct cand {
        double v;
        enum vmg_source src;
};

/* Largest candidate; on ties the earlier (more specific) source wins. */
static struct cand best(const struct cand *c, size_t n) {
        struct cand b = { 0, VMG_SRC_NONE };
        for (size_t i = 0; i < n; i++)
                if (c[i].src != VMG_SRC_NONE && (b.src == VMG_SRC_NONE || c[i].v > b.v))
                        b = c[i];
        return b;
}

static double minus_clamped(double a, double b) {
        return a > b ? a - b : 0;
}

int vmg_rates_compute(const struct vmg_vm_counters *prev, const struct vmg_vm_counters *cur,
                      struct vmg_vm_rates *ret) {
        if (cur->ts_ns <= prev->ts_ns)
                return -EINVAL;
        struct vmg_vm_rates r = { 0 };
        double dt = (double) (cur->ts_ns - prev->ts_ns) / 1e9;
        bool back = false;
        r.interval_s = dt;

        if (prev->cpu_valid && cur->cpu_valid && prev->cpu_source == cur->cpu_source) {
                double used = (double) delta(prev->cpu_usage_ns, cur->cpu_usage_ns, &back);
                double per = (double) delta(prev->cpu_nr_periods, cur->cpu_nr_periods, &back);
                double thr = (double) delta(prev->cpu_nr_throttled, cur->cpu_nr_throttled, &back);
                r.cpu_valid = true;
                r.cpu_cores = used / 1e9 / dt;
                r.cpu_throttled_frac = per > 0 ? frac01(thr / per) : 0;
                double thr_ns = (double) delta(prev->cpu_throttled_ns, cur->cpu_throttled_ns, &back);
                r.cpu_throttled_time_frac = frac01(thr_ns / 1e9 / dt);
        }

        /* A different thread count means different threads were summed: not comparable. */
        if (prev->vcpu_delay_valid && cur->vcpu_delay_valid && cur->n_vcpus > 0 &&
            prev->n_vcpus == cur->n_vcpus) {
                double d = (double) delta(prev->vcpu_run_delay_ns, cur->vcpu_run_delay_ns, &back);
                r.vcpu_delay_valid = true;
                r.vcpu_delay_frac = frac01(d / 1e9 / dt / cur->n_vcpus);
        }

        /* Network first: the disk figures from rchar/wchar need the taps' traffic. */
        double tap_rx_B = 0, tap_tx_B = 0, tap_rx_p = 0, tap_tx_p = 0;
        size_t n_matched = 0;
        for (size_t i = 0; i < cur->n_ifaces && i < VMG_MAX_IFACES; i++) {
                const struct vmg_iface_counters *c = &cur->ifaces[i];
                const struct vmg_iface_counters *p = c->found ? find_iface(prev, c->tap) : NULL;
                if (!p)
                        continue;
                tap_rx_B += (double) delta(p->rx_bytes, c->rx_bytes, &back);
                tap_tx_B += (double) delta(p->tx_bytes, c->tx_bytes, &back);
                tap_rx_p += (double) delta(p->rx_packets, c->rx_packets, &back);
                tap_tx_p += (double) delta(p->tx_packets, c->tx_packets, &back);
                n_matched++;
        }
        if (n_matched > 0) {
                r.net_valid = true;
                r.net_tx_bps = tap_rx_B * 8 / dt; /* the tap receives what the guest sends */
                r.net_rx_bps = tap_tx_B * 8 / dt;
                r.net_tx_pps = tap_rx_p / dt;
                r.net_rx_pps = tap_tx_p / dt;
        }

        struct cand rd[3], wr[3], rio[2], wio[2];
        size_t nc = 0, ni = 0;
        if (prev->io_source != VMG_SRC_NONE && prev->io_source == cur->io_source) {
                double rb = 0, wb = 0, ri = 0, wi = 0;
                for (size_t i = 0; i < cur->n_devs && i < VMG_MAX_DEVS; i++) {
                        const struct vmg_dev_io *c = &cur->devs[i];
                        const struct vmg_dev_io *p = find_dev(prev, c->major, c->minor);
                        if (!p)
                                continue; /* counting just switched on: no baseline */
                        rb += (double) delta(p->rbytes, c->rbytes, &back);
                        wb += (double) delta(p->wbytes, c->wbytes, &back);
                        ri += (double) delta(p->rios, c->rios, &back);
                        wi += (double) delta(p->wios, c->wios, &back);
                }
                rd[nc] = (struct cand) { rb / dt, cur->io_source };
                wr[nc++] = (struct cand) { wb / dt, cur->io_source };
                rio[ni] = (struct cand) { ri / dt, cur->io_source };
                wio[ni++] = (struct cand) { wi / dt, cur->io_source };
        }
        if (prev->proc_io_valid && cur->proc_io_valid) {
                double rb = (double) delta(prev->proc_read_bytes, cur->proc_read_bytes, &back);
                double wb = (double) delta(prev->proc_write_bytes, cur->proc_write_bytes, &back);
                double rc = (double) delta(prev->proc_rchar, cur->proc_rchar, &back);
                double wc = (double) delta(prev->proc_wchar, cur->proc_wchar, &back);
                double sr = (double) delta(prev->proc_syscr, cur->proc_syscr, &back);
                double sw = (double) delta(prev->proc_syscw, cur->proc_syscw, &back);
                rd[nc] = (struct cand) { rb / dt, VMG_SRC_PROC };
                wr[nc++] = (struct cand) { wb / dt, VMG_SRC_PROC };
                /* With a NIC whose counters we could not read, rchar/wchar would pass
                 * network traffic off as disk I/O: use them only when the taps are known. */
                if (n_matched > 0 || cur->n_ifaces == 0) {
                        rd[nc] = (struct cand) { minus_clamped(rc, tap_tx_B) / dt, VMG_SRC_PROC };
                        wr[nc++] = (struct cand) { minus_clamped(wc, tap_rx_B) / dt, VMG_SRC_PROC };
                        rio[ni] = (struct cand) { minus_clamped(sr, tap_tx_p) / dt, VMG_SRC_PROC };
                        wio[ni++] = (struct cand) { minus_clamped(sw, tap_rx_p) / dt, VMG_SRC_PROC };
                }
        }
        if (nc > 0) {
                struct cand br = best(rd, nc), bw = best(wr, nc);
                r.disk_valid = true;
                r.disk_read_Bps = br.v;
                r.disk_write_Bps = bw.v;
                r.disk_source = bw.v >= br.v ? bw.src : br.src;
                r.disk_read_iops = best(rio, ni).v;
                r.disk_write_iops = best(wio, ni).v;
        }

        if (prev->psi_cpu.valid && cur->psi_cpu.valid && prev->psi_io.valid && cur->psi_io.valid) {
                double c = (double) delta(prev->psi_cpu.some_us, cur->psi_cpu.some_us, &back);
                double i = (double) delta(prev->psi_io.some_us, cur->psi_io.some_us, &back);
                r.psi_valid = true;
                r.psi_cpu_some = frac01(c / 1e6 / dt);
                r.psi_io_some = frac01(i / 1e6 / dt);
        }

        if (back)
                r = (struct vmg_vm_rates) { .interval_s = dt, .reset = true };
        *ret = r;
        return 0;
}

int vmg_host_rates_compute(const struct vmg_host_counters *prev,
                           const struct vmg_host_counters *cur, struct vmg_host_rates *ret) {
        if (cur->ts_ns <= prev->ts_ns)
                return -EINVAL;
        struct vmg_host_rates r = { 0 };
        double dt = (double) (cur->ts_ns - prev->ts_ns) / 1e9;
        r.interval_s = dt;

        if (prev->psi_cpu.valid && cur->psi_cpu.valid && prev->psi_io.valid && cur->psi_io.valid) {
                bool back = false;
                double cs = (double) delta(prev->psi_cpu.some_us, cur->psi_cpu.some_us, &back);
                double is = (double) delta(prev->psi_io.some_us, cur->psi_io.some_us, &back);
                double iff = (double) delta(prev->psi_io.full_us, cur->psi_io.full_us, &back);
                double ms = 0;
                if (prev->psi_mem.valid && cur->psi_mem.valid)
                        ms = (double) delta(prev->psi_mem.some_us, cur->psi_mem.some_us, &back);
                if (!back) {
                        r.psi_valid = true;
                        r.psi_cpu_some = frac01(cs / 1e6 / dt);
                        r.psi_io_some = frac01(is / 1e6 / dt);
                        r.psi_io_full = frac01(iff / 1e6 / dt);
                        r.psi_mem_some = frac01(ms / 1e6 / dt);
                }
        }

        if (prev->stat_valid && cur->stat_valid) {
                bool back = false, iow_back = false;
                double busy = (double) delta(prev->user, cur->user, &back) +
                              (double) delta(prev->nice, cur->nice, &back) +
                              (double) delta(prev->system, cur->system, &back) +
                              (double) delta(prev->irq, cur->irq, &back) +
                              (double) delta(prev->softirq, cur->softirq, &back) +
                              (double) delta(prev->steal, cur->steal, &back);
                double idle = (double) delta(prev->idle, cur->idle, &back);
                /* proc(5): iowait can decrease; treat that as no iowait, not a reset. */
                double iow = (double) delta(prev->iowait, cur->iowait, &iow_back);
                double total = busy + idle + iow;
                if (!back && total > 0) {
                        r.stat_valid = true;
                        r.cpu_busy_frac = busy / total;
                        r.iowait_frac = iow / total;
                }
        }
        *ret = r;
        return 0;
}

int vmg_service_rates_compute(const struct vmg_service_counters *prev,
                              const struct vmg_service_counters *cur,
                              struct vmg_service_rates *ret) {
        if (cur->ts_ns <= prev->ts_ns)
                return -EINVAL;
        struct vmg_service_rates r = { 0 };
        double dt = (double) (cur->ts_ns - prev->ts_ns) / 1e9;
        r.interval_s = dt;
        r.n_pids = cur->n_pids;
        r.probe_latency_ms = -1;

        if (prev->valid && cur->valid && cur->n_pids > 0 && prev->n_pids == cur->n_pids) {
                bool back = false;
                double cpu = (double) delta(prev->cpu_ns, cur->cpu_ns, &back);
                double wait = (double) delta(prev->run_delay_ns, cur->run_delay_ns, &back);
                double slices = (double) delta(prev->nr_timeslices, cur->nr_timeslices, &back);
                double blk = (double) delta(prev->blkio_delay_ns, cur->blkio_delay_ns, &back);
                if (!back) {
                        r.valid = true;
                        r.cpu_cores = cpu / 1e9 / dt;
                        r.run_delay_frac = wait / 1e9 / dt;
                        r.run_delay_avg_ms = slices > 0 ? wait / slices / 1e6 : 0;
                        if (prev->blkio_delay_valid && cur->blkio_delay_valid) {
                                r.blkio_delay_valid = true;
                                r.blkio_delay_frac = blk / 1e9 / dt;
                        }
                }
        }
        *ret = r;
        return 0;
}
