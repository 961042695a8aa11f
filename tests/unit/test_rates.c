/* Rate computation on struct literals: tables of two snapshots and the expected rates.
 * Counter values are realistic magnitudes from the lab host (docs/LAB.md). */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "probes/rates.h"
#include "tests/harness.h"

#define S(x) ((uint64_t) (x) * NSEC_PER_SEC)

static struct vmg_vm_counters vm_base(void) {
        struct vmg_vm_counters c = {
                .ts_ns = S(100),
                .cpu_valid = true, .cpu_source = VMG_SRC_CGROUP_V2, .cpu_usage_ns = S(50),
                .cpu_nr_periods = 1000, .cpu_nr_throttled = 10, .cpu_throttled_ns = 0,
                .vcpu_delay_valid = true, .vcpu_run_delay_ns = S(3), .n_vcpus = 2,
                .io_source = VMG_SRC_CGROUP_V1, .n_devs = 1,
                .devs = { { .major = 254, .minor = 0, .rbytes = 1000, .wbytes = 2000, .rios = 10, .wios = 20 } },
                .proc_io_valid = true, .proc_read_bytes = 0, .proc_write_bytes = 0,
                .proc_rchar = 7272, .proc_wchar = 296, .proc_syscr = 12, .proc_syscw = 1,
                .n_ifaces = 1,
                .ifaces = { { .tap = "vnet0", .found = true, .rx_bytes = 5000, .tx_bytes = 6000,
                              .rx_packets = 50, .tx_packets = 60 } },
                .psi_cpu = { true, 578, 565 }, .psi_io = { true, 20345, 20345 },
        };
        return c;
}

static void test_vm(void) {
        struct vmg_vm_counters a = vm_base(), b;
        struct vmg_vm_rates r;

        T_CASE("cpu, throttling, vcpu steal, psi over 2 s");
        b = a;
        b.ts_ns = S(102);
        b.cpu_usage_ns += S(3);            /* 1.5 cores */
        b.cpu_nr_periods += 200;
        b.cpu_nr_throttled += 50;          /* 25 % */
        b.vcpu_run_delay_ns += S(1);       /* 0.5 s/s over 2 vCPUs = 0.25 */
        b.psi_io.some_us += 400000;        /* 0.2 */
        b.psi_cpu.some_us += 100000;       /* 0.05 */
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK(!r.reset);
        CHECK_NEAR(r.interval_s, 2.0, 1e-9);
        CHECK(r.cpu_valid);
        CHECK_NEAR(r.cpu_cores, 1.5, 1e-9);
        CHECK_NEAR(r.cpu_throttled_frac, 0.25, 1e-9);
        CHECK(r.vcpu_delay_valid);
        CHECK_NEAR(r.vcpu_delay_frac, 0.25, 1e-9);
        CHECK(r.psi_valid);
        CHECK_NEAR(r.psi_io_some, 0.2, 1e-9);
        CHECK_NEAR(r.psi_cpu_some, 0.05, 1e-9);

        T_CASE("interval <= 0 is an error, nothing written");
        r.cpu_cores = 42;
        CHECK_INT(vmg_rates_compute(&b, &a, &r), -EINVAL);
        CHECK_INT(vmg_rates_compute(&a, &a, &r), -EINVAL);
        CHECK_NEAR(r.cpu_cores, 42, 0);

        T_CASE("counter reset (VM restarted)");
        b = a;
        b.ts_ns = S(101);
        b.cpu_usage_ns = S(1);
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK(r.reset);
        CHECK(!r.cpu_valid && !r.disk_valid && !r.net_valid);
        b = a;
        b.ts_ns = S(101);
        b.ifaces[0].rx_bytes = 10; /* tap recreated */
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK(r.reset);

        T_CASE("cpu source changed: not comparable, not a reset");
        b = a;
        b.ts_ns = S(101);
        b.cpu_source = VMG_SRC_CGROUP_V1;
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK(!r.reset && !r.cpu_valid);

        T_CASE("vCPU count changed: delay not comparable");
        b = a;
        b.ts_ns = S(101);
        b.n_vcpus = 1;
        b.vcpu_run_delay_ns = S(1);
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK(!r.reset && !r.vcpu_delay_valid);
}

/* Disk sources, as measured on the lab host per 10 s of guest writes: cache=none
 * +7.09 GB everywhere but wchar, writeback blkio 0 and write_bytes +0.42 GB (docs/LAB.md). */
static void test_disk(void) {
        static const struct {
                const char *name;
                uint64_t cg_w, cg_wios, proc_wb, wchar, tap_rx, syscw, tap_rx_pkts;
                double want_w;
                enum vmg_source src;
                double want_wiops;
        } cases[] = {
                /* cache=writeback: blkio 0, write_bytes +0.42 GB, wchar +11.5 GB */
                { "writeback: wchar wins", 0, 0, 420000000, 11500000000ULL, 0, 100000, 0, 1.15e9, VMG_SRC_PROC, 1e4 },
                /* cache=none: blkio, write_bytes +7.09 GB, wchar ~0 (linux-aio) */
                { "cache=none: cgroup wins", 7090000000ULL, 200000, 7090000000ULL, 0, 0, 0, 0, 7.09e8, VMG_SRC_CGROUP_V1, 2e4 },
                /* a network flood: wchar is the tap's rx, not disk */
                { "net flood: tap rx subtracted", 0, 200000, 0, 875000000, 875000000, 600000, 600000, 0, VMG_SRC_CGROUP_V1, 2e4 },
                { "mixed: wchar minus tap", 0, 200000, 0, 1000000000, 400000000, 0, 0, 6e7, VMG_SRC_PROC, 2e4 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct vmg_vm_counters a = vm_base(), b;
                struct vmg_vm_rates r;
                T_CASE(cases[i].name);
                b = a;
                b.ts_ns = S(110);
                b.devs[0].wbytes += cases[i].cg_w;
                b.devs[0].wios += cases[i].cg_wios;
                b.proc_write_bytes += cases[i].proc_wb;
                b.proc_wchar += cases[i].wchar;
                b.proc_syscw += cases[i].syscw;
                b.ifaces[0].rx_bytes += cases[i].tap_rx;
                b.ifaces[0].rx_packets += cases[i].tap_rx_pkts;
                CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
                CHECK(r.disk_valid);
                CHECK_NEAR(r.disk_write_Bps, cases[i].want_w, 1);
                CHECK_INT(r.disk_source, cases[i].src);
                CHECK_NEAR(r.disk_write_iops, cases[i].want_wiops, 1e-6);
                CHECK_NEAR(r.disk_read_Bps, 0, 1e-9);
                CHECK(r.net_valid);
                CHECK_NEAR(r.net_tx_bps, cases[i].tap_rx * 8.0 / 10, 1);
        }

        T_CASE("NIC counters unknown: wchar not trusted");
        struct vmg_vm_counters a = vm_base(), b;
        struct vmg_vm_rates r;
        a.ifaces[0].found = false;
        b = a;
        b.ts_ns = S(110);
        b.proc_wchar += 1000000000;
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK(r.disk_valid && !r.net_valid);
        CHECK_NEAR(r.disk_write_Bps, 0, 1e-9);

        T_CASE("device appearing in cur only has no baseline");
        a = vm_base();
        b = a;
        b.ts_ns = S(110);
        b.n_devs = 2;
        b.devs[1] = (struct vmg_dev_io) { .major = 8, .minor = 0, .wbytes = 1ULL << 40 };
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK(!r.reset);
        CHECK_NEAR(r.disk_write_Bps, 0, 1e-9);

        T_CASE("net rates: guest tx = tap rx");
        a = vm_base();
        b = a;
        b.ts_ns = S(101);
        b.ifaces[0].rx_bytes += 1250000;  /* guest sent 10 Mbit */
        b.ifaces[0].tx_bytes += 125000;   /* guest received 1 Mbit */
        b.ifaces[0].rx_packets += 25000;
        b.ifaces[0].tx_packets += 100;
        b.proc_wchar += 1250000;
        b.proc_rchar += 125000;
        CHECK_INT(vmg_rates_compute(&a, &b, &r), 0);
        CHECK_NEAR(r.net_tx_bps, 1e7, 1e-6);
        CHECK_NEAR(r.net_rx_bps, 1e6, 1e-6);
        CHECK_NEAR(r.net_tx_pps, 25000, 1e-6);
        CHECK_NEAR(r.net_rx_pps, 100, 1e-6);
        CHECK_NEAR(r.disk_write_Bps, 0, 1e-6);
        CHECK_NEAR(r.disk_read_Bps, 0, 1e-6);
}

static void test_host(void) {
        struct vmg_host_counters a = {
                .ts_ns = S(10), .psi_cpu = { true, 11749648, 0 }, .psi_io = { true, 3087655, 2839547 },
                .psi_mem = { true, 0, 0 }, .stat_valid = true,
                .user = 3860, .nice = 0, .system = 3851, .idle = 54171, .iowait = 327, .irq = 0, .softirq = 137,
        };
        struct vmg_host_counters b = a;
        struct vmg_host_rates r;

        T_CASE("host psi and /proc/stat");
        b.ts_ns = S(11);
        b.psi_io.some_us += 250000; /* 250 ms/s: noisy-disk level seen on the lab host */
        b.psi_io.full_us += 100000;
        b.psi_cpu.some_us += 1000;
        b.user += 100;
        b.idle += 60;
        b.iowait += 40;
        CHECK_INT(vmg_host_rates_compute(&a, &b, &r), 0);
        CHECK(r.psi_valid);
        CHECK_NEAR(r.psi_io_some, 0.25, 1e-9);
        CHECK_NEAR(r.psi_io_full, 0.1, 1e-9);
        CHECK_NEAR(r.psi_cpu_some, 0.001, 1e-9);
        CHECK(r.stat_valid);
        CHECK_NEAR(r.cpu_busy_frac, 0.5, 1e-9);
        CHECK_NEAR(r.iowait_frac, 0.2, 1e-9);

        T_CASE("iowait going backwards is not a reset");
        b = a;
        b.ts_ns = S(11);
        b.user += 100;
        b.idle += 100;
        b.iowait -= 5;
        CHECK_INT(vmg_host_rates_compute(&a, &b, &r), 0);
        CHECK(r.stat_valid);
        CHECK_NEAR(r.iowait_frac, 0, 1e-9);
        CHECK_NEAR(r.cpu_busy_frac, 0.5, 1e-9);

        T_CASE("host bad interval");
        CHECK_INT(vmg_host_rates_compute(&b, &a, &r), -EINVAL);
}

static void test_service(void) {
        struct vmg_service_counters a = {
                .ts_ns = S(10), .n_pids = 1, .valid = true, .cpu_ns = S(1),
                .run_delay_ns = 34960317, .nr_timeslices = 418, .blkio_delay_ns = 0, .blkio_delay_valid = true,
        };
        struct vmg_service_counters b = a;
        struct vmg_service_rates r;

        T_CASE("service rates");
        b.ts_ns = S(12);
        b.cpu_ns += 200000000;       /* 0.1 cores */
        b.run_delay_ns += 10000000;  /* 10 ms over 2 s */
        b.nr_timeslices += 100;      /* 0.1 ms per slice */
        b.blkio_delay_ns += S(1);    /* 0.5 s/s blocked on I/O */
        CHECK_INT(vmg_service_rates_compute(&a, &b, &r), 0);
        CHECK(r.valid);
        CHECK_INT(r.n_pids, 1);
        CHECK_NEAR(r.cpu_cores, 0.1, 1e-9);
        CHECK_NEAR(r.run_delay_frac, 0.005, 1e-9);
        CHECK_NEAR(r.run_delay_avg_ms, 0.1, 1e-9);
        CHECK(r.blkio_delay_valid);
        CHECK_NEAR(r.blkio_delay_frac, 0.5, 1e-9);
        CHECK(r.probe_latency_ms < 0);

        T_CASE("service restarted");
        b = a;
        b.ts_ns = S(12);
        b.cpu_ns = 1000;
        CHECK_INT(vmg_service_rates_compute(&a, &b, &r), 0);
        CHECK(!r.valid);
        b = a;
        b.ts_ns = S(12);
        b.n_pids = 2;
        b.cpu_ns += S(1);
        CHECK_INT(vmg_service_rates_compute(&a, &b, &r), 0);
        CHECK(!r.valid);

        T_CASE("delay accounting off");
        b = a;
        b.ts_ns = S(12);
        b.blkio_delay_valid = false;
        CHECK_INT(vmg_service_rates_compute(&a, &b, &r), 0);
        CHECK(r.valid && !r.blkio_delay_valid);
        CHECK_INT(vmg_service_rates_compute(&b, &a, &r), -EINVAL);
}

static void test_source_names(void) {
        T_CASE("source names");
        CHECK_STR(vmg_source_name(VMG_SRC_PROC), "proc");
        CHECK_STR(vmg_source_name(VMG_SRC_CGROUP_V1), "cgroup-v1");
        CHECK_STR(vmg_source_name(VMG_SRC_CGROUP_V2), "cgroup-v2");
        CHECK_STR(vmg_source_name(VMG_SRC_NONE), "none");
}

int main(void) {
        log_set_max_level(LOG_EMERG);
        test_vm();
        test_disk();
        test_host();
        test_service();
        test_source_names();
        return t_summary();
}
