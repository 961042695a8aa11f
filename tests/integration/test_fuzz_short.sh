#!/usr/bin/env bash
# Issue "Reliability and security", bad input: every libFuzzer harness (tests/fuzz/) runs
# for FUZZ_SHORT_SECONDS (default 10) from its seed corpus; any crash, sanitizer report,
# broken invariant, leak, hang (10 s per input) or 1 GiB RSS fails the test. New inputs go
# to a scratch corpus that is thrown away; reproducers stay in build-fuzz/artifacts/NAME/.
# `make fuzz` is the long version (60 s each, corpus kept in build-fuzz/corpus/).
. "$(dirname "$0")/lib.sh"
require_cmd clang make
cd "$T_ROOT"
secs=${FUZZ_SHORT_SECONDS:-10}

# -f names the fragment itself, so this works whether or not the Makefile includes it (it
# guards against being read twice).
if ! out=$(make --no-print-directory fuzz-build 2>&1); then
	printf '%s\n' "$out" | tail -n 20
	# clang without libclang-rt (libFuzzer) is a missing dependency, not a finding
	if grep -q -E 'libclang_rt\.fuzzer|cannot find .*fuzzer' <<<"$out"; then
		skip "clang has no libFuzzer runtime (apt-get install libclang-rt-14-dev)"
	fi
	t_fail "fuzz harnesses build (make fuzz-build)"
	finish
fi
t_pass "fuzz harnesses build"

for name in policy units psi pid_stat procfs_files cgroup_files mountinfo domxml journal; do
	out=$(./tests/fuzz/run-fuzzers.sh --scratch "$secs" "$name" 2>&1) && rc=0 || rc=$?
	line=$(sed -n 2p <<<"$out")
	if [ $rc -eq 0 ]; then
		t_pass "fuzz_$name ${secs}s: $(awk '{print $2 " runs, " $3 " exec/s, cov " $4}' <<<"$line")"
	else
		t_fail "fuzz_$name ${secs}s"
		printf '%s\n' "$out" | sed -n '2,20p' | sed 's/^/#   /'
	fi
done
finish
