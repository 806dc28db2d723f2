# Recall quality end to end, through SQL: the real data sets are loaded with
# COPY into engram.observations, linked by the workers, and every query is
# answered by engram.recall at the defaults (m 16, ef_construction 100,
# engram.ef_search 128). recall@10 against the exact ground truth must reach
# 0.95 for sift5k (128-d, l2) and glove100 (100-d, cosine, 100,000 rows),
# and for glove100 and fashion-mnist (784-d, l2, 10,000 rows) stored as f16
# and as sq8 (whose candidates recall re-ranks by the table's exact vectors).
#
# Then, on sift5k, while one client streams 20,000 far-away vectors through
# observe_batch, the original queries keep their recall (the streamed vectors
# lie far outside the data, so the ground truth stays exact), and another
# session observes a vector into a copy of the base and recalls it at once,
# 50 times: read-your-writes finds each one at distance 0 whether or not it
# is linked yet. Finally every observation is linked.
#
# The data sets live in ../shared/data beside the repository, or wherever
# ENGRAM_DATA points (test/scripts/engram.sh sets it).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramData;
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $data_dir = data_dir();
plan skip_all => "data sets not found in $data_dir (set ENGRAM_DATA)"
  unless -f "$data_dir/sift5k/sift5k_base.fvecs" && -f "$data_dir/glove100/glove100_base.fvecs";

my $node = engram_node(
	'recall',
	'engram.workers' => 2,
	'engram.ring_size' => "'64MB'",
	'engram.memory_limit' => "'2GB'",
	max_wal_size => "'4GB'");

# Runs a psql script file to completion in one session; returns its output
# (unaligned, tuples only).
sub run_script_file
{
	my ($file, $label) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-f', $file ],
		'>', \$out, '2>', \$err);
	ok($ok, "$label: psql script ran without error") or diag($err);
	return $out;
}

# Creates the space, COPYs the base vectors in base order with content = the
# base index, and loads the queries with their ground truth into a table
# <space>_q (qid, cue, truth = first 10 ids, truth_distance = the exact
# distance of the nearest). Returns the first observation id of the base.
sub load_data_set
{
	my ($space, $dim, $metric, $ef_construction) = @_;
	my $space_id = $node->safe_psql('postgres',
		"SELECT engram.create_space('$space', $dim, '$metric'" . ($ef_construction ? ", 16, $ef_construction" : '') . ')');
	my $dir = "$data_dir/$space";
	(my $table = "${space}_q") =~ tr/-/_/;

	my $started = time;
	my $file = $node->basedir . "/$space.copy.sql";
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh "COPY engram.observations (space_id, embedding, content) FROM STDIN;\n";
	my $rows = read_vecs("$dir/${space}_base.fvecs", 'f',
		sub { my ($i, $v) = @_; die "$space: row $i has dimension " . @$v unless @$v == $dim; print $fh "$space_id\t" . array_text($v) . "\t$i\n"; });
	print $fh "\\.\n";
	close $fh;
	run_script_file($file, "$space: COPY of $rows base vectors");
	unlink $file;
	my $copied = time;

	my ($first, $last, $count, $misplaced) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT min(id), max(id), count(*), count(*) FILTER (WHERE content::int <> id - m)
		FROM engram.observations, (SELECT min(id) m FROM engram.observations WHERE space_id = $space_id) f
		WHERE space_id = $space_id});
	is($count, $rows, "$space: $rows observations in the table");
	is($last - $first + 1, $rows, "$space: the observation ids are consecutive");
	is($misplaced, 0, "$space: observation id - $first is the base index for every row");

	ok($node->safe_psql('postgres', "SELECT engram.wait_linked('$space', NULL, 900000)") eq 't',
		"$space: wait_linked returned true");
	my $linked = time;
	my ($observations, $linked_count) =
	  split /\|/, $node->safe_psql('postgres', "SELECT observations, linked FROM engram.spaces WHERE name = '$space'");
	is($linked_count, $rows, "$space: every observation is linked");
	is($observations, $rows, "$space: the store holds every observation");
	note(sprintf('%s: COPY of %d rows (incl. writing the data) %.1f s, then linked after %.1f s more',
		$space, $rows, $copied - $started, $linked - $copied));

	# Queries and ground truth.
	my (@cues, @truth, @truth_distance);
	read_vecs("$dir/${space}_query.fvecs", 'f', sub { $cues[ $_[0] ] = array_text($_[1]); });
	read_vecs("$dir/${space}_groundtruth.ivecs", 'i', sub { $truth[ $_[0] ] = '{' . join(',', @{ $_[1] }[ 0 .. 9 ]) . '}'; });
	read_vecs("$dir/${space}_groundtruth_dist.fvecs", 'f', sub { $truth_distance[ $_[0] ] = $_[1][0]; });
	die "$space: queries and ground truth differ in length" unless @cues == @truth && @cues == @truth_distance;
	my $sql = "CREATE TABLE $table (qid int PRIMARY KEY, cue real[], truth int[], truth_distance float8);\n"
	  . "COPY $table FROM STDIN;\n";
	for my $q (0 .. $#cues)
	{
		# ground truth: squared L2 for l2, cosine similarity for cosine;
		# recall reports Euclidean distance and 1 - cosine.
		my $d = $metric eq 'l2' ? sqrt($truth_distance[$q]) : 1 - $truth_distance[$q];
		$sql .= "$q\t$cues[$q]\t$truth[$q]\t" . sprintf('%.9g', $d) . "\n";
	}
	run_script_file(write_script($node, "$sql\\.\n"), "$space: queries loaded");
	return ($first, scalar @cues);
}

# Every query through engram.recall(space, cue, 10) in one statement. Returns
# recall@10 and checks the answers' shape: 10 rows per query, nearest first,
# and the exact nearest neighbour, when found, at its exact distance.
sub measure
{
	my ($space, $first, $queries, $label, $ef_search, $queries_of) = @_;
	($queries_of //= "${space}_q") =~ tr/-/_/;
	my $started = time;
	my $out = $node->safe_psql('postgres', ($ef_search ? "SET engram.ef_search = $ef_search;\n" : '') . qq{
		SELECT count(*) FILTER (WHERE r.id - $first = ANY (q.truth)),
			   count(*),
			   count(*) FILTER (WHERE r.distance < r.previous),
			   count(*) FILTER (WHERE r.id - $first = q.truth[1]
								AND abs(r.distance - q.truth_distance) > 1e-3 * greatest(1, q.truth_distance)),
			   count(DISTINCT q.qid)
		FROM $queries_of q
		CROSS JOIN LATERAL (SELECT x.id, x.distance, lag(x.distance) OVER (ORDER BY x.n) AS previous
							FROM engram.recall('$space', q.cue, 10) WITH ORDINALITY x(id, distance, score, confidence, generation, n)) r});
	my $took = time - $started;
	my ($hits, $rows, $misordered, $wrong_distance, $answered) = split /\|/, $out;
	is($answered, $queries, "$label: every query answered");
	is($rows, 10 * $queries, "$label: 10 results per query");
	is($misordered, 0, "$label: results come nearest first");
	is($wrong_distance, 0, "$label: the exact nearest neighbour is reported at its exact distance");
	my $recall = $hits / (10 * $queries);
	note(sprintf('%s: recall@10 = %.4f over %d queries (%.2f s, %.2f ms per query)',
		$label, $recall, $queries, $took, 1000 * $took / $queries));
	return $recall;
}

my %recall;

# --- sift5k: 5,000 x 128, l2 ----------------------------------------------------
my ($sift_first, $sift_queries) = load_data_set('sift5k', 128, 'l2');
$recall{sift5k} = measure('sift5k', $sift_first, $sift_queries, 'sift5k');
cmp_ok($recall{sift5k}, '>=', 0.95, sprintf('sift5k recall@10 %.4f >= 0.95', $recall{sift5k}));

# --- glove100: 100,000 x 100, cosine ---------------------------------------------
my ($glove_first, $glove_queries) = load_data_set('glove100', 100, 'cosine');
$recall{glove100} = measure('glove100', $glove_first, $glove_queries, 'glove100');
cmp_ok($recall{glove100}, '>=', 0.95, sprintf('glove100 recall@10 %.4f >= 0.95', $recall{glove100}));

# --- storage encodings --------------------------------------------------------
# A copy of a loaded space's rows (in id order, so id - first is still the
# base index) in a new space of the given storage; returns its first id.
sub copy_space
{
	my ($from, $to, $dim, $metric, $storage) = @_;
	my $space_id = $node->safe_psql('postgres', "SELECT engram.create_space('$to', $dim, '$metric', storage => '$storage')");
	$node->safe_psql('postgres', qq{
		INSERT INTO engram.observations (space_id, embedding, content)
		SELECT $space_id, embedding, content FROM engram.observations WHERE space_id = engram._space_id('$from')
		ORDER BY id});
	ok($node->safe_psql('postgres', "SELECT engram.wait_linked('$to', NULL, 900000)") eq 't', "$to: linked");
	# sq8 recalls read their candidates' rows: read the fresh rows once (and
	# set their hint bits), so that the time per query noted is the steady
	# one rather than the first touch of each page.
	$node->safe_psql('postgres', "SELECT count(embedding) FROM engram.observations WHERE space_id = $space_id");
	return $node->safe_psql('postgres', "SELECT min(id) FROM engram.observations WHERE space_id = $space_id");
}

for my $storage (qw(f16 sq8))
{
	my $first = copy_space('glove100', "glove100_$storage", 100, 'cosine', $storage);
	$recall{"glove100 $storage"} =
	  measure("glove100_$storage", $first, $glove_queries, "glove100 as $storage", undef, 'glove100_q');
	cmp_ok($recall{"glove100 $storage"}, '>=', 0.95,
		sprintf('glove100 as %s: recall@10 %.4f >= 0.95', $storage, $recall{"glove100 $storage"}));
}
SKIP:
{
	skip "fashion-mnist not found in $data_dir", 1 unless -f "$data_dir/fashion-mnist/fashion-mnist_base.fvecs";
	my ($first, $queries) = load_data_set('fashion-mnist', 784, 'l2');
	$recall{'fashion-mnist'} = measure('fashion-mnist', $first, $queries, 'fashion-mnist');
	cmp_ok($recall{'fashion-mnist'}, '>=', 0.95, sprintf('fashion-mnist recall@10 %.4f >= 0.95', $recall{'fashion-mnist'}));
	for my $storage (qw(f16 sq8))
	{
		my $copy_first = copy_space('fashion-mnist', "fashion-mnist_$storage", 784, 'l2', $storage);
		$recall{"fashion-mnist $storage"} = measure("fashion-mnist_$storage", $copy_first, $queries,
			"fashion-mnist as $storage", undef, 'fashion-mnist_q');
		cmp_ok($recall{"fashion-mnist $storage"}, '>=', 0.95,
			sprintf('fashion-mnist as %s: recall@10 %.4f >= 0.95', $storage, $recall{"fashion-mnist $storage"}));
	}
}

# --- sift5k under streaming ingest and read-your-writes -------------------------
# SIFT values lie in 0..191; the streamed vectors lie in 10000..10191, so
# none can enter the top 10 of an original query.
#
# Read-your-writes runs meanwhile in a second space holding a copy of the
# sift5k base: each new observation lies 0.5 away from a base vector (near
# the data, where the graph is meant to find neighbours, unlike points far
# from everything, where any HNSW may miss one it has linked), and the next
# recall of it must return it at distance 0, linked or not yet.
srand(20261122);
sub far_vector
{
	my ($offset) = @_;
	return '{' . join(',', map { $offset + int(rand(192)) } 1 .. 128) . '}';
}

my $stream_sql = "\\set ON_ERROR_STOP 1\n";
for my $t (1 .. 100)
{
	$stream_sql .= "SELECT engram.observe_batch('sift5k', '{" . join(',', map { far_vector(10000) } 1 .. 200) . "}');\n";
}
my $ryw_space = $node->safe_psql('postgres', "SELECT engram.create_space('ryw', 128, 'l2')");
$node->safe_psql('postgres', qq{
	INSERT INTO engram.observations (space_id, embedding, content)
	SELECT $ryw_space, embedding, content FROM engram.observations
	WHERE space_id = engram._space_id('sift5k') AND content ~ '^[0-9]+\$' ORDER BY id});
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('ryw', NULL, 600000)") eq 't', 'ryw: the copy of the base is linked');
my $ryw_sql = "\\set ON_ERROR_STOP 1\n";
for my $i (0 .. 49)
{
	# observe commits (autocommit); the very next statement recalls it, and
	# wait_linked with timeout 0 tells whether its generation was linked by
	# the time the recall had finished.
	my $row = ($i * 97 + 13) % 5000;
	$ryw_sql .= "SELECT array_prepend(embedding[1] + 0.5::real, embedding[2:128]) AS cue FROM engram.observations\n"
	  . "WHERE space_id = $ryw_space AND content = '$row' \\gset\n"
	  . "SELECT engram.observe('ryw', :'cue', 'ryw$i') AS oid \\gset\n"
	  . "SELECT $i, :oid, r.id, r.distance, engram.wait_linked('ryw', r.generation, 0)\n"
	  . "FROM (SELECT 1) one LEFT JOIN LATERAL engram.recall('ryw', :'cue', 1) r ON true;\n";
}

my $before = $node->safe_psql('postgres', "SELECT observations FROM engram.spaces WHERE name = 'sift5k'");
my ($streamer, $stream_err) = start_psql_script($node, $stream_sql);
my ($ryw, $ryw_out, $ryw_err) = ('', '', '');
$ryw = IPC::Run::start([ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres'), '-f', write_script($node, $ryw_sql) ],
	'>', \$ryw_out, '2>', \$ryw_err);

# Re-run the original queries for as long as the streamer runs (at least 3
# rounds); remember whether a round overlapped unlinked observations.
my ($rounds, $worst, $overlapped) = (0, 1, 0);
my $stream_started = time;
while ($rounds < 3 || $streamer->pumpable)
{
	my ($obs0, $pending0) = split /\|/,
	  $node->safe_psql('postgres', "SELECT observations, pending FROM engram.spaces WHERE name = 'sift5k'");
	my $r = measure('sift5k', $sift_first, $sift_queries, "sift5k while streaming, round " . ($rounds + 1));
	my ($obs1, $pending1) = split /\|/,
	  $node->safe_psql('postgres', "SELECT observations, pending FROM engram.spaces WHERE name = 'sift5k'");
	$overlapped++ if $obs1 > $obs0 || $pending0 > 0 || $pending1 > 0;
	$worst = $r if $r < $worst;
	$rounds++;
	$streamer->pump_nb if $streamer->pumpable;
	last if $rounds >= 200;
}
ok($streamer->finish, 'the streaming client committed every batch') or diag($$stream_err);
my $stream_took = time - $stream_started;
ok($ryw->finish, 'the read-your-writes session ran without error') or diag($ryw_err);
$recall{streaming} = $worst;
cmp_ok($worst, '>=', 0.95, sprintf('sift5k recall@10 under streaming (worst of %d rounds) %.4f >= 0.95', $rounds, $worst));
cmp_ok($overlapped, '>', 0, "$overlapped of $rounds rounds ran while observations were arriving or pending");
note(sprintf('streaming 20,000 rows in 100 transactions took %.1f s; %d query rounds meanwhile', $stream_took, $rounds));

my ($found, $unlinked) = (0, 0);
my @ryw_lines = grep { /\S/ } split /\n/, $ryw_out;
is(scalar @ryw_lines, 50, 'read-your-writes: 50 answers');
for my $line (@ryw_lines)
{
	my ($i, $oid, $id, $distance, $linked) = split /\|/, $line;
	if ($id ne '' && $id == $oid && $distance == 0) { $found++; }
	else { diag("read-your-writes iteration $i: observed $oid, recall's top hit was '$id' at distance '$distance'"); }
	$unlinked++ if $linked eq 'f';
}
is($found, 50, 'read-your-writes: each new observation is the top hit at distance 0 in the next recall');
note("read-your-writes: $found of 50 found; $unlinked of them recalled before their generation was linked");

ok($node->safe_psql('postgres', "SELECT engram.wait_linked('sift5k', NULL, 600000)") eq 't',
	'sift5k: wait_linked after streaming');
my ($observations, $linked, $table_rows) = split /\|/, $node->safe_psql('postgres', q{
	SELECT s.observations, s.linked, (SELECT count(*) FROM engram.observations o WHERE o.space_id = s.space_id)
	FROM engram.spaces s WHERE s.name = 'sift5k'});
is($table_rows, $before + 20_000, 'sift5k: the table holds the base and the streamed rows');
is($observations, $table_rows, 'sift5k: the store holds every row');
is($linked, $observations, 'sift5k: every observation is linked');
my $final = measure('sift5k', $sift_first, $sift_queries, 'sift5k after streaming, all linked');
cmp_ok($final, '>=', 0.95, sprintf('sift5k recall@10 once everything is linked %.4f >= 0.95', $final));

diag(sprintf('recall@10: sift5k %.4f, glove100 %.4f, sift5k under streaming (worst round) %.4f, after %.4f',
	$recall{sift5k}, $recall{glove100}, $recall{streaming}, $final));
diag(join(', ', map { sprintf('%s %.4f', $_, $recall{$_}) } grep { /f16|sq8|fashion/ } sort keys %recall));
$node->log_check('no crash or assertion failure', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);

done_testing();
