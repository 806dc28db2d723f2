# Storage encodings: spaces of 768-d clustered vectors stored as sq8
# (cosine), f16 (l2) and f32 (l2), fed the same rows.
#   - engram.spaces shows each space's storage, and a quantized index holds
#     fewer bytes than the f32 one (the workers build it in its encoding);
#   - recall@10 of each space against a brute force computed in SQL is at
#     least 0.95, and every probed row is its own top hit at distance 0 (the
#     quantized spaces' candidates are re-ranked by their exact vectors);
#   - after a clean restart every space loads its graph file and answers
#     every query with the same ids and distances;
#   - engram.rebuild keeps the storage;
#   - a graph file whose storage is not the catalog's is discarded with a LOG
#     line saying why, and the space is rebuilt in the catalog's storage;
#   - engram.audit_erasure finds a vector in a quantized space's graph file;
#   - a bad storage value is refused with 22023 and a hint.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $dim = 768;
my $rows = 2000;
my $node = engram_node('storage', 'engram.persist_interval' => 0, 'engram.persist_rows' => 0);

my %id;
$id{quantized} = $node->safe_psql('postgres', "SELECT engram.create_space('quantized', $dim, 'cosine', storage => 'sq8')");
$id{half} = $node->safe_psql('postgres', "SELECT engram.create_space('half', $dim, 'l2', 16, 200, 'f16')");
$id{plain} = $node->safe_psql('postgres', "SELECT engram.create_space('plain', $dim, 'l2')");
is( $node->safe_psql('postgres', "SELECT string_agg(name || ':' || storage, ',' ORDER BY space_id) FROM engram.spaces"),
	'quantized:sq8,half:f16,plain:f32',
	'engram.spaces shows each space\'s storage (f32 by default)');

# 30 random centres in [-1, 1]^768; each row and cue is a centre plus
# uniform noise of +-0.4 per component (seeded, so runs are alike).
clustered_rows($node, 0.24, $dim, 30, $rows, 12);
for my $space (qw(quantized half plain))
{
	$node->safe_psql('postgres',
		"INSERT INTO engram.observations (space_id, embedding, content) SELECT $id{$space}, v, 'row ' || rid "
		  . 'FROM public.base ORDER BY rid');
}

# The exact 10 nearest rows (by rid, the row's place in every space) of
# every cue, by squared l2 and by cosine distance (ties to the lower rid).
my $started = time;
brute_force_truth($node);
note(sprintf('brute force took %.1f s', time - $started));

ok( $node->safe_psql('postgres', "SELECT bool_and(engram.wait_linked(name, NULL, 600000)) FROM engram.spaces") eq 't',
	'every space is linked');
check_stored_sets($node, 'after ingest');

# Memory per stored vector: sq8 768 + 8 bytes, f16 1,536, f32 3,072 (plus
# the same graph per node in each).
my %bytes = map { split /\|/ } split /\n/,
  $node->safe_psql('postgres', 'SELECT name, memory_bytes FROM engram.spaces');
cmp_ok($bytes{quantized}, '<', $bytes{half}, "sq8 space holds fewer bytes ($bytes{quantized}) than f16 ($bytes{half})");
cmp_ok($bytes{half}, '<', $bytes{plain}, "f16 space holds fewer bytes ($bytes{half}) than f32 ($bytes{plain})");

my %metric = (quantized => 'cosine', half => 'l2', plain => 'l2');

# Every 50th row is its own top hit: at distance 0 where the distances are
# exact (f32, and sq8 by its re-ranking), within f16's rounding otherwise.
sub check_self
{
	my ($n, $space, $label, $storage) = @_;
	my $bound = $storage eq 'f16' ? 0.05 : 1e-6;
	my ($probes, $wrong) = self_hits($n, $space, $id{$space}, $bound, 'o.id % 50 = 0');
	cmp_ok($probes, '>=', 30, "$label: $probes rows of $space probed");
	is($wrong, 0, "$label: every probed row of $space is its own top hit at a distance below $bound");
}
my %storage = (quantized => 'sq8', half => 'f16', plain => 'f32');

my %answers;
for my $space (qw(quantized half plain))
{
	my $r = recall_against_truth($node, $space, $id{$space}, $metric{$space});
	cmp_ok($r, '>=', 0.95, "$space: recall\@10 against brute force is $r");
	check_self($node, $space, 'before the restart', $storage{$space});
	$answers{$space} = recall_answers($node, $space);
}

# A scored recall from the sq8 space ranks its re-ranked candidates by score.
my ($scored, $misordered, $top) = split /\|/, $node->safe_psql(
	'postgres', qq{
	SELECT count(*), count(*) FILTER (WHERE r.score > r.previous), min(r.id) FILTER (WHERE r.n = 1)
	FROM (SELECT x.id, x.score, x.n, lag(x.score) OVER (ORDER BY x.n) AS previous
		  FROM engram.recall('quantized', (SELECT embedding FROM engram.observations WHERE space_id = $id{quantized}
										   ORDER BY id LIMIT 1), 10, confidence_weight => 0.5)
			   WITH ORDINALITY x(id, distance, score, confidence, generation, observed_at, n)) r});
is($scored, 10, 'a scored recall from the sq8 space returns 10 rows');
is($misordered, 0, 'highest score first');
is($top, $node->safe_psql('postgres', "SELECT min(id) FROM engram.observations WHERE space_id = $id{quantized}"),
	'the cue\'s own row first');

# --- restart: every space answers from its graph file -----------------------------
my $offset = log_offset($node);
$node->restart;
my $events = wait_graph_file_events($node, $offset, qw(quantized half plain));
for my $space (qw(quantized half plain))
{
	is_deeply($events->{loaded}{$space}, [ [ $rows, 0 ] ], "after the restart: $space loads its graph file")
	  or diag(explain($events));
	is(recall_answers($node, $space), $answers{$space}, "after the restart: $space answers every query as before");
}
check_self($node, 'quantized', 'after the restart', 'sq8');

# engram.audit_erasure finds a row's vector in its space's graph file, which
# holds it only in the space's encoding (sq8 of the unit vector, f16).
for my $space (qw(quantized half))
{
	my $found = $node->safe_psql(
		'postgres', qq{
		SELECT occurrences FROM engram.audit_erasure(
			(SELECT embedding FROM engram.observations WHERE space_id = $id{$space} ORDER BY id LIMIT 1))
		WHERE place = 'engram/space_$id{$space}.graph'});
	is($found, 1, "audit_erasure finds a row of $space once in its graph file, in its $storage{$space} encoding");
}

# --- rebuild keeps the storage ----------------------------------------------------
$node->safe_psql('postgres', "SELECT engram.rebuild('quantized')");
is($node->safe_psql('postgres', "SELECT memory_bytes <= $bytes{quantized} FROM engram.spaces WHERE name = 'quantized'"),
	't', 'after engram.rebuild: the sq8 index is no larger than before');
my $rebuilt = recall_against_truth($node, 'quantized', $id{quantized}, $metric{quantized});
cmp_ok($rebuilt, '>=', 0.95, "after engram.rebuild: recall\@10 is $rebuilt");

# A row forgotten after an as_of snapshot is no longer in the table, so its
# exact vector cannot be read: it is still recalled at that snapshot, by its
# quantized distance, while the latest snapshot no longer sees it.
my $before_forget = $node->safe_psql('postgres', "SELECT engram.current_generation('quantized')");
my $gone = $node->safe_psql('postgres',
	"SELECT id FROM engram.observations WHERE space_id = $id{quantized} ORDER BY id OFFSET 7 LIMIT 1");
my $gone_vector = $node->safe_psql('postgres', "SELECT embedding FROM engram.observations WHERE id = $gone");
$node->safe_psql('postgres', "SELECT engram.forget('quantized', ARRAY[$gone]::bigint[])");
my ($then_id, $then_distance) = split /\|/, $node->safe_psql('postgres',
	"SELECT id, distance FROM engram.recall('quantized', '$gone_vector', 1, as_of => $before_forget)");
is($then_id, $gone, 'as_of before the forget: the forgotten row is still the top hit');
cmp_ok($then_distance, '<', 0.01, "at its quantized distance $then_distance");
isnt($node->safe_psql('postgres', "SELECT id FROM engram.recall('quantized', '$gone_vector', 1)"), $gone,
	'the latest snapshot does not see it');

# --- a file of another storage is refused -------------------------------------------
# A superuser may change the catalog behind engram's back; the running index
# keeps its storage until the next start, whose file then does not match.
$node->safe_psql('postgres', "UPDATE engram.space_catalog SET storage = 'f16' WHERE name = 'plain'");
$offset = log_offset($node);
$node->restart;
$events = wait_graph_file_events($node, $offset, qw(plain half));
like($events->{discarded}{plain}[0] // '', qr/another dimension, metric, storage or build parameters/,
	'a graph file whose storage differs from the catalog is discarded: ' . ($events->{discarded}{plain}[0] // ''));
ok(wait_serving($node, 'plain', '{' . join(',', (0) x $dim) . '}', 10, 180), 'plain serves recalls again');
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('plain', NULL, 600000)") eq 't', 'plain is linked again');
my $plain_now = $node->safe_psql('postgres', "SELECT memory_bytes FROM engram.spaces WHERE name = 'plain'");
cmp_ok($plain_now, '<', $bytes{plain}, "plain is rebuilt as f16: $plain_now bytes, was $bytes{plain}");
check_self($node, 'plain', 'plain rebuilt as f16', 'f16');

# --- bad storage ------------------------------------------------------------------
my ($ret, $out, $err) =
  $node->psql('postgres', "SELECT engram.create_space('bad', 8, 'l2', storage => 'int4')", extra_params => ['-v', 'VERBOSITY=verbose']);
isnt($ret, 0, 'an unknown storage is refused');
like($err, qr/22023: unknown storage "int4"/, 'with SQLSTATE 22023 and the value');
like($err, qr/HINT:  Use "f32", "f16" or "sq8"/, 'and a hint naming the storages');
($ret, $out, $err) = $node->psql('postgres', "SELECT engram.create_space('bad', 8, 'l2', storage => NULL)");
like($err, qr/unknown storage "<NULL>"/, 'a null storage is refused');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.spaces WHERE name = 'bad'"), 0, 'no space was created');

check_stored_sets($node, 'at the end');
$node->log_check('no crash', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);
done_testing();
