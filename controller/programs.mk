# The programs: linked from every module's sources (this fragment is included last).
MONITOR_SRCS := controller/monitor.c $(PROBES_SRCS) $(DISCOVERY_SRCS)

VMGUARD_SRCS := controller/vmguard.c controller/top.c controller/cli_policy.c $(CTL_CLI_SRCS) \
	$(MONITOR_SRCS) $(POLICY_SRCS) $(COMMON_SRCS)
$(eval $(call program,vmguard,$(VMGUARD_SRCS)))

ACTORS_SRCS := controller/actuator.c controller/journal.c controller/blkiotune.c controller/shaper.c
VMGUARDD_SRCS := controller/vmguardd.c controller/manager.c controller/engine.c controller/prober.c $(ACTORS_SRCS) $(CTLSOCK_SRCS) \
	controller/metrics.c controller/httpd.c controller/psitrigger.c controller/svcprio.c \
	$(MONITOR_SRCS) $(POLICY_SRCS) $(COMMON_SRCS)
$(eval $(call program,vmguardd,$(VMGUARDD_SRCS)))

$(eval $(call unit_test,test_prober,tests/unit/test_prober.c controller/prober.c $(COMMON_SRCS)))
$(eval $(call unit_test,test_monitor,tests/unit/test_monitor.c $(MONITOR_SRCS) $(COMMON_SRCS)))
$(eval $(call unit_test,test_psitrigger,tests/unit/test_psitrigger.c controller/psitrigger.c $(COMMON_SRCS)))
$(eval $(call unit_test,test_engine_quota,tests/unit/test_engine_quota.c controller/engine.c $(COMMON_SRCS)))

# Test tools the integration tests run (not installed).
$(BUILD)/tests/tools/vmgfsyncvictim: tests/tools/fsync_victim.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<
run-tests: $(BUILD)/tests/tools/vmgfsyncvictim
