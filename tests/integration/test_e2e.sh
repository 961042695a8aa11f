#!/usr/bin/env bash
# End to end (issue 6): the noisy-neighbour scenario of `make demo`, shorter, with assertions
# on figures measured in this run. A victim guest renews DHCP and resolves names against the
# lab's dnsmasq; per case a noisy guest (disk writes with cache=writeback, with cache=none,
# a broadcast flood) runs 1 paused (calm), 2 free without vmguard, 3 free with vmguardd
# running the shipped demo policy (lab/demo/), then pauses again (noise stopped).
# Asserted per case, from the same run:
#   - with vmguard the victim's DHCP success is 100%
#   - its DHCP exchange p90 with vmguard is at least 3x better than without
#   - and within 1.5x of the calm baseline
#   - the noisy guest is throttled within two daemon ticks of the first contended verdict
#   - it is released after the noise stops, and not before
# and at the end: nothing of the run is left (guest, namespace, shaping device).
# Own namespace and guest names (vmge2e, vmg-e2e-*): other lab users are never touched.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd virsh jq ip awk
cd "$T_ROOT"
export BUILD=${BUILD:-build}
for b in vmguardd vmguard; do
	[ -x "$BUILD/$b" ] || { t_fail "$BUILD/$b built (make all)"; finish; }
done

export D_NS=vmge2e D_PREFIX=e2e
: "${D_CALM_S:=12}" "${D_NOISE_S:=20}" "${D_GUARD_S:=40}" "${D_RELEASE_TIMEOUT_S:=60}"
export D_CALM_S D_NOISE_S D_GUARD_S D_RELEASE_TIMEOUT_S
D_OUT=$(mktemp -d /tmp/vmg-e2e.XXXXXX)
. ./lab/demo/lib.sh
on_exit d_cleanup
cases=${E2E_CASES:-wb none bcast}

d_init
check "demo policy is valid" d_policy_check
t_begin=$SECONDS
if ! d_setup >"$D_OUT/setup.log" 2>&1; then
	t_fail "lab set up (libvirtd, image, namespace $D_NS, victim)"
	sed 's/^/#   /' "$D_OUT/setup.log" | tail -n 20
	finish
fi
t_pass "lab set up in $((SECONDS - t_begin)) s"

val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

for c in $cases; do
	t_case=$SECONDS
	if ! d_case "$c" >>"$D_OUT/run.log" 2>&1; then
		t_fail "case $c ran"
		continue
	fi
	calm=$(./lab/victim-report.sh "$D_OUT" "$c" calm)
	noise=$(./lab/victim-report.sh "$D_OUT" "$c" noise)
	guard=$(./lab/victim-report.sh "$D_OUT" "$c" guard)
	ev=$(./lab/demo/events.sh "$D_OUT" "$c")
	echo "# case $c ($((SECONDS - t_case)) s)"
	echo "#   calm:  $calm"
	echo "#   noise: $noise"
	echo "#   guard: $guard"
	echo "#   vmguardd: $ev"
	p_calm=$(val dhcp_p90 "$calm") p_noise=$(val dhcp_p90 "$noise") p_guard=$(val dhcp_p90 "$guard")
	check_num "$c: victim DHCP success with vmguard (%) [noise: $(val dhcp_pct "$noise")%]" "$(val dhcp_pct "$guard")" -eq 100
	r_fix=$(ratio "$p_noise" "$p_guard") r_calm=$(ratio "$p_guard" "$p_calm")
	# Issue 6's targets, in every case. Phase 3 (40 s) is long enough that the seconds of
	# noise before the throttle, and writeback's dirty pages already on their way to the
	# disk, are a small share of the victim's samples (docs/DEMO.md).
	check_num "$c: DHCP p90 without / with vmguard ($p_noise / $p_guard ms)" "$r_fix" -ge 3
	check_num "$c: DHCP p90 with vmguard / calm ($p_guard / $p_calm ms)" "$r_calm" -le 1.5
	check_num "$c: throttled within two ticks of contention (ticks; $(val throttle_s "$ev") s after the noise started)" \
		"$(val ticks_to_throttle "$ev")" -le 2
	check_num "$c: released after the noise stopped (s)" "$(val release_s "$ev")" -ge 0
	check_num "$c: no release while the noise ran" "$(val early_release "$ev")" -eq 0
done

d_cleanup
left=$(d_leftovers)
check "nothing left behind (${left:-clean})" test -z "$left"
echo "# total $((SECONDS - t_begin)) s; logs in $D_OUT"
[ "$T_FAILED" -eq 0 ] && on_exit rm -rf "$D_OUT"
finish
