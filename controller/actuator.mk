# The cgroup actuator, the journal of original values and libvirt's block I/O tune.
ACTUATOR_SRCS := controller/actuator.c controller/journal.c controller/blkiotune.c

$(eval $(call unit_test,test_journal,tests/unit/test_journal.c controller/journal.c $(COMMON_SRCS)))
$(eval $(call unit_test,test_actuator,tests/unit/test_actuator.c $(ACTUATOR_SRCS) $(COMMON_SRCS)))

# Helper of tests/integration/test_actuator_real.sh (drives the actuator on real cgroups).
# Not a $(call program): `make install` must not ship a test tool. Built before the tests run.
$(BUILD)/tests/act_tool: $(patsubst %.c,$(BUILD)/%.o,tests/tools/act_tool.c $(ACTUATOR_SRCS) $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
run-tests: $(BUILD)/tests/act_tool
