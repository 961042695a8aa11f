# The readers: cgroup v1/v2, procfs, PSI, host services, rates (local probes); libvirt
# domains, their disks and taps (discovery); monitor.c, which samples every guest per tick,
# and prober.c, the one-shot I/O latency probe.
PROBES_SRCS = probes/cgroup.c probes/procfs.c probes/services.c probes/rates.c
DOMXML_SRCS = probes/domxml.c
BLOCKDEV_SRCS = probes/blockdev.c
NETLINK_SRCS = probes/netlink.c
LIBVIRT_SRCS = probes/libvirt.c $(DOMXML_SRCS) $(BLOCKDEV_SRCS)
DISCOVERY_SRCS = $(LIBVIRT_SRCS) $(NETLINK_SRCS)
MONITOR_SRCS = probes/monitor.c $(PROBES_SRCS) $(DISCOVERY_SRCS)
PROBER_SRCS = probes/prober.c

UNIT_TESTS += test_procfs test_cgroup test_services test_rates test_blockdev test_domxml \
	test_netlink test_monitor test_prober test_pid_cgroup
test_procfs_SRCS = tests/unit/test_procfs.c probes/procfs.c $(COMMON_SRCS)
test_cgroup_SRCS = tests/unit/test_cgroup.c probes/cgroup.c probes/procfs.c $(COMMON_SRCS)
test_services_SRCS = tests/unit/test_services.c probes/services.c probes/cgroup.c probes/procfs.c $(COMMON_SRCS)
test_rates_SRCS = tests/unit/test_rates.c probes/rates.c $(COMMON_SRCS)
test_blockdev_SRCS = tests/unit/test_blockdev.c $(BLOCKDEV_SRCS) $(COMMON_SRCS)
test_domxml_SRCS = tests/unit/test_domxml.c $(LIBVIRT_SRCS) $(COMMON_SRCS)
test_netlink_SRCS = tests/unit/test_netlink.c $(NETLINK_SRCS) $(COMMON_SRCS)
test_monitor_SRCS = tests/unit/test_monitor.c $(MONITOR_SRCS) $(COMMON_SRCS)
test_prober_SRCS = tests/unit/test_prober.c $(PROBER_SRCS) $(COMMON_SRCS)
test_pid_cgroup_SRCS = tests/unit/test_pid_cgroup.c probes/cgroup.c probes/procfs.c $(COMMON_SRCS)
