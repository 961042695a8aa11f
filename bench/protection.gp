# Victim DHCP exchange time per case and phase (bench/protection.sh TSV): bars are the mean
# over repetitions of each run's p90 and p99, whiskers their min-max (the spread); rows
# whose case did not complete (ok != yes) are left out, as in the summary table.
#   gnuplot -e "datafile='protection.tsv'; outfile='protection.png'" bench/protection.gp
set terminal pngcairo size 1000,520 noenhanced
set output outfile
set title "Victim DHCP exchange time: calm, noise, noise + vmguard (mean of repetitions, whiskers min-max)"
set ylabel "ms (log scale)"
set logscale y
set yrange [20:*]
set grid ytics
set key top left
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set boxwidth 0.9
set xtics rotate by -30 font ",9"
set datafile separator "\t"
# label p90 lo90 hi90 p99 lo99 hi99, one line per case and phase in the file's case order.
rows = sprintf("< awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } $c[\"ok\"] != \"yes\" { next } { k = $c[\"case\"] \" \" ($c[\"phase\"] == \"guard\" ? \"vmguard\" : $c[\"phase\"]); if (!(k in n)) o[++m] = k; n[k]++; a(k, 9, $c[\"dhcp_p90\"]); a(k, 99, $c[\"dhcp_p99\"]) } function a(k, p, x) { if (x == \"-\") return; x += 0; s[k, p] += x; q[k, p]++; if (!((k, p) in lo) || x < lo[k, p]) lo[k, p] = x; if (x > hi[k, p]) hi[k, p] = x } END { for (i = 1; i <= m; i++) { k = o[i]; if (!q[k, 9] || !q[k, 99]) continue; printf \"%%s\\t%%g\\t%%g\\t%%g\\t%%g\\t%%g\\t%%g\\n\", k, s[k, 9] / q[k, 9], lo[k, 9], hi[k, 9], s[k, 99] / q[k, 99], lo[k, 99], hi[k, 99] } }' '%s'", datafile)
plot rows using 2:3:4:xtic(1) title "DHCP p90" lc rgb "#1f4e99", \
     rows using 5:6:7 title "DHCP p99" lc rgb "#cc6600"
