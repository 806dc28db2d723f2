# QPS against recall@10 at 100,000 x 768-d (issue 12): engram's encodings and
# pgvector through SQL (one client, loopback), engram's core and hnswlib
# in-process (one thread), all on the same data with the same M and
# ef_construction. Written by the capacity section of test/scripts/engram.sh:
#   python3 test/bench/capacity_plot_data.py points.txt peers.json > docs/img/capacity768_qps_recall.dat
#   gnuplot -e "data='docs/img/capacity768_qps_recall.dat'; out='docs/img/capacity768_qps_recall.png'; \
#               subtitle='M 16, ef_construction 200'" test/bench/plot_capacity.gp
if (!exists("data")) data = 'docs/img/capacity768_qps_recall.dat'
if (!exists("out")) out = 'docs/img/capacity768_qps_recall.png'
if (!exists("subtitle")) subtitle = ''

set terminal pngcairo size 1200,800 font ",11" noenhanced
set output out
set title "768-d cosine (synth768), k = 10, ".subtitle." (labels: ef_search)"
set logscale y
set grid
set xlabel "recall@10"
set ylabel "queries per second"
set key bottom left

plot data index "engram-f32-sql" using 3:4 with linespoints lw 2 pt 7 lc rgb "#b2182b" title "engram f32, SQL", \
     data index "engram-f32-sql" using 3:4:2 with labels offset 0,1 font ",8" notitle, \
     data index "engram-f16-sql" using 3:4 with linespoints lw 2 pt 9 lc rgb "#1b7837" title "engram f16, SQL", \
     data index "engram-sq8-sql" using 3:4 with linespoints lw 2 pt 11 lc rgb "#e08214" title "engram sq8 + re-rank, SQL", \
     data index "pgvector-sql" using 3:4 with linespoints lw 2 pt 5 lc rgb "#542788" title "pgvector, SQL", \
     data index "pgvector-sql" using 3:4:2 with labels offset 0,-1 font ",8" notitle, \
     data index "engram-core" using 3:4 with linespoints lw 1 dt 2 pt 6 lc rgb "#b2182b" title "engram core f32, in-process", \
     data index "hnswlib" using 3:4 with linespoints lw 1 dt 2 pt 4 lc rgb "#2166ac" title "hnswlib, in-process"
