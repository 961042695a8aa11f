# The noisy-neighbour scenario, shared by lab/demo.sh and tests/integration/test_e2e.sh
# (sourced, not run). One run = one victim guest that keeps renewing DHCP and resolving
# names, and per case one noisy guest, in three phases:
#   calm   the noisy guest exists but is paused
#   noise  it runs, vmguard does not act (an observing `vmguardd --dry-run` records the
#          host's signals: the same probes the real daemon uses)
#   guard  the same noise with vmguardd running the demo policy
# then the noise stops (the noisy guest is paused again) and the run waits for the release.
# Cases: wb (disk role, cache=writeback), none (disk role, cache=none io=native),
# bcast (net role flooding broadcasts on the shared bridge).
#
# Everything is timestamped on the host as it arrives (bash $EPOCHREALTIME), in $D_OUT:
#   victim.log        "EPOCH VMG dhcp ok 93ms" ...            the victim's console
#   noisy-CASE.log    "EPOCH VMG disk pass ..." ...           the noisy guest's console
#   status.tsv        one line per daemon tick (see d_sampler) from status.json
#   daemon-CASE.log   "EPOCH vmguard: ..."                    the guard daemon's stderr
#   observer.log      the observing dry-run daemon's stderr
#   phases.tsv        CASE PHASE START END
#   tap.tsv           EPOCH CASE victim-tap tx packets, noisy-tap rx packets
# Caller sets (before d_init): D_NS, D_PREFIX (guest names vmg-PREFIX-*), D_OUT, BUILD,
# D_CALM_S, D_NOISE_S, D_GUARD_S, D_RELEASE_TIMEOUT_S.

D_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${BUILD:=build}"
case $BUILD in /*) D_BIN=$BUILD ;; *) D_BIN=$D_ROOT/$BUILD ;; esac
: "${D_NS:=vmgdemo}"
: "${D_PREFIX:=demo}"
: "${D_CALM_S:=20}"
: "${D_NOISE_S:=30}"
: "${D_GUARD_S:=45}"
# calm_for is 60 s of no harm; a write-back guest paused at the noise stop flushes its dirty
# pages first (harm for a few more seconds), so releases came 61-62 s after the stop.
: "${D_RELEASE_TIMEOUT_S:=90}"
: "${D_URI:=qemu:///system}"
export VMG_LAB_NS=$D_NS

D_PIDS=()          # background helpers (tailers, samplers) to stop at cleanup
D_OBS_PID=""       # observing dry-run daemon
D_GUARD_PID=""     # guard daemon
D_SAMPLER_PID=""
D_GUESTS=()        # guest names (without vmg-) this run created
D_DELAYACCT_ORIG=""
D_CLEANED=0

d_log() { echo "demo: $*" >&2; }
d_now() { echo "$EPOCHREALTIME"; }
d_lab() { "$D_ROOT/lab/$1" "${@:2}"; }

d_dom() { echo "vmg-$D_PREFIX-$1"; }

# Prefix each line of stdin with the host's wall clock when it arrived.
d_stamp() {
	local l
	while IFS= read -r l; do
		printf '%s %s\n' "$EPOCHREALTIME" "${l%$'\r'}"
	done
}

# d_tail CONSOLE OUT: timestamp a guest console's new lines into OUT, in the background.
d_tail() {
	(tail -n 0 -F "$1" 2>/dev/null | d_stamp >>"$2") &
	D_PIDS+=($!)
}

d_init() {
	mkdir -p "$D_OUT/policy/tenants.d" "$D_OUT/state-obs" "$D_OUT/state-guard"
	: >"$D_OUT/phases.tsv"
	: >"$D_OUT/status.tsv"
	: >"$D_OUT/tap.tsv"
	: >"$D_OUT/blk.tsv"
	# The shipped demo policy, retargeted at this run's namespace and guest names, so the
	# end-to-end test checks the very files `make demo` uses.
	sed "s/\"vmgdemo\"/\"$D_NS\"/" "$D_ROOT/lab/demo/host.json" >"$D_OUT/policy/host.json"
	sed "s/vmg-demo-noisy-/vmg-$D_PREFIX-noisy-/" "$D_ROOT/lab/demo/tenants.d/demonoisy.json" \
		>"$D_OUT/policy/tenants.d/demonoisy.json"
}

d_policy_check() {
	"$D_BIN/vmguard" policy check --host "$D_OUT/policy/host.json" --tenants "$D_OUT/policy/tenants.d"
}

# Everything this run started, in reverse order; safe to call twice and from a trap.
d_cleanup() {
	[ "$D_CLEANED" = 1 ] && return 0
	D_CLEANED=1
	d_stop_guard
	d_stop_observer
	local p g
	for p in "${D_PIDS[@]}"; do
		pkill -P "$p" 2>/dev/null # the tail under a tailer subshell
		kill "$p" 2>/dev/null
	done
	for g in "${D_GUESTS[@]}"; do
		d_lab guest.sh destroy "$(d_dom "$g")" >/dev/null 2>&1 || true
	done
	d_lab net.sh down "$D_NS" >/dev/null 2>&1 || true
	if [ "$D_SLOWDISK_UP" = 1 ]; then
		d_lab slowdisk.sh down >/dev/null 2>&1 || d_log "warning: lab/slowdisk.sh down failed"
	fi
	if [ -n "$D_DELAYACCT_ORIG" ]; then
		echo "$D_DELAYACCT_ORIG" >/proc/sys/kernel/task_delayacct 2>/dev/null || true
	fi
	wait 2>/dev/null
	return 0
}

# What cleanup must leave: no guest, namespace, tc piece or cgroup limit of this run.
d_leftovers() {
	local g left=""
	for g in "${D_GUESTS[@]}"; do
		virsh -q -c "$D_URI" domstate "$(d_dom "$g")" >/dev/null 2>&1 && left="$left domain:$(d_dom "$g")"
	done
	ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$D_NS" && left="$left netns:$D_NS"
	ip -o link show 2>/dev/null | grep -q "vmgifb\|ifb-vmg" && left="$left ifb"
	echo "${left# }"
}

# The guests' disks and dnsmasq's lease file share one emulated slow disk (lab/slowdisk.sh),
# so the harm the demo shows is the lab's, not a property of this machine's disk. D_SLOWDISK=0
# uses the host's disk instead (to see what harm it gives).
: "${D_SLOWDISK:=1}"
D_SLOWDISK_UP=0

d_setup() {
	d_lab libvirtd.sh start || return 1
	d_lab image.sh >/dev/null || return 1
	if [ "$D_SLOWDISK" = 1 ]; then
		local mnt
		mnt=$(d_lab slowdisk.sh up) || return 1
		D_SLOWDISK_UP=1
		export VMG_LAB_DISKS=$mnt/disks VMG_LAB_LEASE_DIR=$mnt/leases
	fi
	# dnsmasq's block-I/O delay needs delay accounting on BEFORE dnsmasq starts: the kernel
	# gives a task its delay record at fork only while it is on (a dnsmasq started with it
	# off read 0% I/O wait while its DNS answers took 2 s). As on a host that sets
	# kernel.task_delayacct=1 at boot; the original goes back at the end.
	D_DELAYACCT_ORIG=$(cat /proc/sys/kernel/task_delayacct 2>/dev/null || true)
	[ -n "$D_DELAYACCT_ORIG" ] && echo 1 >/proc/sys/kernel/task_delayacct
	d_lab net.sh up "$D_NS" || return 1
	D_GUESTS+=(victim)
	d_lab guest.sh create "$D_PREFIX-victim" victim --tenant victim >/dev/null || return 1
	d_tail "$VMG_LAB_RUN_DIR/$(d_dom victim).console" "$D_OUT/victim.log"
	d_lab guest.sh wait-ready "$D_PREFIX-victim" 120 >/dev/null || return 1
	d_start_observer
}

VMG_LAB_RUN_DIR=${VMG_LAB_RUN:-/run/vmguard-lab}

# One status sample per daemon tick: EPOCH SOURCE TICKS CONTENDED PROBE_MS RUNDELAY_MS
# IODELAY_FRAC PSI_IO THROTTLES RELEASES NOISY_DISK_BPS NOISY_NET_BPS NOISY_THROTTLED WHY
d_sampler() { # STATUS_JSON SOURCE
	local f=$1 src=$2 last=-1 line t
	while :; do
		if [ -s "$f" ]; then
			line=$(jq -r --arg pre "vmg-$D_PREFIX-noisy-" '
				[ .daemon.ticks,
				  (if .host.contended then 1 else 0 end),
				  ((.services[0].probe_latency_ms // -1) | tostring),
				  ((.services[0].run_delay_avg_ms // -1) | tostring),
				  ((.services[0].blkio_delay_frac // -1) | tostring),
				  ((.host.psi_io_some // -1) | tostring),
				  .daemon.actions_total.throttle, .daemon.actions_total.release,
				  ([.vms[] | select(.name | startswith($pre))][0] as $v |
				   (($v.usage.disk_write_bytes_per_s // -1) | tostring),
				   (($v.usage.net_tx_bits_per_s // -1) | tostring),
				   (if $v.throttled then 1 else 0 end)),
				  ((.host.contention // "") | gsub("[ \t]"; "_"))
				] | map(tostring) | join(" ")' "$f" 2>/dev/null) || line=""
			t=${line%% *}
			if [ -n "$line" ] && [ "$t" != "$last" ]; then
				echo "$EPOCHREALTIME $src $line" >>"$D_OUT/status.tsv"
				last=$t
			fi
		fi
		sleep 0.2
	done
}

d_start_sampler() { # STATUS_JSON SOURCE
	d_stop_sampler
	d_sampler "$1" "$2" &
	D_SAMPLER_PID=$!
}
d_stop_sampler() {
	[ -n "$D_SAMPLER_PID" ] && { kill "$D_SAMPLER_PID" 2>/dev/null; wait "$D_SAMPLER_PID" 2>/dev/null; }
	D_SAMPLER_PID=""
}

# Starts vmguardd in the background, its pid in D_LASTPID (not echoed: a command
# substitution would make it a grandchild that `wait` cannot reap).
d_vmguardd() { # STATE_DIR LOG [extra args]
	local st=$1 lg=$2
	shift 2
	rm -f "$st/status.json"
	"$D_BIN/vmguardd" --host "$D_OUT/policy/host.json" --tenants "$D_OUT/policy/tenants.d" \
		--connect "$D_URI" --state-dir "$st" "$@" > >(d_stamp >>"$lg") 2>&1 &
	D_LASTPID=$!
}

d_wait_status() { # STATE_DIR: until the daemon wrote its first status
	local i
	for i in $(seq 100); do [ -s "$1/status.json" ] && return 0; sleep 0.1; done
	return 1
}

d_start_observer() {
	d_vmguardd "$D_OUT/state-obs" "$D_OUT/observer.log" --dry-run
	D_OBS_PID=$D_LASTPID
	d_wait_status "$D_OUT/state-obs" || d_log "warning: observing daemon wrote no status.json"
	d_start_sampler "$D_OUT/state-obs/status.json" obs
}
d_stop_observer() {
	[ -n "$D_OBS_PID" ] || return 0
	d_stop_sampler
	kill -TERM "$D_OBS_PID" 2>/dev/null
	wait "$D_OBS_PID" 2>/dev/null
	D_OBS_PID=""
}

d_start_guard() { # CASE
	d_vmguardd "$D_OUT/state-guard" "$D_OUT/daemon-$1.log"
	D_GUARD_PID=$D_LASTPID
	d_wait_status "$D_OUT/state-guard" || d_log "warning: vmguardd wrote no status.json"
	d_start_sampler "$D_OUT/state-guard/status.json" guard
}
d_stop_guard() {
	[ -n "$D_GUARD_PID" ] || return 0
	d_stop_sampler
	kill -TERM "$D_GUARD_PID" 2>/dev/null
	wait "$D_GUARD_PID" 2>/dev/null
	D_GUARD_PID=""
}

d_phase() { # CASE PHASE START END
	echo "$1 $2 $3 $4" >>"$D_OUT/phases.tsv"
}

# Bytes the noisy guest has written to its disk as QEMU counts them (both cache modes,
# before the host page cache): "EPOCH CASE WR_BYTES" in blk.tsv at each phase edge.
d_blkmark() { # CASE
	local b=0 x g
	for g in $(d_noisy "$1"); do
		x=$(virsh -q -c "$D_URI" domblkstat "$(d_dom "$g")" vda 2>/dev/null | awk '$2 == "wr_bytes" {print $3}')
		[ -n "$x" ] || return 0
		b=$((b + x))
	done
	echo "$EPOCHREALTIME $1 $b" >>"$D_OUT/blk.tsv"
}

# The noisy guests of a case. Disk cases run D_DISK_GUESTS of them (default 2): one disk
# writer did not hurt enough on this machine (DHCP p90 only 1.8-2.2x calm), two did.
d_noisy() { # CASE
	local i n=1
	case $1 in wb | none) n=${D_DISK_GUESTS:-2} ;; esac
	echo "noisy-$1"
	for i in $(seq 2 "$n"); do echo "noisy-$1-$i"; done
}

# Packets the bridge delivered to the victim and took from the noisy guest, once a second.
d_tap_sampler() { # CASE
	local vt nt
	vt=$(cat "$VMG_LAB_RUN_DIR/$(d_dom victim).tap" 2>/dev/null)
	nt=$(cat "$VMG_LAB_RUN_DIR/$(d_dom "noisy-$1").tap" 2>/dev/null)
	[ -n "$vt" ] && [ -n "$nt" ] || return 0
	while :; do
		echo "$EPOCHREALTIME $1 $(ip netns exec "$D_NS" cat /sys/class/net/"$vt"/statistics/tx_packets \
			/sys/class/net/"$nt"/statistics/rx_packets /sys/class/net/"$nt"/statistics/rx_bytes 2>/dev/null | tr '\n' ' ')" >>"$D_OUT/tap.tsv"
		sleep 1
	done
}

# Dirty pages of a paused writeback guest are still being written: wait until the host's
# dirty + writeback memory is small, so the next phase starts from a quiet disk.
d_drain() {
	local i d
	for i in $(seq 60); do
		d=$(awk '/^(Dirty|Writeback):/ {s += $2} END {print s}' /proc/meminfo)
		[ "$d" -lt 20480 ] && return 0
		sleep 0.5
	done
	d_log "warning: host still has $((d / 1024)) MiB dirty after 30 s"
}

# Both guests of a case must still run: another lab user's teardown.sh or destroy-all
# removes every vmg-* domain, which would otherwise look like a calm victim.
d_alive() { # CASE
	local g st
	for g in victim $(d_noisy "$1"); do
		st=$(virsh -q -c "$D_URI" domstate "$(d_dom "$g")" 2>/dev/null || echo gone)
		case $st in running | paused) ;; *)
			d_log "case $1: guest $(d_dom "$g") is $st (another lab user's teardown.sh or guest.sh destroy-all?)"
			return 1 ;;
		esac
	done
}

d_suspend() { local g; for g in $(d_noisy "$1"); do virsh -q -c "$D_URI" suspend "$(d_dom "$g")" >/dev/null; done; }
d_resume() { local g; for g in $(d_noisy "$1"); do virsh -q -c "$D_URI" resume "$(d_dom "$g")" >/dev/null; done; }

d_create_noisy() { # CASE
	local c=$1 g
	for g in $(d_noisy "$c"); do d_create_one "$c" "$g" || return 1; done
}

d_create_one() { # CASE GUEST
	local c=$1 name="$D_PREFIX-$2"
	D_GUESTS+=("$2")
	case $c in
	# 4 GiB: above the host's dirty background threshold (10% of 24 GiB), so the flusher
	# writes all the time instead of in bursts every dirty_expire (30 s) as with 512 MiB.
	wb) d_lab guest.sh create "$name" disk --disk "${D_DISK_MB:-4096}" --cache writeback --tenant demonoisy >/dev/null ;;
	none) d_lab guest.sh create "$name" disk --disk "${D_DISK_MB:-512}" --cache none --tenant demonoisy >/dev/null ;;
	bcast) d_lab guest.sh create "$name" net --bcast --tenant demonoisy >/dev/null ;;
	*) d_log "unknown case $c"; return 1 ;;
	esac
	d_tail "$VMG_LAB_RUN_DIR/$(d_dom "$2").console" "$D_OUT/$2.log"
	d_lab guest.sh wait-ready "$name" 120 >/dev/null
}

# d_case CASE: the three phases and the release for one kind of noise.
d_case() {
	local c=$1 t0 t1 tp i rel g
	d_log "case $c: booting the noisy guest"
	d_create_noisy "$c" || return 1
	d_suspend "$c"
	d_tap_sampler "$c" &
	local tapper=$!
	D_PIDS+=($tapper)
	d_drain
	d_log "case $c: phase 1 calm (noisy guest paused) ${D_CALM_S}s"
	d_blkmark "$c"; t0=$(d_now); sleep "$D_CALM_S"; t1=$(d_now); d_blkmark "$c"
	d_phase "$c" calm "$t0" "$t1"
	d_alive "$c" || return 1

	d_log "case $c: phase 2 noise without vmguard ${D_NOISE_S}s"
	d_resume "$c"
	d_blkmark "$c"; t0=$(d_now); sleep "$D_NOISE_S"; t1=$(d_now); d_blkmark "$c"
	d_phase "$c" noise "$t0" "$t1"
	d_alive "$c" || return 1
	d_suspend "$c"
	d_stop_observer
	d_drain

	d_log "case $c: phase 3 the same noise with vmguardd ${D_GUARD_S}s"
	d_start_guard "$c"
	sleep 1.5 # two ticks: the guard has seen the guests and the calm host before the noise
	d_resume "$c"
	d_blkmark "$c"; t0=$(d_now); sleep "$D_GUARD_S"; t1=$(d_now); d_blkmark "$c"
	d_phase "$c" guard "$t0" "$t1"
	d_alive "$c" || return 1

	d_log "case $c: noise stopped, waiting for the release (up to ${D_RELEASE_TIMEOUT_S}s)"
	# The noise stops when the vCPUs stop, at the request; `virsh suspend` returns only after
	# QEMU drained the disk requests already queued, which under a 5 MiB/s throttle took 24 s.
	tp=$(d_now)
	d_suspend "$c"
	rel=""
	for i in $(seq $((D_RELEASE_TIMEOUT_S * 5))); do
		if grep -q "release " "$D_OUT/daemon-$c.log" 2>/dev/null; then rel=1; break; fi
		sleep 0.2
	done
	t1=$(d_now)
	d_phase "$c" after "$tp" "$t1"
	[ -n "$rel" ] || d_log "case $c: no release within ${D_RELEASE_TIMEOUT_S}s"
	d_stop_guard
	kill "$tapper" 2>/dev/null
	wait "$tapper" 2>/dev/null
	for g in $(d_noisy "$c"); do d_lab guest.sh destroy "$(d_dom "$g")" >/dev/null 2>&1; done
	d_drain
	d_start_observer
}
