# Test aids the integration tests run (never installed), and test_enomem.

# Domain churn (issue 9): tests/tools/churn keeps N libvirt test-driver domains running and
# replaces some continuously, each with a synthetic libvirt-like cgroup and pid file
# (tests/tools/synguest.h), for tests/integration/test_churn.sh.
#   make build/tests/tools/churn    the tool
#   make soak                       the full run: N=1000, 5 replacements/s, 10 minutes of
#                                   churn (~13 min wall; CPU heavy on a 2-core host)
TOOLS += tests/tools/churn
tests/tools/churn_SRCS = tests/tools/churn.c tests/tools/synguest.c $(COMMON_SRCS)

SOAK_SECONDS ?= 600
soak: $(BUILD)/vmguardd $(BUILD)/vmguard $(BUILD)/tests/tools/churn
	BUILD=$(BUILD) CHURN_SECONDS=$(SOAK_SECONDS) CHURN_WARMUP=120 CHURN_RSS_WINDOW=60 bash tests/integration/test_churn.sh
.PHONY: soak

# Allocation-failure injection (issue #9): test_enomem fails the k-th allocation of every
# operation of vmguard's own code. failmalloc.c replaces malloc in the test executable, which
# ASan also does: with SANITIZE=1 the test is not built (make valgrind runs it instead).
ifneq ($(SANITIZE),1)
UNIT_TESTS += test_enomem
test_enomem_SRCS = tests/unit/test_enomem.c tests/tools/failmalloc.c $(MONITOR_SRCS) \
	$(POLICY_SRCS) $(ENGINE_SRCS) controller/daemon/metrics.c $(JOURNAL_SRCS) \
	$(CTLSOCK_SRCS) $(COMMON_SRCS)
endif

# The fsync victim of the I/O tests: a plain program, no vmguard code.
$(BUILD)/tests/tools/vmgfsyncvictim: tests/tools/fsync_victim.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<
run-tests: $(BUILD)/tests/tools/vmgfsyncvictim

# clockshift.so: LD_PRELOAD shim that steps CLOCK_REALTIME for one process
# (tests/integration/test_clock.sh). Built without the sanitizers: an ASan runtime cannot be
# preloaded after the program's own.
CLOCKSHIFT := $(BUILD)/tests/tools/clockshift.so
$(CLOCKSHIFT): tests/tools/clockshift.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread
run-tests: $(CLOCKSHIFT)
