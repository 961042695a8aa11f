#!/usr/bin/env bash
# lab/guest.sh: lab guests as transient libvirt domains (TCG, direct kernel boot of the image
# lab/image.sh builds). Every domain is named vmg-NAME; nothing else is ever touched.
#
#   create NAME ROLE [options]   ROLE: idle cpu disk net victim (see lab/guest/init)
#       --vcpus N          vCPUs (default 1)
#       --mem MIB          RAM (default 128: at 64 a running guest resets silently)
#       --disk MIB         add a raw virtio disk /dev/vda of MIB (disk role: default 256)
#       --cache MODE       none (default: cache='none' io='native', O_DIRECT on the host)
#                          or writeback (cache='writeback' io='threads', via the page cache)
#       --disk-zero        write the disk's zeros once (dd, fsync) instead of fallocate:
#                          fallocate leaves unwritten extents whose conversion on the guest's
#                          first pass held direct writes to ~4 MB/s against ~19 MB/s later
#       --initrd FILE      boot FILE instead of the lab initramfs (e.g. the lab's with an
#                          archive appended that brings its own /init; the kernel command
#                          line stays the same, vmg.* included)
#       --nic | --no-nic   a virtio NIC on the lab bridge (default on for net and victim)
#       --tenant T         tenant in the domain metadata (default: NAME)
#       --ns NS            lab namespace holding br0 (default $VMG_LAB_NS)
#       --cpus N           cpu role: busy loops (vmg.cpus)
#       --mb N             disk role: MiB per write pass (vmg.mb)
#       --bcast            net role: flood 255.255.255.255 (vmg.bcast=1)
#       --arg KEY=VAL      any other vmg.KEY=VAL for the guest's /init
#     Prints the domain name. The guest's console goes to $VMG_LAB_RUN/vmg-NAME.console.
#   wait-ready NAME [TIMEOUT_S]  waits for "VMG ready" on the console (default 90 s);
#                                prints the seconds waited; on failure the console's tail
#   destroy NAME                 destroys the domain, deletes its tap and disk image
#   destroy-all                  the same for every vmg-* domain and leftover lab tap
#   info NAME                    key=value: domain, console, tap, ns, mac, disk, pid
#   list                         running vmg-* domains
set -eu
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

valid_name() {
	case $1 in
	*[!A-Za-z0-9_.-]* | "") die "bad $2 '$1' (letters, digits, _ . - only)" ;;
	esac
}

console_of() { echo "$VMG_LAB_RUN/$1.console"; }

# The kernel command line every guest gets. no_timer_check: with several TCG guests
# booting on 2 cores some panicked in the IO-APIC timer check. panic=-1: a panic reboots,
# which on_reboot=destroy turns into a vanished domain that wait-ready reports at once.
base_cmdline() {
	local c="console=ttyS0 no_timer_check panic=-1 rdinit=/init"
	[ "${VMG_LAB_KDEBUG:-0}" = 1 ] || c="$c quiet"
	echo "$c"
}

free_tap() {
	local n ns used
	used=$( {
		list_taps_in ""
		for ns in $(lab_namespaces); do list_taps_in "$ns"; done
	} | sort -u)
	for n in $(seq 0 250); do
		grep -qx "$VMG_TAP_PREFIX$n" <<<"$used" || { echo "$n"; return; }
	done
	die "no free tap name ${VMG_TAP_PREFIX}0..250"
}

delete_tap() { # TAP NS
	local tap=$1 ns=$2
	if [ -n "$ns" ] && netns_exists "$ns" && ip -n "$ns" link show "$tap" >/dev/null 2>&1; then
		ip -n "$ns" link del "$tap" 2>/dev/null || ip netns exec "$ns" ip tuntap del dev "$tap" mode tap || true
	fi
	if ip link show "$tap" >/dev/null 2>&1; then
		ip link del "$tap" 2>/dev/null || ip tuntap del dev "$tap" mode tap || true
	fi
}

create() {
	[ $# -ge 2 ] || usage
	local name role dom
	name=$1 role=$2
	shift 2
	valid_name "$name" name
	dom=$(dom_name "$name")
	case $role in idle | cpu | disk | net | victim) ;; *) die "unknown role '$role'" ;; esac

	local vcpus=1 mem=128 disk_mb="" cache=none nic="" tenant=${name#"$VMG_DOM_PREFIX"} ns=$VMG_LAB_NS
	local args="vmg.role=$role" disk_zero=0 initrd="$VMG_LAB_CACHE/initrd.img"
	while [ $# -gt 0 ]; do
		case $1 in
		--vcpus) vcpus=$2; shift ;;
		--mem) mem=$2; shift ;;
		--disk) disk_mb=$2; shift ;;
		--cache) cache=$2; shift ;;
		--disk-zero) disk_zero=1 ;;
		--initrd) initrd=$2; shift ;;
		--nic) nic=1 ;;
		--no-nic) nic=0 ;;
		--tenant) tenant=$2; shift ;;
		--ns) ns=$2; shift ;;
		--cpus) args="$args vmg.cpus=$2"; shift ;;
		--mb) args="$args vmg.mb=$2"; shift ;;
		--bcast) args="$args vmg.bcast=1" ;;
		--arg) case $2 in *[!A-Za-z0-9_=./:-]* | *" "*) die "bad --arg '$2'" ;; esac
			args="$args vmg.$2"; shift ;;
		*) die "unknown option '$1'" ;;
		esac
		shift
	done
	valid_name "$tenant" tenant
	case $vcpus in [1-9] | [1-9][0-9]) ;; *) die "bad --vcpus '$vcpus'" ;; esac
	case $mem in *[!0-9]* | "") die "bad --mem '$mem'" ;; esac
	case $cache in none | writeback) ;; *) die "bad --cache '$cache' (none or writeback)" ;; esac
	[ -n "$disk_mb" ] || { [ "$role" = disk ] && disk_mb=256 || disk_mb=0; }
	case $disk_mb in *[!0-9]* | "") die "bad --disk '$disk_mb'" ;; esac
	[ -n "$nic" ] || { case $role in net | victim) nic=1 ;; *) nic=0 ;; esac; }
	# It goes into the domain XML between quotes.
	case $initrd in /*) ;; *) die "bad --initrd '$initrd' (an absolute path)" ;; esac
	case $initrd in *[\'\"\<\>\&]*) die "bad --initrd '$initrd' (quotes, <, > or & in the path)" ;; esac

	need_root
	need_cmd virsh ip
	# On a fresh machine the first guest builds the image (cached, ~10-40 s) instead of
	# failing: no test or demo step may depend on another having run first.
	if ! [ -s "$VMG_LAB_CACHE/vmlinuz" ] || ! [ -s "$VMG_LAB_CACHE/initrd.img" ]; then
		"$VMG_LAB_DIR/image.sh" >/dev/null || die "no guest image in $VMG_LAB_CACHE and lab/image.sh failed"
	fi
	[ -s "$initrd" ] || die "--initrd $initrd: no such file or empty"
	libvirt_answers || die "libvirtd does not answer on $VMG_LAB_URI (run lab/libvirtd.sh start)"
	if [ "$nic" = 1 ]; then
		netns_exists "$ns" || die "namespace $ns missing (run lab/net.sh up $ns)"
	fi
	mkdir -p "$VMG_LAB_RUN"
	if vsh domstate "$dom" >/dev/null 2>&1; then
		die "domain $dom exists already (lab/guest.sh destroy $name)"
	fi

	# Tap names are chosen and created under one lock so parallel creates never collide.
	exec 9>"$VMG_LAB_RUN/.guest.lock"
	flock 9

	local tap="" mac="" disk="" console xml
	console=$(console_of "$dom")
	xml="$VMG_LAB_RUN/$dom.xml"
	# Undo a half-made guest if anything below fails.
	cleanup_create() {
		[ -n "$tap" ] && delete_tap "$tap" "$ns"
		[ -n "$disk" ] && rm -f "$disk"
		rm -f "$VMG_LAB_RUN/$dom.tap" "$VMG_LAB_RUN/$dom.ns"
	}
	trap cleanup_create EXIT
	trap 'exit 130' INT TERM

	local disk_xml="" nic_xml=""
	if [ "$disk_mb" -gt 0 ]; then
		mkdir -p "$VMG_LAB_DISKS"
		disk="$VMG_LAB_DISKS/$dom.raw"
		rm -f "$disk"
		if [ "$disk_zero" = 1 ]; then
			dd if=/dev/zero of="$disk" bs=1M count="$disk_mb" conv=fsync status=none
		else
			# Allocated up front: the first pass should measure writes, not block allocation.
			fallocate -l "${disk_mb}M" "$disk" 2>/dev/null || truncate -s "${disk_mb}M" "$disk"
		fi
		local drv="cache='none' io='native'"
		[ "$cache" = writeback ] && drv="cache='writeback' io='threads'"
		disk_xml="<disk type='file' device='disk'>
      <driver name='qemu' type='raw' $drv/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>"
	fi
	if [ "$nic" = 1 ]; then
		local n
		n=$(free_tap)
		tap="$VMG_TAP_PREFIX$n"
		mac=$(printf '52:54:00:c6:12:%02x' "$n")
		ip tuntap add dev "$tap" mode tap
		echo "$tap" >"$VMG_LAB_RUN/$dom.tap"
		echo "$ns" >"$VMG_LAB_RUN/$dom.ns"
		nic_xml="<interface type='ethernet'>
      <mac address='$mac'/>
      <target dev='$tap' managed='no'/>
      <model type='virtio'/>
    </interface>"
	fi

	: >"$console"
	cat >"$xml" <<EOF
<domain type='qemu'>
  <name>$dom</name>
  <metadata>
    <vmguard:tenant xmlns:vmguard="urn:vmguard:tenant:1">$tenant</vmguard:tenant>
  </metadata>
  <memory unit='MiB'>$mem</memory>
  <vcpu>$vcpus</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$VMG_LAB_CACHE/vmlinuz</kernel>
    <initrd>$initrd</initrd>
    <cmdline>$(base_cmdline) $args</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    $disk_xml
    $nic_xml
    <serial type='file'>
      <source path='$console'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
	local out
	out=$(vsh create "$xml" 2>&1) || die "virsh create $dom failed: $out"
	if [ -n "$tap" ]; then
		# QEMU keeps its tap fd across the move; libvirt can only open the tap by name in
		# its own namespace, which is why the move happens after create.
		ip link set "$tap" netns "$ns"
		ip -n "$ns" link set "$tap" master "$VMG_BR" up
	fi
	trap - EXIT INT TERM
	echo "$dom"
}

wait_ready() {
	[ $# -ge 1 ] || usage
	local dom timeout console t0 st
	dom=$(dom_name "$1")
	timeout=${2:-90}
	console=$(console_of "$dom")
	t0=$(date +%s.%N)
	local deadline=$((SECONDS + timeout))
	while :; do
		if [ -f "$console" ] && grep -q '^VMG ready' "$console"; then
			awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }'
			return 0
		fi
		if grep -q '^VMG error' "$console" 2>/dev/null; then
			echo "$vmg_prog: $dom reported an error:" >&2
			tail -n 20 "$console" >&2
			return 1
		fi
		st=$(vsh domstate "$dom" 2>/dev/null || echo gone)
		if [ "$st" != running ]; then
			echo "$vmg_prog: $dom is $st before 'VMG ready'; console tail:" >&2
			tail -n 20 "$console" >&2 2>/dev/null || true
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "$vmg_prog: $dom not ready after ${timeout}s; console tail:" >&2
			tail -n 20 "$console" >&2 2>/dev/null || true
			return 1
		fi
		sleep 0.2
	done
}

destroy_one() {
	local dom=$1 tap="" ns=""
	if vsh domstate "$dom" >/dev/null 2>&1; then
		vsh destroy "$dom" >/dev/null 2>&1 || true
	fi
	[ -s "$VMG_LAB_RUN/$dom.tap" ] && tap=$(cat "$VMG_LAB_RUN/$dom.tap")
	[ -s "$VMG_LAB_RUN/$dom.ns" ] && ns=$(cat "$VMG_LAB_RUN/$dom.ns")
	[ -n "$tap" ] && delete_tap "$tap" "$ns"
	rm -f "$VMG_LAB_DISKS/$dom.raw" "$VMG_LAB_RUN/$dom.tap" "$VMG_LAB_RUN/$dom.ns"
	return 0
}

destroy() {
	[ $# -eq 1 ] || usage
	need_root
	valid_name "$1" name
	local dom
	dom=$(dom_name "$1")
	libvirt_answers || log "warning: libvirtd does not answer; cleaning files and taps of $dom only"
	destroy_one "$dom"
	log "destroyed $dom"
}

list_doms() {
	libvirt_answers || return 0
	vsh list --all --name | grep "^$VMG_DOM_PREFIX" || true
}

destroy_all() {
	need_root
	local d f t ns
	for d in $(list_doms); do destroy_one "$d"; log "destroyed $d"; done
	# Taps or files of guests whose domain is already gone (libvirtd restarted, crash).
	for f in "$VMG_LAB_RUN"/"$VMG_DOM_PREFIX"*.tap "$VMG_LAB_RUN"/"$VMG_DOM_PREFIX"*.ns; do
		[ -e "$f" ] || continue
		d=$(basename "$f"); d=${d%.*}
		destroy_one "$d"
	done
	for t in $(list_taps_in ""); do delete_tap "$t" ""; done
	for ns in $(lab_namespaces); do
		for t in $(list_taps_in "$ns"); do delete_tap "$t" "$ns"; done
	done
	rm -f "$VMG_LAB_DISKS"/"$VMG_DOM_PREFIX"*.raw
}

info() {
	[ $# -eq 1 ] || usage
	local dom pid=""
	dom=$(dom_name "$1")
	[ -s "/var/run/libvirt/qemu/$dom.pid" ] && pid=$(cat "/var/run/libvirt/qemu/$dom.pid")
	echo "domain=$dom"
	echo "state=$(vsh domstate "$dom" 2>/dev/null || echo absent)"
	echo "console=$(console_of "$dom")"
	echo "tap=$(cat "$VMG_LAB_RUN/$dom.tap" 2>/dev/null || true)"
	echo "ns=$(cat "$VMG_LAB_RUN/$dom.ns" 2>/dev/null || true)"
	echo "mac=$(sed -n "s/.*<mac address='\([^']*\)'.*/\1/p" "$VMG_LAB_RUN/$dom.xml" 2>/dev/null || true)"
	echo "disk=$([ -e "$VMG_LAB_DISKS/$dom.raw" ] && echo "$VMG_LAB_DISKS/$dom.raw" || true)"
	echo "pid=$pid"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
create) create "$@" ;;
wait-ready) wait_ready "$@" ;;
destroy) destroy "$@" ;;
destroy-all) destroy_all ;;
info) info "$@" ;;
list) list_doms ;;
-h | --help | help) usage ;;
*) usage ;;
esac
