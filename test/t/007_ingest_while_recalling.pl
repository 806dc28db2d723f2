# One hot space under mixed load: four pgbench clients ingest into it for
# about 25 s while two more recall from it without pause for at least 20 s.
#
# The ingest clients mix every path: engram.observe followed by a recall of
# the same vector in the next transaction (read-your-writes: it must come
# back at distance 0), observe_batch, a plain INSERT into
# engram.observations, and transactions that observe a vector and roll back.
# The recall clients check every answer inside the server
# (engram_test.check_recall raises an error on the first violation, which
# pgbench counts as a failed client): exactly k rows, nearest first, every id
# a committed row of this space (a rolled-back observation has no row),
# and a recall as_of the generation of one of those rows never returns a
# newer observation.
#
# At the end: no client failed, no backend or worker crashed, and once the
# workers catch up every committed observation is stored and linked.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = engram_node('hot_space', 'engram.ring_size' => "'32MB'", max_connections => 30);
my $dim = 32;
$node->safe_psql('postgres', qq{
	SELECT engram.create_space('hot', $dim, 'l2');
	CREATE SCHEMA engram_test;

	-- A deterministic vector per seed, so that a script can observe one and
	-- recall it later from the seed alone.
	CREATE FUNCTION engram_test.vec(seed bigint) RETURNS real[]
	LANGUAGE sql IMMUTABLE AS
	\$\$ SELECT array_agg(sin(seed * 0.000731 + g * 1.37)::real ORDER BY g) FROM generate_series(1, $dim) g \$\$;

	-- Read-your-writes: the observation committed by the previous
	-- transaction is among the top 3 at distance 0.
	CREATE FUNCTION engram_test.check_own(oid bigint, seed bigint) RETURNS void
	LANGUAGE plpgsql AS \$\$
	BEGIN
		IF NOT EXISTS (SELECT 1 FROM engram.recall('hot', engram_test.vec(seed), 3) r
					   WHERE r.id = oid AND r.distance = 0) THEN
			RAISE EXCEPTION 'read-your-writes violated: observation % not recalled at distance 0', oid;
		END IF;
	END \$\$;

	CREATE FUNCTION engram_test.check_recall(cue real[], k int) RETURNS void
	LANGUAGE plpgsql AS \$\$
	DECLARE
		older bigint;
		n int := 0;
		previous real := 0;
		r record;
	BEGIN
		FOR r IN SELECT * FROM engram.recall('hot', cue, k) LOOP
			n := n + 1;
			IF r.distance < previous THEN
				RAISE EXCEPTION 'results out of order: % after %', r.distance, previous;
			END IF;
			previous := r.distance;
			IF n = (k + 1) / 2 THEN
				older := r.generation;
			END IF;
			IF NOT EXISTS (SELECT 1 FROM engram.observations o
						   WHERE o.id = r.id AND o.space_id = engram._space_id('hot')) THEN
				RAISE EXCEPTION 'recall returned %, which is not a committed observation of the space', r.id;
			END IF;
		END LOOP;
		-- The space holds more than k observations before the recall
		-- clients start, so every recall finds k.
		IF n <> k THEN
			RAISE EXCEPTION 'recall returned % rows for k = %', n, k;
		END IF;
		IF older IS NULL THEN
			RETURN;
		END IF;
		-- A snapshot as of the generation of one of those rows returns
		-- nothing newer than it.
		FOR r IN SELECT * FROM engram.recall('hot', cue, k, as_of => older) LOOP
			IF r.generation > older THEN
				RAISE EXCEPTION 'recall as of % returned generation %', older, r.generation;
			END IF;
		END LOOP;
	END \$\$;
});

my $bindir = $ENV{PG_BINDIR} // '';
my $pgbench = -x "$bindir/pgbench" ? "$bindir/pgbench" : 'pgbench';

my @ingest = (
	'-f', write_script($node, q{ -- observe_then_recall
\set seed random(1, 1000000000)
SELECT engram.observe('hot', engram_test.vec(:seed), 'observe ' || :seed) AS oid \gset
SELECT engram_test.check_own(:oid, :seed);
}) . '@5',
	'-f', write_script($node, q{ -- batch
\set seed random(1, 1000000000)
SELECT engram.observe_batch('hot', (SELECT array_agg(engram_test.vec(:seed + i) ORDER BY i) FROM generate_series(1, 20) i));
}) . '@3',
	'-f', write_script($node, q{ -- insert
\set seed random(1, 1000000000)
INSERT INTO engram.observations (space_id, embedding, content)
SELECT engram._space_id('hot'), engram_test.vec(:seed + i), 'insert' FROM generate_series(1, 5) i;
}) . '@2',
	'-f', write_script($node, q{ -- rolled_back
\set seed random(1, 1000000000)
BEGIN;
SELECT engram.observe('hot', engram_test.vec(:seed), 'rolled back');
SELECT engram.observe_batch('hot', (SELECT array_agg(engram_test.vec(:seed + i) ORDER BY i) FROM generate_series(1, 5) i));
ROLLBACK;
}) . '@1');

my @recall = (
	'-f', write_script($node, q{ -- recall
\set seed random(1, 1000000000)
SELECT engram_test.check_recall(engram_test.vec(:seed), 10);
}) . '@4',
	'-f', write_script($node, q{ -- recall_wide
\set seed random(1, 1000000000)
SELECT engram_test.check_recall(engram_test.vec(:seed), 100);
}) . '@1');

my @connection = ('-h', $node->host, '-p', $node->port, 'postgres');
my ($ingest_out, $ingest_err, $recall_out, $recall_err) = ('', '', '', '');
my $ingest_run = IPC::Run::start([ $pgbench, '-n', '-c', 4, '-j', 2, '-T', 25, @ingest, @connection ],
	'>', \$ingest_out, '2>', \$ingest_err);
# Let the space fill a little before the recall clients start.
$node->poll_query_until('postgres', "SELECT observations >= 300 FROM engram.spaces WHERE name = 'hot'")
  or die 'the ingest clients never got going';
my $recall_run = IPC::Run::start([ $pgbench, '-n', '-c', 2, '-j', 2, '-T', 20, @recall, @connection ],
	'>', \$recall_out, '2>', \$recall_err);

ok($recall_run->finish, 'the recall clients ran for 20 s without a failure') or diag($recall_err);
ok($ingest_run->finish, 'the ingest clients ran for 25 s without a failure') or diag($ingest_err);

sub processed
{
	my ($out) = @_;
	return $out =~ /number of transactions actually processed: (\d+)/ ? $1 : 0;
}
sub failed
{
	my ($out) = @_;
	return $out =~ /number of failed transactions: (\d+)/ ? $1 : 0;
}
my ($ingested, $recalled) = (processed($ingest_out), processed($recall_out));
cmp_ok($ingested, '>', 100, "the ingest clients committed $ingested transactions");
cmp_ok($recalled, '>', 100, "the recall clients ran $recalled checked recalls");
is(failed($ingest_out) + failed($recall_out), 0, 'no transaction failed');
unlike($ingest_err . $recall_err, qr/ERROR|aborted/, 'no client saw an error');

ok($node->safe_psql('postgres', "SELECT engram.wait_linked('hot', NULL, 120000)") eq 't',
	'the workers link every committed observation');
my ($committed, $stored, $linked, $pending) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM engram.observations), s.observations, s.linked, s.pending
	FROM engram.spaces s WHERE s.name = 'hot'});
is($stored, $committed, "the index stores every committed observation ($committed)");
is($linked, $committed, 'and every one of them is linked');
is($pending, 0, 'nothing is left pending');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.observations WHERE content = 'rolled back'"),
	0, 'no rolled-back observation has a row');
check_converged($node, 'after the run');
$node->log_check('no crash or assertion failure', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);
note("ingest: $ingested transactions; recall: $recalled checked recalls");

done_testing();
