# The levers: the cgroup actuator, the journal of original values, libvirt's block I/O tune,
# the tap shaper (tc over rtnetlink) and host-service priority (svcprio).
JOURNAL_SRCS = controller/act/journal.c
SHAPER_SRCS = controller/act/shaper.c
ACT_SRCS = controller/act/actuator.c $(JOURNAL_SRCS) controller/act/blkiotune.c controller/act/iotune.c $(SHAPER_SRCS) \
	controller/act/svcprio.c controller/act/sysctl.c

UNIT_TESTS += test_journal test_actuator test_shaper test_sysctl
test_journal_SRCS = tests/unit/test_journal.c $(JOURNAL_SRCS) $(COMMON_SRCS)
test_actuator_SRCS = tests/unit/test_actuator.c controller/act/actuator.c $(JOURNAL_SRCS) \
	controller/act/blkiotune.c controller/act/iotune.c $(COMMON_SRCS)
test_shaper_SRCS = tests/unit/test_shaper.c $(SHAPER_SRCS) $(COMMON_SRCS)
test_sysctl_SRCS = tests/unit/test_sysctl.c controller/act/sysctl.c $(JOURNAL_SRCS) $(COMMON_SRCS)

# Helpers of tests/integration/test_actuator_real.sh and test_shaper_real.sh (they drive the
# levers on real cgroups and taps).
TOOLS += tests/act_tool tests/tools/shaper_tool
tests/act_tool_SRCS = tests/tools/act_tool.c controller/act/actuator.c $(JOURNAL_SRCS) \
	controller/act/blkiotune.c controller/act/iotune.c $(COMMON_SRCS)
tests/tools/shaper_tool_SRCS = tests/tools/shaper_tool.c $(SHAPER_SRCS) $(COMMON_SRCS)
