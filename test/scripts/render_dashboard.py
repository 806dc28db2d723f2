#!/usr/bin/env python3
"""Renders docs/monitoring/engram-dashboard.json to a PNG with gnuplot.

Grafana is not packaged for Debian 12, so `bench dashboard` cannot take a
screenshot of the dashboard itself; this draws the same panels, in the same
grid, from the same queries, asked of the same Prometheus over the run's time
range (query_range). Grafana's variables: $__rate_interval becomes the rate
window given, $space matches every space.

Usage: render_dashboard.py PROMETHEUS_URL DASHBOARD_JSON START END OUT_PNG
       [--step SECONDS] [--rate-window DURATION]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import urllib.parse
import urllib.request

# Grafana's grid is 24 columns wide; one row unit becomes this many pixels.
COLUMN_PX = 75
ROW_PX = 34

# Grafana units -> (divisor, axis label).
UNITS = {
    "ops": (1, "per second"),
    "reqps": (1, "per second"),
    "percentunit": (0.01, "%"),
    "short": (1, ""),
    "s": (0.001, "ms"),
    "bytes": (1024 * 1024, "MiB"),
}


def query_range(prometheus, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=60) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(template, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("prometheus")
    parser.add_argument("dashboard")
    parser.add_argument("start", type=float)
    parser.add_argument("end", type=float)
    parser.add_argument("out")
    parser.add_argument("--step", type=float, default=2)
    parser.add_argument("--rate-window", default="10s")
    args = parser.parse_args()

    with open(args.dashboard) as f:
        dashboard = json.load(f)
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    width, height = 24 * COLUMN_PX, rows * ROW_PX + 40
    work = tempfile.mkdtemp(prefix="engram-dashboard-")
    script = [
        f"set terminal pngcairo size {width},{height} font 'DejaVu Sans,9'",
        f"set output '{args.out}'",
        "set multiplot",
        "set key top left horizontal font ',8' samplen 1",
        "set grid lc rgb '#dddddd'",
        "set xlabel 'seconds into the run' offset 0,0.5",
        "set border lc rgb '#888888'",
        f"set label 1 \"{dashboard['title']}: docs/monitoring/engram-dashboard.json rendered from Prometheus after "
        f"a real run (bench dashboard)\" at screen 0.01, screen {1 - 14 / height:.4f} font ',11'",
    ]
    top_px = 30
    for number, panel in enumerate(panels):
        grid = panel["gridPos"]
        divisor, unit = UNITS.get(panel["fieldConfig"]["defaults"].get("unit", "short"), (1, ""))
        # Series a panel override sends to the right axis, with their own unit.
        right = [o for o in panel["fieldConfig"].get("overrides", []) if o["matcher"]["id"] == "byRegexp"
                 and {"id": "custom.axisPlacement", "value": "right"} in o["properties"]]
        right_unit = next((p["value"] for o in right for p in o["properties"] if p["id"] == "unit"), "short")
        right_divisor, right_label = UNITS.get(right_unit, (1, ""))
        plots = []
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", args.rate_window).replace("$space", ".*")
            for series_number, series in enumerate(query_range(args.prometheus, expr, args.start, args.end, args.step)):
                values = [(float(t) - args.start, float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not values:
                    continue
                path = os.path.join(work, f"p{number}_{target['refId']}_{series_number}.dat")
                name = legend(target.get("legendFormat", ""), series["metric"])
                on_right = any(re.fullmatch(o["matcher"]["options"], name) for o in right)
                scale = right_divisor if on_right else divisor
                with open(path, "w") as f:
                    f.writelines(f"{t:.1f} {v / scale:.6g}\n" for t, v in values)
                title = name.replace("_", "\\\\_")
                axes = "x1y2" if on_right else "x1y1"
                plots.append(f"'{path}' using 1:2 axes {axes} with lines lw 1.5 title \"{title}\"")
        x, y = grid["x"] / 24, 1 - (top_px + (grid["y"] + grid["h"]) * ROW_PX) / height
        script += [
            f"set origin {x:.4f},{y:.4f}",
            f"set size {grid['w'] / 24:.4f},{grid['h'] * ROW_PX / height:.4f}",
            f"set title \"{panel['title']}\" font ',10'",
            f"set ylabel '{unit}'",
            "set yrange [0:*]",
        ]
        if right:
            script += [f"set y2label '{right_label}'", "set y2range [0:*]", "set y2tics", "set ytics nomirror"]
        else:
            script += ["unset y2label", "unset y2tics", "set ytics mirror"]
        script.append("plot " + ", ".join(plots) if plots else "plot NaN notitle")
    script.append("unset multiplot")
    path = os.path.join(work, "dashboard.gp")
    with open(path, "w") as f:
        f.write("\n".join(script) + "\n")
    subprocess.run(["gnuplot", path], check=True)


if __name__ == "__main__":
    main()
