#!/usr/bin/env bash
# Real tap shaping over netlink (controller/act/shaper via tests/tools/shaper_tool), as root, in
# network namespaces this test creates (198.18.0.0/15 only):
#   vmgshape-PID    "host" side: veth end vsh0 standing in for a guest's tap, real taps
#                   vshtap0/1 (no traffic, for the ownership rules), the ifbs vmguard adds
#   vmgshape-PID-g  "guest" side: the veth peer, sending/receiving UDP
# Guest transmit = vsh0's ingress, guest receive = vsh0's egress. Measures UDP throughput
# unshaped and shaped at 10 Mbit/s (must land within 30%), checks idempotency (a repeated
# set sends nothing to the kernel), in-place rate change, refusal to replace an admin's
# qdiscs or a foreign device holding the ifb name, and that clear leaves no trace.
# Then shapes the tap of a real lab guest it boots itself (lab/guest.sh, its own namespace).
set -u
cd "$(dirname "$0")/../.."
. tests/integration/prepare.sh

if [ "$(id -u)" -ne 0 ]; then
        echo "skip: needs root (network namespaces, tc)"
        exit 77
fi
for c in ip tc awk; do
        command -v "$c" >/dev/null || { echo "skip: $c not installed (iproute2)"; exit 77; }
done

BUILD=${BUILD:-build}
TOOL=$BUILD/tests/tools/shaper_tool
san=""
[ "$BUILD" = build-asan ] && san="SANITIZE=1"
make -s $san "$TOOL" >/dev/null || { echo "cannot build $TOOL"; echo "0 passed, 1 failed"; exit 1; }

H=vmgshape-$$
G=vmgshape-$$-g
LIMIT=10           # Mbit/s
SECS=3             # per measurement
MARGIN=0.30
tmp=$(mktemp -d)
bg=()
cleanup() {
        for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
        ip netns del "$H" 2>/dev/null
        ip netns del "$G" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

hx() { ip netns exec "$H" "$@"; }
tool() { "$TOOL" -n "$H" "$@"; }
# errno printed by a failing tool call ("error=... errno=N"), or "0"
tool_errno() { local out; out=$(tool "$@" 2>/dev/null); sed -n 's/.*errno=\([0-9]*\).*/\1/p' <<<"$out" | grep . || echo 0; }
getv() { tool get "$1" | sed -n "s/^$2=//p"; }

ip netns add "$H" && ip netns add "$G" || { echo "cannot create namespaces"; echo "0 passed, 1 failed"; exit 1; }
ip -n "$H" link add vsh0 type veth peer name eth0 netns "$G"
ip -n "$H" addr add 198.18.0.1/30 dev vsh0
ip -n "$G" addr add 198.18.0.2/30 dev eth0
ip -n "$H" link set vsh0 up
ip -n "$G" link set eth0 up
ip -n "$H" link set lo up
ip -n "$G" link set lo up
ip -n "$H" tuntap add dev vshtap0 mode tap
ip -n "$H" link set vshtap0 up

# UDP throughput (wire Mbit/s, as tbf counts it) from namespace $2 to address $3 received in $1.
measure() {
        local port=$((5000 + RANDOM % 1000))
        ip netns exec "$1" "$TOOL" udp-recv "$port" "$((SECS + 1))" >"$tmp/recv" &
        local rp=$!
        bg+=("$rp")
        sleep 0.3
        ip netns exec "$2" "$TOOL" udp-send "$3" "$port" "$SECS" >/dev/null
        wait "$rp"
        sed -n 's/.*wire_mbit=\([0-9.]*\).*/\1/p' "$tmp/recv"
}
near() { awk -v m="$1" -v t="$2" -v e="$MARGIN" 'BEGIN { exit !(m >= t * (1 - e) && m <= t * (1 + e)) }'; }
above() { awk -v m="$1" -v t="$2" 'BEGIN { exit !(m >= t) }'; }
# Sent bytes of vmguard's tbf (handle 7667:) on a device; a recreated qdisc starts at 0.
tbf_sent() { hx tc -s qdisc show dev "$1" | awk '/^qdisc tbf 7667:/ { f = 1; next } f && /Sent/ { print $2; exit }'; }
no_trace() {
        ! hx tc qdisc show | grep -q -e ' 7667:' -e '^qdisc ingress' &&
                ! ip -n "$H" -o link show | grep -q ' vgi-'
}

# --- guest transmit (tap ingress -> ifb -> tbf) ---
u_tx=$(measure "$H" "$G" 198.18.0.1)
echo "guest->host unshaped: ${u_tx:-?} Mbit/s"
check "unshaped guest transmit is well above the limit (${u_tx:-?} >= $((3 * LIMIT)))" above "${u_tx:-0}" $((3 * LIMIT))

check "set guest_tx ${LIMIT} Mbit/s" tool set vsh0 ${LIMIT}e6 0
s_tx=$(measure "$H" "$G" 198.18.0.1)
echo "guest->host shaped at $LIMIT Mbit/s: ${s_tx:-?} Mbit/s"
check "shaped guest transmit ${s_tx:-?} within 30% of $LIMIT" near "${s_tx:-0}" $LIMIT
check "get reports guest_tx_bps ${LIMIT}e6" [ "$(getv vsh0 guest_tx_bps)" = "${LIMIT}000000" ]
check "get reports the redirect" [ "$(getv vsh0 tx_redirect)" = 1 ]
u_rx=$(measure "$G" "$H" 198.18.0.2)
echo "host->guest with only transmit shaped: ${u_rx:-?} Mbit/s"
check "guest receive stays unshaped (${u_rx:-?} >= $((3 * LIMIT)))" above "${u_rx:-0}" $((3 * LIMIT))

# --- idempotency: a repeated set writes nothing ---
sent1=$(tbf_sent vgi-vsh0)
# tc monitor must be seen listening before, and caught up after, the repeat set, or an empty
# file would pass on a monitor that never saw anything: a qdisc added and deleted on a spare
# device marks both ends, and only the marks may appear between them.
# An ifb, not a dummy: this kernel has no dummy device type (no modules to load).
ip -n "$H" link add vshmark type ifb
# Line-buffered: into a file tc monitor writes in 4 KiB blocks, so the old 0.3 s capture was
# empty whatever happened.
hx stdbuf -oL tc monitor >"$tmp/monitor" 2>&1 &
mp=$!
bg+=("$mp")
wait_in_monitor() { # PATTERN
	local i
	for i in $(seq 40); do grep -q "$1" "$tmp/monitor" && return 0; sleep 0.05; done
	return 1
}
marked=0
for i in $(seq 10); do
	hx tc qdisc replace dev vshmark root handle 1: pfifo limit $((100 + i))
	if wait_in_monitor "vshmark"; then marked=1; break; fi
done
check "tc monitor seen listening (a qdisc on a spare device showed up)" [ $marked = 1 ]
check "repeat set with the same rate" tool set vsh0 ${LIMIT}e6 0
hx tc qdisc del dev vshmark root
check "tc monitor caught up (the closing mark showed up)" wait_in_monitor "^deleted.*vshmark"
kill "$mp" 2>/dev/null; wait "$mp" 2>/dev/null
others=$(grep -v vshmark "$tmp/monitor")
check "repeat set sent no tc change (tc monitor saw: $(head -c 200 <<<"$others" | tr '\n' ' '))" [ -z "$others" ]
ip -n "$H" link del vshmark
sent2=$(tbf_sent vgi-vsh0)
check "ifb tbf kept its counters (${sent1:-?} -> ${sent2:-?})" [ "${sent1:-0}" -gt 0 -a "${sent2:-0}" -ge "${sent1:-0}" ]

# --- guest receive (tap egress tbf); transmit limit removed ---
check "set guest_rx ${LIMIT} Mbit/s, guest_tx unlimited" tool set vsh0 0 ${LIMIT}e6
check "transmit pieces removed (no ingress qdisc, no ifb)" \
        bash -c "! ip netns exec $H tc qdisc show dev vsh0 | grep -q ingress && ! ip -n $H link show vgi-vsh0 >/dev/null 2>&1"
s_rx=$(measure "$G" "$H" 198.18.0.2)
echo "host->guest shaped at $LIMIT Mbit/s: ${s_rx:-?} Mbit/s"
check "shaped guest receive ${s_rx:-?} within 30% of $LIMIT" near "${s_rx:-0}" $LIMIT
u_tx2=$(measure "$H" "$G" 198.18.0.1)
check "guest transmit unshaped again (${u_tx2:-?} >= $((3 * LIMIT)))" above "${u_tx2:-0}" $((3 * LIMIT))

# --- rate change in place ---
sent1=$(tbf_sent vsh0)
check "change guest_rx to $((2 * LIMIT)) Mbit/s" tool set vsh0 0 $((2 * LIMIT))e6
sent2=$(tbf_sent vsh0)
check "root tbf changed in place (counters ${sent1:-?} -> ${sent2:-?})" [ "${sent1:-0}" -gt 0 -a "${sent2:-0}" -ge "${sent1:-0}" ]
s_rx2=$(measure "$G" "$H" 198.18.0.2)
echo "host->guest shaped at $((2 * LIMIT)) Mbit/s: ${s_rx2:-?} Mbit/s"
check "re-shaped guest receive ${s_rx2:-?} within 30% of $((2 * LIMIT))" near "${s_rx2:-0}" $((2 * LIMIT))

# --- both directions, then clear ---
check "set both directions" tool set vsh0 ${LIMIT}e6 ${LIMIT}e6
check "get reports both" [ "$(getv vsh0 guest_tx_bps)/$(getv vsh0 guest_rx_bps)" = "${LIMIT}000000/${LIMIT}000000" ]
check "clear" tool clear vsh0
check "clear leaves no vmguard qdisc, ingress or ifb" no_trace
check "default root qdisc is back on vsh0" bash -c "ip netns exec $H tc qdisc show dev vsh0 | grep -q ' 0: root'"
u_after=$(measure "$H" "$G" 198.18.0.1)
echo "guest->host after clear: ${u_after:-?} Mbit/s"
check "unshaped after clear (${u_after:-?} >= $((3 * LIMIT)))" above "${u_after:-0}" $((3 * LIMIT))
check "clear again is a no-op" tool clear vsh0

# --- ownership rules on a real tap ---
hx tc qdisc add dev vshtap0 root handle 1: htb
check "refuse to replace an admin's root qdisc (EBUSY)" [ "$(tool_errno set vshtap0 0 5e6)" = 16 ]
check "transmit shaping still allowed next to an admin's root" tool set vshtap0 5e6 0
check "get flags the foreign root" [ "$(getv vshtap0 foreign_root)" = 1 ]
check "clear" tool clear vshtap0
check "admin's root qdisc untouched" bash -c "ip netns exec $H tc qdisc show dev vshtap0 | grep -q '^qdisc htb 1: root'"
hx tc qdisc del dev vshtap0 root
hx tc qdisc add dev vshtap0 ingress
check "refuse an admin's ingress qdisc (EBUSY)" [ "$(tool_errno set vshtap0 5e6 0)" = 16 ]
check "refusal created no ifb" bash -c "! ip -n $H link show vgi-vshtap0 >/dev/null 2>&1"
check "receive shaping still allowed next to an admin's ingress" tool set vshtap0 0 5e6
check "clear" tool clear vshtap0
check "admin's ingress qdisc untouched" bash -c "ip netns exec $H tc qdisc show dev vshtap0 | grep -q '^qdisc ingress'"
hx tc qdisc del dev vshtap0 ingress
# (a veth: this kernel has no dummy devices) and an ifb without vmguard's alias
ip -n "$H" link add vgi-vshtap0 type veth peer name vshpeer0
check "refuse when the ifb name is another device's (EEXIST)" [ "$(tool_errno set vshtap0 5e6 0)" = 17 ]
check "clear does not delete that device" bash -c "$TOOL -n $H clear vshtap0 && ip -n $H link show vgi-vshtap0 >/dev/null"
ip -n "$H" link del vgi-vshtap0
ip -n "$H" link add vgi-vshtap0 type ifb
check "refuse an ifb vmguard did not create (EEXIST)" [ "$(tool_errno set vshtap0 5e6 0)" = 17 ]
check "get flags the foreign ifb" [ "$(getv vshtap0 foreign_ifb)" = 1 ]
check "clear does not delete that ifb" bash -c "$TOOL -n $H clear vshtap0 && ip -n $H link show vgi-vshtap0 >/dev/null"
ip -n "$H" link del vgi-vshtap0
check "absent tap: ENODEV" [ "$(tool_errno set nosuchtap 5e6 0)" = 19 ]
check "absent netns: ENOENT" [ "$("$TOOL" -n vmgshape-none-$$ set vshtap0 5e6 0 2>/dev/null | sed -n 's/.*errno=//p')" = 2 ]
check "rate below the minimum: ERANGE" [ "$(tool_errno set vshtap0 100 0)" = 34 ]

# --- someone deleted vmguard's ifb: the orphaned redirect (drops all guest frames) is repaired
check "shape transmit" tool set vshtap0 5e6 0
ip -n "$H" link del vgi-vshtap0
check "set repairs the orphaned redirect" tool set vshtap0 5e6 0
check "redirect points at the new ifb" [ "$(getv vshtap0 tx_redirect)/$(getv vshtap0 ifb_present)" = 1/1 ]
ip -n "$H" link del vgi-vshtap0
check "clear removes an orphaned redirect" tool clear vshtap0
check "no ingress qdisc left" bash -c "! ip netns exec $H tc qdisc show dev vshtap0 | grep -q ingress"

# --- a tap that vanished: clear still removes its ifb ---
ip -n "$H" tuntap add dev vshtap1 mode tap
ip -n "$H" link set vshtap1 up
check "shape a second tap" tool set vshtap1 5e6 5e6
ip -n "$H" link del vshtap1
check "clear after the tap vanished" tool clear vshtap1
check "its ifb is gone" bash -c "! ip -n $H link show vgi-vshtap1 >/dev/null 2>&1"
check "nothing of vmguard's left in the namespace" no_trace

# --- a real lab guest's tap: this test's own guest in its own namespace ---
# (Not whatever guest happens to be up: the test must not depend on, or clear, anyone's.)
lab_ns=vmgsh$$
lab_guest=shape$$
lab_cleanup() {
        VMG_LAB_NS=$lab_ns lab/guest.sh destroy "$lab_guest" >/dev/null 2>&1
        lab/net.sh down "$lab_ns" >/dev/null 2>&1
}
trap 'lab_cleanup; cleanup' EXIT
check "libvirtd answers (lab/libvirtd.sh start)" lab/libvirtd.sh start
check "lab network $lab_ns up" lab/net.sh up "$lab_ns"
check "own lab guest vmg-$lab_guest created with a NIC" env VMG_LAB_NS="$lab_ns" lab/guest.sh create "$lab_guest" idle --nic --tenant shapetest
lab_tap=$(VMG_LAB_NS=$lab_ns lab/guest.sh info "$lab_guest" | sed -n 's/^tap=//p')
check "its tap is in $lab_ns (${lab_tap:-none})" bash -c "test -n '$lab_tap' && ip -n $lab_ns link show '$lab_tap' >/dev/null 2>&1"
if [ -n "$lab_tap" ]; then
        check "lab guest tap $lab_ns/$lab_tap: set both directions" "$TOOL" -n "$lab_ns" set "$lab_tap" ${LIMIT}e6 ${LIMIT}e6
        lab_state=$("$TOOL" -n "$lab_ns" get "$lab_tap")
        check "lab guest tap: get reports both" bash -c "grep -qx 'guest_tx_bps=${LIMIT}000000' <<<'$lab_state' && grep -qx 'guest_rx_bps=${LIMIT}000000' <<<'$lab_state'"
        ip netns exec "$lab_ns" tc qdisc show dev "$lab_tap" | sed 's/^/    /'
        check "lab guest tap: clear" "$TOOL" -n "$lab_ns" clear "$lab_tap"
        check "lab guest tap: no trace" bash -c "! ip netns exec $lab_ns tc qdisc show dev $lab_tap | grep -q -e ' 7667:' -e '^qdisc ingress' && ! ip -n $lab_ns link show vgi-$lab_tap >/dev/null 2>&1"
fi
lab_cleanup

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
