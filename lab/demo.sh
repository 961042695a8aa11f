#!/usr/bin/env bash
# lab/demo.sh: the noisy-neighbour lab, from scratch (what `make demo` runs).
# Starts libvirtd, builds the guest image, brings up namespace $D_NS with dnsmasq, boots a
# victim guest that keeps renewing DHCP and resolving names, then for each case boots one
# noisy guest and runs three phases: 1 calm, 2 noise without vmguard, 3 the same noise with
# vmguardd running the demo policy (lab/demo/host.json, lab/demo/tenants.d/), then stops the
# noise and waits for the release. Prints each phase's figures, a side-by-side table, and
# writes a plot of the victim's latency over time with throttle/release marks.
#
# Environment (defaults in brackets):
#   BUILD          where vmguardd and vmguard are                     [build]
#   D_CASES        cases to run: wb (disk, cache=writeback), none (disk, cache=none),
#                  bcast (broadcast flood)                             [wb none bcast]
#   D_CALM_S D_NOISE_S D_GUARD_S   phase lengths in seconds            [20 30 45]
#                  (keep D_GUARD_S under calm_for, 60 s: see docs/DEMO.md)
#   D_DISK_GUESTS  noisy guests per disk case                          [2]
#   D_OUT          output directory                                    [/tmp/vmguard-demo]
#   D_NS           lab namespace (own name: others may run the lab)    [vmgdemo]
#   D_PREFIX       guest names vmg-PREFIX-victim, vmg-PREFIX-noisy-CASE [demo]
# Ctrl-C or any failure tears down what the demo made (guests, namespace; vmguardd puts
# every limit back on SIGTERM). Never touches other lab users' guests.
set -u
cd "$(dirname "$0")/.."
: "${D_OUT:=/tmp/vmguard-demo}"
: "${D_CASES:=wb none bcast}"
[ "$(id -u)" -eq 0 ] || { echo "demo: must run as root (libvirtd, namespaces, cgroups)" >&2; exit 1; }
rm -rf "$D_OUT"
mkdir -p "$D_OUT"
. ./lab/demo/lib.sh
for b in vmguardd vmguard; do
	[ -x "$D_BIN/$b" ] || { echo "demo: $D_BIN/$b missing (make all)" >&2; exit 1; }
done

trap 'd_cleanup' EXIT
trap 'echo "demo: interrupted, tearing down" >&2; exit 130' INT TERM

T_START=$SECONDS
d_init
d_policy_check >"$D_OUT/policy-check.txt" 2>&1 || { cat "$D_OUT/policy-check.txt" >&2; exit 1; }
d_log "setting up the lab (libvirtd, image, namespace $D_NS, victim guest)"
d_setup || { d_log "setup failed"; exit 1; }
d_log "victim ready after $((SECONDS - T_START)) s; output in $D_OUT"

rc=0
for c in $D_CASES; do
	d_case "$c" || { d_log "case $c failed"; rc=1; }
	for ph in calm noise guard after; do
		echo "$c $ph $(./lab/victim-report.sh "$D_OUT" "$c" "$ph" 2>/dev/null)" >>"$D_OUT/report.txt"
	done
	grep "^$c " "$D_OUT/report.txt" | sed 's/^/  /' >&2
done

d_cleanup
left=$(d_leftovers)
[ -z "$left" ] || d_log "warning: left behind: $left"

./lab/demo/table.sh "$D_OUT" | tee "$D_OUT/table.txt"
if command -v gnuplot >/dev/null 2>&1; then
	./lab/demo/plot.sh "$D_OUT" && echo "plot: $D_OUT/victim-latency.png"
fi
echo "demo: done in $((SECONDS - T_START)) s; logs, figures and plot in $D_OUT"
exit $rc
