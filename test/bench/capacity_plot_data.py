#!/usr/bin/env python3
"""Turn the capacity section's measurements into the table plot_capacity.gp
reads, and summarise them against the goals of issue 12.

Usage: capacity_plot_data.py POINTS PEERS_JSON > capacity768_qps_recall.dat

POINTS is written by the capacity section of test/scripts/engram.sh, one
measurement a line:
  recall SERIES EF RECALL@10 QPS   an SQL recall run (1 client) at one ef
  ingest LABEL ROWS_PER_S          a COPY (engram: until every row is linked)
  memory LABEL BYTES_PER_VECTOR    what a vector holds
PEERS_JSON is recall_peer_bench's --benchmark_out (runs named
recall/LIBRARY/ef:N). The table has one block per series (SQL: engram-f32-sql,
engram-f16-sql, engram-sq8-sql, pgvector-sql; in-process: engram-core,
hnswlib) of lines "series ef recall@10 QPS", two blank lines between blocks,
as gnuplot's `index` expects. The summary goes to stderr.
"""
import json
import sys
from collections import defaultdict

TARGET_RECALL = 0.95


def read_points(path):
    series, ingest, memory = defaultdict(dict), {}, {}
    with open(path) as f:
        for line in f:
            kind, *rest = line.split()
            if kind == "recall":
                name, ef, recall, qps = rest
                series[name][int(ef)] = (float(recall), float(qps))
            elif kind == "ingest":
                ingest[rest[0]] = float(rest[1])
            elif kind == "memory":
                memory[rest[0]] = float(rest[1])
    return series, ingest, memory


def read_peers(path, series):
    builds = {}
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    for run in runs:
        if run.get("run_type") == "aggregate" or not run["name"].startswith("recall/"):
            continue
        _, library, ef = run["name"].split("/")[:3]
        series[library][int(ef.split(":")[1])] = (run["recall"], run["QPS"])
        builds[library] = run["build_vectors/s"]
        if "bytes/vector" in run:
            builds[library + " bytes/vector"] = run["bytes/vector"]
    return builds


def best_at_target(points):
    """The highest QPS among the runs with recall@10 >= TARGET_RECALL, with its ef and recall."""
    fits = [(qps, ef, recall) for ef, (recall, qps) in points.items() if recall >= TARGET_RECALL]
    return max(fits) if fits else None


def summary(series, ingest, memory, builds, out):
    print("ingest (rows/s; engram: from the first COPY until every row is linked)", file=out)
    for label, rate in ingest.items():
        print(f"  {label:<28} {rate:>10.0f}", file=out)
    for library in ("engram-core", "hnswlib"):
        if library in builds:
            print(f"  {library + ' build, 2 threads':<28} {builds[library]:>10.0f}", file=out)
    for label, rate in ingest.items():
        # each engram run against pgvector's run on the same pages (-huge: huge_pages = on)
        peer = "pgvector-hnsw-copy" + ("-huge" if label.endswith("-huge") else "")
        if label.startswith("engram-") and ingest.get(peer):
            print(f"  {label} / {peer} = {rate / ingest[peer]:.2f}x (goal >= 10x)", file=out)
    print("memory (bytes per vector)", file=out)
    for label, size in memory.items():
        print(f"  {label:<28} {size:>10.0f}", file=out)
    if "hnswlib bytes/vector" in builds:
        print(f"  {'hnswlib (in-process)':<28} {builds['hnswlib bytes/vector']:>10.0f}", file=out)
    print(f"best QPS at recall@10 >= {TARGET_RECALL} (1 client / 1 thread)", file=out)
    for name, points in sorted(series.items()):
        best = best_at_target(points)
        text = f"{best[0]:.0f} QPS at ef {best[1]}, recall@10 {best[2]:.4f}" if best else "not reached"
        print(f"  {name:<28} {text}", file=out)
    core = series.get("engram-core", {})
    sql = sorted(name for name in series if "-sql" in name)
    print("QPS and recall@10 per ef; SQL QPS / engram-core QPS at the same ef (goal >= 0.8 for engram)", file=out)
    for ef in sorted(set().union(*(points.keys() for points in series.values()))):
        cells = []
        for name in sql + ["engram-core", "hnswlib"]:
            if ef in series.get(name, {}):
                recall, qps = series[name][ef]
                ratio = f" ({qps / core[ef][1]:.2f}x)" if name in sql and ef in core else ""
                cells.append(f"{name} {qps:.0f}{ratio} @{recall:.4f}")
        print(f"  ef {ef:>4}: " + "; ".join(cells), file=out)


def main(points_path, peers_path):
    series, ingest, memory = read_points(points_path)
    builds = read_peers(peers_path, series) if peers_path else {}
    for name, points in sorted(series.items()):
        print(f"# {name}")
        for ef, (recall, qps) in sorted(points.items()):
            print(f"{name} {ef} {recall:.4f} {qps:.0f}")
        print("\n")
    summary(series, ingest, memory, builds, sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
