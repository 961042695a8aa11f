#!/usr/bin/env bash
# The lab end to end on real libvirtd, QEMU (TCG) and dnsmasq: starts libvirtd, builds the
# guest image, brings up the lab network, boots one victim guest, checks that it gets DHCP
# leases and DNS answers from dnsmasq, then tears everything down and checks nothing is left.
# Takes ~25 s with a cached image (first run: + ~10 s to download and build it).
# It touches only its own guest (vmg-labtestPID-victim) and namespace (vmglabPID): other lab
# users' guests are never torn down.
. "$(dirname "$0")/lib.sh"
cd "$T_ROOT"

require_root
require_cmd virsh libvirtd virtlogd qemu-system-x86_64 dnsmasq ip cpio gcc apt-get
[ -x /bin/busybox ] || skip "needs busybox-static (run lab/deps.sh)"

NAME=labtest$$-victim
GUEST=vmg-$NAME
RUN=${VMG_LAB_RUN:-/run/vmguard-lab}
NS=vmglab$$
export VMG_LAB_NS=$NS
CONSOLE=$RUN/$GUEST.console

on_exit ./lab/net.sh down "$NS"
on_exit ./lab/guest.sh destroy "$NAME"

check "libvirtd starts and answers" ./lab/libvirtd.sh start
check "libvirtd start is idempotent" ./lab/libvirtd.sh start
check "guest image builds" ./lab/image.sh
check "guest image is cached on the second run" sh -c './lab/image.sh 2>&1 | grep -q "up to date"'
check "lab network comes up" ./lab/net.sh up "$NS"
check "lab network up is idempotent" ./lab/net.sh up "$NS"
check "dnsmasq answers DNS in the namespace" \
	sh -c "ip netns exec $NS busybox nslookup -type=a victim.lab 198.18.0.1 | grep -q 198.18.0.10"

t0=$(date +%s.%N)
check "victim guest is created (with a small disk, to see it removed)" ./lab/guest.sh create "$NAME" victim --disk 16 --tenant labtest
check "domain has the tenant metadata" sh -c \
	"virsh -c qemu:///system dumpxml $GUEST | grep -q '<vmguard:tenant[^>]*>labtest</vmguard:tenant>'"
if ready=$(./lab/guest.sh wait-ready "$NAME" 90 2>&1); then
	boot=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	t_pass "victim prints VMG ready"
	echo "# boot to 'VMG ready': ${boot}s (create + kernel + first DHCP)"
	check_num "boot to VMG ready (s)" "$boot" -lt 60
else
	t_fail "victim prints VMG ready"
	printf '%s\n' "$ready" | sed 's/^/#   /'
	finish
fi

# Enough exchanges for a median; each takes ~0.1 s calm plus the 0.2 s pause.
deadline=$((SECONDS + 40))
while [ "$(grep -c '^VMG dhcp ok' "$CONSOLE")" -lt 10 ] && [ $SECONDS -lt $deadline ]; do
	sleep 0.5
done
dhcp_ok=$(grep -c '^VMG dhcp ok' "$CONSOLE" || true)
dns_ok=$(grep -c '^VMG dns ok' "$CONSOLE" || true)
check_num "DHCP exchanges that succeeded" "$dhcp_ok" -ge 10
check_num "DNS lookups that succeeded" "$dns_ok" -ge 5
check "measurement lines are well formed" sh -c \
	"grep '^VMG \(dhcp\|dns\) ' '$CONSOLE' | grep -vqE '^VMG (dhcp|dns) (ok|fail) [0-9]+ms$' && exit 1 || exit 0"
stats() { # KIND: "median p90 max" of the ok times in ms
	grep "^VMG $1 ok" "$CONSOLE" | sed -E 's/.* ([0-9]+)ms$/\1/' | sort -n |
		awk '{ v[NR] = $1 }
		END { if (!NR) exit; p = int(NR * 0.9 + 0.5); if (p < 1) p = 1
		      printf "%d %d %d", v[int((NR + 1) / 2)], v[p], v[NR] }'
}
read -r dmed dp90 dmax <<<"$(stats dhcp)"
read -r nmed np90 nmax <<<"$(stats dns)"
echo "# calm DHCP exchange ms: median ${dmed:-?} p90 ${dp90:-?} max ${dmax:-?} (n=$dhcp_ok)"
echo "# calm DNS lookup ms:    median ${nmed:-?} p90 ${np90:-?} max ${nmax:-?} (n=$dns_ok)"
# Loose bounds: ~90 ms / ~6 ms calm here; seconds mean the lab is broken, not slow.
check_num "calm DHCP median (ms)" "${dmed:-x}" -lt 2000
check_num "calm DNS median (ms)" "${nmed:-x}" -lt 1000

mac=$(./lab/guest.sh info "$NAME" | sed -n 's/^mac=//p')
check "guest has a MAC" test -n "$mac"
check "dnsmasq lease file holds the guest's lease" grep -q " $mac 198\.18\.0\." "$RUN/$NS.leases"
check "dnsmasq logged DHCPACKs to the guest" grep -q "DHCPACK(br0) 198\.18\.0\.[0-9]* $mac" "$RUN/$NS.dnsmasq.log"
tap=$(./lab/guest.sh info "$NAME" | sed -n 's/^tap=//p')
disk=$(./lab/guest.sh info "$NAME" | sed -n 's/^disk=//p')
check "guest tap is enslaved to br0 in $NS" sh -c "ip -n $NS -o link show '$tap' | grep -q 'master br0'"
check "guest tap is not left in the root namespace" sh -c "! ip link show '$tap' >/dev/null 2>&1"

check "guest destroy succeeds" ./lab/guest.sh destroy "$NAME"
check "guest destroy is safe to run twice" ./lab/guest.sh destroy "$NAME"
check "network down succeeds" ./lab/net.sh down "$NS"
check "network down is safe to run twice" ./lab/net.sh down "$NS"
check "the guest's domain is gone" sh -c "! virsh -q -c qemu:///system domstate '$GUEST' >/dev/null 2>&1"
check "the namespace is gone" sh -c "! ip netns list | grep -qw '$NS'"
check "the guest's tap is gone (${tap:-none})" sh -c "test -n '$tap' && ! ip -o link show | grep -qE ': $tap[:@]'"
check "its dnsmasq is gone" sh -c "! test -e '$RUN/$NS.dnsmasq.pid'"
check "its disk image is gone (${disk:-none})" sh -c "test -n '$disk' && ! test -e '$disk'"
finish
