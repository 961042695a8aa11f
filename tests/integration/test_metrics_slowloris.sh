#!/usr/bin/env bash
# Issue 15 (/metrics), as the attack: a local user opens 20 connections to vmguardd's
# /metrics and trickles a request line a byte at a time, never finishing it (slowloris).
# Prometheus must still get its scrape in under 1 s, and the slow clients must be cut off
# within a bounded time. A real `vmguardd --dry-run` on a temp copy of the example policy,
# loopback only, no libvirtd needed (it keeps retrying in the background), no guests.
# Bounded: 20 clients, 12 s of trickling at most.
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 ss
cd "$T_ROOT"
BUILD=${BUILD:-build}
D=$BUILD/vmguardd
[ -x "$D" ] || { t_fail "$D built (make)"; finish; }
tmp=$(mktemp -d /tmp/vmg-slowloris.XXXXXX)
[ -n "${VMG_KEEP_TMP:-}" ] || on_exit rm -rf "$tmp"

# The policy files must pass StrictModes: a private copy owned by us, mode 0644/0755.
mkdir -p "$tmp/state" "$tmp/policy/tenants.d"
chmod 755 "$tmp" "$tmp/policy" "$tmp/policy/tenants.d"
install -m 644 policies/examples/host.json "$tmp/policy/host.json"
install -m 644 policies/examples/tenants.d/*.json "$tmp/policy/tenants.d/"
port=$(free_port) || { t_fail "a free port on 127.0.0.1"; finish; }
url="http://127.0.0.1:$port/metrics"
"$D" --dry-run --state-dir "$tmp/state" --lock-file "$tmp/vmguardd.lock" \
	--connect "test:///nonexistent-$$" --host "$tmp/policy/host.json" --tenants "$tmp/policy/tenants.d" \
	--metrics "127.0.0.1:$port" >"$tmp/vmguardd.log" 2>&1 &
dpid=$!
on_exit stop_pid "$dpid"
check "/metrics answers before the attack" wait_for 20 curl -sf -o /dev/null "$url"

# 20 slow clients: each connects and sends "GET /metrics HTTP/1.1\r\nX-a: " one byte every
# 0.5 s, then keeps adding header bytes, never the blank line. Each reports how long the
# server kept it (until EOF or reset), capped at the attack's length.
N=20
ATTACK_S=12
cat >"$tmp/slow.py" <<'PY'
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=2)
t0 = time.monotonic()
req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-slow: " + b"a" * 10000
i = 0
try:
    while time.monotonic() - t0 < secs:
        s.send(req[i:i + 1])
        i += 1
        s.settimeout(0.5)
        try:
            if s.recv(4096) == b"":
                break  # closed by the server
        except socket.timeout:
            pass
except OSError:
    pass
print("%.1f" % (time.monotonic() - t0))
PY
pids=()
for i in $(seq $N); do
	python3 "$tmp/slow.py" "$port" "$ATTACK_S" >"$tmp/slow.$i" 2>&1 &
	pids+=($!)
done
on_exit sh -c "kill ${pids[*]} 2>/dev/null; true"
# Every slow client connected and trickling (python3 starts slowly on a loaded host).
n_open() { ss -Htn state established "dport = :$port" | wc -l; }
wait_for 5 sh -c "[ \$(ss -Htn state established 'dport = :$port' | wc -l) -ge $N ]"
check_num "slow clients connected" "$(n_open)" -ge $N

# Prometheus' view: three scrapes during the attack, each must answer 200 within 1 s.
for k in 1 2 3; do
	out=$(curl -s -o "$tmp/scrape.$k" -w '%{http_code} %{time_total}' --max-time 5 "$url")
	code=${out% *}
	t=${out#* }
	check_num "scrape $k during the attack: HTTP status" "$code" -eq 200
	check_num "scrape $k during the attack: seconds" "$t" -lt 1
	sleep 1
done
check "the scrape is a full exposition" grep -q '^vmguard_build_info{' "$tmp/scrape.3"

wait "${pids[@]}" 2>/dev/null
max=0
for i in $(seq $N); do
	v=$(cat "$tmp/slow.$i")
	[[ $v =~ ^[0-9.]+$ ]] || v=$ATTACK_S
	max=$(awk -v a="$max" -v b="$v" 'BEGIN { print (b > a) ? b : a }')
done
# The server's header deadline (controller/daemon/httpd.c) cuts an incomplete request off;
# without one, the trickle held every connection for the whole attack.
check_num "longest a slow client held its connection (s)" "$max" -lt $((ATTACK_S - 2))
check "vmguardd still running" kill -0 "$dpid"
finish
