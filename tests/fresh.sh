#!/usr/bin/env bash
# tests/fresh.sh [--keep-clone]: the suite as a fresh machine would run it.
# 1. Removes what this project's lab made on this host, and only that: its guests (vmg-*),
#    namespaces and taps (lab/teardown.sh), the slow disk, the libvirtd/virtlogd the lab
#    started, the guest image cache, disks, leases and run files, the lines lab/libvirtd.sh
#    added to /etc/libvirt/qemu.conf, cgroups named after vmguard, kernel.task_delayacct
#    back to 0 (the kernel's default).
# 2. Clones the committed HEAD into a new directory and runs `CI=true bash .ci/run` there,
#    as CI does. Packages stay installed (removing them would touch the host's own).
# Prints the suite's last line and exits with its status. Needs root.
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "fresh: must run as root" >&2; exit 1; }
keep=0
[ "${1:-}" = --keep-clone ] && keep=1
repo=$(pwd)

say() { echo "fresh: $*" >&2; }

say "removing the lab's state"
"$repo/tests/clean-lab.sh"

clone=$(mktemp -d /tmp/vmguard-fresh.XXXXXX)
say "cloning $(git -C "$repo" rev-parse --short HEAD) into $clone"
git clone -q "$repo" "$clone/vmguard" || { say "clone failed"; exit 1; }
cd "$clone/vmguard"
log=$clone/ci.log
start=$SECONDS
CI=true bash .ci/run </dev/null 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
say "CI=true bash .ci/run: exit $rc in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s; log $log"
echo "fresh: last line: $(grep -E 'passed, [0-9]+ failed' "$log" | tail -n 1)"
if [ $keep -eq 0 ] && [ $rc -eq 0 ]; then
	cp "$log" /tmp/vmguard-fresh-last.log
	rm -rf "$clone"
	say "log kept in /tmp/vmguard-fresh-last.log"
fi
exit "$rc"
