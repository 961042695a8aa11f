# `vmguard top`'s limits column: pure functions on the daemon's snapshot, tested on fixtures.
# The vmguard program (VMGUARD_SRCS in controller/programs.mk) links them through the extra
# prerequisite below; its recipe links every prerequisite ($^).
TOP_LIMITS_SRCS := controller/top_limits.c
$(BUILD)/vmguard: $(patsubst %.c,$(BUILD)/%.o,$(TOP_LIMITS_SRCS))

$(eval $(call unit_test,test_top,tests/unit/test_top.c $(TOP_LIMITS_SRCS) policies/units.c $(COMMON_SRCS)))
