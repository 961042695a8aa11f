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
# One clean column per tick: an invalid point inside the data would split the curve.
rows(t) = sprintf("< awk -F'\t' 'NR > 1 && $1 == \"%s\" && $11 == \"0\" && $3 != \"NA\" { print $3 }' '%s'", t, datafile)
plot rows("1") using 1:(1.0) smooth cnormal with steps lw 2 title "tick 1 s", \
     rows("0.5") using 1:(1.0) smooth cnormal with steps lw 2 title "tick 0.5 s"
