#!/usr/bin/env bash
# bench/run.sh --quick: the benchmark harness runs and produces its tables (CI). It checks
# that the sampling benchmark really sampled its synthetic guests and cleaned up after
# itself; it asserts nothing about how fast (no timing assertions in tests).
. "$(dirname "$0")/lib.sh"
require_root
cd "$T_ROOT"
BUILD=${BUILD:-build}
out=$(mktemp -d /tmp/vmg-bench-quick.XXXXXX)
on_exit rm -rf "$out"
on_exit "./$BUILD/bench/bench_sample" --cleanup

rc=0
BUILD=$BUILD ./bench/run.sh --quick --out "$out" >"$out/stdout" 2>"$out/stderr" || rc=$?
check_num "bench/run.sh --quick exit status" "$rc" -eq 0
[ "$rc" = 0 ] || tail -n 20 "$out/stderr" | sed 's/^/#   /'

check "tables.md written" test -s "$out/tables.md"
check "synthetic table header printed" grep -q '^| label | N | sampled ok |' "$out/stdout"
check "synthetic TSV has one row per N (5 and 20)" test "$(awk 'NR > 1' "$out/synthetic.tsv" | wc -l)" -eq 2
# Every synthetic guest must have been sampled completely, or the figure measures errors.
for n in 5 20; do
	ok=$(awk -F'\t' -v n="$n" '$3 == n { print $4 }' "$out/synthetic.tsv")
	check_num "N=$n: guests fully sampled" "${ok:-x}" -eq "$n"
	cpu=$(awk -F'\t' -v n="$n" '$3 == n { print $7 }' "$out/synthetic.tsv")
	check_num "N=$n: CPU per VM-sample is a positive number" "${cpu:-x}" -gt 0
	hwm=$(awk -F'\t' -v n="$n" '$3 == n { print $12 }' "$out/synthetic.tsv")
	check_num "N=$n: peak RSS reported (KiB)" "${hwm:-x}" -gt 0
done
if command -v gnuplot >/dev/null; then
	check "plot written" test -s "$out/overhead.png"
fi
left=$(find /sys/fs/cgroup/*/machine -maxdepth 1 -name 'qemu-*-vmgb-*' 2>/dev/null | wc -l)
check_num "no synthetic cgroup left behind" "$left" -eq 0
left=$(pgrep -c -x qemu-bench || true)
check_num "no synthetic guest process left behind" "$left" -eq 0
finish
