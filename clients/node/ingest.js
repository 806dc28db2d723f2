#!/usr/bin/env node
// Streams observations into an engram space, exactly once.
//
// Reads JSON lines ({"embedding": [...], "content": "..."}) from stdin and
// sends them in batches through an engram streaming session: the n-th line is
// sequence number n. Three things can go wrong, and each has its answer:
//
// - The server refuses a commit with SQLSTATE 53E01 (backpressure): wait as
//   long as the refusal's hint says, then go on with the batch size it
//   suggests (engram.pressure(space) gives both when the hint does not).
// - The connection drops (a restart, pg_terminate_backend, a network fault),
//   perhaps after the server committed a batch but before we heard so:
//   reconnect, ask engram.sessions for the session's last committed sequence
//   number, and resume after it. Nothing is sent twice and nothing is skipped.
// - Anything else is a real error: report it and stop.
//
// Usage: node ingest.js SPACE [--batch N] [--session UUID] < observations.jsonl
// Connection settings come from the libpq-style environment (PGHOST, PGPORT,
// PGDATABASE, PGUSER, PGPASSWORD) or DATABASE_URL.
'use strict';

const readline = require('node:readline');
const { parseArgs } = require('node:util');
const { setTimeout: sleep } = require('node:timers/promises');
const pg = require('pg');

const OVERLOADED = '53E01'; // engram's backpressure refusal
const SEQUENCE_GAP = '22E01'; // a sequence number beyond the session's last + 1
const UNDEFINED_OBJECT = '42704';
const RETRY_HINT = /Retry after (\d+) ms with batches of (\d+)/;

const log = (message) => process.stderr.write(`ingest: ${message}\n`);

// A connected client that remembers whether its connection has gone.
async function connect() {
  let delay = 100;
  const deadline = Date.now() + 60000;
  for (;;) {
    const client = new pg.Client({
      connectionString: process.env.DATABASE_URL,
      fallback_application_name: 'engram-ingest-node',
    });
    client.lost = false;
    client.on('error', () => { client.lost = true; });
    client.on('end', () => { client.lost = true; });
    try {
      await client.connect();
      return client;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      log(`cannot connect (${err.message}); retrying in ${delay} ms`);
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

// Errors that end the connection: terminated, server gone, network.
function connectionLost(client, err) {
  return client.lost || err.severity === 'FATAL' || err.severity === 'PANIC';
}

async function lastCommittedSeq(client, session) {
  const { rows } = await client.query(
    'SELECT last_seq FROM engram.sessions WHERE session_id = $1', [session]);
  if (rows.length === 0) {
    throw new Error(`session ${session} no longer exists (closed, or its space was dropped)`);
  }
  return Number(rows[0].last_seq);
}

// Reconnects while the connection is gone; the session's last committed seq.
async function resync(client, session) {
  for (;;) {
    if (client.lost) {
      client.end().catch(() => {});
      client = await connect();
    }
    try {
      return [client, await lastCommittedSeq(client, session)];
    } catch (err) {
      if (!connectionLost(client, err)) throw err;
      client.lost = true;
    }
  }
}

// The wait (ms) and batch size a 53E01 refusal asks for.
async function backpressureAdvice(client, space, err, batch) {
  const hint = RETRY_HINT.exec(err.hint ?? '');
  if (hint) return [Number(hint[1]), Number(hint[2])];
  // No figures in the hint (memory is full, or the server speaks another
  // language): ask for the same figures as columns.
  try {
    const { rows } = await client.query(
      'SELECT retry_after_ms, suggested_batch FROM engram.pressure($1)', [space]);
    // 0 ms at level normal: still not a busy loop
    return [Math.max(rows[0].retry_after_ms, 100), rows[0].suggested_batch];
  } catch {
    return [1000, batch];
  }
}

async function closeSession(client, session) {
  try {
    await client.query('SELECT engram.close_session($1)', [session]);
  } catch (err) {
    if (!connectionLost(client, err)) throw err;
    const again = await connect();
    try {
      await again.query('SELECT engram.close_session($1)', [session]);
    } catch (retryErr) {
      // The first close committed before the connection went.
      if (retryErr.code !== UNDEFINED_OBJECT) throw retryErr;
    } finally {
      await again.end();
    }
    return;
  }
  await client.end();
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { batch: { type: 'string', default: '100' }, session: { type: 'string' } },
  });
  if (positionals.length !== 1) {
    throw new Error('usage: node ingest.js SPACE [--batch N] [--session UUID] < observations.jsonl');
  }
  const space = positionals[0];
  let batch = Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1) throw new Error('--batch must be a positive integer');

  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const readRows = async (n, into) => {
    while (into.length < n) {
      const { value, done } = await lines.next();
      if (done) return;
      const row = JSON.parse(value);
      into.push([row.embedding, row.content ?? null]);
    }
  };

  let client = await connect();
  let session;
  let acknowledged;
  if (values.session) {
    session = values.session;
    acknowledged = await lastCommittedSeq(client, session);
    await readRows(acknowledged, []);
    log(`resuming session ${session} after sequence number ${acknowledged}`);
  } else {
    session = (await client.query('SELECT engram.open_session($1) AS s', [space])).rows[0].s;
    acknowledged = 0;
    log(`opened session ${session}`);
  }

  const unacknowledged = []; // rows read but not yet committed, from acknowledged + 1 on
  for (;;) {
    await readRows(batch, unacknowledged);
    if (unacknowledged.length === 0) break;
    const sending = unacknowledged.slice(0, batch);
    try {
      await client.query(
        'SELECT engram.observe_batch($1, $2::real[], $3::text[], session => $4, seq => $5)',
        [space, sending.map((r) => r[0]), sending.map((r) => r[1]), session, acknowledged + 1]);
    } catch (err) {
      const lost = connectionLost(client, err);
      if (!lost && err.code === OVERLOADED) {
        let delay;
        [delay, batch] = await backpressureAdvice(client, space, err, batch);
        log(`${OVERLOADED} ${err.message}: retrying after ${delay} ms with batches of ${batch}`);
        await sleep(delay);
        continue;
      }
      if (lost) {
        client.lost = true;
        log(`connection lost (${err.message}); reconnecting`);
      } else if (err.code !== SEQUENCE_GAP) {
        throw err;
      }
      // Where the server really is decides: the batch in flight may have
      // committed before the connection went.
      let committed;
      [client, committed] = await resync(client, session);
      if (committed < acknowledged) {
        throw new Error(`the server lost acknowledged sequence numbers ${committed + 1}..${acknowledged}`
          + ' (synchronous_commit off and a crash?)');
      }
      if (committed > acknowledged + sending.length) {
        throw new Error(`session ${session} is at ${committed}, beyond what this client sent`
          + ' (does another client use it?)');
      }
      unacknowledged.splice(0, committed - acknowledged);
      acknowledged = committed;
      log(`resuming at sequence number ${acknowledged + 1}`);
      continue;
    }
    unacknowledged.splice(0, sending.length);
    acknowledged += sending.length;
  }

  await closeSession(client, session);
  log(`done: ${acknowledged} observations in session ${session}`);
}

main().catch((err) => {
  log(`error: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}${err.detail ? `\ningest: ${err.detail}` : ''}`);
  process.exit(1); // without waiting for the connection and stdin to close
});
