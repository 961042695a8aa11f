# CPU per VM per sample against N, from bench_sample's TSV.
#   gnuplot -e "datafile='synthetic.tsv'; outfile='overhead.png'" bench/overhead.gp
set terminal pngcairo size 800,500 noenhanced
set output outfile
set datafile separator "\t"
set key top right
set logscale x
set xlabel "synthetic guests (N)"
set ylabel "CPU per VM per sample (us)"
set yrange [0:*]
set grid
plot datafile using 3:7 skip 1 with linespoints title "vmguard sampling (bench_sample)", \
     20 with lines dashtype 2 title "target: 20 us"
