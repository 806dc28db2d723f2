#!/usr/bin/env python3
"""Turn hnsw_bench's JSON output into the table plot_hnsw.gp reads.

Usage: hnsw_plot_data.py bench.json > hnsw_qps_recall.dat
One line per search run: data set, library, ef, recall@10, queries/s;
a blank line pair between (data set, library) series, as gnuplot's `index`
expects.
"""
import json
import sys
from collections import defaultdict


def main(path):
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    series = defaultdict(list)
    for run in runs:
        name = run["name"]
        if not name.startswith("search/") or run.get("run_type") == "aggregate":
            continue
        _, library, data, ef = name.split("/")[:4]
        series[(data, library)].append((int(ef.split(":")[1]), run["recall"], run["QPS"]))
    for (data, library), points in sorted(series.items()):
        print(f"# {data} {library}")
        for ef, recall, qps in sorted(points):
            print(f"{data} {library} {ef} {recall:.4f} {qps:.0f}")
        print("\n")


if __name__ == "__main__":
    main(sys.argv[1])
