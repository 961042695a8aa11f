# CPU per VM per sample against N, from bench_sample's TSV; with peersfile (a
# bench/peers.sh TSV) also each collector on real guests, collector + libvirtd's CPU net of
# its idle baseline (as bench/tables.sh computes it), one point per collector at its N.
#   gnuplot -e "datafile='synthetic.tsv'; outfile='overhead.png'" bench/overhead.gp
#   gnuplot -e "datafile='synthetic.tsv'; peersfile='peers-10.tsv'; outfile='overhead.png'" bench/overhead.gp
set terminal pngcairo size 900,540 noenhanced
set output outfile
set datafile separator "\t"
set title "CPU per VM per sample: vmguard against the peers (lower is better)"
set key top right
set logscale x
set xlabel "guests (N)"
set ylabel "CPU per VM per sample (us)"
set grid
if (exists("peersfile")) {
	set logscale y
	set yrange [10:*]
	set xrange [2:2000]
	set ylabel "CPU per VM per sample (us, log scale)"
	# name N total_us: each collector row, libvirtd's idle CPU per second subtracted.
	peers(sel) = sprintf("< awk -F'\t' 'NR == 1 { next } $1 == \"idle\" { bs += $5; bt += $3; next } { r[++k] = $0 } END { b = bt > 0 ? bs / bt : 0; for (i = 1; i <= k; i++) { split(r[i], f, \"\t\"); vs = f[2] * f[3]; if (vs == 0) continue; l = f[5] - b * f[3]; if (l < 0) l = 0; if (%s) printf \"%%s\t%%d\t%%.1f\\n\", f[1], f[2], (f[4] + l) / vs * 1e6 } }' '%s'", sel, peersfile)
	plot datafile using 3:7 skip 1 with linespoints lw 2 pt 7 title "vmguard, synthetic guests (bench_sample)", \
	     peers("f[1] == \"vmguard\"") using 2:3 with points pt 9 ps 2 title "vmguard, real guests", \
	     peers("f[1] != \"vmguard\"") using 2:3:1 with labels point pt 5 ps 1.5 offset 1,0 left notitle, \
	     peers("f[1] != \"vmguard\"") using 2:3 with points pt 5 ps 1.5 title "peers (collector + libvirtd), real guests", \
	     20 with lines dashtype 2 lc rgb "#cc0000" title "target: 20 us"
} else {
	set yrange [0:*]
	plot datafile using 3:7 skip 1 with linespoints title "vmguard sampling (bench_sample)", \
	     20 with lines dashtype 2 lc rgb "#cc0000" title "target: 20 us"
}
