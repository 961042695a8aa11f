#!/usr/bin/env bash
# PNG plots from the newest result of each kind (KIND-YYYY-MM-DD.tsv, see b_newest in
# bench/lib.sh), no measuring here:
#   overhead.png    CPU per VM per sample against N (synthetic-*.tsv, bench/overhead.gp), with
#                   the peers on real guests (peers-N-*.tsv, the largest N) beside vmguard
#   reaction.png    reaction-time distribution per tick (reaction-*.tsv, bench/reaction.gp)
#   protection.png  victim DHCP p90/p99 per case and phase with spread (protection-*.tsv,
#                   bench/protection.gp)
#
#   bench/plots.sh [--results DIR] [--out DIR]     defaults: bench/results for both
# A kind without a TSV gets no plot (and any old plot of it stays). Prints each PNG written.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
B_NAME=plots
. "$here/lib.sh"
results=$here/results out=""
b_parse "--results=results --out=out" "$@"
[ -n "$out" ] || out=$results
command -v gnuplot >/dev/null || { echo "plots: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
mkdir -p "$out"

# gnuplot's -e takes single-quoted strings: a path with a quote in it would break out.
case "$results$out" in *"'"*) echo "plots: paths with ' are not supported" >&2; exit 2 ;; esac

plot() { # GP OUTFILE ASSIGNMENTS
	# Written aside and moved: a failed plot never leaves a truncated PNG.
	gnuplot -e "$3; outfile='$2.tmp'" "$here/$1" && [ -s "$2.tmp" ] && mv "$2.tmp" "$2" && echo "$2" ||
		{ rm -f "$2.tmp"; echo "plots: $1 failed" >&2; return 1; }
}

rc=0
syn=$(b_newest "$results" synthetic)
peers="" pn=0
for f in "$results"/peers-*-[0-9][0-9][0-9][0-9]-*.tsv; do
	[ -s "$f" ] || continue
	n=${f##*/peers-}; n=${n%%-*}
	[ "$n" -gt "$pn" ] || continue
	pn=$n peers=$(b_newest "$results" "peers-$n")
done
if [ -n "$syn" ]; then
	plot overhead.gp "$out/overhead.png" "datafile='$syn'${peers:+; peersfile='$peers'}" || rc=1
fi
r=$(b_newest "$results" reaction)
[ -z "$r" ] || plot reaction.gp "$out/reaction.png" "datafile='$r'" || rc=1
p=$(b_newest "$results" protection)
[ -z "$p" ] || plot protection.gp "$out/protection.png" "datafile='$p'" || rc=1
exit $rc
