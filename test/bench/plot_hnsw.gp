# QPS against recall@10 for engram and hnswlib, one panel per data set.
# Usage (from the repository root, after hnsw_bench wrote bench.json):
#   python3 test/bench/hnsw_plot_data.py bench.json > docs/img/hnsw_qps_recall.dat
#   gnuplot -e "data='docs/img/hnsw_qps_recall.dat'; out='docs/img/hnsw_qps_recall.png'" test/bench/plot_hnsw.gp
if (!exists("data")) data = 'docs/img/hnsw_qps_recall.dat'
if (!exists("out")) out = 'docs/img/hnsw_qps_recall.png'

set terminal pngcairo size 1800,620 font ",11" noenhanced
set output out
set multiplot layout 1,3 title "Single-thread search, k = 10, M = 16, ef_construction = 64 (labels: ef)"
set logscale y
set grid
set xlabel "recall@10"
set ylabel "queries per second"
set key bottom left

do for [set_name in "sift5k fashion-mnist glove100"] {
	set title set_name
	if (set_name eq "fashion-mnist") { set xrange [0.975:1.0005] } else { set xrange [0.4:1.0] }
	plot data index (set_name." engram") using 4:5 with linespoints lw 2 pt 7 lc rgb "#b2182b" title "engram float32", \
	     data index (set_name." engram") using 4:5:3 with labels offset 0,1 font ",8" notitle, \
	     data index (set_name." hnswlib") using 4:5 with linespoints lw 2 pt 5 lc rgb "#2166ac" title "hnswlib", \
	     data index (set_name." hnswlib") using 4:5:3 with labels offset 0,-1 font ",8" notitle, \
	     data index (set_name." engram-f16") using 4:5 with linespoints lw 1 pt 9 lc rgb "#1b7837" title "engram float16 + re-rank", \
	     data index (set_name." engram-sq8") using 4:5 with linespoints lw 1 pt 11 lc rgb "#e08214" title "engram sq8 + re-rank"
}
unset multiplot
