#!/usr/bin/env bash
# lab/demo/plot.sh OUT: OUT/victim-latency.png, the victim's DHCP exchange and DNS lookup
# times over the whole run (log scale; failed exchanges in red), phases shaded (calm green,
# noise red, vmguard blue), vmguardd's throttle and release events as vertical lines.
set -eu
out=$1
t0=$(awk 'NR == 1 {print $3}' "$out/phases.tsv")
[ -n "$t0" ] || { echo "plot: no phases in $out" >&2; exit 1; }
awk -v t0="$t0" '$2 == "VMG" && $3 == "dhcp" { ms = $5; sub(/ms$/, "", ms); print $1 - t0, ms, ($4 == "ok") }' "$out/victim.log" >"$out/plot-dhcp.dat"
awk -v t0="$t0" '$2 == "VMG" && $3 == "dns" { ms = $5; sub(/ms$/, "", ms); if (ms < 1) ms = 1; print $1 - t0, ms }' "$out/victim.log" >"$out/plot-dns.dat"
awk -v t0="$t0" '$2 == "obs" || $2 == "guard" { if ($5 > 0) print $1 - t0, $5 }' "$out/status.tsv" >"$out/plot-probe.dat"
{
	awk -v t0="$t0" '{
		col = ($2 == "calm") ? "#d8f0d8" : ($2 == "noise") ? "#f6d0d0" : ($2 == "guard") ? "#d0dcf6" : "#eeeeee"
		printf "set object rect from %.1f, graph 0 to %.1f, graph 1 fc rgb \"%s\" fs solid 0.6 noborder behind\n", $3 - t0, $4 - t0, col
		if ($2 != "after") printf "set label \"%s %s\" at %.1f, graph 0.97 font \",8\"\n", $1, $2, $3 - t0 + 1
	}' "$out/phases.tsv"
	for f in "$out"/daemon-*.log; do
		[ -e "$f" ] || continue
		awk -v t0="$t0" '
		/ (throttle|tighten) / { printf "set arrow from %.1f, graph 0 to %.1f, graph 1 nohead lc rgb \"#cc0000\" lw 1.5 dt 2\n", $1 - t0, $1 - t0
			printf "set label \"throttle\" at %.1f, graph 0.05 rotate by 90 font \",8\" tc rgb \"#cc0000\"\n", $1 - t0 - 0.5 }
		/ (release|relax) / { printf "set arrow from %.1f, graph 0 to %.1f, graph 1 nohead lc rgb \"#008800\" lw 1.5 dt 2\n", $1 - t0, $1 - t0
			printf "set label \"release\" at %.1f, graph 0.05 rotate by 90 font \",8\" tc rgb \"#008800\"\n", $1 - t0 - 0.5 }' "$f"
	done
} >"$out/plot-marks.gp"
gnuplot <<EOF
set terminal pngcairo size 1600,600 font ",10"
set output "$out/victim-latency.png"
set title "Victim guest: DHCP exchange and DNS lookup time (vmguard demo)"
set xlabel "seconds since the first phase"
set ylabel "ms (log scale)"
set logscale y
set yrange [1:5000]
set key outside right top
set grid ytics
load "$out/plot-marks.gp"
plot "$out/plot-dhcp.dat" using 1:(\$3 == 1 ? \$2 : 1/0) with points pt 7 ps 0.5 lc rgb "#1f4e99" title "DHCP exchange", \
     "$out/plot-dhcp.dat" using 1:(\$3 == 0 ? \$2 : 1/0) with points pt 2 ps 1.2 lc rgb "#cc0000" title "DHCP failed", \
     "$out/plot-dns.dat" using 1:2 with points pt 1 ps 0.4 lc rgb "#999999" title "DNS lookup", \
     "$out/plot-probe.dat" using 1:2 with lines lc rgb "#ff8800" title "host DNS probe"
EOF
