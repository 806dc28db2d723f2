#!/usr/bin/env node
// Prints the k observations of an engram space nearest to a cue.
//
// Usage: node recall.js SPACE [--cue '[0.1, 0.2, ...]'] [-k 10]
// The cue is a JSON array of numbers, given with --cue or on stdin. Each line
// of output is: rank, observation id, distance, content (tab-separated),
// nearest first. Connection settings come from the libpq-style environment
// (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD) or DATABASE_URL.
'use strict';

const fs = require('node:fs');
const { parseArgs } = require('node:util');
const pg = require('pg');

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { cue: { type: 'string' }, k: { type: 'string', short: 'k', default: '10' } },
  });
  if (positionals.length !== 1) throw new Error("usage: node recall.js SPACE [--cue '[...]'] [-k 10]");
  const cue = JSON.parse(values.cue ?? fs.readFileSync(0, 'utf8'));

  const client = new pg.Client({
    connectionString: process.env.DATABASE_URL,
    fallback_application_name: 'engram-recall-node',
  });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT r.ordinality AS rank, r.id, r.distance, o.content
       FROM engram.recall($1, $2::real[], $3) WITH ORDINALITY r
       JOIN engram.observations o ON o.id = r.id
       ORDER BY r.ordinality`,
      [positionals[0], cue, Number(values.k)]);
    for (const r of rows) console.log(`${r.rank}\t${r.id}\t${Number(r.distance.toPrecision(6))}\t${r.content}`);
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  console.error(`recall: error: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}${err.detail ? `\nrecall: ${err.detail}` : ''}`);
  process.exitCode = 1;
});
