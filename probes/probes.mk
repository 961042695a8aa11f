# Local probes: cgroup v1/v2, procfs, PSI, host services, and the rate computation.
PROBES_SRCS := probes/cgroup.c probes/procfs.c probes/services.c probes/rates.c

$(eval $(call unit_test,test_procfs,tests/unit/test_procfs.c probes/procfs.c $(COMMON_SRCS)))
$(eval $(call unit_test,test_cgroup,tests/unit/test_cgroup.c probes/cgroup.c probes/procfs.c $(COMMON_SRCS)))
$(eval $(call unit_test,test_services,tests/unit/test_services.c probes/services.c probes/cgroup.c probes/procfs.c $(COMMON_SRCS)))
$(eval $(call unit_test,test_rates,tests/unit/test_rates.c probes/rates.c $(COMMON_SRCS)))
