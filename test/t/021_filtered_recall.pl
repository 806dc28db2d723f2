# Filtered recall and recall after mass forgetting on real data: glove100
# (100,000 word vectors, 100-d, cosine) is loaded with COPY, each row with
# metadata {"p50", "p10", "p1", "p01": booleans true on independent random
# subsets of about 50 %, 10 %, 1 % and 0.1 % of the rows, "tenant": one of
# 10,000 tenants} and an observed_at on one of 365 days at midnight (so
# whole days sit on the window bounds: observed_after is inclusive,
# observed_before exclusive).
#
# For each selectivity, a few dozen queries (fewer where the filter keeps
# many rows) are answered by engram.recall at the space defaults with
# filter, observed_after and observed_before, and compared with the exact
# filtered top 10 computed inside the server by brute force over the
# matching rows: every answer holds exactly min(10, matching rows) rows,
# nearest first, each a matching row; recall@10 >= 0.95 per selectivity.
# The brute force uses the cube extension's Euclidean distance, which on
# these unit vectors ranks exactly as cosine distance (|a - b|^2 = 2 - 2 cos);
# a returned row counts as a hit when it is in the exact top 10 or no
# farther than the exact 10th (ties).
#
# Then 50 % of the rows, at random, are deleted (half by DELETE, half by
# engram.forget, in 10,000-row transactions) and measured as they are, with
# engram.erase_within at 1 h; once it is lowered to 2 s and the background
# compaction has erased them (the space's memory drops), recall@10 of the 1,000 queries
# against the exact top 10 of the remaining rows (the first 10 of the
# 100-neighbour ground truth that remain) stays >= 0.95, no deleted id is
# ever returned, and the filtered queries keep their recall against the
# exact filtered truth of the remaining rows.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramData;
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX qw(strftime);
use Time::HiRes qw(time);

my $data_dir = data_dir();
plan skip_all => "glove100 not found in $data_dir (set ENGRAM_DATA)"
  unless -f "$data_dir/glove100/glove100_base.fvecs";

my $node = engram_node(
	'filtered',
	'engram.workers' => 2,
	'engram.ring_size' => "'64MB'",
	'engram.memory_limit' => "'2GB'",
	'engram.erase_within' => "'1h'",    # compaction only once this test lowers it
	max_wal_size => "'4GB'");
plan skip_all => 'the cube extension (PostgreSQL contrib) is not installed'
  unless $node->safe_psql('postgres', "SELECT count(*) FROM pg_available_extensions WHERE name = 'cube'");
my $start = log_offset($node);

# --- load ------------------------------------------------------------------------
my $space_id = $node->safe_psql('postgres', "SELECT engram.create_space('glove', 100, 'cosine')");
my $started = time;
my $copy = $node->basedir . '/glove.copy.sql';
open my $fh, '>', $copy or die "cannot write $copy: $!";
print $fh "COPY engram.observations (space_id, embedding, content, metadata, observed_at) FROM STDIN;\n";
srand(20261201);
my $first_day = 1767225600;    # 2026-01-01 00:00 UTC
my $rows = read_vecs(
	"$data_dir/glove100/glove100_base.fvecs",
	'f',
	sub {
		my ($i, $v) = @_;
		my @flags = map { rand() < $_ ? 'true' : 'false' } (0.5, 0.1, 0.01, 0.001);
		my $tenant = int(rand(10000));
		my $day = strftime('%Y-%m-%d 00:00:00+00', gmtime($first_day + 86400 * int(rand(365))));
		print $fh "$space_id\t"
		  . array_text($v)
		  . "\t$i\t"
		  . sprintf('{"p50": %s, "p10": %s, "p1": %s, "p01": %s, "tenant": "t%d"}', @flags, $tenant)
		  . "\t$day\n";
	});
print $fh "\\.\n";
close $fh;
psql_file($node, 'postgres', $copy);
unlink $copy;
my $copied = time;
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('glove', NULL, 900000)") eq 't', 'glove: every row is linked');
note(sprintf('glove: COPY of %d rows %.1f s, linked %.1f s later', $rows, $copied - $started, time - $copied));
my $queries = load_queries($node, 'postgres', 'glove100', 'glove_q');

# The brute force's copy of the rows: id, the vector as a cube, the metadata
# and observed_at; and the queries' cues as cubes.
$node->safe_psql('postgres', qq{
	CREATE EXTENSION cube;
	CREATE TABLE truth_rows AS
		SELECT id, cube(embedding::float8[]) AS c, metadata, observed_at, content::int AS base_index
		FROM engram.observations WHERE space_id = $space_id;
	ALTER TABLE truth_rows ADD PRIMARY KEY (id);
	CREATE INDEX ON truth_rows USING gin (metadata jsonb_path_ops);
	CREATE INDEX ON truth_rows (observed_at);
	ANALYZE truth_rows;
	ALTER TABLE glove_q ADD COLUMN c cube;
	UPDATE glove_q SET c = cube(cue::float8[]);
});
my ($first_id, $misplaced) = split /\|/, $node->safe_psql('postgres',
	'SELECT min(id), count(*) FILTER (WHERE base_index <> id - (SELECT min(id) FROM truth_rows)) FROM truth_rows');
is($misplaced, 0, 'observation id - first id is the base index for every row');
my $selected = $node->safe_psql('postgres', q{
	SELECT string_agg(k || ' ' || n, ', ' ORDER BY k)
	FROM (SELECT k, count(*) FILTER (WHERE metadata @> jsonb_build_object(k, true)) n
		  FROM truth_rows, unnest(ARRAY['p50', 'p10', 'p1', 'p01']) k GROUP BY k) s});
note("rows with each flag: $selected; tenants: "
	  . $node->safe_psql('postgres', "SELECT count(DISTINCT metadata->>'tenant') FROM truth_rows"));

# Each query's 100 exact nearest neighbours (base indexes) over all rows.
my $gt = "CREATE TABLE glove_gt (qid int PRIMARY KEY, nn int[]);\nCOPY glove_gt FROM STDIN;\n";
read_vecs("$data_dir/glove100/glove100_groundtruth.ivecs", 'i',
	sub { $gt .= "$_[0]\t{" . join(',', @{ $_[1] }) . "}\n"; });
psql_file($node, 'postgres', write_script($node, "$gt\\.\n"));

# The filtered queries: a name, the query ids, and SQL for the filter
# (which may depend on the query id q.qid), observed_after and
# observed_before, or undef. Windows: days 100 (inclusive) to 173
# (exclusive), about 20 %; from day 182 on, about half; before day 100.
my $day = sub { "timestamptz '2026-01-01 00:00+00' + $_[0] * interval '1 day'" };
my $tenant = q{jsonb_build_object('tenant', 't' || (q.qid * 7919 % 10000))};
my @cases = (
	[ 'p50 (50 %)', 0, 15, q{'{"p50": true}'}, undef, undef ],
	[ 'p10 (10 %)', 16, 45, q{'{"p10": true}'}, undef, undef ],
	[ 'p1 (1 %)', 46, 85, q{'{"p1": true}'}, undef, undef ],
	[ 'p01 (0.1 %)', 86, 125, q{'{"p01": true}'}, undef, undef ],
	[ 'p50 and p10 (5 %)', 126, 155, q{'{"p50": true, "p10": true}'}, undef, undef ],
	[ 'tenant (0.01 %)', 156, 215, $tenant, undef, undef ],
	[ 'window (20 %)', 216, 239, undef, $day->(100), $day->(173) ],
	[ 'from day 182, p10 (5 %)', 240, 269, q{'{"p10": true}'}, $day->(182), undef ],
	[ 'before day 100, p1 (0.3 %)', 270, 309, q{'{"p1": true}'}, undef, $day->(100) ],
	[ 'window, p10 (2 %)', 310, 339, q{'{"p10": true}'}, $day->(100), $day->(173) ],
	[ 'window, p1 (0.2 %)', 340, 379, q{'{"p1": true}'}, $day->(100), $day->(173) ],
	[ 'window, tenant', 380, 439, $tenant, $day->(100), $day->(173) ]);

# Every case's queries through engram.recall(glove, cue, 10, filter,
# window), checked against the exact filtered top 10 of table rows (the live
# rows). Returns the recall per case.
sub evaluate
{
	my ($label) = @_;
	my %recall;
	for my $case (@cases)
	{
		my ($name, $from, $to, $filter, $after, $before) = @$case;
		my $cond = join(' AND ',
			'true',
			defined $filter ? "r.metadata @> $filter" : (),
			defined $after ? "r.observed_at >= $after" : (),
			defined $before ? "r.observed_at < $before" : ());
		my $args = join('',
			defined $filter ? ", filter => $filter" : '',
			defined $after ? ", observed_after => $after" : '',
			defined $before ? ", observed_before => $before" : '');
		my $started = time;
		my ($queries, $short, $expected, $hits, $strangers, $twice, $misordered, $wrong_distance, $fewest, $most) =
		  split /\|/, $node->safe_psql('postgres', qq{
			SELECT count(*), count(*) FILTER (WHERE cardinality(a.got) <> least(10, t.matches)),
				   sum(least(10, t.matches)), sum(c.hits), sum(c.strangers), sum(c.twice),
				   count(*) FILTER (WHERE c.misordered), sum(c.wrong_distance), min(t.matches), max(t.matches)
			FROM glove_q q
			CROSS JOIN LATERAL (
				SELECT count(*) AS matches, coalesce(array_agg(m.id ORDER BY m.n) FILTER (WHERE m.n <= 10), '{}') AS ids,
					   max(m.d) FILTER (WHERE m.n <= 10) AS kth
				FROM (SELECT r.id, r.c <-> q.c AS d, row_number() OVER (ORDER BY r.c <-> q.c) AS n
					  FROM truth_rows r WHERE $cond) m) t
			CROSS JOIN LATERAL (
				SELECT coalesce(array_agg(x.id ORDER BY x.ord), '{}') AS got,
					   coalesce(array_agg(x.distance ORDER BY x.ord), '{}') AS dists
				FROM engram.recall('glove', q.cue, 10$args)
					 WITH ORDINALITY x(id, distance, score, confidence, generation, observed_at, ord)) a
			CROSS JOIN LATERAL (
				SELECT count(*) FILTER (WHERE m.id IS NOT NULL AND (g.id = ANY (t.ids) OR m.d <= t.kth + 1e-6)) AS hits,
					   count(*) FILTER (WHERE m.id IS NULL) AS strangers,
					   count(*) - count(DISTINCT g.id) AS twice,
					   count(*) FILTER (WHERE abs(g.distance - m.d ^ 2 / 2) > 1e-4) AS wrong_distance,
					   coalesce(bool_or(g.distance < g.previous), false) AS misordered
				FROM (SELECT x.id, x.distance, lag(x.distance) OVER (ORDER BY x.n) AS previous
					  FROM unnest(a.got, a.dists) WITH ORDINALITY x(id, distance, n)) g
				LEFT JOIN LATERAL (SELECT r.id, r.c <-> q.c AS d FROM truth_rows r WHERE r.id = g.id AND $cond) m ON true) c
			WHERE q.qid BETWEEN $from AND $to});
		my $took = time - $started;
		is($short, 0, "$label, $name: every query returns min(10, matching rows) rows");
		is($strangers, 0, "$label, $name: every row returned matches the filter and the window and is live");
		is($twice, 0, "$label, $name: no row is returned twice");
		is($misordered, 0, "$label, $name: rows come nearest first");
		is($wrong_distance, 0, "$label, $name: every distance is the row's exact cosine distance");
		my $r = $expected ? $hits / $expected : 1;
		cmp_ok($r, '>=', 0.95, sprintf('%s, %s: recall@10 %.4f >= 0.95', $label, $name, $r));
		diag(sprintf('%s, %-28s recall@10 %.4f over %3d queries, %5d to %6d matching rows (%.1f s with the exact truth)',
			$label, "$name:", $r, $queries, $fewest, $most, $took));
		$recall{$name} = $r;
	}
	return \%recall;
}

# All 1,000 queries unfiltered against the first 10 of each query's 100
# exact neighbours that are still rows (all of them before any delete).
# Returns recall@10.
sub evaluate_unfiltered
{
	my ($label) = @_;
	my ($queries, $thin, $short, $hits, $forgotten) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT count(*), count(*) FILTER (WHERE cardinality(t.live) < 10),
			   count(*) FILTER (WHERE cardinality(a.got) <> 10),
			   sum((SELECT count(*) FROM unnest(a.got) g WHERE g - $first_id = ANY (t.live))),
			   sum((SELECT count(*) FROM unnest(a.got) g WHERE NOT EXISTS (SELECT 1 FROM truth_rows r WHERE r.id = g)))
		FROM glove_q q JOIN glove_gt USING (qid)
		CROSS JOIN LATERAL (
			SELECT coalesce(array_agg(v ORDER BY o), '{}') AS live
			FROM (SELECT v, o FROM unnest(glove_gt.nn) WITH ORDINALITY u(v, o)
				  WHERE EXISTS (SELECT 1 FROM truth_rows r WHERE r.id = $first_id + v) ORDER BY o LIMIT 10) s) t
		CROSS JOIN LATERAL (SELECT coalesce(array_agg(x.id), '{}') AS got FROM engram.recall('glove', q.cue, 10) x) a});
	is($queries, 1000, "$label: 1,000 queries");
	is($thin, 0, "$label: every query keeps at least 10 of its 100 nearest (so the exact top 10 is known)");
	is($short, 0, "$label: every query returns 10 rows");
	is($forgotten, 0, "$label: no deleted row is returned");
	my $r = $hits / (10 * $queries);
	diag(sprintf('%s: recall@10 %.4f over %d queries', $label, $r, $queries));
	return $r;
}

my $before = evaluate('all rows');
my $unfiltered = evaluate_unfiltered('all rows, unfiltered');
cmp_ok($unfiltered, '>=', 0.95, sprintf('all rows, unfiltered: recall@10 %.4f >= 0.95', $unfiltered));

# --- forget half of the rows at random ---------------------------------------------
my $memory_before = $node->safe_psql('postgres', "SELECT memory_bytes FROM engram.spaces WHERE name = 'glove'");
$node->safe_psql('postgres', q{
	SELECT setseed(0.2026);
	CREATE TABLE doomed AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM truth_rows WHERE random() < 0.5;});
for my $part (0 .. 9)
{
	if ($part % 2 == 0)
	{
		$node->safe_psql('postgres', "DELETE FROM engram.observations WHERE id IN (SELECT id FROM doomed WHERE n % 10 = $part)");
	}
	else
	{
		$node->safe_psql('postgres', "SELECT engram.forget('glove', ARRAY(SELECT id FROM doomed WHERE n % 10 = $part))");
	}
}
# Recalls in other sessions see the deletes once the workers have published
# them.
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('glove', NULL, 600000)") eq 't',
	'the workers published the deletes');
my ($doomed, $live) = split /\|/, $node->safe_psql('postgres', qq{
	DELETE FROM truth_rows WHERE id IN (SELECT id FROM doomed);
	SELECT (SELECT count(*) FROM doomed), (SELECT count(*) FROM engram.observations WHERE space_id = $space_id)});
is($live, $rows - $doomed, "$doomed rows deleted, $live left in the table");
is($node->safe_psql('postgres', "SELECT observations FROM engram.spaces WHERE name = 'glove'"), $live,
	'engram.spaces counts the live rows only');
my $uncompacted = evaluate_unfiltered('after deleting half, before compaction');
note("the space's memory: $memory_before bytes before the deletes, "
	  . $node->safe_psql('postgres', "SELECT memory_bytes FROM engram.spaces WHERE name = 'glove'")
	  . ' after them, before the compaction');

# The compaction (due within engram.erase_within, now 2 s) erases the
# deleted nodes: the space's memory drops.
$node->append_conf('postgresql.conf', "engram.erase_within = '2s'\n");
$node->reload;
my $memory_after = $memory_before;
my $deadline = time + 180;
while (time < $deadline)
{
	$memory_after = $node->safe_psql('postgres', "SELECT memory_bytes FROM engram.spaces WHERE name = 'glove'");
	last if $memory_after < 0.75 * $memory_before;
	sleep 1;
}
cmp_ok($memory_after, '<', 0.75 * $memory_before,
	"the compaction shrank the space's memory from $memory_before to $memory_after bytes");
check_stored_sets($node, 'after deleting half');

my $compacted = evaluate_unfiltered('after deleting half, compacted');
cmp_ok($compacted, '>=', 0.95, sprintf('after deleting half, compacted: recall@10 %.4f >= 0.95', $compacted));
my $after = evaluate('half deleted');
diag(sprintf('recall@10 unfiltered: %.4f with all rows; after deleting half %.4f before compaction, %.4f after',
	$unfiltered, $uncompacted, $compacted));

my @crashes = server_crashes($node, $start);
is(scalar @crashes, 0, 'no server process crashed') or diag(join("\n", @crashes));
$node->log_check('no assertion failure', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);

done_testing();
