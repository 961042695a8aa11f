#!/usr/bin/env bash
# lab/teardown.sh: removes everything the lab made: every vmg-* domain, lab taps (vmgtN),
# dnsmasq and the lab namespaces recorded in $VMG_LAB_RUN (plus $VMG_LAB_NS), guest disk
# images and run files. Leaves libvirtd running and the image cache in place (stop libvirtd
# with lab/libvirtd.sh stop). Safe to run twice; touches nothing outside the lab's names.
set -eu
. "$(dirname "$0")/lib.sh"
need_root

"$VMG_LAB_DIR/guest.sh" destroy-all
for ns in $(lab_namespaces); do
	"$VMG_LAB_DIR/net.sh" down "$ns"
done
# dnsmasq of a namespace someone already deleted by hand.
for pf in "$VMG_LAB_RUN"/*.dnsmasq.pid; do
	[ -e "$pf" ] && kill_pidfile "$pf" dnsmasq
done
rm -f "$VMG_LAB_RUN"/*.netns "$VMG_LAB_RUN"/*.leases "$VMG_LAB_RUN"/*.dnsmasq.log \
	"$VMG_LAB_RUN/$VMG_DOM_PREFIX"*.console "$VMG_LAB_RUN/$VMG_DOM_PREFIX"*.xml \
	"$VMG_LAB_RUN/.guest.lock"
log "lab torn down"
