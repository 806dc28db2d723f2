# Wide vectors: spaces of 4,096 dimensions, stored as f16 (l2) and sq8
# (cosine), fed the same 600 clustered rows through psql's \copy, one
# transaction each (a row is 16 KB, so the table keeps its embedding in
# TOAST, and the transaction is read back from the table by id ranges).
#   - the embedding column is stored EXTERNAL: the wide embeddings are in
#     the TOAST table, uncompressed, and every row reads back from the table
#     exactly as it was copied in;
#   - a few rows observed in one small transaction (ring records carrying
#     the vectors) are stored too;
#   - recall@10 of each space against a brute force computed in SQL is at
#     least 0.95, and every probed row is its own top hit;
#   - after a clean restart both spaces load their graph files and answer
#     every query with the same ids and distances;
#   - a forgotten wide row is no longer recalled;
#   - a 4,096-d f32 space and a 4,097-d f16 space are refused with 22023,
#     a detail naming both limits and (for f32) a hint to use f16 or sq8;
#   - observe() of a 4,095-d vector into the wide space is refused.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $dim = 4096;
my $rows = 600;
my $node = engram_node('wide', 'engram.persist_interval' => 0, 'engram.persist_rows' => 0);

my %id;
$id{half} = $node->safe_psql('postgres', "SELECT engram.create_space('wide_half', $dim, 'l2', storage => 'f16')");
$id{quantized} =
  $node->safe_psql('postgres', "SELECT engram.create_space('wide_sq8', $dim, 'cosine', storage => 'sq8')");
my %space = (half => 'wide_half', quantized => 'wide_sq8');
my %metric = (half => 'l2', quantized => 'cosine');
is( $node->safe_psql('postgres',
		"SELECT attstorage FROM pg_attribute WHERE attrelid = 'engram.observations'::regclass AND attname = 'embedding'"
	),
	'e',
	'engram.observations stores its embeddings EXTERNAL');

# 20 random centres in [-1, 1]^4096; each row and cue is a centre plus
# uniform noise of +-0.4 per component (seeded, so runs are alike).
my $started = time;
clustered_rows($node, 0.25, $dim, 20, $rows, 10);
note(sprintf('generating the rows took %.1f s', time - $started));

# Each space's rows go through COPY: written to a file by the server, read
# by psql's \copy (COPY FROM STDIN), in one transaction per space, larger
# than an eighth of the ring: the workers read it back from the table.
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT pg_size_bytes(current_setting('engram.ring_size')) / 8"),
	'<', $rows * 4 * $dim, 'a COPY transaction is larger than an eighth of engram.ring_size');
$started = time;
for my $which (qw(half quantized))
{
	my $file = $node->basedir . "/$which.copy";
	$node->safe_psql('postgres',
		"COPY (SELECT $id{$which}, v, 'row ' || rid FROM public.base ORDER BY rid) TO '$file'");
	$node->safe_psql('postgres', "\\copy engram.observations (space_id, embedding, content) FROM '$file'");
	unlink $file;
}
note(sprintf('copying took %.1f s', time - $started));
for my $which (qw(half quantized))
{
	is( $node->safe_psql(
			'postgres', qq{
			SELECT count(*) FILTER (WHERE o.embedding IS DISTINCT FROM b.v) || '/' || count(*)
			FROM public.base b
			LEFT JOIN engram.observations o
				   ON o.space_id = $id{$which} AND o.content = 'row ' || b.rid}),
		"0/$rows",
		"$space{$which}: every copied row reads back with the embedding it was copied with");
}
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'engram.observations'::regclass"),
	'>=', 2 * $rows * 4 * $dim, 'the wide embeddings are in the TOAST table');

# Five rows far from every cluster, observed in one transaction: small
# enough to reach the workers as vectors in ring records.
my $far_ids = $node->safe_psql(
	'postgres', qq{
	BEGIN;
	SELECT string_agg(engram.observe('wide_half', array_fill((3 + g)::real, ARRAY[$dim]), 'far ' || g)::text, ',' ORDER BY g)
	FROM generate_series(1, 5) g;
	COMMIT;});
like($far_ids, qr/^\d+(,\d+){4}$/, "five far rows observed in one transaction: $far_ids");
# Their embeddings (all components alike) would compress to almost nothing.
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT min(pg_column_size(embedding)) FROM engram.observations WHERE content LIKE 'far %'"),
	'>', 4 * $dim, 'a wide embedding is stored uncompressed');

# The exact 10 nearest rows (by rid, the row's place in every space) of
# every cue, by squared l2 and by cosine distance (ties to the lower rid).
$started = time;
brute_force_truth($node);
note(sprintf('brute force took %.1f s', time - $started));

ok( $node->safe_psql('postgres', "SELECT bool_and(engram.wait_linked(name, NULL, 600000)) FROM engram.spaces") eq 't',
	'every space is linked');
check_stored_sets($node, 'after ingest');
is( $node->safe_psql('postgres', "SELECT string_agg(name || ':' || observations, ',' ORDER BY name) FROM engram.spaces"),
	'wide_half:' . ($rows + 5) . ",wide_sq8:$rows",
	'engram.spaces counts every row');

# Every 20th row (and every far row) is its own top hit: at distance 0 in
# the sq8 space, whose candidates are re-ranked by their exact vectors,
# within f16's rounding in the f16 one.
sub check_self
{
	my ($n, $which, $label) = @_;
	my $bound = $which eq 'half' ? 0.05 : 1e-5;
	my ($probes, $wrong) =
	  self_hits($n, $space{$which}, $id{$which}, $bound, "o.id % 20 = 0 OR o.content LIKE 'far %'");
	cmp_ok($probes, '>=', 30, "$label: $probes rows of $space{$which} probed");
	is($wrong, 0, "$label: every probed row of $space{$which} is its own top hit at a distance below $bound");
}

my %answers;
for my $which (qw(half quantized))
{
	my $r = recall_against_truth($node, $space{$which}, $id{$which}, $metric{$which});
	cmp_ok($r, '>=', 0.95, "$space{$which}: recall\@10 against brute force is $r");
	check_self($node, $which, 'before the restart');
	$answers{$which} = recall_answers($node, $space{$which});
}

# --- restart: both spaces answer from their graph files ---------------------------
my $offset = log_offset($node);
$node->restart;
my $events = wait_graph_file_events($node, $offset, values %space);
is_deeply($events->{loaded}{wide_half}, [ [ $rows + 5, 0 ] ], 'after the restart: wide_half loads its graph file')
  or diag(explain($events));
is_deeply($events->{loaded}{wide_sq8}, [ [ $rows, 0 ] ], 'after the restart: wide_sq8 loads its graph file')
  or diag(explain($events));
for my $which (qw(half quantized))
{
	is(recall_answers($node, $space{$which}), $answers{$which}, "after the restart: $space{$which} answers every query as before");
	check_self($node, $which, 'after the restart');
}

# --- forgetting a wide row --------------------------------------------------------
my ($gone) = split /,/, $far_ids;
my $far_cue = "array_fill(4::real, ARRAY[$dim])";
is($node->safe_psql('postgres', "SELECT id FROM engram.recall('wide_half', $far_cue, 1)"),
	$gone, 'the first far row is the top hit of its own vector');
$node->safe_psql('postgres', "SELECT engram.forget('wide_half', ARRAY[$gone]::bigint[])");
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.recall('wide_half', $far_cue, 10) WHERE id = $gone"),
	0, 'once forgotten, it is no longer recalled');

# --- refusals -----------------------------------------------------------------------
my ($ret, $out, $err) = $node->psql(
	'postgres', "SELECT engram.create_space('wide_f32', $dim, 'l2')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'a 4,096-d f32 space is refused');
like($err, qr/22023: dimension 4096 is out of range/, 'with SQLSTATE 22023 and the dimension');
like($err, qr/DETAIL:  A space holds vectors of 1 to 2000 dimensions with storage "f32", and of 1 to 4096 with "f16" or "sq8"\./,
	'a detail naming both limits');
like($err, qr/HINT:  Create the space with storage => 'f16' or 'sq8'/, 'and a hint to use f16 or sq8');

($ret, $out, $err) = $node->psql(
	'postgres', "SELECT engram.create_space('too_wide', 4097, 'l2', storage => 'f16')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'a 4,097-d f16 space is refused');
like($err, qr/22023: dimension 4097 is out of range/, 'with SQLSTATE 22023 and the dimension');
like($err, qr/DETAIL:  A space holds vectors of 1 to 2000 dimensions with storage "f32", and of 1 to 4096/,
	'a detail naming both limits');
unlike($err, qr/HINT/, 'and no hint, since no storage takes it');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.spaces WHERE name IN ('wide_f32', 'too_wide')"),
	0, 'neither space was created');

($ret, $out, $err) = $node->psql(
	'postgres', "SELECT engram.observe('wide_half', array_fill(1::real, ARRAY[4095]))",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'a 4,095-d vector is refused by the 4,096-d space');
like($err, qr/22000: expected 4096 dimensions, not 4095/, 'with the expected and the given dimension');

check_stored_sets($node, 'at the end');
$node->log_check('no crash', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);
done_testing();
