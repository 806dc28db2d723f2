#!/usr/bin/env python3
"""Streams observations into an engram space, exactly once.

Reads JSON lines ({"embedding": [...], "content": "..."}) from stdin and
sends them in batches through an engram streaming session: the n-th line is
sequence number n. Three things can go wrong, and each has its answer:

- The server refuses a commit with SQLSTATE 53E01 (backpressure): wait as
  long as the refusal's hint says, then go on with the batch size it
  suggests (engram.pressure(space) gives both when the hint does not).
- The connection drops (a restart, pg_terminate_backend, a network fault),
  perhaps after the server committed a batch but before we heard so:
  reconnect, ask engram.sessions for the session's last committed sequence
  number, and resume after it. Nothing is sent twice and nothing is skipped.
- Anything else is a real error: report it and stop.

Connection settings come from the usual libpq environment (PGHOST, PGPORT,
PGDATABASE, PGUSER, ...) or --dsn. Needs psycopg 3 (Debian: python3-psycopg).
"""

import argparse
import collections
import itertools
import json
import re
import sys
import time

import psycopg

OVERLOADED = "53E01"  # engram's backpressure refusal
SEQUENCE_GAP = "22E01"  # a sequence number beyond the session's last + 1
RETRY_HINT = re.compile(r"Retry after (\d+) ms with batches of (\d+)")


def log(message):
    print(f"ingest: {message}", file=sys.stderr, flush=True)


def connect(dsn):
    """Connects, retrying for a minute while the server is unreachable."""
    delay = 0.1
    deadline = time.monotonic() + 60
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, fallback_application_name="engram-ingest-python")
        except psycopg.OperationalError as e:
            if time.monotonic() > deadline:
                raise
            log(f"cannot connect ({str(e).strip()}); retrying in {delay:.1f} s")
            time.sleep(delay)
            delay = min(delay * 2, 5)


def last_committed_seq(conn, session):
    row = conn.execute("SELECT last_seq FROM engram.sessions WHERE session_id = %s", (session,)).fetchone()
    if row is None:
        raise SystemExit(f"ingest: session {session} no longer exists (closed, or its space was dropped)")
    return row[0]


def resync(conn, dsn, session):
    """Reconnects while the connection is gone; the session's last committed seq."""
    while True:
        if conn.closed:
            conn = connect(dsn)
        try:
            return conn, last_committed_seq(conn, session)
        except psycopg.OperationalError:
            if not conn.closed:
                raise


def backpressure_advice(conn, space, error, batch):
    """The wait (seconds) and batch size a 53E01 refusal asks for."""
    hint = RETRY_HINT.search(error.diag.message_hint or "")
    if hint:
        return int(hint[1]) / 1000, int(hint[2])
    # No figures in the hint (memory is full, or the server speaks another
    # language): ask for the same figures as columns.
    try:
        retry_ms, suggested = conn.execute(
            "SELECT retry_after_ms, suggested_batch FROM engram.pressure(%s)", (space,)
        ).fetchone()
        return max(retry_ms, 100) / 1000, suggested  # 0 ms at level normal: still not a busy loop
    except psycopg.Error:
        return 1.0, batch


def close_session(conn, dsn, session):
    try:
        conn.execute("SELECT engram.close_session(%s)", (session,))
    except psycopg.OperationalError:
        if not conn.closed:
            raise
        with connect(dsn) as again:
            try:
                again.execute("SELECT engram.close_session(%s)", (session,))
            except psycopg.errors.UndefinedObject:
                pass  # the first close committed before the connection went


def lines_to_rows(stream):
    for line in stream:
        row = json.loads(line)
        # floats throughout: a JSON 1 would otherwise make psycopg send integers
        yield [float(x) for x in row["embedding"]], row.get("content")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("space")
    parser.add_argument("--dsn", default="", help="libpq connection string (default: the PG* environment)")
    parser.add_argument("--batch", type=int, default=100, help="rows per observe_batch call (default 100)")
    parser.add_argument("--session", help="resume this session: skip the input lines it already holds")
    args = parser.parse_args()
    if args.batch < 1:
        parser.error("--batch must be at least 1")

    conn = connect(args.dsn)
    rows = lines_to_rows(sys.stdin)
    if args.session:
        session = args.session
        acknowledged = last_committed_seq(conn, session)
        for _ in itertools.islice(rows, acknowledged):
            pass
        log(f"resuming session {session} after sequence number {acknowledged}")
    else:
        session = conn.execute("SELECT engram.open_session(%s)", (args.space,)).fetchone()[0]
        acknowledged = 0
        log(f"opened session {session}")

    batch = args.batch
    unacknowledged = collections.deque()  # rows read but not yet committed, from acknowledged + 1 on
    while True:
        unacknowledged.extend(itertools.islice(rows, max(batch - len(unacknowledged), 0)))
        if not unacknowledged:
            break
        sending = list(itertools.islice(unacknowledged, batch))
        try:
            conn.execute(
                "SELECT engram.observe_batch(%s, %s::real[], %s::text[], session => %s, seq => %s)",
                (args.space, [e for e, _ in sending], [c for _, c in sending], session, acknowledged + 1),
            )
        except psycopg.Error as e:
            if not conn.closed and e.sqlstate == OVERLOADED:
                delay, batch = backpressure_advice(conn, args.space, e, batch)
                log(f"{OVERLOADED} {e.diag.message_primary}: retrying after {delay * 1000:.0f} ms "
                    f"with batches of {batch}")
                time.sleep(delay)
                continue
            if conn.closed:
                log(f"connection lost ({str(e).strip().splitlines()[0]}); reconnecting")
            elif e.sqlstate != SEQUENCE_GAP:
                raise
            # Where the server really is decides: the batch in flight may
            # have committed before the connection went.
            conn, committed = resync(conn, args.dsn, session)
            if committed < acknowledged:
                raise SystemExit(f"ingest: the server lost acknowledged sequence numbers {committed + 1}.."
                                 f"{acknowledged} (synchronous_commit off and a crash?)")
            if committed > acknowledged + len(sending):
                raise SystemExit(f"ingest: session {session} is at {committed}, beyond what this client sent "
                                 "(does another client use it?)")
            for _ in range(committed - acknowledged):
                unacknowledged.popleft()
            acknowledged = committed
            log(f"resuming at sequence number {acknowledged + 1}")
            continue
        for _ in sending:
            unacknowledged.popleft()
        acknowledged += len(sending)

    close_session(conn, args.dsn, session)
    log(f"done: {acknowledged} observations in session {session}")


if __name__ == "__main__":
    try:
        main()
    except psycopg.Error as e:
        detail = f"\ningest: {e.diag.message_detail}" if e.diag.message_detail else ""
        sys.exit(f"ingest: error: {e.diag.message_primary} (SQLSTATE {e.sqlstate}){detail}")
