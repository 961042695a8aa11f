#!/usr/bin/env bash
# The actuator on this host's real cgroup v1 hierarchies, through tests/tools/act_tool:
# a busy loop in <cpu>/vmgtest-PID/vcpu0 (libvirt's layout) drops to ~0.2 core when the
# domain directory gets a 0.2-core quota and comes back when restored; a blkio write_bps
# rule on the root disk appears and goes; a tool SIGKILLed while throttling leaves a journal
# from which "restore" puts the originals back; SIGTERM restores by itself; an admin's
# change is kept (drift); a read-only state dir refuses to throttle; a vanished VM is
# forgotten. Needs root and cgroup v1 cpu + blkio (exit 77 otherwise: a failure in CI).
set -u
cd "$(dirname "$0")/../.."
. tests/integration/prepare.sh
BUILD=${BUILD:-build}
TOOL=$BUILD/tests/act_tool
CPU_ROOT=/sys/fs/cgroup/cpu
BLKIO_ROOT=/sys/fs/cgroup/blkio
NAME=vmgtest-$$
UUID=7e57ac70-0000-4000-8000-00000000$(printf '%04x' $(($$ % 65536)))
CPUDIR=$CPU_ROOT/$NAME
BLKDIR=$BLKIO_ROOT/$NAME
STATE=$(mktemp -d /tmp/vmg-act-real-XXXXXX)
RO=$STATE/ro
passed=0 failed=0
busy_pid= hold_pid=

skip() { echo "SKIP: $*"; exit 77; }
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # DESCRIPTION COMMAND...
	local what=$1; shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
check_eq() { # DESCRIPTION GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi
}

[ "$(id -u)" -eq 0 ] || skip "needs root to create cgroups"
[ -w "$CPU_ROOT/cpu.cfs_quota_us" ] || [ -e "$CPU_ROOT/cpu.cfs_quota_us" ] || skip "no cgroup v1 cpu hierarchy at $CPU_ROOT"
[ -e "$BLKIO_ROOT/blkio.throttle.write_bps_device" ] || skip "no cgroup v1 blkio hierarchy at $BLKIO_ROOT"
if [ ! -x "$TOOL" ]; then
	make --no-print-directory "$TOOL" >/dev/null || { echo "cannot build $TOOL"; echo "0 passed, 1 failed"; exit 1; }
fi

cleanup() {
	[ -n "$hold_pid" ] && kill -9 "$hold_pid" 2>/dev/null
	[ -n "$busy_pid" ] && kill -9 "$busy_pid" 2>/dev/null
	wait 2>/dev/null
	local d p
	for d in "$CPUDIR/vcpu0" "$CPUDIR" "$BLKDIR"; do
		[ -d "$d" ] || continue
		while read -r p; do echo "$p" >"$(dirname "$d")/cgroup.procs" 2>/dev/null; done <"$d/cgroup.procs"
	done
	for d in "$CPUDIR/vcpu0" "$CPUDIR" "$BLKDIR"; do [ -d "$d" ] && rmdir "$d"; done
	mountpoint -q "$RO" 2>/dev/null && umount "$RO"
	[ -x lab/guest.sh ] && virsh -c "${VMG_LAB_URI:-qemu:///system}" domstate "vmg-act$$" >/dev/null 2>&1 &&
		lab/guest.sh destroy "act$$" >/dev/null 2>&1
	rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

tool() { "$TOOL" -s "$STATE" "$@"; }

# CPU time of PID over SECONDS, in cores (utime + stime from /proc/PID/stat).
cores_of() { # PID SECONDS
	local hz t0 t1
	hz=$(getconf CLK_TCK)
	t0=$(awk '{print $14 + $15}' "/proc/$1/stat")
	sleep "$2"
	t1=$(awk '{print $14 + $15}' "/proc/$1/stat")
	awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$2" 'BEGIN { printf "%.2f", (b - a) / hz / s }'
}
between() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x >= lo && x <= hi) }'; }

# The whole disk under /: blkio rules apply to disks, not partitions.
root_disk() {
	local dev sys
	dev=$(awk '$5 == "/" { print $3; exit }' /proc/self/mountinfo)
	sys=/sys/dev/block/$dev
	if [ -e "$sys/partition" ]; then dev=$(cat "$(readlink -f "$sys")/../dev"); fi
	echo "$dev"
}

mkdir "$CPUDIR" "$CPUDIR/vcpu0" "$BLKDIR" || { echo "cannot create cgroups"; echo "0 passed, 1 failed"; exit 1; }

# ---- CPU: a domain quota bounds a vCPU thread in a child group ----
bash -c 'while :; do :; done' &
busy_pid=$!
echo "$busy_pid" >"$CPUDIR/vcpu0/cgroup.procs"
check_eq "original quota" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "-1"
free=$(cores_of "$busy_pid" 2)
# Other work on this 2-core host takes its share: "free" is well above the cap, not 1.0.
check "busy loop runs free ($free cores)" between "$free" 0.4 1.2
out=$(tool cpu "$UUID" "$NAME" "$NAME" 0.2)
check_eq "set 0.2 core" "$out" "cpu: 1"
check_eq "quota written" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "20000"
check_eq "child quota untouched" "$(cat "$CPUDIR/vcpu0/cpu.cfs_quota_us")" "-1"
check_eq "get-cpu" "$(tool get-cpu "$NAME")" "0.200"
out=$(tool cpu "$UUID" "$NAME" "$NAME" 0.2)
check_eq "same value again: no write" "$out" "cpu: 0"
capped=$(cores_of "$busy_pid" 3)
check "domain quota caps the vcpu0 child ($capped cores)" between "$capped" 0.12 0.28
throttled=$(awk '$1 == "nr_throttled" { print $2 }' "$CPUDIR/cpu.stat")
check "cpu.stat counts throttled periods ($throttled)" test "${throttled:-0}" -gt 0
out=$(tool restore)
check_eq "restore" "$out" "restore: 1"
check_eq "original quota back" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "-1"
again=$(cores_of "$busy_pid" 2)
check "busy loop free again ($again cores)" between "$again" 0.4 1.2

# v1 refuses a parent quota below a child's: a domain with vcpu quotas cannot be capped
# lower at the domain level (documented in controller/act/actuator.h).
echo 50000 >"$CPUDIR/vcpu0/cpu.cfs_quota_us"
out=$(tool cpu "$UUID" "$NAME" "$NAME" 0.2 2>&1)
check "parent quota below child's quota fails permanently" grep -q "Invalid argument (permanent)" <<<"$out"
check_eq "nothing left in the journal after the failure" "$(tool restore)" "restore: 0"
echo -1 >"$CPUDIR/vcpu0/cpu.cfs_quota_us"

# ---- blkio: write_bps on the root disk ----
DEV=$(root_disk)
check "root disk found ($DEV)" test -n "$DEV"
out=$(tool io "$UUID" "$NAME" "$NAME" "$DEV" keep 20971520 keep keep)
check_eq "set write_bps" "$out" "io: 1"
check_eq "rule written" "$(cat "$BLKDIR/blkio.throttle.write_bps_device")" "$DEV 20971520"
check_eq "other files untouched" "$(cat "$BLKDIR/blkio.throttle.read_bps_device")" ""
check_eq "same rule again: no write" "$(tool io "$UUID" "$NAME" "$NAME" "$DEV" keep 20971520 keep keep)" "io: 0"
check_eq "restore io" "$(tool restore "$UUID")" "restore: 1"
check_eq "rule removed" "$(cat "$BLKDIR/blkio.throttle.write_bps_device")" ""

# ---- SIGKILL mid-throttle, then restore from the journal ----
hold() { # ARGS... : starts the tool holding a throttle, waits for "holding"
	local fifo=$STATE/fifo line
	rm -f "$fifo"; mkfifo "$fifo"
	exec 3<>"$fifo" # read-write: never blocks, and the tool never writes to a closed pipe
	"$TOOL" -s "$STATE" "$@" hold >"$fifo" 2>&1 &
	hold_pid=$!
	while read -r -t 10 line <&3; do [ "$line" = holding ] && break; done
}
hold cpu "$UUID" "$NAME" "$NAME" 0.2
tool io "$UUID" "$NAME" "$NAME" "$DEV" keep 10485760 keep keep >/dev/null
check_eq "held quota" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "20000"
kill -9 "$hold_pid"; wait "$hold_pid" 2>/dev/null; hold_pid=
exec 3<&-
check_eq "quota still throttled after SIGKILL" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "20000"
check "journal survived" grep -q cpu.cfs_quota_us "$STATE/journal.json"
check_eq "restore after crash" "$(tool restore)" "restore: 2"
check_eq "quota back after crash" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "-1"
check_eq "blkio rule gone after crash" "$(cat "$BLKDIR/blkio.throttle.write_bps_device")" ""

# ---- SIGTERM restores by itself ----
hold cpu "$UUID" "$NAME" "$NAME" 0.3
check_eq "held 0.3 core" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "30000"
kill -TERM "$hold_pid"; wait "$hold_pid"; rc=$?; hold_pid=
exec 3<&-
check_eq "SIGTERM exit status" "$rc" "0"
check_eq "quota restored at SIGTERM" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "-1"

# ---- drift: an admin's value is never overwritten ----
tool cpu "$UUID" "$NAME" "$NAME" 0.2 >/dev/null
echo 70000 >"$CPUDIR/cpu.cfs_quota_us"
check_eq "restore with drift restores nothing" "$(tool restore 2>/dev/null)" "restore: 0"
check_eq "admin's value kept" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "70000"
echo -1 >"$CPUDIR/cpu.cfs_quota_us"

# ---- read-only state dir: refuse to throttle ----
mkdir -p "$RO" && mount -t tmpfs -o ro,size=1m vmgtest "$RO"
out=$("$TOOL" -s "$RO" cpu "$UUID" "$NAME" "$NAME" 0.2 2>&1)
check "read-only journal refuses" grep -q "Read-only file system" <<<"$out"
check_eq "no quota written without a journal" "$(cat "$CPUDIR/cpu.cfs_quota_us")" "-1"

# ---- vanished VM: its entries are dropped quietly ----
tool cpu "$UUID" "$NAME" "$NAME" 0.2 >/dev/null
kill -9 "$busy_pid"; wait "$busy_pid" 2>/dev/null; busy_pid=
rmdir "$CPUDIR/vcpu0" "$CPUDIR"
check_eq "restore of a vanished VM" "$(tool restore)" "restore: 0"
check "journal emptied" grep -q '"entries": \[\]' "$STATE/journal.json"

# ---- libvirt block I/O tune on a lab guest with a disk (lab/guest.sh) ----
URI=${VMG_LAB_URI:-qemu:///system}
GUEST=act$$
virsh_wbps() { virsh -c "$URI" blkdeviotune "vmg-$GUEST" vda --live | awk '$1 == "write_bytes_sec:" { print $2 }'; }
if [ -x lab/guest.sh ] && [ -x lab/libvirtd.sh ]; then
	guest_up=0
	if lab/libvirtd.sh start >"$STATE/libvirtd.log" 2>&1 &&
		lab/guest.sh create "$GUEST" idle --disk 64 >"$STATE/guest.log" 2>&1; then
		guest_up=1
		ok "lab guest vmg-$GUEST created"
	else
		fail "lab guest: $(tail -n 3 "$STATE/libvirtd.log" "$STATE/guest.log" | tr '\n' ' ')"
	fi
	if [ $guest_up = 1 ]; then
		GUUID=$(virsh -c "$URI" domuuid "vmg-$GUEST" | head -n 1)
		check_eq "blkiotune original" "$(virsh_wbps)" "0"
		check_eq "blkiotune set" "$(tool -u "$URI" tune "$GUUID" "vmg-$GUEST" vda write_bytes_sec 5242880 2>/dev/null)" "tune: 1"
		check_eq "libvirt sees the limit" "$(virsh_wbps)" "5242880"
		check_eq "blkiotune same value: no set" "$(tool -u "$URI" tune "$GUUID" "vmg-$GUEST" vda write_bytes_sec 5242880 2>/dev/null)" "tune: 0"
		check_eq "blkiotune restore" "$(tool -u "$URI" tune-restore 2>/dev/null)" "tune-restore: 1"
		check_eq "libvirt limit back to 0" "$(virsh_wbps)" "0"
		check "unknown disk is 'gone'" grep -q "No such device (gone)" \
			<<<"$(tool -u "$URI" tune "$GUUID" "vmg-$GUEST" vdz write_bytes_sec 5 2>&1)"

		hold -u "$URI" tune "$GUUID" "vmg-$GUEST" vda write_bytes_sec 1048576
		check_eq "held blkiotune" "$(virsh_wbps)" "1048576"
		kill -9 "$hold_pid"; wait "$hold_pid" 2>/dev/null; hold_pid=
		exec 3<&-
		check_eq "blkiotune still set after SIGKILL" "$(virsh_wbps)" "1048576"
		check_eq "blkiotune restore after crash" "$(tool -u "$URI" tune-restore 2>/dev/null)" "tune-restore: 1"
		check_eq "libvirt limit back after crash" "$(virsh_wbps)" "0"

		tool -u "$URI" tune "$GUUID" "vmg-$GUEST" vda write_bytes_sec 5242880 >/dev/null 2>&1
		virsh -c "$URI" blkdeviotune "vmg-$GUEST" vda --write-bytes-sec 2097152 --live >/dev/null
		check_eq "blkiotune drift: nothing restored" "$(tool -u "$URI" tune-restore 2>/dev/null)" "tune-restore: 0"
		check_eq "admin's blkiotune kept" "$(virsh_wbps)" "2097152"

		tool -u "$URI" tune "$GUUID" "vmg-$GUEST" vda write_bytes_sec 5242880 >/dev/null 2>&1
		lab/guest.sh destroy "$GUEST" >/dev/null 2>&1
		check_eq "blkiotune of a vanished guest" "$(tool -u "$URI" tune-restore 2>/dev/null)" "tune-restore: 0"
		check "journal emptied of blkiotune" grep -q '"entries": \[\]' "$STATE/journal.json"
	fi
else
	fail "lab/guest.sh and lab/libvirtd.sh are part of the tree: the blkiotune half cannot run"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
