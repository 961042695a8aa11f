#!/usr/bin/env bash
# tests/clean-lab.sh: removes what this project's lab made on this host, and only that: its
# guests (vmg-*), namespaces (vmg*) and taps, the slow disk, the libvirtd/virtlogd the lab
# started, the guest image cache, disks, leases and run files, the lines lab/libvirtd.sh
# added to /etc/libvirt/qemu.conf, cgroups named after vmguard, kernel.task_delayacct back
# to 0 (the kernel's default). Packages stay. Used by tests/fresh.sh and tests/alone.sh.
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "clean-lab: must run as root" >&2; exit 1; }
say() { echo "clean-lab: $*" >&2; }
if [ -x lab/teardown.sh ]; then ./lab/teardown.sh >/dev/null 2>&1 || say "warning: lab/teardown.sh failed"; fi
# Guests of tests that use their own namespaces: every domain with the lab's prefix.
if command -v virsh >/dev/null 2>&1 && timeout 10 virsh -q -c qemu:///system list >/dev/null 2>&1; then
	for d in $(virsh -q -c qemu:///system list --all --name 2>/dev/null | grep '^vmg-'); do
		virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1
		virsh -q -c qemu:///system undefine "$d" >/dev/null 2>&1
	done
fi
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^vmg'); do ip netns del "$ns"; done
[ -x lab/slowdisk.sh ] && ./lab/slowdisk.sh down >/dev/null 2>&1
[ -x lab/libvirtd.sh ] && ./lab/libvirtd.sh stop >/dev/null 2>&1
rm -rf /var/cache/vmguard-lab /var/lib/vmguard-lab /run/vmguard-lab /run/vmguard /tmp/vmguard-demo
if [ -f /etc/libvirt/qemu.conf ]; then
	# lab/libvirtd.sh appends exactly these three lines.
	sed -i '/^# Added by vmguard lab\/libvirtd.sh/,+2d' /etc/libvirt/qemu.conf
fi
for d in /sys/fs/cgroup/*/vmguard.services /sys/fs/cgroup/vmguard.services; do
	[ -d "$d" ] || continue
	find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
done
[ -w /proc/sys/kernel/task_delayacct ] && echo 0 >/proc/sys/kernel/task_delayacct

