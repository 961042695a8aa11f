#!/usr/bin/env bash
# lab/net.sh up|down|status [NS]
# A network namespace NS (default $VMG_LAB_NS = vmglab) holding a bridge br0 at 198.18.0.1/24
# and a dnsmasq bound to it serving DHCP (198.18.0.100-200, 2 min leases: dnsmasq's
# shortest) and DNS for a few lab names. Guests' taps are enslaved to br0 by lab/guest.sh.
# Nothing is configured on the host's own interfaces. Files, in $VMG_LAB_RUN:
#   NS.netns (marks the namespace as the lab's), NS.dnsmasq.pid, NS.leases, NS.dnsmasq.log
# dnsmasq fsyncs its lease file on every DHCP ACK: the victim's harm path goes through the
# disk holding the lease file, so it must live on the host disk like a real host's
# /var/lib/misc/dnsmasq.leases. It goes in $VMG_LAB_LEASE_DIR when set, else in $VMG_LAB_RUN
# unless that is tmpfs, else in /var/lib/vmguard-lab/leases.
set -eu
. "$(dirname "$0")/lib.sh"

usage() { echo "usage: $0 up|down|status [NS]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
cmd=$1
NS=${2:-$VMG_LAB_NS}
case $NS in
*[!A-Za-z0-9_.-]* | "") die "bad namespace name '$NS'" ;;
esac

PIDF="$VMG_LAB_RUN/$NS.dnsmasq.pid"
# On tmpfs the fsync returns at once and disk noise could never reach the victim's DHCP.
lease_dir() {
	local d=$VMG_LAB_RUN
	while [ ! -d "$d" ]; do d=$(dirname "$d"); done
	if [ -n "${VMG_LAB_LEASE_DIR:-}" ]; then
		echo "$VMG_LAB_LEASE_DIR"
	elif [ "$(stat -f -c %T "$d")" != tmpfs ]; then
		echo "$VMG_LAB_RUN"
	else
		echo /var/lib/vmguard-lab/leases
	fi
}
LEASES="$(lease_dir)/$NS.leases"
DLOG="$VMG_LAB_RUN/$NS.dnsmasq.log"

dnsmasq_running() {
	local pid
	[ -s "$PIDF" ] || return 1
	pid=$(cat "$PIDF")
	[ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = dnsmasq ]
}

up() {
	need_root
	need_cmd ip dnsmasq
	mkdir -p "$VMG_LAB_RUN" "$(dirname "$LEASES")"
	if [ "$(stat -f -c %T "$(dirname "$LEASES")")" = tmpfs ]; then
		log "warning: $LEASES is on tmpfs: dnsmasq's lease fsync will not touch the disk, so disk noise will not reach the victim's DHCP (set VMG_LAB_LEASE_DIR to a dir on the host disk)"
	fi
	if ! netns_exists "$NS"; then
		ip netns add "$NS"
	fi
	touch "$VMG_LAB_RUN/$NS.netns"
	ip -n "$NS" link set lo up
	if ! ip -n "$NS" link show "$VMG_BR" >/dev/null 2>&1; then
		# STP off (the default): ports forward at once, no 15 s listening delay per guest.
		ip -n "$NS" link add "$VMG_BR" type bridge stp_state 0
	fi
	if ! ip -n "$NS" -4 addr show dev "$VMG_BR" | grep -q "inet $VMG_GW/"; then
		ip -n "$NS" addr add "$VMG_GW/$VMG_NET_PREFIX" dev "$VMG_BR"
	fi
	ip -n "$NS" link set "$VMG_BR" up
	if dnsmasq_running; then
		log "namespace $NS up, dnsmasq already running (pid $(cat "$PIDF"))"
		return 0
	fi
	rm -f "$PIDF"
	# --user=root: the lease file lives in the lab's run dir, which the dnsmasq user cannot
	# write. --dhcp-authoritative: ACK a REQUEST for a lease lost when dnsmasq restarted.
	# --bind-dynamic on br0 only, as libvirt runs it for its own networks.
	ip netns exec "$NS" dnsmasq \
		--conf-file=/dev/null \
		--user=root --group=root \
		--pid-file="$PIDF" \
		--dhcp-leasefile="$LEASES" \
		--log-facility="$DLOG" \
		--interface="$VMG_BR" --bind-dynamic --except-interface=lo \
		--dhcp-range=198.18.0.100,198.18.0.200,255.255.255.0,2m \
		--dhcp-authoritative \
		--dhcp-option=option:router,"$VMG_GW" \
		--dhcp-option=option:dns-server,"$VMG_GW" \
		--no-resolv --no-hosts \
		--domain=lab \
		--address=/victim.lab/198.18.0.10 \
		--address=/noisy.lab/198.18.0.11 \
		--address=/gw.lab/"$VMG_GW" ||
		die "dnsmasq failed to start in $NS (see $DLOG)"
	local i
	for i in $(seq 50); do
		dnsmasq_running && break
		sleep 0.1
	done
	dnsmasq_running || die "dnsmasq did not write $PIDF (see $DLOG)"
	log "namespace $NS up: $VMG_BR $VMG_GW/$VMG_NET_PREFIX, dnsmasq pid $(cat "$PIDF"), leases $LEASES"
}

down() {
	need_root
	kill_pidfile "$PIDF" dnsmasq
	if netns_exists "$NS"; then
		# Taps are deleted, not moved back: a tap left in the root namespace would be
		# picked up by the next guest with stale settings.
		local t
		for t in $(list_taps_in "$NS"); do
			ip -n "$NS" link del "$t" 2>/dev/null || ip netns exec "$NS" ip tuntap del dev "$t" mode tap 2>/dev/null || true
		done
		ip netns del "$NS"
	fi
	rm -f "$LEASES" "$DLOG" "$VMG_LAB_RUN/$NS.netns"
	log "namespace $NS down"
}

status() {
	local rc=0
	if netns_exists "$NS"; then echo "namespace $NS: present"; else echo "namespace $NS: absent"; rc=3; fi
	if dnsmasq_running; then echo "dnsmasq: pid $(cat "$PIDF")"; else echo "dnsmasq: not running"; rc=3; fi
	[ -s "$LEASES" ] && echo "leases: $(wc -l <"$LEASES") in $LEASES ($(stat -f -c %T "$LEASES"))"
	return $rc
}

case $cmd in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
