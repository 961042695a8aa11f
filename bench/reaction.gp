# Reaction time distribution per tick (bench/reaction.sh TSV): cumulative share of trials
# whose throttle was written within X ms of the noise start. Trials whose daemon crashed
# (daemon_exit != 0) and trials without a throttle are left out, as in the summary table.
#   gnuplot -e "datafile='reaction.tsv'; outfile='reaction.png'" bench/reaction.gp
set terminal pngcairo size 800,480
set output outfile
set title "vmguard reaction: disk noise start to throttle written"
set xlabel "reaction (ms)"
set ylabel "share of trials"
set yrange [0:1.05]
set key bottom right
set grid
# The target, within two ticks at p95: 1000 ms at tick 0.5 s, 2000 ms at tick 1 s.
set arrow from 1000, graph 0 to 1000, graph 1 nohead dashtype 2 lc rgb "#888888"
set arrow from 2000, graph 0 to 2000, graph 1 nohead dashtype 2 lc rgb "#888888"
set label "2 ticks at 0.5 s" at 1020, graph 0.5 font ",9" tc rgb "#666666"
set label "2 ticks at 1 s" at 2020, graph 0.5 font ",9" tc rgb "#666666"
# One clean column per tick: an invalid point inside the data would split the curve.
rows(t) = sprintf("< awk -F'\t' 'NR > 1 && $1 == \"%s\" && $11 == \"0\" && $3 != \"NA\" { print $3 }' '%s'", t, datafile)
plot rows("1") using 1:(1.0) smooth cnormal with steps lw 2 title "tick 1 s", \
     rows("0.5") using 1:(1.0) smooth cnormal with steps lw 2 title "tick 0.5 s"
