# Domain churn (issue 9): tests/tools/churn keeps N libvirt test-driver domains running and
# replaces some continuously, each with a synthetic libvirt-like cgroup and pid file
# (tests/tools/synguest.h), for tests/integration/test_churn.sh.
#   make build/tests/tools/churn    the tool
#   make soak                       the full run: N=1000, 5 replacements/s, 10 minutes of
#                                   churn (~13 min wall; CPU heavy on a 2-core host)
CHURN := $(BUILD)/tests/tools/churn
$(CHURN): $(patsubst %.c,$(BUILD)/%.o,tests/tools/churn.c tests/tools/synguest.c $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

run-tests: $(CHURN)

SOAK_SECONDS ?= 600
soak: $(BUILD)/vmguardd $(BUILD)/vmguard $(CHURN)
	BUILD=$(BUILD) CHURN_SECONDS=$(SOAK_SECONDS) CHURN_WARMUP=120 CHURN_RSS_WINDOW=60 bash tests/integration/test_churn.sh

.PHONY: soak
