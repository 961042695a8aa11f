#!/usr/bin/env bash
# lab/victim-report.sh OUT CASE PHASE
# Figures of one phase of a noisy-neighbour run (lab/demo/lib.sh wrote OUT), as one line of
# KEY=VALUE (times in ms, rates as named; "-" when the phase has no such sample):
#   start end                  the phase's wall-clock window (epoch s)
#   dhcp_n dhcp_ok dhcp_pct    the victim's DHCP exchanges in the window, how many got a lease
#   dhcp_p50 dhcp_p90 dhcp_p99 exchange time, every attempt (a failed one counts with its ~3 s)
#   dns_n dns_p50 dns_p99      the victim's A lookups
#   probe_p50 probe_p99        the host's DNS probe of dnsmasq from the lab namespace (vmguardd)
#   rundelay_ms iodelay_pct    dnsmasq's mean run-queue wait per timeslice, time blocked on I/O
#   psi_io_pct                 host PSI io "some", mean over the phase
#   noisy_mbs                  MB/s the noisy guest wrote to its disk (QEMU's wr_bytes)
#   noisy_mbit noisy_kpps      what the noisy guest sent into its tap (net case)
#   victim_kpps                packets the bridge delivered to the victim's tap
# Percentiles are nearest-rank: p90 of 40 samples is the 36th smallest.
set -eu
[ $# -eq 3 ] || { sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=$1 case=$2 phase=$3
win=$(awk -v c="$case" -v p="$phase" '$1 == c && $2 == p {print $3, $4}' "$out/phases.tsv" | tail -n 1)
[ -n "$win" ] || { echo "victim-report: no phase '$phase' of case '$case' in $out/phases.tsv" >&2; exit 1; }
set -- $win
t0=$1 t1=$2

touch "$out/victim.log" "$out/status.tsv" "$out/blk.tsv" "$out/tap.tsv"
awk -v t0="$t0" -v t1="$t1" -v c="$case" '
function pct(a, n, p,    k) { if (n == 0) return "-"; k = int((p * n + 99) / 100); if (k < 1) k = 1; return a[k] }
function sortn(a, n,    i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } }
function mean(s, n) { return n ? sprintf("%.2f", s / n) : "-" }
FILENAME ~ /victim.log$/ {
	if ($1 < t0 || $1 > t1 || $2 != "VMG") next
	ms = $5; sub(/ms$/, "", ms)
	if ($3 == "dhcp") { dn++; d[dn] = ms + 0; if ($4 == "ok") dok++ }
	if ($3 == "dns") { sn++; s[sn] = ms + 0 }
	next
}
FILENAME ~ /status.tsv$/ {
	if ($1 < t0 || $1 > t1) next
	if ($5 >= 0) { pn++; pr[pn] = $5 + 0 }
	if ($6 >= 0) { rn++; rs += $6 }
	if ($7 >= 0) { io_n++; io_s += $7 }
	if ($8 >= 0) { ps_n++; ps_s += $8 }
	next
}
FILENAME ~ /blk.tsv$/ {
	if ($2 != c) next
	if ($1 >= t0 - 1 && $1 <= t0 + 1 && b0 == "") { b0 = $3; bt0 = $1 }
	if ($1 >= t1 - 1 && $1 <= t1 + 1) { b1 = $3; bt1 = $1 }
	next
}
FILENAME ~ /tap.tsv$/ {
	if ($2 != c || NF < 5 || $1 < t0 || $1 > t1) next
	if (tn == 0) { ta = $1; va = $3; na = $4; nba = $5 }
	tn++; tb = $1; vb = $3; nb = $4; nbb = $5
	next
}
END {
	sortn(d, dn); sortn(s, sn); sortn(pr, pn)
	printf "start=%.3f end=%.3f ", t0, t1
	printf "dhcp_n=%d dhcp_ok=%d dhcp_pct=%s ", dn, dok, dn ? sprintf("%.1f", 100 * dok / dn) : "-"
	printf "dhcp_p50=%s dhcp_p90=%s dhcp_p99=%s ", pct(d, dn, 50), pct(d, dn, 90), pct(d, dn, 99)
	printf "dns_n=%d dns_p50=%s dns_p99=%s ", sn, pct(s, sn, 50), pct(s, sn, 99)
	printf "probe_p50=%s probe_p99=%s ", pn ? sprintf("%.1f", pct(pr, pn, 50)) : "-", pn ? sprintf("%.1f", pct(pr, pn, 99)) : "-"
	printf "rundelay_ms=%s iodelay_pct=%s psi_io_pct=%s ", mean(rs, rn), io_n ? sprintf("%.1f", 100 * io_s / io_n) : "-", ps_n ? sprintf("%.1f", 100 * ps_s / ps_n) : "-"
	printf "noisy_mbs=%s ", (b0 != "" && b1 != "" && bt1 > bt0) ? sprintf("%.1f", (b1 - b0) / (bt1 - bt0) / 1e6) : "-"
	if (tn >= 2 && tb > ta)
		printf "noisy_mbit=%.1f noisy_kpps=%.1f victim_kpps=%.1f\n", (nbb - nba) * 8 / (tb - ta) / 1e6, (nb - na) / (tb - ta) / 1e3, (vb - va) / (tb - ta) / 1e3
	else
		printf "noisy_mbit=- noisy_kpps=- victim_kpps=-\n"
}' "$out/victim.log" "$out/status.tsv" "$out/blk.tsv" "$out/tap.tsv"
