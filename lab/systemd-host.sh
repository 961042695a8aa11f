#!/usr/bin/env bash
# A Debian 12 guest image with systemd as PID 1 (cgroup v2 only, its default), libvirt with
# machined (systemd-container), dnsmasq and QEMU: the kind of KVM host admins run, to test the
# .deb and the unit on. Built from Debian packages with mmdebstrap, using this host's own apt
# sources, and cached under $VMG_LAB_CACHE/systemd-host, keyed by a stamp of its inputs (this
# script, the package list, the apt sources): a second `build` with the same inputs is a no-op.
#
#   ./lab/systemd-host.sh build     # builds when missing or stale; prints the directory
#   ./lab/systemd-host.sh path      # the directory: disk.img, vmlinuz, initrd.img, stamp
#   ./lab/systemd-host.sh clean     # removes the cached image
#
# Booting it (lab/README.md, "A systemd host"): root has no password and the serial console
# (ttyS0) logs root in by itself, so a test drives the guest over the console.
set -eu
. "$(dirname "$0")/lib.sh"

DIR=$VMG_LAB_CACHE/systemd-host
SUITE=bookworm
SOURCES=${VMG_SYSHOST_SOURCES:-/etc/apt/sources.list.d/debian.sources}
INCLUDE=systemd-sysv,dbus,linux-image-cloud-amd64,initramfs-tools,udev,kmod,libvirt-daemon-system,qemu-system-x86,dnsmasq,systemd-container
# Room left on the root file system beyond what the packages take: the .deb, a nested
# guest's disk and logs.
FREE_MIB=${VMG_SYSHOST_FREE_MIB:-1536}

stamp() {
	{
		cat "$0"
		echo "$SUITE $INCLUDE $FREE_MIB"
		cat "$SOURCES"
	} | sha256sum | cut -c1-16
}

build() {
	[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap into a directory, mke2fs -d keeps owners)"
	local want
	want=$(stamp)
	if [ -f "$DIR/stamp" ] && [ "$(cat "$DIR/stamp")" = "$want" ] &&
		[ -f "$DIR/disk.img" ] && [ -f "$DIR/vmlinuz" ] && [ -f "$DIR/initrd.img" ]; then
		log "systemd host image up to date ($DIR, stamp $want)"
		echo "$DIR"
		return 0
	fi
	for c in mmdebstrap mke2fs; do
		command -v "$c" >/dev/null || {
			log "installing mmdebstrap"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap e2fsprogs >/dev/null
		}
	done
	local t0 root
	# global: the EXIT trap runs after this function has returned
	SYSHOST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmg-syshost.XXXXXX")
	trap 'rm -rf "$SYSHOST_TMP"' EXIT
	root=$SYSHOST_TMP/root
	t0=$(date +%s)
	log "mmdebstrap $SUITE ($INCLUDE) from $SOURCES"
	# Customize hooks run with the finished tree as $1:
	#  - root without a password; the serial console logs root in (a test types commands);
	#  - / from the virtio disk; a hostname; no machine-id, so the first boot makes one.
	mmdebstrap --variant=minbase --include="$INCLUDE" \
		--customize-hook='chroot "$1" passwd -d root' \
		--customize-hook='mkdir -p "$1/etc/systemd/system/serial-getty@ttyS0.service.d"' \
		--customize-hook='printf "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - \$TERM\n" >"$1/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"' \
		--customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$1/etc/fstab"' \
		--customize-hook='echo vmg-systemd-host >"$1/etc/hostname"' \
		--customize-hook=': >"$1/etc/machine-id"' \
		"$SUITE" "$root" "$SOURCES" </dev/null >&2
	local kernel initrd
	kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
	initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n 1)
	[ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel or initrd in the image's /boot"
	local used_mib
	used_mib=$(du -sm "$root" | cut -f1)
	mkdir -p "$DIR"
	rm -f "$DIR/stamp" "$DIR/disk.img"
	cp "$kernel" "$DIR/vmlinuz"
	cp "$initrd" "$DIR/initrd.img"
	log "mke2fs -t ext4 -d: ${used_mib} MiB of files + ${FREE_MIB} MiB free"
	mke2fs -q -t ext4 -L vmg-root -d "$root" "$DIR/disk.img" "$((used_mib * 11 / 10 + FREE_MIB))M"
	echo "$want" >"$DIR/stamp"
	log "systemd host image built in $(($(date +%s) - t0)) s: $DIR"
	echo "$DIR"
}

case "${1:-}" in
build) build ;;
path) echo "$DIR" ;;
clean) rm -rf "$DIR" ;;
*) die "usage: $0 build|path|clean" ;;
esac
