#!/usr/bin/env bash
# check_vmguard as Nagios/Icinga run it: the real binary's exit codes and status lines for
# each mode against a control socket served by the real server code (test_ctlsock --serve,
# answering from snapshot files), plus the UNKNOWN cases: bad usage, no socket, an error
# reply, another protocol version, a plugin timeout, a non-root caller.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd setpriv
cd "$T_ROOT"
CHK=./build/check_vmguard
SRV=./build/tests/test_ctlsock
for b in "$CHK" "$SRV"; do
	[ -x "$b" ] || { t_fail "$b built (run make)"; finish; }
done

T=$(mktemp -d)
on_exit rm -rf "$T"
SOCK=$T/control.sock

# Shaped like vmguardd's snapshot (controller/daemon/snapshot.c): dnsmasq healthy, unbound down,
# two guests of tenant acme throttled, one of globex not.
cat >"$T/busy.json" <<'JSON'
{"version":1,"daemon":{"pid":4242,"version":"0.1","ticks":300,"tick_seconds":1.0,"last_tick_duration_seconds":0.05,"last_tick_age_seconds":0.4,"dry_run":false,"errors_total":0,"actions_total":{"throttle":2},"libvirt_connected":true,"tenants":2,"guests_throttled":2},
"host":{"contended":true,"contention":"host PSI io some 24% > 10%"},
"services":[{"name":"dnsmasq","match":"dnsmasq","pids":1,"up":true,"healthy":true,"run_delay_avg_ms":0.04,"max_run_delay_ms":10.0},
{"name":"unbound","match":"unbound.service","pids":0,"up":false,"healthy":false,"run_delay_avg_ms":null,"max_run_delay_ms":20.0}],
"vms":[{"name":"web-1","uuid":"6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b","tenant":"acme","qemu_pid":100,"throttled":true,"unmanaged":false,"throttled_for_s":42.0,"usage":{},"resources":{"disk_write":{"limit":20971520.0,"cap":0.0,"throttled":true,"usage":2.0e7,"suspect":false,"reason":"r"}}},
{"name":"web-3","uuid":"00000000-0000-0000-0000-000000000003","tenant":"acme","qemu_pid":103,"throttled":true,"unmanaged":false,"throttled_for_s":3.0,"usage":{},"resources":{"cpu":{"limit":0.5,"cap":2.0,"throttled":true,"usage":0.5,"suspect":false,"reason":"r"}}},
{"name":"batch-7","uuid":"00000000-0000-0000-0000-000000000007","tenant":"globex","qemu_pid":101,"throttled":false,"unmanaged":false,"usage":{},"resources":{}}]}
JSON
sed 's/"version":1,/"version":2,/' "$T/busy.json" >"$T/v2.json"
echo '{"not":"a snapshot"' >"$T/garbage.json"

SRV_PID=
serve() { # FILE: (re)start the stand-in daemon answering from FILE
	[ -n "$SRV_PID" ] && { kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; }
	"$SRV" --serve "$SOCK" "$1" >"$T/srv.log" 2>&1 &
	SRV_PID=$!
	for _ in $(seq 50); do [ -S "$SOCK" ] && return 0; sleep 0.1; done
	echo "# server did not start: $(cat "$T/srv.log")"
	return 1
}
stop_srv() { [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=; return 0; }
on_exit stop_srv

# expect DESC WANT_EXIT PATTERN CMD...: exit status and a pattern in the output.
expect() {
	local desc=$1 want=$2 pat=$3 out rc
	shift 3
	out=$("$@" 2>&1) && rc=0 || rc=$?
	if [ "$rc" -eq "$want" ] && grep -qE -- "$pat" <<<"$out"; then
		t_pass "$desc (exit $rc)"
	else
		t_fail "$desc: exit $rc (want $want), output: $out (want /$pat/)"
	fi
}

expect "-h" 0 "Usage: check_vmguard" $CHK -h
expect "-V" 0 "^check_vmguard [0-9]" $CHK -V
expect "bad range is UNKNOWN" 3 "^VMGUARD UNKNOWN - bad warning range" $CHK -w 10:5
expect "bad mode is UNKNOWN" 3 "^VMGUARD UNKNOWN - unknown mode" $CHK -m cpu
expect "bad option is UNKNOWN" 3 "Usage:" $CHK --frobnicate
expect "stray argument is UNKNOWN" 3 "unexpected argument" $CHK daemon
expect "--tenant outside throttled mode" 3 "throttled only" $CHK -m daemon --tenant acme
expect "bad timeout" 3 "bad timeout" $CHK -t 0
expect "no socket: UNKNOWN" 3 "^VMGUARD UNKNOWN - cannot reach vmguardd at $SOCK: No such file" $CHK -S "$SOCK"

serve "$T/busy.json"
expect "daemon alive" 0 "^VMGUARD OK - vmguardd pid 4242: last tick .* \| last_tick_age=[0-9.]+s;3;10;0" $CHK -S "$SOCK"
expect "daemon -w/-c in seconds" 1 "^VMGUARD WARNING - .*last_tick_age=[0-9.]+s;@0:100;200;0" $CHK -S "$SOCK" -w @0:100 -c 200
expect "services: unbound down is CRITICAL" 2 "^VMGUARD CRITICAL - 1 of 2 protected service\(s\) down.*unbound down.*\| dnsmasq_run_delay=0.04ms;;10;0 unbound_run_delay=U;;20;0 services_down=1;;;0;2$" $CHK -S "$SOCK" -m services
expect "throttled, no thresholds: OK" 0 "^VMGUARD OK - 2 of 3 guest\(s\) throttled: web-1 for 42 s \(disk_write\)" $CHK -S "$SOCK" -m throttled
expect "throttled -w 1" 1 "\| throttled=2;1;;0;3 longest_throttle=42s;;;0 unmanaged=0;;;0;3$" $CHK -S "$SOCK" -m throttled -w 1
expect "throttled -c 1:1 (exactly one expected)" 2 "^VMGUARD CRITICAL" $CHK -S "$SOCK" -m throttled -w 0 -c 1:1
expect "throttled --tenant globex" 0 "0 of 1 guest\(s\) of tenant globex" $CHK -S "$SOCK" -m throttled --tenant globex -w 0
expect "throttled -v lists guests" 0 "^web-3 \(tenant acme\): throttled for 3 s: cpu$" $CHK -S "$SOCK" -m throttled -v

serve "$T/v2.json"
expect "another protocol version: UNKNOWN" 3 "^VMGUARD UNKNOWN - .*protocol version 2" $CHK -S "$SOCK"
serve "$T/garbage.json"
expect "daemon without a snapshot: UNKNOWN" 3 "^VMGUARD UNKNOWN - vmguardd at .* refused" $CHK -S "$SOCK"

# Not root: Nagios' user. The socket's mode keeps it out: UNKNOWN saying why; with the
# mode loosened the server's uid check refuses it.
serve "$T/busy.json"
chmod 755 "$T"
expect "nobody: socket mode refuses" 3 "Permission denied \(the socket is root only" \
	setpriv --reuid=nobody --regid=nogroup --clear-groups $CHK -S "$SOCK"
chmod 666 "$SOCK"
expect "nobody: the server's uid check refuses" 3 "refused: permission denied: the vmguard control socket is for root only \(your uid is 65534\)" \
	setpriv --reuid=nobody --regid=nogroup --clear-groups $CHK -S "$SOCK"
check "the server logged the refused uid" grep -q "refused uid 65534" "$T/srv.log"
stop_srv
check "socket removed when the server stops" test ! -e "$SOCK"

# The status file, for monitoring users that may not open the socket.
cp "$T/busy.json" "$T/status.json"
expect "--status-file fresh" 0 "^VMGUARD OK" $CHK -f "$T/status.json"
touch -d '-30 seconds' "$T/status.json"
expect "--status-file 30 s old: CRITICAL" 2 "^VMGUARD CRITICAL - .*last tick 30" $CHK -f "$T/status.json"
expect "--status-file missing" 3 "^VMGUARD UNKNOWN - cannot read" $CHK -f "$T/nope.json"
# A FIFO without a writer blocks open(): only the plugin's own timeout can end that.
mkfifo "$T/hang"
start=$(date +%s)
expect "-t 1 against a hang: UNKNOWN" 3 "^VMGUARD UNKNOWN - plugin timed out" $CHK -t 1 -f "$T/hang"
check_num "timed out within ~1 s" "$(($(date +%s) - start))" -le 3
finish
