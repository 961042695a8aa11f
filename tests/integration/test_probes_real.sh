#!/usr/bin/env bash
# Issue "Foundation and probes", for real: libvirtd, TCG guests and their taps in a lab
# namespace. `vmguard top --once --json` must show a CPU-busy guest near one core and an
# idle one near zero (and agree with libvirt's own cpu.time), a disk-writing guest's bytes on
# the host device that holds its image, and a packet-sending guest's packets on its tap.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd virsh jq ip
cd "$T_ROOT"
export VMG_LAB_NS=vmgp$$
P=p$$ # unique guest names: never touch another run's guests
VMG=./build/vmguard
[ -x "$VMG" ] || { echo "build/vmguard missing: run make"; t_fail "vmguard built"; finish; }

on_exit ./lab/net.sh down "$VMG_LAB_NS"
on_exit ./lab/guest.sh destroy ${P}idle
on_exit ./lab/guest.sh destroy ${P}cpu
on_exit ./lab/guest.sh destroy ${P}disk
on_exit ./lab/guest.sh destroy ${P}net
need_libvirtd
need_lab_image
check "lab network up" ./lab/net.sh up "$VMG_LAB_NS"

vm() { # JSON FILE, DOMAIN NAME, jq expression on that VM
	jq -r --arg n "$2" ".vms[] | select(.name == \$n) | $3" "$1"
}

# --- CPU: one busy vCPU vs an idle guest ---------------------------------------------
./lab/guest.sh create ${P}cpu cpu --vcpus 1 --no-nic >/dev/null
./lab/guest.sh create ${P}idle idle --no-nic >/dev/null
check "cpu guest ready" ./lab/guest.sh wait-ready ${P}cpu 90
check "idle guest ready" ./lab/guest.sh wait-ready ${P}idle 90
sleep 3
out=$(mktemp)
on_exit rm -f "$out"
# libvirt's own figure over a window inside vmguard's 4 s interval (top connects first,
# then samples twice 4 s apart), both measured on the same steady load.
cputime() { virsh domstats vmg-${P}cpu --cpu-total | awk -F= '/cpu.time=/ {print $2}'; }
$VMG top --once --json --interval 4 >"$out" 2>/dev/null &
toppid=$!
sleep 1
w0=$(date +%s.%N); t0=$(cputime)
sleep 2
w1=$(date +%s.%N); t1=$(cputime)
wait $toppid
busy=$(vm "$out" vmg-${P}cpu '.rates.cpu_cores')
idle=$(vm "$out" vmg-${P}idle '.rates.cpu_cores')
libvirt_cores=$(awk -v a="$t0" -v b="$t1" -v w0="$w0" -v w1="$w1" 'BEGIN { printf "%.3f", (b - a) / 1e9 / (w1 - w0) }')
echo "# cpu: busy guest $busy cores (libvirt cpu.time over the same ~3 s: $libvirt_cores), idle guest $idle cores"
# A busy vCPU gets up to one core; on a host loaded by anything else it gets less, and the
# agreement with libvirt's own figure below is what shows the reading is right.
check_num "busy guest reads a large share of a core" "$busy" -ge 0.4
check_num "busy guest reads at least 10x the idle one" "$(awk -v a="$busy" -v b="$idle" 'BEGIN { printf "%.3f", a / (b > 0.001 ? b : 0.001) }')" -ge 10
check_num "busy guest at most ~1 core" "$busy" -le 1.3
check_num "idle guest reads close to zero" "$idle" -le 0.15
ratio=$(awk -v a="$busy" -v b="$libvirt_cores" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
check_num "agrees with virsh domstats cpu.time (ratio)" "$ratio" -ge 0.8
check_num "agrees with virsh domstats cpu.time (ratio)" "$ratio" -le 1.25
check "cpu source named" test "$(vm "$out" vmg-${P}cpu '.sources' | grep -c 'cpu=cgroup')" = 1
vcpu_delay=$(vm "$out" vmg-${P}cpu '.rates.vcpu_delay_frac')
check_num "vCPU run delay (steal) is read" "${vcpu_delay:-x}" -ge 0
./lab/guest.sh destroy ${P}cpu >/dev/null
./lab/guest.sh destroy ${P}idle >/dev/null

# --- Disk: direct writes to an image on the host disk ---------------------------------
./lab/guest.sh create ${P}disk disk --cache none --no-nic >/dev/null
check "disk guest ready" ./lab/guest.sh wait-ready ${P}disk 90
sleep 2
img=$(./lab/guest.sh info ${P}disk | awk -F= '$1 == "disk" {print $2}')
dev=$(stat -c '%d' "$img")
want="$(( dev >> 8 )):$(( dev & 255 ))"
# The image's filesystem may sit on a partition; vmguard maps it to the whole disk.
if [ -e "/sys/dev/block/$want/partition" ]; then
	want=$(cat "$(readlink -f "/sys/dev/block/$want")/../dev")
fi
$VMG top --once --json --interval 3 >"$out" 2>/dev/null
wr=$(vm "$out" vmg-${P}disk '.rates.disk_write_bytes_per_s')
hostdev=$(vm "$out" vmg-${P}disk '.disks[0].host_device')
src=$(vm "$out" vmg-${P}disk '.rates.disk_source')
echo "# disk: guest writes $(awk -v w="$wr" 'BEGIN { printf "%.1f", w / 1e6 }') MB/s (source $src) to host device $hostdev (image on $want)"
check_num "disk guest write rate above 1 MB/s" "${wr:-x}" -gt 1000000
check "disk mapped to the image's host device $want" test "$hostdev" = "$want"
./lab/guest.sh destroy ${P}disk >/dev/null

# --- Network: packets on the guest's tap, read in the lab namespace --------------------
./lab/guest.sh create ${P}net net >/dev/null
check "net guest ready" ./lab/guest.sh wait-ready ${P}net 90
sleep 2
$VMG top --once --json --interval 3 >"$out" 2>/dev/null
tap=$(vm "$out" vmg-${P}net '.taps[0].tap')
found=$(vm "$out" vmg-${P}net '.taps[0].found')
pps=$(vm "$out" vmg-${P}net '.rates.net_tx_packets_per_s')
echo "# net: guest transmits $pps pkt/s on tap $tap (in netns $VMG_LAB_NS)"
check "tap found in the lab namespace" test "$found" = true
check_num "guest's packets counted on its tap" "${pps:-x}" -gt 100
./lab/guest.sh destroy ${P}net >/dev/null

finish
