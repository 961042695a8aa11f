# The `vmguard` CLI (status, explain, top, policy check) and the Nagios/Icinga plugin; both
# talk to the daemon through the control-socket client (ctlclient.c).
CTLCLIENT_SRCS = controller/cli/ctlclient.c
TOP_LIMITS_SRCS = controller/cli/top_limits.c

PROGRAMS += vmguard check_vmguard
vmguard_SRCS = controller/cli/vmguard.c controller/cli/top.c $(TOP_LIMITS_SRCS) \
	controller/cli/cli_policy.c controller/cli/cli_status.c $(CTLCLIENT_SRCS) \
	$(MONITOR_SRCS) $(POLICY_SRCS) $(COMMON_SRCS)
check_vmguard_SRCS = controller/cli/check_vmguard.c $(CTLCLIENT_SRCS) $(COMMON_SRCS)

UNIT_TESTS += test_check_vmguard test_top
test_check_vmguard_SRCS = tests/unit/test_check_vmguard.c $(CTLCLIENT_SRCS) $(COMMON_SRCS)
test_top_SRCS = tests/unit/test_top.c $(TOP_LIMITS_SRCS) $(RESOURCES_SRCS) $(COMMON_SRCS)
