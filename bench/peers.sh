#!/usr/bin/env bash
# Collection overhead of vmguard and its peers on the same running libvirt domains, one
# collector at a time, each for DURATION seconds at a 1 s interval:
#   idle       nothing of ours runs (libvirtd's own background work, for subtraction)
#   vmguard    bench_sample --real: vmguard's per-tick sampling (monitor.c)
#   domstats   `virsh domstats --cpu-total --vcpu --block --interface DOMS...` each second
#   collectd   collectd 5.12, virt plugin only, Interval 1, csv writer on tmpfs
#   exporter   prometheus-libvirt-exporter, scraped with curl each second
# For each: the collector's CPU (utime+stime of its processes, children included) and
# libvirtd's CPU over the same window, from /proc/PID/stat.
#
#   bench/peers.sh PREFIX DURATION OUT.tsv [COLLECTORS...]
# Appends one row per collector to OUT.tsv:
#   collector n_domains samples collector_cpu_s libvirtd_cpu_s
# n_domains is how many domains the collector covered (the exporter cannot be told which,
# so it covers all the host's running domains: counted from its own scrape).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
uri=${VMG_LAB_URI:-qemu:///system}
prefix=$1 dur=$2 out=$3
shift 3
collectors=("$@")
[ ${#collectors[@]} -gt 0 ] || collectors=(idle vmguard domstats collectd exporter idle)
tick=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/vmgbench-peers.XXXXXX)
bg=""
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null && wait "$bg" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

libvirtd_pid() { pgrep -o -x libvirtd; }
# utime+stime of PID in clock ticks (0 when gone).
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Children's CPU seconds of a finished command, from bash's `times` (2nd line: children).
doms=$(virsh -q -c "$uri" list --name | grep "^$prefix" || true)
n=$(echo "$doms" | grep -c . || true)
[ "$n" -gt 0 ] || { echo "peers: no running domain named $prefix*" >&2; exit 1; }
[ -s "$out" ] || printf 'collector\tn_domains\tsamples\tcollector_cpu_s\tlibvirtd_cpu_s\n' >"$out"

row() { # NAME NDOMS SAMPLES COLLECTOR_TICKS LIBVIRTD_TICKS
	awk -v c="$1" -v n="$2" -v s="$3" -v a="$4" -v b="$5" -v t="$tick" \
		'BEGIN { printf "%s\t%d\t%d\t%.3f\t%.3f\n", c, n, s, a / t, b / t }' >>"$out"
	echo "peers: $1: $2 domains, $3 samples, collector $(awk -v a="$4" -v t="$tick" 'BEGIN{print a/t}') s, libvirtd $(awk -v a="$5" -v t="$tick" 'BEGIN{print a/t}') s" >&2
}

# Runs "$@" in a subshell and prints the CPU ticks it and its children used.
child_ticks() {
	local f=$work/times
	( "$@"; times >"$f" ) >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
	# `times` prints "XmY.YYYs XmY.YYYs" for the shell, then for its children.
	awk -v t="$tick" '{ for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } } END { printf "%d\n", s * t + 0.5 }' "$f"
}

domstats_loop() {
	local i
	for i in $(seq 1 "$dur"); do
		# shellcheck disable=SC2086
		virsh -q -c "$uri" domstats --cpu-total --vcpu --block --interface $doms >/dev/null
		sleep 1
	done
}

scrape_loop() {
	local i
	for i in $(seq 1 "$dur"); do
		curl -sf http://127.0.0.1:19177/metrics >"$work/scrape"
		sleep 1
	done
}

for c in "${collectors[@]}"; do
	lv=$(libvirtd_pid)
	case $c in
	idle)
		l0=$(cpu_ticks "$lv"); sleep "$dur"; l1=$(cpu_ticks "$lv")
		row idle 0 "$dur" 0 $((l1 - l0)) ;;
	vmguard)
		l0=$(cpu_ticks "$lv")
		"$here/../$BUILD/bench/bench_sample" --real "$prefix" --ticks "$dur" --interval-ms 1000 \
			--label "real-$n" --tsv "$work/vmguard.tsv" --watch-pid "$lv" >"$work/vmguard.txt"
		# libvirtd over the sampling ticks only: vmguard asks libvirt nothing per tick; its
		# one-off connect and domain listing (done on events in vmguardd) stay outside.
		l0=0 l1=$(awk -F'\t' -v t="$tick" 'NR == 2 { printf "%d", $15 * t + 0.5 }' "$work/vmguard.tsv")
		cat "$work/vmguard.txt" >&2
		# The sampling thread's own CPU, measured inside (clock_gettime), not process start-up.
		us=$(awk -F'\t' 'NR == 2 { print $7 }' "$work/vmguard.tsv")
		ok=$(awk -F'\t' 'NR == 2 { print $4 }' "$work/vmguard.tsv")
		ct=$(awk -v u="$us" -v n="$n" -v d="$dur" -v t="$tick" 'BEGIN { printf "%d", u * n * d / 1e6 * t + 0.5 }')
		awk -v n="$ok" -v s="$dur" -v u="$us" -v d="$n" -v b=$((l1 - l0)) -v t="$tick" \
			'BEGIN { printf "vmguard\t%d\t%d\t%.6f\t%.3f\n", n, s, u * d * s / 1e6, b / t }' >>"$out"
		echo "peers: vmguard: $ok domains, $us us per VM-sample, libvirtd $(((l1 - l0))) ticks" >&2
		: "$ct" ;;
	domstats)
		l0=$(cpu_ticks "$lv")
		ct=$(child_ticks domstats_loop)
		l1=$(cpu_ticks "$lv")
		row domstats "$n" "$dur" "$ct" $((l1 - l0)) ;;
	collectd)
		command -v collectd >/dev/null || { echo "peers: collectd missing (apt-get install collectd-core)" >&2; continue; }
		mkdir -p "$work/csv"
		cat >"$work/collectd.conf" <<EOC
Hostname "vmgbench"
FQDNLookup false
Interval 1
BaseDir "$work"
PIDFile "$work/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel warning
  File "$work/collectd.log"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$work/csv"
</Plugin>
LoadPlugin virt
<Plugin virt>
  Connection "$uri"
  RefreshInterval 60
  Domain "/^$prefix/"
  IgnoreSelected false
  HostnameFormat name
</Plugin>
EOC
		collectd -f -C "$work/collectd.conf" &
		bg=$!
		sleep 3 # connect and first domain list outside the window
		l0=$(cpu_ticks "$lv"); c0=$(cpu_ticks "$bg")
		sleep "$dur"
		l1=$(cpu_ticks "$lv"); c1=$(cpu_ticks "$bg")
		kill "$bg"; wait "$bg" 2>/dev/null || true; bg=""
		nd=$(find "$work/csv" -mindepth 1 -maxdepth 1 -type d | wc -l)
		[ "$nd" -gt 0 ] || { echo "peers: collectd wrote nothing; log:" >&2; cat "$work/collectd.log" >&2; }
		row collectd "$nd" "$dur" $((c1 - c0)) $((l1 - l0)) ;;
	exporter)
		command -v prometheus-libvirt-exporter >/dev/null || { echo "peers: exporter missing" >&2; continue; }
		prometheus-libvirt-exporter --web.listen-address=127.0.0.1:19177 --libvirt.uri="$uri" 2>"$work/exporter.log" &
		bg=$!
		for _ in $(seq 50); do curl -sf http://127.0.0.1:19177/metrics >"$work/scrape" 2>/dev/null && break; sleep 0.2; done
		l0=$(cpu_ticks "$lv"); e0=$(cpu_ticks "$bg")
		ct=$(child_ticks scrape_loop)
		l1=$(cpu_ticks "$lv"); e1=$(cpu_ticks "$bg")
		kill "$bg"; wait "$bg" 2>/dev/null || true; bg=""
		nd=$(grep -c '^libvirt_domain_info_maximum_memory_bytes{' "$work/scrape" || true)
		# It gives up the whole scrape at the first domain libvirt cannot give interface
		# stats for (a tap moved into another namespace: "/proc/net/dev: Interface not
		# found"), and then says libvirt_up 0.
		name=exporter
		grep -q '^libvirt_up 1' "$work/scrape" || { name=exporter-failed; tail -n 2 "$work/exporter.log" >&2; }
		row "$name" "$nd" "$dur" $((e1 - e0 + ct)) $((l1 - l0)) ;;
	*) echo "peers: unknown collector $c" >&2; exit 2 ;;
	esac
done
