# Benchmarks (issue 8): `make bench` builds these and runs bench/run.sh. Not part of `all`,
# so a benchmark that stops compiling never blocks the daemon's build. bench_sample links the
# monitor exactly as vmguardd does.
BENCHES += bench/bench_sample
bench/bench_sample_SRCS = bench/bench_sample.c tests/tools/synguest.c $(MONITOR_SRCS) \
	$(POLICY_SRCS) $(COMMON_SRCS)

bench-bins: $(BUILD)/bench/bench_sample
.PHONY: bench-bins
