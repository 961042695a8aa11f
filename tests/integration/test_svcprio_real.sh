#!/usr/bin/env bash
# vmguardd raises a protected service's CPU share on a host without systemd: its processes
# go into vmguard.services/NAME with cpu.shares 1024 x priority, and come back to their own
# cgroup on SIGTERM, and after a SIGKILL at the next start.
. "$(dirname "$0")/lib.sh"
require_root
cd "$T_ROOT"
[ -e /run/systemd/system ] && skip "systemd host: services' cgroups are systemd's, vmguard leaves them"
cpu=/sys/fs/cgroup/cpu
[ -d "$cpu" ] || cpu=/sys/fs/cgroup
tmp=$(mktemp -d /tmp/vmg-svcprio.XXXXXX)
on_exit rm -rf "$tmp"
cp "$(command -v sleep)" "$tmp/vmgsvctest"
"$tmp/vmgsvctest" 600 &
spid=$!
mkdir -p "$tmp/tenants" "$tmp/state"
cat >"$tmp/host.json" <<J
{ "tick": "500ms",
  "services": [ { "name": "vmgsvctest", "process": "vmgsvctest", "exe": "$(realpath "$tmp/vmgsvctest")",
                  "uid": $(id -u), "priority": 8, "max_run_delay": "10ms" } ] }
J
cgline() { awk -F: '$2 ~ /(^|,)cpu(,|$)/ || $2 == "" {print $3; exit}' "/proc/$spid/cgroup"; }
orig=$(cgline)
echo "# service pid $spid starts in cpu cgroup '$orig'"
dpid=
start_daemon() { ./build/vmguardd --host "$tmp/host.json" --tenants "$tmp/tenants" --state-dir "$tmp/state" \
	--socket "$tmp/state/control.sock" >>"$tmp/log" 2>&1 & dpid=$!; }
on_exit sh -c "kill $spid 2>/dev/null; true"
start_daemon
for i in $(seq 1 40); do [ "$(cgline)" = /vmguard.services/vmgsvctest ] && break; sleep 0.1; done
check "service moved into vmguard's group ($(cgline))" test "$(cgline)" = /vmguard.services/vmgsvctest
check "with cpu.shares 8192" test "$(cat $cpu/vmguard.services/vmgsvctest/cpu.shares 2>/dev/null)" = 8192
check "where it came from is on record" grep -q "\"pid\":$spid" "$tmp/state/services.json"
kill -TERM "$dpid"; wait "$dpid"
check "SIGTERM moved it back ($(cgline))" test "$(cgline)" = "$orig"
check "and removed vmguard's group" test ! -d "$cpu/vmguard.services"
start_daemon
for i in $(seq 1 40); do [ "$(cgline)" = /vmguard.services/vmgsvctest ] && break; sleep 0.1; done
kill -KILL "$dpid"; wait "$dpid" 2>/dev/null
check "after SIGKILL it is still in vmguard's group" test "$(cgline)" = /vmguard.services/vmgsvctest
: >"$tmp/log"
start_daemon
sleep 0.3
check "the next start moved it back first" grep -q "moved 1 service process(es) back" "$tmp/log"
kill -TERM "$dpid"; wait "$dpid"
check "and the final stop leaves it at home ($(cgline))" test "$(cgline)" = "$orig"
check "no vmguard group left" test ! -d "$cpu/vmguard.services"
sed 's/^/#   /' "$tmp/log" | tail -n 8
finish
