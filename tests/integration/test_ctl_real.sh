#!/usr/bin/env bash
# The admin's questions for real: start vmguardd (dry run, its own state dir and control
# socket), then `vmguard status`, `vmguard explain`, check_vmguard, a non-root caller that
# must be refused, and the fallback to status.json once the daemon is gone. Until vmguardd
# has --socket, the daemon's part is played by the real server code answering from a
# snapshot (test_ctlsock --serve), and the test says so.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd jq setpriv
cd "$T_ROOT"
VMG=${VMGUARD:-./build/vmguard}
VMGD=./build/vmguardd
CHK=./build/check_vmguard
SRV=./build/tests/test_ctlsock
for b in "$VMG" "$CHK" "$SRV"; do
	[ -x "$b" ] || { t_fail "$b built (run make)"; finish; }
done

T=$(mktemp -d)
on_exit rm -rf "$T"
SOCK=$T/control.sock
DPID=
quiet_kill() { kill "$@" 2>/dev/null; return 0; }
stop_daemon() { [ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=; return 0; }
on_exit stop_daemon

real=0
if [ -x "$VMGD" ] && "$VMGD" --help 2>&1 | grep -q -- '--socket'; then
	real=1
	need_libvirtd
	# explain needs a guest the daemon watches: this test's own, so it never depends on
	# what else runs on the host.
	CTLG=ctl$$
	on_exit ./lab/guest.sh destroy "$CTLG"
	check "own idle guest created (vmg-$CTLG)" ./lab/guest.sh create "$CTLG" idle --no-nic --tenant ctltest
	"$VMGD" --dry-run --state-dir "$T" --host policies/examples/host.json \
		--tenants policies/examples/tenants.d --socket "$SOCK" >"$T/daemon.log" 2>&1 &
	DPID=$!
else
	echo "# vmguardd has no --socket yet: the control socket is served by test_ctlsock --serve (same server code)"
	cat >"$T/status.json" <<'JSON'
{"version":1,"daemon":{"pid":4242,"version":"0.1","ticks":300,"tick_seconds":1.0,"last_tick_duration_seconds":0.05,"last_tick_age_seconds":0.4,"dry_run":true,"errors_total":0,"actions_total":{"throttle":1,"tighten":0,"relax":0,"release":0,"cap":1},"libvirt_connected":true,"tenants":2,"guests_throttled":1},
"host":{"psi_cpu_some":0.01,"psi_io_some":0.24,"psi_io_full":0.2,"cpu_busy_frac":0.6,"iowait_frac":0.1,"contended":true,"contention":"host PSI io some 24% > 10%"},
"services":[{"name":"dnsmasq","match":"dnsmasq","pids":1,"up":true,"healthy":true,"cpu_cores":0.0,"run_delay_avg_ms":0.04,"run_delay_frac":0.0001,"blkio_delay_frac":null,"max_run_delay_ms":10.0,"run_delay_seconds_total":0.01,"cpu_seconds_total":0.0}],
"vms":[{"name":"web-1","uuid":"6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b","tenant":"acme","qemu_pid":100,"throttled":true,"unmanaged":false,"throttled_for_s":42.0,
"usage":{"cpu_cores":0.3,"disk_read_bytes_per_s":0.0,"disk_write_bytes_per_s":2.0e7,"net_tx_bits_per_s":4144.0,"net_rx_bits_per_s":896.0},
"resources":{"disk_write":{"limit":20971520.0,"cap":0.0,"throttled":true,"usage":2.0e7,"suspect":false,"reason":"guest web-1 of tenant acme: disk writes 52.0MB/s over 40.0MB/s for 5 s while host PSI io some 24% > 10%","calm_for_s":12.0,"changed_s_ago":42.0}},
"sources":"cpu=cgroup-v2 disk=proc net=netlink"}]}
JSON
	cp "$T/status.json" "$T/snapshot.json"
	"$SRV" --serve "$SOCK" "$T/snapshot.json" policies/examples/host.json policies/examples/tenants.d >"$T/daemon.log" 2>&1 &
	DPID=$!
	# Keep the snapshot fresh, as a ticking daemon would.
	(while kill -0 $DPID 2>/dev/null; do touch "$T/snapshot.json" "$T/status.json"; sleep 0.5; done) &
	on_exit quiet_kill $!
fi
for _ in $(seq 150); do [ -S "$SOCK" ] && break; kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
if [ ! -S "$SOCK" ]; then
	t_fail "control socket appears (daemon log follows)"
	sed 's/^/#   /' "$T/daemon.log" | tail -n 20
	finish
fi
t_pass "control socket appears"
check "socket mode 0600" test "$(stat -c %a "$SOCK")" = 600
# Let a real daemon tick twice, so rates and the status file exist.
[ $real -eq 1 ] && sleep 2.5

if "$VMG" status --help >/dev/null 2>&1; then
	t_pass "vmguard status is wired into the CLI"
else
	t_fail "vmguard status is wired into the CLI (controller/cli/vmguard.c, controller/cli/module.mk)"
	finish
fi

out=$("$VMG" status --socket "$SOCK" --state-dir "$T" 2>&1) && rc=0 || rc=$?
check_num "status exit" "$rc" -eq 0
check "status shows the daemon, host and services" grep -qE "^vmguardd .*pid [0-9]+: [0-9]+ ticks" <<<"$out"
check "status shows the contention verdict" grep -qE "^Host: (calm|CONTENDED: .+)$" <<<"$out"
check "status lists guests" grep -qE "^Guests: [0-9]+, [0-9]+ throttled" <<<"$out"
check "status does not fall back to the file" bash -c "! grep -q 'cannot ask' <<<'$out'"
json=$("$VMG" status --json --socket "$SOCK" 2>/dev/null)
check "status --json is the snapshot (version 1)" test "$(jq -r .version <<<"$json")" = 1
n_vms=$(jq '.vms | length' <<<"$json")
n_thr=$(jq '[.vms[] | select(.throttled)] | length' <<<"$json")
check "status counts agree with --json" grep -q "^Guests: $n_vms, $n_thr throttled" <<<"$out"

out=$("$VMG" explain no-such-guest-here --socket "$SOCK" 2>&1) && rc=0 || rc=$?
check_num "explain of an unknown guest exits 3" "$rc" -eq 3
check "and says so" grep -q "no guest named 'no-such-guest-here'" <<<"$out"
out=$("$VMG" explain 2>&1) && rc=0 || rc=$?
check_num "explain without a guest is a usage error" "$rc" -eq 2
if [ $real -eq 1 ]; then
	for _ in $(seq 40); do
		json=$("$VMG" status --json --socket "$SOCK" 2>/dev/null)
		jq -e --arg n "vmg-$CTLG" 'any(.vms[]; .name == $n)' <<<"$json" >/dev/null && break
		sleep 0.5
	done
	vm=vmg-$CTLG
	check "the daemon watches the test's guest" jq -e --arg n "$vm" 'any(.vms[]; .name == $n)' <<<"$json"
else
	vm=$(jq -r '.vms[0].name // empty' <<<"$json")
fi
check "a guest to explain" test -n "$vm"
if [ -n "$vm" ]; then
	out=$("$VMG" explain "$vm" --socket "$SOCK" 2>&1) && rc=0 || rc=$?
	check_num "explain $vm exit" "$rc" -eq 0
	check "explain names the guest" grep -q "^Guest $vm (uuid " <<<"$out"
	check "explain shows usage" grep -q "^Usage at the last tick: cpu " <<<"$out"
	uuid=$(jq -r --arg n "$vm" '.vms[] | select(.name == $n) | .uuid' <<<"$json")
	check "explain by uuid, upper case" bash -c "'$VMG' explain '${uuid^^}' --socket '$SOCK' | grep -q '^Guest $vm '"
	if [ "$(jq -r --arg n "$vm" '.vms[] | select(.name == $n) | .throttled' <<<"$json")" = true ]; then
		check "explain says why and when it is released" \
			bash -c "'$VMG' explain '$vm' --socket '$SOCK' | grep -A5 'THROTTLED' | grep -q 'why: ' && '$VMG' explain '$vm' --socket '$SOCK' | grep -qE 'release: (calm for|not calm yet)'"
	fi
	ej=$("$VMG" explain "$vm" --json --socket "$SOCK" 2>/dev/null)
	check "explain --json carries the guest" test "$(jq -r .vm.name <<<"$ej")" = "$vm"
else
	echo "# no guests running: explain of a real guest not exercised"
fi

# check_vmguard against the same daemon.
out=$("$CHK" -S "$SOCK" 2>&1) && rc=0 || rc=$?
check_num "check_vmguard daemon mode OK" "$rc" -eq 0
check "status line with perfdata" grep -qE "^VMGUARD OK - .* \| last_tick_age=[0-9.]+s;[0-9.]+;[0-9.]+;0 " <<<"$out"
bad=$(jq '[.services[] | select((.up | not) or (.healthy | not) and .run_delay_avg_ms != null)] | length' <<<"$json")
want=0; [ "$bad" -gt 0 ] && want=2
"$CHK" -S "$SOCK" -m services >/dev/null 2>&1 && rc=0 || rc=$?
check_num "check_vmguard services mode matches the services' health ($bad bad)" "$rc" -eq "$want"
"$CHK" -S "$SOCK" -m throttled -c "$n_thr:$n_thr" >/dev/null 2>&1 && rc=0 || rc=$?
check_num "check_vmguard throttled count agrees (-c $n_thr:$n_thr)" "$rc" -eq 0

# Not root: refused. First by the socket's mode, then (mode loosened) by the uid check.
chmod 755 "$T"
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$CHK" -S "$SOCK" 2>&1) && rc=0 || rc=$?
check_num "nobody: check_vmguard UNKNOWN" "$rc" -eq 3
check "nobody: told the socket is root only" grep -q "root only" <<<"$out"
chmod 666 "$SOCK"
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$VMG" status --socket "$SOCK" --state-dir /nonexistent 2>&1) && rc=0 || rc=$?
check_num "nobody past the mode: vmguard status fails" "$rc" -eq 1
check "nobody past the mode: no snapshot leaked" bash -c "! grep -q '^Guests:' <<<'$out'"
check "daemon logged the refused uid and pid" grep -qE "refused uid 65534 pid [0-9]+" "$T/daemon.log"
chmod 600 "$SOCK"
chmod 700 "$T"

# The daemon goes away: socket removed, status falls back to the state dir's file.
stop_daemon
check "socket removed on SIGTERM" test ! -e "$SOCK"
out=$("$VMG" status --socket "$SOCK" --state-dir "$T" 2>&1) && rc=0 || rc=$?
check_num "status from a fresh status.json exits 0" "$rc" -eq 0
check "and says where the data came from" grep -q "showing $T/status.json" <<<"$out"
touch -d '-10 seconds' "$T/status.json"
out=$("$VMG" status --socket "$SOCK" --state-dir "$T" 2>&1) && rc=0 || rc=$?
check_num "status from a stale status.json exits 1" "$rc" -eq 1
check "and says the daemon is not running" grep -q "vmguardd is not running" <<<"$out"
out=$("$CHK" -S "$SOCK" 2>&1) && rc=0 || rc=$?
check_num "check_vmguard with the daemon gone: UNKNOWN" "$rc" -eq 3
finish
