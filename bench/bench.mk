# Benchmarks (issue 8): `make bench` builds these and runs bench/run.sh. Not part of
# `all`, so a benchmark that stops compiling never blocks the daemon's build.
#
# bench_sample links the monitor exactly as vmguardd does. MONITOR_SRCS is defined in
# controller/programs.mk, which the Makefile includes after this fragment, hence the
# second expansion ($$) of the prerequisite list.
.SECONDEXPANSION:
BENCH_SAMPLE := $(BUILD)/bench/bench_sample
BENCH_SAMPLE_SRCS = bench/bench_sample.c tests/tools/synguest.c $(MONITOR_SRCS) $(POLICY_SRCS) $(COMMON_SRCS)
$(BENCH_SAMPLE): $$(patsubst %.c,$(BUILD)/%.o,$$(BENCH_SAMPLE_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-bins: $(BENCH_SAMPLE)
.PHONY: bench-bins
