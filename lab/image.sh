#!/usr/bin/env bash
# lab/image.sh [--force]
# Builds the lab guest: a Debian cloud kernel and a busybox initramfs whose /init runs the
# role named on the kernel command line (lab/guest/init). Output, in $VMG_LAB_CACHE:
#   vmlinuz, initrd.img, stamp (hash of every input: rebuilt when one changes)
# Prints the cache directory on stdout. Needs apt (for the kernel .deb, cached after the
# first download), busybox-static, cpio, gcc with static libc.
set -eu
. "$(dirname "$0")/lib.sh"

# The virtio drivers are plain modules and the package has no modules.dep: this list is
# also the insmod order used by guest/init.
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk"

force=0
[ "${1:-}" = "--force" ] && force=1

need_cmd apt-cache apt-get dpkg-deb dpkg-query cpio gzip gcc sha256sum
[ -x /bin/busybox ] || die "/bin/busybox missing (install busybox-static)"
# A dynamic busybox would need a libc in the initramfs; only busybox-static's works alone.
if readelf -l /bin/busybox 2>/dev/null | grep -q 'program interpreter'; then
	die "/bin/busybox is dynamically linked (install busybox-static, not busybox)"
fi

# Newest linux-image-6.1.0-N-cloud-amd64 apt knows, unless the caller pins one.
pick_kernel() {
	local p
	if [ -n "${VMG_LAB_KERNEL_PKG:-}" ]; then
		echo "$VMG_LAB_KERNEL_PKG"
		return
	fi
	p=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
		grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | sort -V | tail -n 1 || true)
	if [ -z "$p" ] && [ "$(id -u)" -eq 0 ]; then
		# A fresh machine may have no apt lists yet (deps.sh updates only when it installs).
		apt-get update -qq >/dev/null 2>&1 || true
		p=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
			grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | sort -V | tail -n 1 || true)
	fi
	if [ -z "$p" ]; then
		# No apt lists and no network: fall back on a .deb already in the cache.
		p=$(ls "$VMG_LAB_CACHE"/debs/ 2>/dev/null |
			sed -nE 's/^(linux-image-6\.1\.0-[0-9]+-cloud-amd64)_.*\.deb$/\1/p' | sort -V | tail -n 1)
	fi
	[ -n "$p" ] || die "no linux-image-6.1.0-*-cloud-amd64 known to apt-cache (run apt-get update)"
	echo "$p"
}

mkdir -p "$VMG_LAB_CACHE/debs"
# Tests and demos may build at the same time: one builds, the others wait and find it done.
exec 8>"$VMG_LAB_CACHE/.lock"
flock 8
kpkg=$(pick_kernel)
kver=$(apt-cache policy "$kpkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$kver" ] || [ "$kver" = "(none)" ]; then
	kver=$(ls "$VMG_LAB_CACHE/debs/" | sed -nE "s/^${kpkg}_([^_]+)_amd64\.deb$/\1/p" | sort -V | tail -n 1)
fi
[ -n "$kver" ] || die "no version of $kpkg available"
# apt-get download names files with the epoch's ':' escaped as %3a.
deb="$VMG_LAB_CACHE/debs/${kpkg}_${kver//:/%3a}_amd64.deb"
if [ ! -s "$deb" ]; then
	log "downloading $kpkg $kver"
	(cd "$VMG_LAB_CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "$kpkg=$kver" >/dev/null) ||
		die "apt-get download $kpkg=$kver failed"
	[ -s "$deb" ] || die "apt-get download did not produce $deb"
fi

bbver=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
gccver=$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)
stamp=$( {
	cat "$0" "$VMG_LAB_DIR/guest/init" "$VMG_LAB_DIR/guest/udhcpc.script" "$VMG_LAB_DIR/guest/vmgtool.c"
	echo "$kpkg $kver busybox $bbver gcc $gccver $MODULES"
} | sha256sum | cut -d' ' -f1)

if [ $force -eq 0 ] && [ -s "$VMG_LAB_CACHE/stamp" ] && [ "$(cat "$VMG_LAB_CACHE/stamp")" = "$stamp" ] &&
	[ -s "$VMG_LAB_CACHE/vmlinuz" ] && [ -s "$VMG_LAB_CACHE/initrd.img" ]; then
	log "up to date ($kpkg $kver)"
	echo "$VMG_LAB_CACHE"
	exit 0
fi

work=$(mktemp -d /tmp/vmg-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

log "building guest image from $kpkg $kver, busybox-static $bbver"
kdir=$work/k
mkdir -p "$kdir"
# Only the kernel and nine modules: unpacking the whole package would take ~10x longer.
patterns=("./boot/vmlinuz-*")
for m in $MODULES; do patterns+=("./lib/modules/*/$m.ko"); done
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" --wildcards "${patterns[@]}" ||
	die "cannot extract kernel and modules from $deb"

root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules,usr/bin,usr/sbin}
for m in $MODULES; do
	f=$(find "$kdir/lib/modules" -name "$m.ko" | head -n 1)
	[ -n "$f" ] || die "module $m.ko not in $kpkg"
	cp "$f" "$root/lib/modules/"
done
cp /bin/busybox "$root/bin/busybox"
# `busybox --list` includes busybox itself: linking it would replace the binary by a self-link.
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] && continue
	ln -s busybox "$root/bin/$a"
done
gcc -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$root/bin/vmgtool" "$VMG_LAB_DIR/guest/vmgtool.c" ||
	die "cannot build vmgtool statically (is libc6-dev installed?)"
install -m 0755 "$VMG_LAB_DIR/guest/init" "$root/init"
install -m 0755 "$VMG_LAB_DIR/guest/udhcpc.script" "$root/etc/udhcpc.script"
# The kernel opens /dev/console before /init runs; without the node init has no output.
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)
cp "$vmlinuz" "$work/vmlinuz"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$work/initrd.img")

# Replace the outputs together (rename is atomic) so a guest never boots a mismatched pair.
mv -f "$work/vmlinuz" "$VMG_LAB_CACHE/vmlinuz"
mv -f "$work/initrd.img" "$VMG_LAB_CACHE/initrd.img"
echo "$stamp" >"$VMG_LAB_CACHE/stamp"
echo "$kpkg $kver" >"$VMG_LAB_CACHE/kernel-version"
# Older kernel downloads are never used again.
find "$VMG_LAB_CACHE/debs" -name 'linux-image-*.deb' ! -path "$deb" -delete
log "built $VMG_LAB_CACHE/vmlinuz and initrd.img ($(du -k "$VMG_LAB_CACHE/initrd.img" | cut -f1) KiB)"
echo "$VMG_LAB_CACHE"
