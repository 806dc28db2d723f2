#!/usr/bin/env python3
"""Prints the k observations of an engram space nearest to a cue.

The cue is a JSON array of numbers, given with --cue or on stdin. Each line
of output is: rank, observation id, distance, content (tab-separated),
nearest first. Connection settings come from the libpq environment (PGHOST,
PGPORT, PGDATABASE, PGUSER, ...) or --dsn. Needs psycopg 3 (Debian:
python3-psycopg).
"""

import argparse
import json
import sys

import psycopg


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("space")
    parser.add_argument("--cue", help="JSON array of numbers (default: read from stdin)")
    parser.add_argument("-k", type=int, default=10, help="how many to recall (default 10)")
    parser.add_argument("--dsn", default="", help="libpq connection string (default: the PG* environment)")
    args = parser.parse_args()
    cue = [float(x) for x in json.loads(args.cue if args.cue is not None else sys.stdin.read())]

    with psycopg.connect(args.dsn, fallback_application_name="engram-recall-python") as conn:
        rows = conn.execute(
            """SELECT r.ordinality, r.id, r.distance, o.content
               FROM engram.recall(%s, %s::real[], %s) WITH ORDINALITY r
               JOIN engram.observations o ON o.id = r.id
               ORDER BY r.ordinality""",
            (args.space, cue, args.k),
        )
        for rank, observation_id, distance, content in rows:
            print(f"{rank}\t{observation_id}\t{distance:.6g}\t{content}")


if __name__ == "__main__":
    try:
        main()
    except psycopg.Error as e:
        detail = f"\nrecall: {e.diag.message_detail}" if e.diag.message_detail else ""
        sys.exit(f"recall: error: {e.diag.message_primary} (SQLSTATE {e.sqlstate}){detail}")
