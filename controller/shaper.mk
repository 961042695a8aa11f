# Network shaping of a guest's tap (tc over rtnetlink, libnl-route-3).
SHAPER_SRCS := controller/shaper.c
$(eval $(call unit_test,test_shaper,tests/unit/test_shaper.c $(SHAPER_SRCS) $(COMMON_SRCS)))

# Test aid for tests/integration/test_shaper_real.sh. Not declared with `program`, so
# `make all` and `make install` leave it out; the test runs need it.
SHAPER_TOOL := $(BUILD)/tests/tools/shaper_tool
$(SHAPER_TOOL): $(patsubst %.c,$(BUILD)/%.o,tests/tools/shaper_tool.c $(SHAPER_SRCS) $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
run-tests: $(SHAPER_TOOL)
