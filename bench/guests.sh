#!/usr/bin/env bash
# Idle lab guests for the collection benchmarks: vmg-bNN, 128 MiB, no NIC. Only guests of
# this name pattern are ever created or destroyed here (other engineers share the lab).
#
#   bench/guests.sh up N [BATCH]   boots vmg-b01..vmg-bNN not yet running, BATCH at a time
#                                  (default 3: 2 cores, TCG boots), waiting for "VMG ready"
#   bench/guests.sh down           destroys every vmg-bNN this script may have made
#   bench/guests.sh count          running vmg-bNN
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lab=$here/../lab
uri=${VMG_LAB_URI:-qemu:///system}

running() { virsh -q -c "$uri" list --name 2>/dev/null | grep -E '^vmg-b[0-9]{2}$' || true; }

up() {
	local n=$1 batch=${2:-3} i name pending=()
	for i in $(seq 1 "$n"); do
		name=$(printf 'b%02d' "$i")
		if running | grep -qx "vmg-$name"; then continue; fi
		"$lab/guest.sh" create "$name" idle --no-nic --tenant bench >/dev/null
		pending+=("$name")
		if [ ${#pending[@]} -ge "$batch" ]; then
			for p in "${pending[@]}"; do "$lab/guest.sh" wait-ready "$p" 180 >/dev/null; done
			pending=()
		fi
	done
	for p in "${pending[@]}"; do "$lab/guest.sh" wait-ready "$p" 180 >/dev/null; done
	echo "bench guests running: $(running | wc -l)" >&2
}

down() {
	local d
	for d in $(virsh -q -c "$uri" list --all --name 2>/dev/null | grep -E '^vmg-b[0-9]{2}$' || true); do
		"$lab/guest.sh" destroy "${d#vmg-}" 2>/dev/null || true
	done
}

case ${1:-} in
up) shift; up "$@" ;;
down) down ;;
count) running | wc -l ;;
*) sed -n '2,/^set -eu/p' "$0" | grep '^#' >&2; exit 2 ;;
esac
