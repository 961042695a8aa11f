#!/usr/bin/env bash
# lab/demo/events.sh OUT CASE
# vmguardd's reaction in the guard phase of CASE, as one line of KEY=VALUE:
#   onset_tick throttle_tick ticks_to_throttle   daemon tick at which contention began (or
#       the noise began, if the host was contended already), of the first throttle, and the
#       difference (from status.json, one sample per tick)
#   throttle_s     seconds from the noise start to the throttle line in the daemon's log
#   release_s      seconds from the noise stop to the release line ("-": none)
#   early_release  releases logged while the noise still ran (should be 0)
#   limit          the throttle's limit as logged;  signal: the contention words of the throttle
set -eu
out=$1 c=$2
read -r g0 g1 < <(awk -v c="$c" '$1 == c && $2 == "guard" {print $3, $4}' "$out/phases.tsv" | tail -n 1)
read -r a0 a1 < <(awk -v c="$c" '$1 == c && $2 == "after" {print $3, $4}' "$out/phases.tsv" | tail -n 1)
log="$out/daemon-$c.log"
touch "$log"
awk -v g0="$g0" -v a0="${a0:-0}" '
# Onset: the start of the contended streak the throttle fell in, or the first tick of the
# noise when the host was already contended before it (other load, other guests).
$2 == "guard" && $1 <= (a0 > 0 ? a0 + 120 : 1e12) && thr == "" {
	if (ntick == "" && $1 >= g0) ntick = $3
	if ($4 == 1 && !was) streak = $3
	was = ($4 == 1)
	if ($9 > 0) { thr = $3; onset = (ntick != "" && streak < ntick) ? ntick : streak }
}
END {
	printf "onset_tick=%s throttle_tick=%s ticks_to_throttle=%s ", onset == "" ? "-" : onset, thr == "" ? "-" : thr,
		(onset != "" && thr != "") ? thr - onset : "-"
}' "$out/status.tsv"
awk -v g0="$g0" -v a0="${a0:-0}" '
/ throttle / && t == "" { t = $1; l = $0; sub(/.* -> /, "", l); sub(/:.*/, "", l); lim = l; w = $0; sub(/.* while /, "", w); sig = w }
/ release / { if (a0 > 0 && $1 < a0) early++; else if (r == "") r = $1 }
END {
	printf "throttle_s=%s release_s=%s early_release=%d limit=%s signal=%s\n",
		t == "" ? "-" : sprintf("%.1f", t - g0), r == "" ? "-" : sprintf("%.1f", r - a0), early,
		lim == "" ? "-" : lim, sig == "" ? "-" : sig
}' "$log" | sed 's/signal=\(.*\)/signal="\1"/'
