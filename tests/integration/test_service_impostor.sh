#!/usr/bin/env bash
# The attack of issue 15 item 1: local users start processes named like a protected service.
# The service (a copy of sleep named dnsmasq, run as root from a root-owned path) is pinned in
# the host file by exe + uid. Two impostors run as nobody: a second copy of sleep named
# dnsmasq, and the service's own binary. vmguardd must count one process as the service
# (status.json "pids": 1) and, on a host without systemd, move only that one into
# vmguard.services.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd jq setpriv
cd "$T_ROOT"
tmp=$(mktemp -d /tmp/vmg-impostor.XXXXXX)
on_exit rm -rf "$tmp"
chmod 755 "$tmp"
mkdir -p "$tmp/real" "$tmp/imp" "$tmp/tenants" "$tmp/state"
cp "$(command -v sleep)" "$tmp/real/dnsmasq"
cp "$(command -v sleep)" "$tmp/imp/dnsmasq"
chmod 755 "$tmp/real" "$tmp/imp" "$tmp/real/dnsmasq" "$tmp/imp/dnsmasq"
"$tmp/real/dnsmasq" 600 &
real=$!
setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/imp/dnsmasq" 600 &
imp1=$!
setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/real/dnsmasq" 600 &
imp2=$!
on_exit sh -c "kill $real $imp1 $imp2 2>/dev/null; true"
sleep 0.2
check "three processes named dnsmasq" test "$(cat /proc/$real/comm /proc/$imp1/comm /proc/$imp2/comm | sort -u)" = dnsmasq
cat >"$tmp/host.json" <<J
{ "tick": "500ms",
  "services": [ { "name": "dnsmasq", "process": "dnsmasq", "exe": "$tmp/real/dnsmasq", "uid": 0,
                  "priority": 8, "max_run_delay": "10ms" } ] }
J
check "policy check accepts the pinned service" ./build/vmguard policy check --host "$tmp/host.json" --tenants "$tmp/tenants"
jq 'del(.services[0].exe, .services[0].uid)' "$tmp/host.json" >"$tmp/nameonly.json"
check "policy check refuses a name-only service" sh -c "! ./build/vmguard policy check --host '$tmp/nameonly.json' --tenants '$tmp/tenants' 2>'$tmp/err'"
check "naming the field" grep -q "services\[0\].exe: missing" "$tmp/err"
./build/vmguardd --host "$tmp/host.json" --tenants "$tmp/tenants" --state-dir "$tmp/state" \
	--socket "$tmp/state/control.sock" >>"$tmp/log" 2>&1 &
dpid=$!
on_exit sh -c "kill $dpid 2>/dev/null; true"
pids=
for i in $(seq 1 50); do
	pids=$(jq -r '.services[] | select(.name == "dnsmasq") | .pids' "$tmp/state/status.json" 2>/dev/null)
	[ -n "$pids" ] && [ "$pids" != 0 ] && break
	sleep 0.1
done
check "status counts one process as the service (pids=$pids)" test "$pids" = 1
cgline() { awk -F: '$2 ~ /(^|,)cpu(,|$)/ || $2 == "" {print $3; exit}' "/proc/$1/cgroup"; }
if [ ! -e /run/systemd/system ]; then
	for i in $(seq 1 40); do [ "$(cgline $real)" = /vmguard.services/dnsmasq ] && break; sleep 0.1; done
	check "the service moved into vmguard.services ($(cgline $real))" test "$(cgline $real)" = /vmguard.services/dnsmasq
	check "the renamed sleep of nobody stayed home ($(cgline $imp1))" test "$(cgline $imp1)" != /vmguard.services/dnsmasq
	check "the real binary run by nobody stayed home ($(cgline $imp2))" test "$(cgline $imp2)" != /vmguard.services/dnsmasq
fi
kill -TERM "$dpid"; wait "$dpid"
sed 's/^/#   /' "$tmp/log" | tail -n 8
finish
