# Shared by the lab scripts (sourced, not run). Paths and names every lab script agrees on;
# each can be overridden from the environment so tests and demos can run side by side.
#   VMG_LAB_RUN    run dir: consoles, domain XML, dnsmasq pid/leases/log  (/run/vmguard-lab)
#   VMG_LAB_CACHE  guest kernel + initramfs cache                         (/var/cache/vmguard-lab)
#   VMG_LAB_DISKS  guest disk images; must be on the host disk, never tmpfs (/var/lib/vmguard-lab/disks)
#   VMG_LAB_NS     lab network namespace                                  (vmglab)
#   VMG_LAB_URI    libvirt URI                                            (qemu:///system)

VMG_LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMG_LAB_RUN=${VMG_LAB_RUN:-/run/vmguard-lab}
VMG_LAB_CACHE=${VMG_LAB_CACHE:-/var/cache/vmguard-lab}
VMG_LAB_DISKS=${VMG_LAB_DISKS:-/var/lib/vmguard-lab/disks}
VMG_LAB_NS=${VMG_LAB_NS:-vmglab}
VMG_LAB_URI=${VMG_LAB_URI:-qemu:///system}

# Everything the lab creates carries one of these prefixes, so cleanup can find its own
# objects and never touch anything else on the host.
VMG_DOM_PREFIX=vmg-
VMG_TAP_PREFIX=vmgt

# Lab network: the benchmarking range 198.18.0.0/15, never the host's own interfaces.
VMG_BR=br0
VMG_GW=198.18.0.1
VMG_NET_PREFIX=24

vmg_prog=$(basename "$0" .sh)

log() { echo "$vmg_prog: $*" >&2; }
die() { echo "$vmg_prog: error: $*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (libvirtd, network namespaces, taps)"
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "command '$c' not found (run lab/deps.sh)"
	done
}

vsh() { virsh -q -c "$VMG_LAB_URI" "$@"; }

# True when libvirtd answers on the lab URI.
libvirt_answers() { timeout 10 virsh -q -c "$VMG_LAB_URI" list >/dev/null 2>&1; }

# Domain name with the lab prefix added once: "victim" and "vmg-victim" name the same guest.
dom_name() {
	case $1 in
	"$VMG_DOM_PREFIX"*) echo "$1" ;;
	*) echo "$VMG_DOM_PREFIX$1" ;;
	esac
}

netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# Lab taps in the root namespace and in every namespace the lab recorded.
lab_namespaces() {
	local f ns
	{
		echo "$VMG_LAB_NS"
		for f in "$VMG_LAB_RUN"/*.netns; do
			[ -e "$f" ] && basename "$f" .netns
		done
	} | sort -u | while read -r ns; do
		netns_exists "$ns" && echo "$ns"
	done
	return 0
}

list_taps_in() { # NS ("" = root namespace)
	local ns=$1
	if [ -z "$ns" ]; then
		ip -o link show 2>/dev/null
	else
		ip -n "$ns" -o link show 2>/dev/null
	fi | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${VMG_TAP_PREFIX}[0-9]+$" || true
}

# Kill a process recorded in PIDFILE if it is still COMM (pids get reused); waits up to 5 s.
kill_pidfile() { # PIDFILE COMM
	local pf=$1 comm=$2 pid i
	[ -s "$pf" ] || { rm -f "$pf"; return 0; }
	pid=$(cat "$pf")
	if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$comm" ]; then
		kill "$pid" 2>/dev/null || true
		for i in $(seq 50); do
			[ -e "/proc/$pid" ] || break
			sleep 0.1
		done
		if [ -e "/proc/$pid" ]; then
			log "$comm (pid $pid) ignored SIGTERM for 5 s, sending SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$pf"
}
