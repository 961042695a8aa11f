#!/usr/bin/env bash
# vmguard benchmarks (issue 8), run by `make bench` (BENCH_ARGS passes options).
#
#   bench/run.sh [--quick] [--out DIR] [--synthetic "10 100 1000"] [--real "10 40"]
#                [--duration S] [--ticks K] [--no-real] [--update-md]
#                [--reaction N] [--conservation R] [--protection R] [--all]
#
# Collection overhead:
#   1. bench_sample --synthetic N for each N: vmguard's sampling of N fake guests in real
#      cgroups laid out like libvirt's (root), CPU per VM per sample, peak RSS.
#   2. for each N of --real: boots idle lab guests vmg-b01..vmg-bNN (bench/guests.sh), then
#      bench/peers.sh: vmguard, virsh domstats, collectd virt, prometheus-libvirt-exporter
#      and libvirtd's CPU on their behalf, S seconds each at 1 s.
# Reaction, work conservation and protection (off unless asked; lab guests, minutes of run time):
#   --reaction N: bench/reaction.sh, N trials at tick 1 s and 0.5 s: time from a disk
#      guest's noise start to vmguardd's throttle in its cgroup (min, median, p95, max).
#   --conservation R: bench/conservation.sh, R repetitions of 20 s without and with
#      vmguardd for one disk guest alone: its write rate with/without.
#   --protection R: bench/protection.sh, lab/demo.sh R times (calm / noise / noise+vmguard
#      for the wb, none and bcast cases): victim DHCP and DNS, dnsmasq delays, noisy
#      throughput, mean and min-max per case and phase. ~8-10 min per repetition here.
#   --all: --reaction 20 --conservation 3 --protection 3: everything issue 8 asks for
#      (with the real-guest runs about an hour here, estimated from each part's run time).
# Prints markdown tables, writes DIR/*.tsv, DIR/tables.md, DIR/*.png (gnuplot).
# --update-md: copies each DIR/KIND.tsv to bench/results/KIND-DATE.tsv (today, UTC; a file
# of the same name is replaced), renders bench/results/*.png (bench/plots.sh) and
# regenerates the generated section of BENCHMARKS.md (bench/update-md.sh).
#
# --quick (CI): 5 and 20 synthetic guests, 3 ticks, no lab guests, no peers: checks the
# harness works and produces its tables, not the numbers; it also renders the plots and
# the generated section from the committed bench/results into DIR (BENCHMARKS.md itself
# untouched) and checks that a second generation changes nothing.
#
# Cleans up whatever it created (synthetic cgroups, the guests it booted) on any exit.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${BUILD:-build}
quick=0 out="" synthetic="10 100 1000" real="10 40" duration=30 ticks=20 update_md=0
reaction=0 conservation=0 protection=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--out) out=$2; shift ;;
	--synthetic) synthetic=$2; shift ;;
	--real) real=$2; shift ;;
	--no-real) real="" ;;
	--duration) duration=$2; shift ;;
	--ticks) ticks=$2; shift ;;
	--update-md) update_md=1 ;;
	--reaction) reaction=$2; shift ;;
	--conservation) conservation=$2; shift ;;
	--protection) protection=$2; shift ;;
	--all) reaction=20 conservation=3 protection=3 ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
if [ "$quick" = 1 ]; then
	synthetic="5 20" real="" ticks=3 reaction=0 conservation=0 protection=0
fi
interval=200
[ "$quick" = 1 ] && interval=50
[ -n "$out" ] || out="$root/$BUILD/bench/results-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
bin="$root/$BUILD/bench/bench_sample"

[ "$(id -u)" -eq 0 ] || { echo "bench: must run as root (cgroups, libvirt)" >&2; exit 77; }
make -C "$root" --no-print-directory "$BUILD/bench/bench_sample" >&2

booted=0
cleanup() {
	local rc=$?
	"$bin" --cleanup || true
	[ "$booted" = 1 ] && "$here/guests.sh" down
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$bin" --cleanup

echo "# vmguard benchmarks $(date -u '+%F %T') UTC, $(nproc) CPUs, kernel $(uname -r)" | tee "$out/tables.md"

# 1. synthetic guests
syn="$out/synthetic.tsv"
rm -f "$syn"
for n in $synthetic; do
	echo "bench: synthetic N=$n, $ticks ticks every ${interval} ms" >&2
	rc=0
	"$bin" --synthetic "$n" --ticks "$ticks" --interval-ms "$interval" --label "synthetic-$n" --tsv "$syn" >&2 || rc=$?
	[ "$rc" = 0 ] || { echo "bench: bench_sample --synthetic $n failed ($rc)" >&2; exit 1; }
done
{
	echo
	echo "## vmguard sampling, synthetic guests"
	echo
	echo "Command: \`$BUILD/bench/bench_sample --synthetic N --ticks $ticks --interval-ms $interval\`"
	echo
	"$here/tables.sh" synthetic "$syn"
} | tee -a "$out/tables.md"

# 2. real guests, vmguard and its peers
for n in $real; do
	if ! timeout 10 virsh -q -c "${VMG_LAB_URI:-qemu:///system}" list >/dev/null 2>&1; then
		echo "bench: libvirtd does not answer: no real-guest runs (lab/libvirtd.sh start)" >&2
		break
	fi
	booted=1
	echo "bench: booting $n idle guests" >&2
	"$here/guests.sh" up "$n" 3
	pt="$out/peers-$n.tsv"
	rm -f "$pt"
	BUILD=$BUILD "$here/peers.sh" vmg-b "$duration" "$pt"
	{
		echo
		echo "## vmguard and peers on $n running lab guests"
		echo
		echo "Command: \`bench/guests.sh up $n && bench/peers.sh vmg-b $duration OUT.tsv\`"
		echo
		"$here/tables.sh" peers "$pt"
	} | tee -a "$out/tables.md"
done

# 3. reaction time and work conservation (their scripts create and destroy their own guests)
if [ "$reaction" -gt 0 ]; then
	rt="$out/reaction.tsv"
	rm -f "$rt"
	BUILD=$BUILD "$here/reaction.sh" --trials "$reaction" --ticks "1 0.5" --tsv "$rt" >/dev/null
	{
		echo
		echo "## Reaction time: disk noise start to throttle written"
		echo
		echo "Command: \`bench/reaction.sh --trials $reaction --ticks \"1 0.5\"\`"
		echo
		"$here/reaction.sh" --summary "$rt"
	} | tee -a "$out/tables.md"
	if command -v gnuplot >/dev/null; then
		gnuplot -e "datafile='$rt'; outfile='$out/reaction.png'" "$here/reaction.gp" 2>&1 >&2 || true
	fi
fi
if [ "$conservation" -gt 0 ]; then
	ct="$out/conservation.tsv"
	rm -f "$ct"
	BUILD=$BUILD "$here/conservation.sh" --reps "$conservation" --tsv "$ct" >/dev/null
	{
		echo
		echo "## Work conservation: one disk guest alone, without and with vmguard"
		echo
		echo "Command: \`bench/conservation.sh --reps $conservation\`"
		echo
		"$here/conservation.sh" --summary "$ct"
	} | tee -a "$out/tables.md"
fi

if [ "$protection" -gt 0 ]; then
	prt="$out/protection.tsv"
	rm -f "$prt"
	# A repetition that failed still leaves the others' rows: report it and go on.
	BUILD=$BUILD "$here/protection.sh" --reps "$protection" --tsv "$prt" --work "$out/protection" >/dev/null ||
		echo "bench: protection: a repetition failed (logs in $out/protection)" >&2
	{
		echo
		echo "## Protection: the lab scenario, calm / noise / noise + vmguard"
		echo
		echo "Command: \`bench/protection.sh --reps $protection\`"
		echo
		"$here/protection.sh" --summary "$prt"
	} | tee -a "$out/tables.md"
	if command -v gnuplot >/dev/null; then
		gnuplot -e "datafile='$prt'; outfile='$out/protection.png'" "$here/protection.gp" 2>&1 >&2 || true
	fi
fi

if command -v gnuplot >/dev/null && [ -s "$syn" ]; then
	# The peers of the largest N beside vmguard, when there were any.
	pf=""
	for n in $real; do [ -s "$out/peers-$n.tsv" ] && pf="$out/peers-$n.tsv"; done
	gnuplot -e "datafile='$syn'${pf:+; peersfile='$pf'}; outfile='$out/overhead.png'" "$here/overhead.gp" 2>&1 >&2 || true
	[ -s "$out/overhead.png" ] && echo "bench: plot $out/overhead.png" >&2
fi

if [ "$quick" = 1 ]; then
	# The output path, on the committed results, into $out/committed: the plots, and the generated
	# section in a copy of BENCHMARKS.md, twice (the second must change nothing).
	if command -v gnuplot >/dev/null; then
		"$here/plots.sh" --out "$out/committed" >&2
	fi
	cp "$root/BENCHMARKS.md" "$out/BENCHMARKS.md"
	"$here/update-md.sh" --md "$out/BENCHMARKS.md"
	"$here/update-md.sh" --md "$out/BENCHMARKS.md" --check
elif [ "$update_md" = 1 ]; then
	day=$(date -u +%F)
	for f in "$out"/*.tsv; do
		[ -s "$f" ] || continue
		k=$(basename "$f" .tsv)
		[ -e "$here/results/$k-$day.tsv" ] && echo "bench: replacing bench/results/$k-$day.tsv" >&2
		cp "$f" "$here/results/$k-$day.tsv"
	done
	if command -v gnuplot >/dev/null; then "$here/plots.sh" >&2; fi
	"$here/update-md.sh"
fi
echo "bench: results in $out" >&2
