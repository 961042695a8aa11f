#!/usr/bin/env bash
# Issue 9, "Real cgroup v2": this host is cgroup v1, so vmguard's probes (cgroup, procfs,
# rates) and its cgroup actuator + journal run inside a lab guest whose kernel mounts a pure
# cgroup2 tree. The guest boots the lab kernel with the lab initramfs plus a second archive
# (tests/v2guest/init as /init, the static tests/v2guest/v2_selftest), writes cpu.max and
# io.max on its own virtio disk through the actuator, measures their effect from the
# cgroup's counters, restores through the journal, and prints "V2 ok/not ok" lines on its
# serial console; this script relays them. The guest is made by lab/guest.sh (role idle,
# whose cmdline the v2 /init ignores, with --initrd for the combined archive and
# --disk-zero); only the domain vmg-v2-PID is ever destroyed.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd virsh cpio gzip dd readelf
cd "$T_ROOT"
. ./lab/lib.sh

# Boot ~5 s and the selftest ~25 s on an idle 2-core host; other lab guests running at the
# same time slow a TCG guest several-fold.
TIMEOUT_S=${VMG_V2_TIMEOUT:-180}
NAME=v2-$$
DOM=vmg-$NAME
WORK="$VMG_LAB_RUN/$DOM"
# Where lab/guest.sh sends the serial console.
CONSOLE="$VMG_LAB_RUN/$DOM.console"

destroy_mine() {
	# Destroys this one domain and deletes its disk image (guest.sh never touches others).
	./lab/guest.sh destroy "$NAME" >/dev/null 2>&1 || true
	rm -rf "$WORK"
	rm -f "$CONSOLE" "$VMG_LAB_RUN/$DOM.xml"
}
on_exit destroy_mine

need_libvirtd
need_lab_image
# tests/v2guest/module.mk, read by the top Makefile, defines these targets.
if [ "${BUILD:-build}" = build-asan ]; then
	# make check SANITIZE=1: the ASan+UBSan build, dynamic, packed with its libraries.
	check "v2 selftest built with ASan+UBSan" make --no-print-directory v2guest-asan
	BIN=build-asan/v2guest/v2_selftest
	SAN=1
else
	check "v2 selftest built statically" make --no-print-directory v2guest
	BIN=build/v2guest/v2_selftest
	SAN=0
fi
if [ ! -x "$BIN" ] || [ ! -s "$VMG_LAB_CACHE/initrd.img" ] || ! libvirt_answers; then
	t_fail "prerequisites for the v2 guest"
	finish
fi

mkdir -p "$WORK/root/bin" "$WORK/root/run" "$VMG_LAB_DISKS"
install -m 0755 tests/v2guest/init "$WORK/root/init"
install -m 0755 "$BIN" "$WORK/root/bin/v2_selftest"
if [ $SAN = 1 ]; then
	# The loader and every library at the path ldd resolved it to on this host.
	for lib in $(ldd "$BIN" | grep -oE '/[^ ]+'); do
		mkdir -p "$WORK/root$(dirname "$lib")"
		cp -L "$lib" "$WORK/root$lib"
	done
else
	check "selftest binary has no dynamic loader" sh -c "! readelf -l '$BIN' | grep -q 'program interpreter'"
fi
# The kernel unpacks concatenated archives in order: our /init replaces the lab's.
(cd "$WORK/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$WORK/v2.cpio.gz"
cat "$VMG_LAB_CACHE/initrd.img" "$WORK/v2.cpio.gz" >"$WORK/initrd.img"
# The disk: 64 MiB on the host disk (VMG_LAB_DISKS; cache='none' makes the guest's writes
# real O_DIRECT writes there, which a tmpfs refuses), written once with zeros
# (--disk-zero): fallocate leaves unwritten extents whose conversion on the first guest
# pass held the baseline to ~4 MB/s against ~19 MB/s later.
check "lab/guest.sh create $DOM" ./lab/guest.sh create "$NAME" idle --vcpus 2 --mem 192 \
	--disk 64 --disk-zero --no-nic --initrd "$WORK/initrd.img"

# Bounded wait for the selftest's summary line; the guest powers off after it, which
# on_poweroff=destroy turns into a vanished domain.
final=""
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$TIMEOUT_S" ]; do
	final=$(grep -aE '^V2 [0-9]+ passed, [0-9]+ failed' "$CONSOLE" | tail -n 1 || true)
	[ -n "$final" ] && break
	if ! virsh -q -c "$VMG_LAB_URI" domstate "$DOM" >/dev/null 2>&1; then
		sleep 0.5 # the console file may still be flushing
		final=$(grep -aE '^V2 [0-9]+ passed, [0-9]+ failed' "$CONSOLE" | tail -n 1 || true)
		break
	fi
	sleep 1
done
echo "# guest ran $((SECONDS - t0)) s"

# Relay every guest check; figures ("V2 # …") are shown as comments.
gp=0 gf=0
while IFS= read -r line; do
	line=${line%$'\r'}
	case $line in
	"V2 ok - "*) t_pass "guest: ${line#V2 ok - }"; gp=$((gp + 1)) ;;
	"V2 not ok - "*) t_fail "guest: ${line#V2 not ok - }"; gf=$((gf + 1)) ;;
	"V2 # "*) echo "# ${line#V2 # }" ;;
	"vmguard: "*) echo "# guest log: ${line#vmguard: }" ;;
	esac
done < <(grep -a -E '^(V2 |vmguard: )' "$CONSOLE")

if [ $SAN = 1 ]; then
	# A leak report comes after the summary line (at exit); UBSan aborts before it.
	check "no sanitizer report on the guest console" sh -c \
		"! grep -aE 'ERROR: (Address|Leak)Sanitizer|Sanitizer has encountered|runtime error:' '$CONSOLE'"
fi
if [ -z "$final" ]; then
	t_fail "guest printed its summary within ${TIMEOUT_S}s"
	echo "# console tail:"
	tail -n 30 "$CONSOLE" | sed 's/^/#   /'
	# "reason=destroyed" here means someone else destroyed the domain (a lab teardown
	# or destroy-all run by another test), not a guest failure.
	qlog=/var/log/libvirt/qemu/$DOM.log
	[ -r "$qlog" ] && tail -n 2 "$qlog" | sed 's/^/# libvirt: /'
else
	check "guest summary matches the relayed checks ($final)" \
		test "$final" = "V2 $gp passed, $gf failed"
	check_num "guest ran checks" "$gp" -ge 30
fi

finish
