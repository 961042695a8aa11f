#!/usr/bin/env bash
# Reaction time (issue 8): from the start of a guest's disk noise to vmguardd's throttle
# written in that guest's cgroup.
#
#   bench/reaction.sh [--trials N] [--ticks "1 0.5"] [--tsv FILE] [--policy DIR]
#                     [--mb MIB] [--timeout S] [--keep-logs DIR]
#   bench/reaction.sh --summary FILE.tsv     only the table of an earlier run
#
# First a victim starts on the host and runs through all trials: a process named
# vmgrxvictim that rewrites and fsyncs 512 bytes of a file on the host disk every 100 ms,
# as dnsmasq fsyncs its lease file per DHCP ACK (the path by which a noisy guest harmed
# the lab's victims: REQUEST->ACK ~2 ms calm, p90 ~0.5-0.7 s under disk noise; docs/LAB.md). The policy protects it with max_io_delay 10%.
# One trial, for each tick T of --ticks (default "1 0.5"), N times (default 20):
#   1. vmguardd --tick T -v with the policy in DIR (default bench/policy-reaction: the
#      victim's I/O wait 10%, host I/O PSI 10% and other guests' steal 30% are the
#      contention signals; the rx tenant's disk_write rule has "for": "0s", so the reaction
#      is sampling plus decision, nothing waited for on purpose), its own state dir; waits
#      for "vmguard started".
#   2. a fresh disk guest vmg-rxPID-T-I (lab/guest.sh create ... disk --cache none, no NIC):
#      the daemon sees it through libvirt's lifecycle event while it boots. Its /init prints
#      "VMG ready role=disk" on the serial console and starts `dd oflag=direct` at once: that
#      line is the noise start.
#   3. one loop polls every 10 ms: the console file for "VMG ready" (t0), the guest's
#      blkio.throttle.write_bps_device and cpu.cfs_quota_us for any change (t1).
#      reaction = t1 - t0 (both observed by the same 10 ms poll: +-10 ms each; bash
#      builtins and $EPOCHREALTIME only, no fork per poll).
#   4. SIGTERM to the daemon, wait for it to exit, check both files hold their value from
#      before the daemon touched them again ("restored"), destroy the guest.
# Each row of the TSV (default build/bench/reaction-DATE.tsv):
#   tick trial reaction_ms throttle_value restored early_ticks_before loadavg1 guest usage contention daemon_exit
# (reaction_ms "NA" when nothing was written within --timeout s, default 20; early_ticks_before:
# "host pressure over a threshold: early tick" lines logged between t0 and t1).
# A summary per tick (min, median, p95, max) goes to stdout as a markdown table.
#
# Only guests named vmg-rx<this PID>-* are created or destroyed; never other guests.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lab=$root/lab
BUILD=${BUILD:-build}
B_NAME=reaction
. "$here/lib.sh"
trials=20 ticks="1 0.5" tsv="" policy=$here/policy-reaction mb=256 timeout=20

# Markdown table per tick (trials whose daemon crashed counted apart): trials, throttled, min, median, p95 (nearest rank: the
# ceil(0.95 n)-th smallest), max in ms, restored count, trials with an early (PSI) tick.
summary() { # TSV
	awk -F'\t' 'NR > 1 {
		k = $1; if (!(k in seen)) { seen[k] = 1; order[++no] = k }
		if ($11 != "0") { crash[k]++; next }
		n[k]++
		if ($5 == "yes") rest[k]++
		if ($3 == "NA") next
		v[k, ++m[k]] = $3 + 0
		if ($6 > 0) early[k]++
	}
	END {
		print "| tick | trials | throttled | min | median | p95 | max | restored after SIGTERM | with an early PSI tick | daemon crashed (run again) |"
		print "|---|---|---|---|---|---|---|---|---|---|"
		for (o = 1; o <= no; o++) {
			k = order[o]; c = m[k]
			for (i = 1; i <= c; i++) a[i] = v[k, i]
			for (i = 2; i <= c; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
			if (c == 0) { printf "| %s s | %d | 0 | - | - | - | - | %d | - | %d |\n", k, n[k], rest[k], crash[k]; continue }
			med = (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
			r = int(0.95 * c); if (r < 0.95 * c) r++
			printf "| %s s | %d | %d | %d ms | %d ms | %d ms | %d ms | %d | %d | %d |\n", k, n[k], c, a[1], med, a[r], a[c], rest[k], early[k], crash[k]
		}
	}' "$1"
}
b_parse "--trials=trials --ticks=ticks --tsv=tsv --policy=policy --mb=mb --timeout=timeout --keep-logs=keep --summary=!summary" "$@"
b_require_lab
[ -n "$tsv" ] || tsv="$root/$BUILD/bench/reaction-$(date -u +%F).tsv"
b_tsv_init "$tsv" "$(printf 'tick\ttrial\treaction_ms\tthrottle_value\trestored\tearly_ticks_before\tloadavg1\tguest\tusage\tcontention\tdaemon_exit')"
run=${VMG_LAB_RUN:-/run/vmguard-lab}

guest="" vpid=""
destroy_guest() {
	[ -n "$guest" ] || return 0
	"$lab/guest.sh" destroy "$guest" >/dev/null 2>&1 || true
	rm -f "$run/vmg-$guest.console" "$run/vmg-$guest.xml"
	guest=""
}
b_cleanup_extra() {
	destroy_guest
	[ -z "$vpid" ] || { kill "$vpid" 2>/dev/null; wait "$vpid" 2>/dev/null || true; }
	rm -f "/var/tmp/vmgrxvictim.$$"
}
b_traps
b_workdir "$root" "$BUILD"

# The victim. /var/tmp: on the host disk (an fsync on tmpfs waits for nothing).
python3 - "/var/tmp/vmgrxvictim.$$" <<'PY' &
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(15, b"vmgrxvictim", 0, 0, 0)  # PR_SET_NAME: the policy finds it by comm
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
while True:
    os.pwrite(fd, b"x" * 512, 0)
    os.fsync(fd)
    time.sleep(0.1)
PY
vpid=$!

# A timed wait without forking sleep(1) every 10 ms: read -t on a pipe nobody writes to.
exec {nap}<> <(:)
nap() { read -r -t "$1" -u "$nap" _ || true; }


trial() { # TICK I
	local tick=$1 i=$2 log dom blk cpu b0 c0 t0="" t1="" v="" early=0 restored=yes deadline l
	log="$work/daemon-$tick-$i.log"
	# Each stderr line stamped on arrival (microseconds), to count early ticks between t0 and t1.
	"$work/vmguardd" --host "$policy/host.json" --tenants "$policy/tenants.d" --tick "${tick}s" \
		--state-dir "$work/state-$tick-$i" -v 2> >(while IFS= read -r l; do echo "${EPOCHREALTIME/./} $l"; done >"$log") &
	dpid=$!
	deadline=$((SECONDS + 20))
	until grep -q 'vmguard started' "$log" 2>/dev/null; do
		if ! kill -0 "$dpid" 2>/dev/null; then
			# Seen: SIGSEGV while another engineer's guest vanished during the first listing.
			b_stop_daemon
			echo "reaction: vmguardd exited at start (status $drc); log tail:" >&2
			tail -n 3 "$log" >&2
			printf '%s\t%s\tCRASH\t-\t-\t-\t%s\t-\t-\t-\t%s\n' "$tick" "$i" "$(cut -d' ' -f1 /proc/loadavg)" "$drc" >>"$tsv"
			return 1
		fi
		[ $SECONDS -lt $deadline ] || { echo "reaction: vmguardd did not start in 20 s" >&2; exit 1; }
		nap 0.05
	done
	guest="rx$$-${tick/./}-$i"
	"$lab/guest.sh" create "$guest" disk --disk "$mb" --mb "$mb" --cache none --no-nic --tenant rx >/dev/null
	dom="vmg-$guest"
	local qpid
	qpid=$(cat "/var/run/libvirt/qemu/$dom.pid")
	if ! blk=$(cgdir_of "$qpid" blkio) || ! cpu=$(cgdir_of "$qpid" cpu); then
		echo "reaction: no v1 blkio/cpu cgroup for $dom (QEMU pid $qpid)" >&2
		exit 1
	fi
	b0=$(file_val "$blk/blkio.throttle.write_bps_device")
	c0=$(file_val "$cpu/cpu.cfs_quota_us")
	local console="$run/$dom.console" lines=0 n
	deadline=$((SECONDS + 180 + timeout))
	while :; do
		if [ -z "$t0" ]; then
			# Only new console lines are scanned: read from where the last pass stopped.
			n=0
			while IFS= read -r l; do
				n=$((n + 1))
				[ $n -le $lines ] && continue
				case $l in
				"VMG ready"*) t0=${EPOCHREALTIME/./}; deadline=$((SECONDS + timeout)) ;;
				"VMG error"*) echo "reaction: $dom: $l" >&2; exit 1 ;;
				esac
			done <"$console"
			lines=$n
		fi
		# read_val, not $(file_val): a command substitution forks every 10 ms.
		read_val "$blk/blkio.throttle.write_bps_device"
		if [ "$val" != "$b0" ]; then
			t1=${EPOCHREALTIME/./} v="blkio:$val"; break
		fi
		read_val "$cpu/cpu.cfs_quota_us"
		if [ "$val" != "$c0" ]; then
			t1=${EPOCHREALTIME/./} v="cpu:$val"; break
		fi
		[ $SECONDS -lt $deadline ] || break
		nap 0.01
	done
	if [ -n "$t0" ] && [ -n "$t1" ]; then
		early=$(awk -v a="$t0" -v b="$t1" '$0 ~ /early tick/ && $1 >= a && $1 <= b { n++ } END { print n + 0 }' "$log")
	fi
	b_stop_daemon
	[ "$(file_val "$blk/blkio.throttle.write_bps_device")" = "$b0" ] || restored=no
	[ "$(file_val "$cpu/cpu.cfs_quota_us")" = "$c0" ] || restored=no
	local la ms usage="" why=""
	# "... disk writes 83.9MB/s over 20.0MB/s for 0s while host PSI io some 24% > 10%"
	l=$(grep -m1 "guest $dom tenant rx: throttle" "$log" || true)
	if [ -n "$l" ]; then
		usage=$(sed -n 's/.*disk writes \([^ ]*\) over.*/\1/p' <<<"$l")
		why=${l##* while }
	fi
	la=$(cut -d' ' -f1 /proc/loadavg)
	if [ -z "$t0" ]; then
		ms=NA v="no VMG ready"
	elif [ -z "$t1" ]; then
		ms=NA v="none in ${timeout}s"
	else
		ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) / 1000 }')
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tick" "$i" "$ms" "$v" "$restored" "$early" "$la" "$dom" "$usage" "$why" "$drc" >>"$tsv"
	echo "reaction: tick $tick trial $i: ${ms} ms ($v) restored=$restored early_ticks=$early load=$la exit=$drc ${why:+while $why}" >&2
	[ "$restored" = yes ] || { echo "reaction: $dom: values not restored after SIGTERM:" >&2; tail -n 20 "$log" >&2; }
	destroy_guest
	[ "$drc" = 0 ]
}

for tick in $ticks; do
	# A trial whose daemon crashed is recorded (daemon_exit != 0) and run again, up to
	# as many extra attempts as trials.
	ok=0 i=0
	while [ $ok -lt "$trials" ] && [ $i -lt $((2 * trials)) ]; do
		i=$((i + 1))
		if trial "$tick" "$i"; then ok=$((ok + 1)); fi
	done
done
summary "$tsv"
echo "reaction: rows in $tsv" >&2
