/* The monitor on a fake host: a hybrid cgroup tree laid out as libvirt makes it here, a fake
 * /proc with a QEMU process (vCPU threads named "CPU n/TCG") and a dnsmasq, and a domain XML.
 * Two ticks give rates from the counters; a guest whose cgroup vanishes is marked so and
 * never crashes the tick; a re-listing keeps the previous sample of guests it still has. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "probes/monitor.h"
#include "tests/fixtures/fake_tree.h"
#include "tests/harness.h"

#define DOM FX_WEB1_DOM

static const char *xml = FX_WEB1_XML;

static void write_counters(const char *cg, const char *proc, unsigned long usage_usec,
                           unsigned long wbytes, unsigned long wchar, unsigned long qemu_wait_ns,
                           unsigned long dns_wait_ns, unsigned long long psi_io_us) {
        char buf[512];
        snprintf(buf, sizeof buf, "usage_usec %lu\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n", usage_usec);
        fx_write(cg, "unified/" DOM "/cpu.stat", buf);
        snprintf(buf, sizeof buf, "254:0 Read 0\n254:0 Write %lu\n254:0 Sync %lu\n254:0 Async 0\n"
                                  "254:0 Discard 0\n254:0 Total %lu\nTotal %lu\n", wbytes, wbytes, wbytes, wbytes);
        fx_write(cg, "blkio/" DOM "/blkio.throttle.io_service_bytes", buf);
        snprintf(buf, sizeof buf, "254:0 Read 0\n254:0 Write %lu\n254:0 Sync %lu\n254:0 Async 0\n"
                                  "254:0 Discard 0\n254:0 Total %lu\nTotal %lu\n", wbytes / 65536,
                 wbytes / 65536, wbytes / 65536, wbytes / 65536);
        fx_write(cg, "blkio/" DOM "/blkio.throttle.io_serviced", buf);
        snprintf(buf, sizeof buf, "rchar: 0\nwchar: %lu\nsyscr: 0\nsyscw: 0\nread_bytes: 0\n"
                                  "write_bytes: 0\ncancelled_write_bytes: 0\n", wchar);
        fx_write(proc, "4242/io", buf);
        snprintf(buf, sizeof buf, "1000 %lu 10\n", qemu_wait_ns);
        fx_write(proc, "4242/task/4250/schedstat", buf);
        snprintf(buf, sizeof buf, "1000 %lu 100\n", dns_wait_ns);
        fx_write(proc, "777/schedstat", buf);
        fx_write(proc, "777/task/777/schedstat", buf);
        snprintf(buf, sizeof buf, "some avg10=0.00 avg60=0.00 avg300=0.00 total=%llu\n"
                                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", psi_io_us);
        fx_write(proc, "pressure/io", buf);
}

int main(void) {
        char cg[] = "/tmp/test_monitor_cg.XXXXXX", proc[] = "/tmp/test_monitor_proc.XXXXXX";
        char mountinfo[600];
        if (!mkdtemp(cg) || !mkdtemp(proc)) {
                printf("0 passed, 1 failed\n");
                return 1;
        }
        snprintf(mountinfo, sizeof mountinfo, "%s/mountinfo", proc);
        fx_libvirt_host(cg, proc);
        write_counters(cg, proc, 1000000, 0, 0, 0, 0, 1000);

        struct vmg_monitor_paths paths = {
                .cgroup = { .root = cg, .mountinfo = mountinfo, .proc = proc },
                .proc_root = proc,
                .netns_dir = "/nonexistent-netns-dir",
        };
        struct vmg_monitor *m = NULL;
        T_CASE("open on a fake hybrid host");
        CHECK_INT(vmg_monitor_new(&paths, &m), 0);
        if (!m)
                return t_summary();
        struct vmg_service dns = { .name = "dnsmasq", .kind = VMG_SERVICE_PROCESS, .match = "dnsmasq" };
        CHECK_INT(vmg_monitor_set_services(m, &dns, 1), 0);
        struct vmg_domxml *d = NULL;
        CHECK_INT(vmg_domxml_parse(xml, strlen(xml), &d), 0);
        pid_t pid = 4242;
        CHECK_INT(vmg_monitor_set_domains(m, &d, &pid, 1), 0);
        CHECK_INT(vmg_monitor_n_vms(m), 1);
        struct vmg_vm *vm = vmg_monitor_vm(m, 0);
        CHECK(vm->cg != NULL);
        CHECK(vm->proc != NULL);
        CHECK_INT(vm->error, 0);
        CHECK_STR(vm->dom->tenant, "acme");

        T_CASE("two ticks give rates");
        CHECK_INT(vmg_monitor_sample(m, 1000000000ull), 0);
        CHECK(!vm->have_rates);
        /* One second later: 0.5 s of CPU, 20 MB written (blkio counts it, cache=none), the
         * vCPU waited 0.25 s for a CPU, dnsmasq 10 ms, host io stalled 0.3 s. */
        write_counters(cg, proc, 1500000, 20000000, 0, 250000000, 10000000, 301000);
        CHECK_INT(vmg_monitor_sample(m, 2000000000ull), 0);
        vm = vmg_monitor_vm(m, 0);
        CHECK(vm->have_rates);
        CHECK(vm->rates.cpu_valid);
        CHECK_NEAR(vm->rates.cpu_cores, 0.5, 1e-9);
        CHECK(vm->rates.disk_valid);
        CHECK_NEAR(vm->rates.disk_write_Bps, 20e6, 1);
        CHECK_INT(vm->rates.disk_source, VMG_SRC_CGROUP_V1);
        CHECK(vm->rates.vcpu_delay_valid);
        CHECK_NEAR(vm->rates.vcpu_delay_frac, 0.25, 1e-9);
        CHECK_INT(vm->cur.n_ifaces, 1);
        CHECK(!vm->cur.ifaces[0].found); /* a tap that exists nowhere: zero, not an error */
        struct vmg_host_rates h;
        CHECK(vmg_monitor_host_rates(m, &h));
        CHECK_NEAR(h.psi_io_some, 0.3, 1e-9);
        const struct vmg_svc *sv = vmg_monitor_service(m, 0);
        CHECK_INT(sv->n_pids, 1);
        CHECK(sv->have_rates);
        CHECK_NEAR(sv->rates.run_delay_frac, 0.01, 1e-9);
        char src[128];
        CHECK_CONTAINS(vmg_vm_sources(vm, src, sizeof src), "cpu=cgroup-v2");

        T_CASE("a NIC whose tap is nowhere: write() bytes may be frames, not trusted");
        write_counters(cg, proc, 1500000, 20000000, 300000000, 250000000, 10000000, 301000);
        CHECK_INT(vmg_monitor_sample(m, 3000000000ull), 0);
        CHECK_NEAR(vm->rates.disk_write_Bps, 0, 1);

        T_CASE("re-listing keeps what it already had, with the new XML");
        static const char *xml_nonic =
                "<domain type='qemu' id='7'><name>web-1</name>"
                "<uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid><vcpu>1</vcpu><devices/></domain>";
        struct vmg_domxml *d2 = NULL;
        CHECK_INT(vmg_domxml_parse(xml_nonic, strlen(xml_nonic), &d2), 0);
        CHECK_INT(vmg_monitor_set_domains(m, &d2, &pid, 1), 0);
        vm = vmg_monitor_vm(m, 0);
        CHECK(vm->have_prev);
        CHECK_U64(vm->cur.ts_ns, 3000000000ull);
        CHECK(vm->dom->tenant == NULL);

        T_CASE("writeback: blkio silent, QEMU's own write() calls count");
        write_counters(cg, proc, 1500000, 20000000, 600000000, 250000000, 10000000, 301000);
        CHECK_INT(vmg_monitor_sample(m, 4000000000ull), 0);
        CHECK_NEAR(vm->rates.disk_write_Bps, 300e6, 1);
        CHECK_INT(vm->rates.disk_source, VMG_SRC_PROC);

        T_CASE("a guest whose cgroup vanished mid-run");
        fx_rmtree(cg, "blkio/" DOM);
        fx_rmtree(cg, "unified/" DOM);
        fx_rmtree(cg, "cpu/" DOM);
        CHECK_INT(vmg_monitor_sample(m, 5000000000ull), 0);
        vm = vmg_monitor_vm(m, 0);
        CHECK(vm->vanished);
        CHECK(!vm->have_rates);
        CHECK(vm->error == -ENOENT || vm->error == -ENODEV);
        CHECK(vmg_monitor_find(m, "0f8fad5b-d9cb-469f-a165-70867728950e") == vm);
        CHECK(vmg_monitor_find(m, "nope") == NULL);

        T_CASE("a guest with no cgroup: opened again at listings 2, 4, 8, … not every one");
        {
                static const char *xml_ghost =
                        "<domain type='qemu' id='99'><name>ghost</name>"
                        "<uuid>6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b</uuid><vcpu>1</vcpu><devices/></domain>";
                static const unsigned failures_after[] = { 1, 2, 2, 3, 3, 3, 3, 4, 4 };
                pid_t none = 0;
                for (size_t k = 0; k < sizeof failures_after / sizeof *failures_after; k++) {
                        struct vmg_domxml *g = NULL;
                        CHECK_INT(vmg_domxml_parse(xml_ghost, strlen(xml_ghost), &g), 0);
                        CHECK_INT(vmg_monitor_set_domains(m, &g, &none, 1), 0);
                        struct vmg_vm *gv = vmg_monitor_vm(m, 0);
                        CHECK(gv->cg == NULL);
                        CHECK_INT(gv->open_failures, failures_after[k]);
                }
        }

        T_CASE("the guest is gone from libvirt too");
        CHECK_INT(vmg_monitor_set_domains(m, NULL, NULL, 0), 0);
        CHECK_INT(vmg_monitor_n_vms(m), 0);
        CHECK_INT(vmg_monitor_sample(m, 6000000000ull), 0);

        vmg_monitor_free(m);
        fx_rmtree(cg, "");
        fx_rmtree(proc, "");
        return t_summary();
}
