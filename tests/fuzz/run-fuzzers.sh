#!/usr/bin/env bash
# Runs libFuzzer harnesses one after another for SECONDS each and prints one line per
# harness (runs, exec/s, cov, ft, corpus, new units) and a "N passed, N failed" total.
#   run-fuzzers.sh [--scratch] SECONDS NAME...
# Binaries: $FUZZ_BUILD/fuzz_NAME (default build-fuzz). Seeds: tests/fuzz/corpus/NAME (read
# only). New inputs go to $FUZZ_BUILD/corpus/NAME, or with --scratch to a temporary dir
# removed afterwards (CI). Crash, leak, timeout or OOM reproducers are kept in
# $FUZZ_BUILD/artifacts/NAME/ and the run fails. Logs: $FUZZ_BUILD/logs/NAME.log.
set -u
cd "$(dirname "$0")/../.."
scratch=0
if [ "${1:-}" = "--scratch" ]; then scratch=1; shift; fi
secs=${1:?usage: run-fuzzers.sh [--scratch] SECONDS NAME...}
shift
build=${FUZZ_BUILD:-build-fuzz}
mkdir -p "$build/logs"
# tmpfs when there is one: the file harnesses rewrite their fake trees on every input, and
# ext4 starts writeback on each truncate-and-rewrite (auto_da_alloc), which cuts exec/s ~5x.
tmpbase=${TMPDIR:-/tmp}
[ -w /dev/shm ] && tmpbase=/dev/shm
tmp=$(mktemp -d "$tmpbase/vmg-fuzzrun-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The harnesses' fake trees go under here too, so an aborted run leaves nothing behind.
export TMPDIR=$tmp

passed=0 failed=0
printf '%-14s %10s %8s %6s %6s %6s %5s  %s\n' harness runs exec/s cov ft corpus new result
for name in "$@"; do
        bin=$build/fuzz_$name
        seeds=tests/fuzz/corpus/$name
        if [ ! -x "$bin" ]; then
                echo "$name: $bin missing (make fuzz-build)"; failed=$((failed + 1)); continue
        fi
        if [ $scratch -eq 1 ]; then corpus=$tmp/corpus-$name; else corpus=$build/corpus/$name; fi
        arts=$build/artifacts/$name
        mkdir -p "$corpus" "$arts"
        dict=()
        [ -f "tests/fuzz/dict/$name.dict" ] && dict=(-dict="tests/fuzz/dict/$name.dict")
        log=$build/logs/$name.log
        # -timeout: one input taking 10 s is a hang worth a reproducer. -rss_limit_mb: the
        # daemon runs on busy hosts; a parser needing 1 GiB for a small file is a finding.
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
                -print_final_stats=1 -artifact_prefix="$arts/" "${dict[@]}" \
                "$corpus" "$seeds" >"$log" 2>&1
        rc=$?
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        newu=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
        last=$(grep -a -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
        cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
        ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
        corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
        if [ $rc -eq 0 ]; then
                result=ok; passed=$((passed + 1))
        else
                result="FAIL (exit $rc)"; failed=$((failed + 1))
        fi
        printf '%-14s %10s %8s %6s %6s %6s %5s  %s\n' "$name" "${runs:-?}" "${eps:-?}" \
                "${cov:-?}" "${ft:-?}" "${corp:-?}" "${newu:-?}" "$result"
        if [ $rc -ne 0 ]; then
                grep -a -E 'ERROR: |SUMMARY: |FUZZ INVARIANT|runtime error|Test unit written' "$log" |
                        head -n 8 | sed 's/^/    /'
                echo "    full log: $log; reproduce: $bin $arts/<file>"
        fi
done
echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
