#!/usr/bin/env bash
# tests/alone.sh [TEST...]: each integration test run alone, as a new user would run it, on a
# host cleaned of everything the lab made before each one (tests/clean-lab.sh: no guest
# image, no libvirtd, no slow disk, no lab namespace). Prints one line per test: name, exit
# status, seconds, its summary line; the last line totals them. Needs root. Runs the tests
# of this checkout (build them first, or let each one's prepare step do it).
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "alone: must run as root" >&2; exit 1; }
if [ $# -eq 0 ]; then set -- tests/integration/test_*.sh; fi
ok=0 bad=0
for t in "$@"; do
	./tests/clean-lab.sh
	log=$(mktemp /tmp/vmguard-alone.XXXXXX)
	start=$SECONDS
	CI=true bash "$t" </dev/null >"$log" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	printf '%-28s exit %d %4ds  %s\n' "$(basename "$t")" "$rc" $((SECONDS - start)) "${line:-no summary}"
	if [ $rc -eq 0 ]; then ok=$((ok + 1)); rm -f "$log"; else bad=$((bad + 1)); echo "  log: $log"; fi
done
./tests/clean-lab.sh
echo "alone: $ok passed, $bad failed"
[ $bad -eq 0 ]
