/* The data model shared by probes (who fill it), the rate computation, the engine and the
 * reporters. Raw counters are cumulative kernel counters read at ts_ns (CLOCK_MONOTONIC);
 * rates are derived from two of them by vmg_rates_compute() (probes/rates.h). */
#pragma once
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMG_MAX_DEVS 8
#define VMG_MAX_IFACES 8
#define VMG_MAX_VCPUS 64
#define VMG_NAME_MAX 128
#define VMG_UUID_LEN 36

/* Where a figure came from: printed beside it, because on some hosts the obvious counter
 * does not move (blkio v1 read 0 for a writeback guest
 * writing +11.5 GB per 10 s on the lab host: the flusher charges the root group). */
enum vmg_source {
        VMG_SRC_NONE = 0,
        VMG_SRC_CGROUP_V1,  /* cpuacct.usage, blkio.throttle.io_service_* */
        VMG_SRC_CGROUP_V2,  /* cpu.stat, io.stat */
        VMG_SRC_PROC,       /* /proc/PID/{io,stat,schedstat} of the QEMU process */
        VMG_SRC_NETLINK,    /* RTM_GETLINK dump in the tap's network namespace */
        VMG_SRC_SYSFS,
};
const char *vmg_source_name(enum vmg_source s);

/* Pressure stall information: cumulative stall time in microseconds. */
struct vmg_psi {
        bool valid;
        uint64_t some_us;
        uint64_t full_us;
};

struct vmg_dev_io {
        uint32_t major, minor;
        uint64_t rbytes, wbytes;
        uint64_t rios, wios;
};

/* Counters of the host side of a guest NIC. The tap's rx is what the guest transmits. */
struct vmg_iface_counters {
        char tap[IF_NAMESIZE];
        bool found;
        uint64_t rx_bytes, tx_bytes;
        uint64_t rx_packets, tx_packets;
        uint64_t rx_dropped, tx_dropped;
};

/* One VM's cumulative counters at one instant. */
struct vmg_vm_counters {
        uint64_t ts_ns;

        bool cpu_valid;
        enum vmg_source cpu_source;
        uint64_t cpu_usage_ns;          /* all QEMU threads: vCPUs + emulator + I/O */
        uint64_t cpu_nr_periods;        /* CFS bandwidth: periods with a quota active */
        uint64_t cpu_nr_throttled;
        uint64_t cpu_throttled_ns;

        /* Sum of run-queue wait (schedstat field 2) over the vCPU threads: the guest's
         * steal time, "CPU ready" in other hypervisors' words. */
        bool vcpu_delay_valid;
        uint64_t vcpu_run_delay_ns;
        unsigned n_vcpus;

        /* Per host block device, from the VM's cgroup (v1 blkio or v2 io.stat). */
        enum vmg_source io_source;
        size_t n_devs;
        struct vmg_dev_io devs[VMG_MAX_DEVS];

        /* The QEMU process's own I/O accounting: counts buffered (cache=writeback)
         * writes as wchar, which blkio v1 charges to the root group instead. */
        bool proc_io_valid;
        uint64_t proc_read_bytes, proc_write_bytes; /* reached the block layer */
        uint64_t proc_rchar, proc_wchar;            /* read()/write() syscalls */
        uint64_t proc_syscr, proc_syscw;

        size_t n_ifaces;
        struct vmg_iface_counters ifaces[VMG_MAX_IFACES];

        /* Per-cgroup PSI, v2 only. No memory.pressure: nothing decides on a guest's memory
         * stalls, and each file read per guest per tick is a syscall (BENCHMARKS.md). */
        struct vmg_psi psi_cpu, psi_io;
};

/* Rates over one interval, from the guest's point of view. NaN-free: a figure that could not
 * be computed is 0 with its *_valid flag false. */
struct vmg_vm_rates {
        double interval_s;
        bool reset;                /* a counter went backwards (VM restarted): skip */

        bool cpu_valid;
        double cpu_cores;          /* cores used, e.g. 1.5 */
        double cpu_throttled_frac; /* fraction of CFS periods throttled */
        double cpu_throttled_time_frac; /* seconds throttled by a CFS quota per second, 0..1 */
        bool vcpu_delay_valid;
        double vcpu_delay_frac;    /* run-queue wait per second per vCPU (steal), 0..1 */

        bool disk_valid;
        enum vmg_source disk_source;
        double disk_read_Bps, disk_write_Bps;
        double disk_read_iops, disk_write_iops;

        bool net_valid;
        double net_tx_bps, net_rx_bps; /* bits/s, guest transmit and receive */
        double net_tx_pps, net_rx_pps;

        bool psi_valid;
        double psi_cpu_some, psi_io_some; /* fraction of wall time stalled, 0..1 */
};

/* Host-wide counters. */
struct vmg_host_counters {
        uint64_t ts_ns;
        struct vmg_psi psi_cpu, psi_io, psi_mem;
        /* /proc/stat "cpu" line, in USER_HZ ticks */
        bool stat_valid;
        uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
};

struct vmg_host_rates {
        double interval_s;
        bool psi_valid;
        double psi_cpu_some, psi_io_some, psi_io_full, psi_mem_some; /* fractions 0..1 */
        bool stat_valid;
        double cpu_busy_frac, iowait_frac;                           /* of all CPUs */
};

/* One protected host service (dnsmasq, unbound, ...), summed over its processes/threads. */
struct vmg_service_counters {
        uint64_t ts_ns;
        unsigned n_pids;
        bool valid;
        uint64_t cpu_ns;        /* utime + stime */
        uint64_t run_delay_ns;  /* schedstat field 2, summed over threads */
        uint64_t nr_timeslices; /* schedstat field 3 */
        uint64_t blkio_delay_ns; /* /proc/PID/stat field 42 (needs kernel.task_delayacct) */
        bool blkio_delay_valid;
};

struct vmg_service_rates {
        double interval_s;
        bool valid;
        unsigned n_pids;
        double cpu_cores;
        double run_delay_frac;   /* seconds waited on a run queue per second */
        double run_delay_avg_ms; /* mean wait per timeslice: latency one request sees */
        bool blkio_delay_valid;
        double blkio_delay_frac; /* seconds blocked on I/O per second */
        double probe_latency_ms; /* from an active DNS/DHCP probe, < 0 when none */
};
