#!/usr/bin/env bash
# End to end (issue 6): the noisy-neighbour scenario of `make demo`, shorter, with assertions
# on figures measured in this run. A victim guest renews DHCP and resolves names against the
# lab's dnsmasq; per case a noisy guest (disk writes with cache=writeback, with cache=none,
# a broadcast flood) runs 1 paused (calm), 2 free without vmguard, 3 free with vmguardd
# running the shipped demo policy (lab/demo/), then pauses again (noise stopped).
# Asserted per case, from the same run:
#   - first, that the noise hurts the victim at all (DHCP p90 >= 1.5x calm or exchanges
#     lost): the guests' disks and dnsmasq's lease file sit on the lab's slow shared disk
#     (lab/slowdisk.sh), so the harm is the lab's and not this machine's disk's; a run
#     without harm says so and fails, since it could show no protection
#   - with vmguard the victim's DHCP success is 100% (less one exchange in the seconds
#     before the throttle lands, see below)
#   - vmguard removes at least 70% of the harm at p90 ((noise - guard) / (noise - calm));
#     a ratio of p90s alone (the old ">= 3x") depends on how much harm there was
#   - its DHCP p90 with vmguard is within 1.5x of the calm baseline
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
: "${D_CALM_S:=12}" "${D_NOISE_S:=20}" "${D_GUARD_S:=40}" "${D_RELEASE_TIMEOUT_S:=90}"
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
	r_harm=$(ratio "$p_noise" "$p_calm")
	lost=$(awk -v p="$(val dhcp_pct "$noise")" 'BEGIN { print (p + 0 < 100) ? 1 : 0 }')
	harmed=$(awk -v r="$r_harm" -v l="$lost" 'BEGIN { print (l == 1 || (r != "-" && r + 0 >= 1.5)) ? 1 : 0 }')
	check "$c: the noise hurts the victim without vmguard (DHCP p90 ${r_harm}x calm, $(val dhcp_pct "$noise")% answered)" \
		test "$harmed" = 1
	# The seconds between the noise's start and the throttle (throttle_s) are in phase 3 too:
	# a write-back guest's data already queued on the disk drains after the throttle lands,
	# so one exchange may still be lost there; more is a failure.
	g_n=$(val dhcp_n "$guard") g_ok=$(val dhcp_ok "$guard")
	check_num "$c: victim DHCP exchanges lost with vmguard ($g_ok of $g_n answered; noise: $(val dhcp_pct "$noise")%)" \
		"$((${g_n:-0} - ${g_ok:-0}))" -le 1
	check_num "$c: victim DHCP exchanges with vmguard" "${g_n:-0}" -gt 0
	removed=$(awk -v n="$p_noise" -v g="$p_guard" -v c="$p_calm" 'BEGIN { if (n + 0 > c + 0) printf "%.2f", (n - g) / (n - c); else print "-" }')
	check_num "$c: share of the harm removed at p90 ((noise - vmguard) / (noise - calm): $p_noise, $p_guard, $p_calm ms)" "$removed" -ge 0.7
	check_num "$c: DHCP p90 with vmguard / calm ($p_guard / $p_calm ms)" "$(ratio "$p_guard" "$p_calm")" -le 1.5
	check_num "$c: throttled within two ticks of contention (ticks; $(val throttle_s "$ev") s after the noise started)" \
		"$(val ticks_to_throttle "$ev")" -le 2
	check_num "$c: released after the noise stopped (s after the noise stopped)" "$(val release_s "$ev")" -gt 0
	check_num "$c: no release while the noise ran" "$(val early_release "$ev")" -eq 0
done

d_cleanup
left=$(d_leftovers)
check "nothing left behind (${left:-clean})" test -z "$left"
echo "# total $((SECONDS - t_begin)) s; logs in $D_OUT"
[ "$T_FAILED" -eq 0 ] && on_exit rm -rf "$D_OUT"
finish
