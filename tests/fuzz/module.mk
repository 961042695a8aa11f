# Fuzzing every parser with libFuzzer (clang, ASan+UBSan), the regression replay of what
# the fuzzers found, and a valgrind pass over every unit test. See RELIABILITY.md.
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZERS="policy domxml"]  build and run each harness
#   make fuzz-build                                         only build build-fuzz/fuzz_*
#   make valgrind                                           every unit test under valgrind
#
# The fuzz build has its own compiler, flags and tree (build-fuzz/), so it neither needs nor
# disturbs the gcc build; harness objects get -DVMG_FUZZ_MAIN, which adds libFuzzer's entry
# points. The same harness sources, without it, link into test_fuzz_regressions.

# Read once even when named twice (the Makefile's include and `make -f Makefile -f
# tests/fuzz/module.mk`, which older copies of tests/integration/test_fuzz_short.sh used).
ifndef VMG_FUZZ_MK
VMG_FUZZ_MK := 1

FUZZ_HARNESSES := policy units psi pid_stat procfs_files cgroup_files mountinfo domxml journal \
	names
FUZZERS ?= $(FUZZ_HARNESSES)
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 $(WARN) -O1 -g $(FUZZ_SAN) -I. $(PKG_CFLAGS) -MMD -MP

FUZZ_UTIL_SRCS := tests/fuzz/fuzz_util.c common/log.c common/fileio.c common/json_alloc.c
fuzz_srcs_policy := policies/policy.c policies/parse.c policies/tenant.c policies/host.c \
	policies/load.c policies/resources.c
fuzz_srcs_units := policies/resources.c
fuzz_srcs_psi := probes/procfs.c
fuzz_srcs_pid_stat := probes/procfs.c
fuzz_srcs_procfs_files := probes/procfs.c
fuzz_srcs_cgroup_files := probes/cgroup.c probes/procfs.c
fuzz_srcs_mountinfo := probes/cgroup.c probes/procfs.c
fuzz_srcs_domxml := probes/domxml.c
fuzz_srcs_journal := controller/act/journal.c
fuzz_srcs_names := controller/engine/engine.c controller/engine/service_health.c policies/resources.c \
	controller/daemon/metrics.c

# Module objects: instrumented for coverage, no libFuzzer main.
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/harness/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -DVMG_FUZZ_MAIN -c -o $@ $<

define fuzz_harness
$(FUZZ_BUILD)/fuzz_$(1): $(FUZZ_BUILD)/harness/fuzz_$(1).o \
		$(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_UTIL_SRCS) $(fuzz_srcs_$(1)))
	$$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach h,$(FUZZ_HARNESSES),$(eval $(call fuzz_harness,$(h))))

FUZZ_BINS := $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_HARNESSES))

fuzz-build: $(FUZZ_BINS)

# New corpus entries go to build-fuzz/corpus/NAME (kept between runs, not committed); the
# seeds in tests/fuzz/corpus/NAME are read only. A crash fails the target and names its
# reproducer: copy it to tests/fuzz/regressions/NAME/ once fixed.
fuzz: $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZERS))
	FUZZ_BUILD=$(FUZZ_BUILD) ./tests/fuzz/run-fuzzers.sh $(FUZZ_SECONDS) $(FUZZERS)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)

# The regression replay, in the ordinary build (gcc, or ASan with SANITIZE=1).
FUZZ_REG_SRCS := tests/unit/test_fuzz_regressions.c tests/fuzz/fuzz_util.c \
	$(addprefix tests/fuzz/fuzz_,$(addsuffix .c,$(FUZZ_HARNESSES))) \
	policies/policy.c policies/parse.c policies/tenant.c policies/host.c policies/load.c \
	policies/resources.c probes/procfs.c probes/cgroup.c probes/domxml.c \
	controller/act/journal.c controller/engine/engine.c controller/engine/service_health.c \
	controller/daemon/metrics.c common/log.c common/fileio.c common/json_alloc.c
UNIT_TESTS += test_fuzz_regressions
test_fuzz_regressions_SRCS = $(FUZZ_REG_SRCS)

# Every unit test binary under valgrind (memcheck, full leak check). The list is expanded
# when the recipe runs, once every fragment is read.
valgrind:
	@if [ "$(SANITIZE)" = 1 ]; then echo "make valgrind: not with SANITIZE=1 (ASan and valgrind exclude each other)" >&2; exit 2; fi
	$(MAKE) --no-print-directory $(UNIT_TEST_BINS)
	./tests/fuzz/valgrind.sh $(UNIT_TEST_BINS)

.PHONY: fuzz fuzz-build fuzz-clean valgrind

endif
