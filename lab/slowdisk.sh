#!/usr/bin/env bash
# lab/slowdisk.sh up|down|status
# One emulated slow disk shared by the lab's guest images and dnsmasq's lease file, so the
# story (a guest's writes delay the host's DHCP server) is a property of the lab and not of
# the machine's own disk.
#
# Why: on one machine of this kind dnsmasq's lease fsync waited ~0.5-0.7 s (p90) behind a
# guest's writes; on another (fast virtio disk), a guest writing ~1 GB/s left fsync p90 at
# 2.7 ms and a host-side DHCP client saw no harm at all. A spinning disk's bandwidth is what
# makes the harm, so the lab brings one.
#
# How, with what this kernel has (no device-mapper, no nbd, no modules to load; FUSE and
# loop are built in): qemu-storage-daemon exports a sparse raw file through a throttle
# filter as a FUSE file; a loop device on that file carries an ext4 mounted at $SLOW_MNT.
# Every request of every writer (the guests' QEMU, dnsmasq's fsync) passes the one throttle
# queue, as on a real disk: a flush waits for the writes queued before it.
# Seen here: fsync of a small file every 100 ms, p50 3.9 ms calm -> 82 ms while dd wrote
# O_DIRECT to the same filesystem at the 50 MiB/s limit.
#
# The loop device runs buffered: with --direct-io=on over the FUSE file, mkfs.ext4 left a
# journal that failed its checksum at mount.
#
#   up      (idempotent) prints the mount point; subdirs disks/ and leases/ exist
#   down    unmounts, detaches the loop, stops the daemon, deletes the backing file
#   status  exit 0 when mounted and served
# Environment: VMG_SLOW_BPS (bytes/s, default 52428800), VMG_SLOW_SIZE_MB (default 16384, sparse),
# VMG_SLOW_DIRTY_MB (dirty page cache allowed for it, default 64), VMG_SLOW_DIR (default /var/lib/vmguard-lab/slowdisk; must not be tmpfs).
set -eu
. "$(dirname "$0")/lib.sh"

SLOW_DIR=${VMG_SLOW_DIR:-/var/lib/vmguard-lab/slowdisk}
SLOW_MNT=$SLOW_DIR/mnt
SLOW_BPS=${VMG_SLOW_BPS:-52428800}
SLOW_SIZE_MB=${VMG_SLOW_SIZE_MB:-16384}
SLOW_DIRTY_MB=${VMG_SLOW_DIRTY_MB:-64}
BACK=$SLOW_DIR/backing.raw
FUSE_FILE=$SLOW_DIR/fuse.img
PIDF=$SLOW_DIR/qsd.pid
LOOPF=$SLOW_DIR/loop

usage() { echo "usage: $0 up|down|status" >&2; exit 2; }

qsd_alive() {
	[ -s "$PIDF" ] && [ -r "/proc/$(cat "$PIDF")/comm" ] &&
		[ "$(cat "/proc/$(cat "$PIDF")/comm")" = qemu-storage-da ] # comm: 15 chars
}
mounted() { mountpoint -q "$SLOW_MNT" 2>/dev/null; }

status() {
	mounted && qsd_alive && [ -w "$SLOW_MNT/disks" ]
}

up() {
	need_root
	need_cmd qemu-storage-daemon losetup mkfs.ext4 mountpoint flock
	mkdir -p "$SLOW_DIR"
	exec 7>"$SLOW_DIR/.lock"
	flock 7
	if status; then
		echo "$SLOW_MNT"
		return 0
	fi
	# Half made by an earlier run that died: start over.
	down_locked >/dev/null 2>&1 || true
	case $SLOW_BPS in '' | *[!0-9]*) die "bad VMG_SLOW_BPS '$SLOW_BPS'" ;; esac
	case $SLOW_SIZE_MB in '' | *[!0-9]*) die "bad VMG_SLOW_SIZE_MB '$SLOW_SIZE_MB'" ;; esac
	[ "$(stat -f -c %T "$SLOW_DIR")" != tmpfs ] || die "$SLOW_DIR is on tmpfs (set VMG_SLOW_DIR)"
	mkdir -p "$SLOW_MNT"
	rm -f "$BACK" "$FUSE_FILE"
	truncate -s "${SLOW_SIZE_MB}M" "$BACK"
	: >"$FUSE_FILE"
	qemu-storage-daemon \
		--object "throttle-group,id=slow,limits.bps-total=$SLOW_BPS" \
		--blockdev "driver=file,node-name=back,filename=$BACK" \
		--blockdev "driver=throttle,node-name=thr,throttle-group=slow,file=back" \
		--export "type=fuse,id=slowexp,node-name=thr,mountpoint=$FUSE_FILE,writable=on" \
		--daemonize --pidfile "$PIDF" 7>&- || die "qemu-storage-daemon did not start"
	local loop
	loop=$(losetup -f --show "$FUSE_FILE") || die "losetup on $FUSE_FILE failed"
	echo "$loop" >"$LOOPF"
	# A spinning disk with a small cache: at most SLOW_DIRTY_MB of this disk's data may wait
	# dirty in the host's page cache (strict_limit: even below the global background
	# threshold). Without it a cache=writeback guest left ~3 GB dirty here (20% of 24 GiB
	# is allowed host-wide) and pausing it took over a minute while QEMU flushed at 50 MiB/s.
	local bdi=/sys/block/${loop#/dev/}/bdi
	echo $((SLOW_DIRTY_MB * 1048576)) >"$bdi/max_bytes" || die "cannot write $bdi/max_bytes"
	echo 1 >"$bdi/strict_limit" || die "cannot write $bdi/strict_limit"
	mkfs.ext4 -q -F "$loop" 7>&- || die "mkfs.ext4 $loop failed"
	mount "$loop" "$SLOW_MNT" || die "mount $loop $SLOW_MNT failed"
	mkdir -p "$SLOW_MNT/disks" "$SLOW_MNT/leases"
	log "slow disk up: $loop on $SLOW_MNT, $((SLOW_BPS / 1048576)) MiB/s shared by every writer"
	echo "$SLOW_MNT"
}

down_locked() {
	local i loop
	if mounted; then
		for i in $(seq 50); do
			umount "$SLOW_MNT" 2>/dev/null && break
			sleep 0.2
		done
		mounted && die "$SLOW_MNT still busy (a guest or dnsmasq still uses it?)"
	fi
	if [ -s "$LOOPF" ]; then
		loop=$(cat "$LOOPF")
		losetup -d "$loop" 2>/dev/null || true
		rm -f "$LOOPF"
	fi
	if qsd_alive; then
		kill "$(cat "$PIDF")"
		for i in $(seq 50); do qsd_alive || break; sleep 0.1; done
	fi
	rm -f "$PIDF"
	# The FUSE mount point goes with the daemon; a daemon killed hard leaves it mounted.
	if awk -v f="$FUSE_FILE" '$2 == f { found = 1 } END { exit !found }' /proc/mounts; then umount -l "$FUSE_FILE"; fi
	rm -f "$BACK" "$FUSE_FILE"
	log "slow disk down"
}

down() {
	need_root
	[ -d "$SLOW_DIR" ] || return 0
	exec 7>"$SLOW_DIR/.lock"
	flock 7
	down_locked
}

[ $# -eq 1 ] || usage
case $1 in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
