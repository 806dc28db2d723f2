# A base backup (pg_basebackup -X stream) taken while clients stream into
# three spaces, with the writer rewriting their graph files all along
# (small engram.persist_interval and engram.persist_rows): the backup holds
# the files as they were when it copied them, and the WAL up to its end.
# The cluster restored from it must load those files (none can hold a row
# the restored table lacks: a file only holds rows committed before it was
# written, and the backup ends after it copied the file) and catch up from
# the table, so that every space stores exactly the restored table's rows,
# and recall@10 on sift5k (its base loaded before the backup; the streamed
# vectors lie far outside it, so its ground truth stays exact) stays at or
# above 0.95 at the default engram.ef_search.
#
# The data set lives in ../shared/data beside the repository, or wherever
# ENGRAM_DATA points (test/scripts/engram.sh sets it).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramData;
use EngramTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

plan skip_all => 'sift5k not found in ' . data_dir() . ' (set ENGRAM_DATA)'
  unless -f data_dir() . '/sift5k/sift5k_base.fvecs';

my $node = engram_node(
	'primary',
	wal_level => 'replica',
	max_wal_senders => 4,
	'engram.persist_interval' => "'300ms'",
	'engram.persist_rows' => 1000,
	'engram.memory_limit' => "'1GB'",
	'engram.ring_size' => "'16MB'");

my $sift = $node->safe_psql('postgres', "SELECT engram.create_space('sift5k', 128, 'l2')");
is(copy_base($node, 'postgres', 'sift5k', $sift), 5000, 'sift5k: 5,000 base vectors copied');
my $queries = load_queries($node, 'postgres', 'sift5k', 'public.sift_q');
my $live_a = $node->safe_psql('postgres', "SELECT engram.create_space('live_a', 24, 'l2')");
my $live_b = $node->safe_psql('postgres', "SELECT engram.create_space('live_b', 48, 'cosine')");
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('sift5k', NULL, 600000)") eq 't', 'sift5k is linked');

# Every query's hits among the ground truth's 10 (content is the base index).
my $recall_sql = q{
	SELECT round(sum(hits)::numeric / (10 * count(*)), 4) FROM (
		SELECT (SELECT count(*) FROM engram.recall('sift5k', q.cue, 10) r
				JOIN engram.observations o ON o.id = r.id
				WHERE o.content::int = ANY (q.truth)) AS hits
		FROM public.sift_q q) s};
my $source_recall = $node->safe_psql('postgres', $recall_sql);
cmp_ok($source_recall, '>=', 0.95, "source: recall\@10 on sift5k is $source_recall");

# --- clients stream while the backup is taken -------------------------------------
sub stream
{
	my ($body) = @_;
	my $sql = "SET log_statement = 'none';\n" . join('', map { "$body\nSELECT pg_sleep(0.02);\n" } 1 .. 20000);
	return [ start_psql_script($node, $sql) ];
}
my $batch = sub {
	my ($space, $n, $dim, $base) = @_;
	return "engram.observe_batch('$space', (SELECT array_agg(v) FROM (SELECT array_agg(($base + random())::real) v "
	  . "FROM generate_series(1, $n) r, generate_series(1, $dim) d GROUP BY r) s))";
};
my @clients = (
	stream('SELECT ' . $batch->('live_a', 20, 24, 0) . ';'),
	stream('BEGIN; SELECT ' . $batch->('live_b', 10, 48, 0) . '; SELECT ' . $batch->('live_a', 5, 24, 0) . '; COMMIT;'),
	# far outside sift5k's vectors (its values lie in 0..255)
	stream('SELECT ' . $batch->('sift5k', 10, 128, 10000) . ';'));

ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 3 FROM engram.spaces
		WHERE persisted_observations > 0 AND observations > persisted_observations}),
	'the clients stream and the writer has written a file of every space');

my $before_backup = $node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations');
$node->backup('live', backup_options => [ '-X', 'stream' ]);
my $backup_dir = $node->backup_dir . '/live';
for my $space ([ 'sift5k', $sift ], [ 'live_a', $live_a ], [ 'live_b', $live_b ])
{
	ok(-f "$backup_dir/engram/space_$space->[1].graph", "the base backup holds the graph file of $space->[0]");
}
# The clients go on after the backup, so the source moves past it.
my $after_backup = $node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations');
$node->poll_query_until('postgres', "SELECT count(*) > $after_backup + 500 FROM engram.observations");
for my $c (@clients)    # finish reads what they wrote
{
	$c->[0]->signal('TERM');
	$c->[0]->finish;
}
is(join('', map { ${ $_->[1] } } @clients), '', 'the clients met no error');
cmp_ok($after_backup, '>', $before_backup, 'rows were committed while the backup was taken');
check_stored_sets($node, 'source');

# --- the restored cluster --------------------------------------------------------------
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'live');
my $offset = log_offset($restored);
$restored->start;
check_stored_sets($restored, 'restored');
my %rows = split /\||\n/, $restored->safe_psql('postgres', q{
	SELECT c.name, count(o.id) FROM engram.space_catalog c LEFT JOIN engram.observations o USING (space_id)
	GROUP BY c.name});
note('restored rows: ' . join(', ', map { "$_ $rows{$_}" } sort keys %rows));
cmp_ok($rows{sift5k}, '>', 5000, 'the restored sift5k holds streamed rows beyond its base');
cmp_ok($rows{live_a} + $rows{live_b} + $rows{sift5k}, '>=', $before_backup,
	'the restored cluster holds every row committed before the backup began');

my $events;
my $deadline = time + 60;
do
{
	usleep(200_000);
	$events = graph_file_events($restored, $offset);
} while (grep { !$events->{loaded}{$_} && !$events->{discarded}{$_} } keys %rows) && time < $deadline;
note("restored log: $_ loaded " . join(', ', map { "$_->[0] + $_->[1]" } @{ $events->{loaded}{$_} }))
  for sort keys %{ $events->{loaded} };
is_deeply($events->{discarded}, {}, 'the restored cluster discards none of the backed-up files')
  or diag(explain($events));
for my $space (qw(sift5k live_a live_b))
{
	my $loads = $events->{loaded}{$space} // [];
	is(scalar(@$loads), 1, "the restored cluster loads $space from its graph file");
	is($loads->[0][0] + $loads->[0][1], $rows{$space},
		"$space: $loads->[0][0] rows from the file and $loads->[0][1] caught up make its $rows{$space} rows")
	  if @$loads;
}

my $restored_recall = $restored->safe_psql('postgres', $recall_sql);
cmp_ok($restored_recall, '>=', 0.95, "restored: recall\@10 on sift5k is $restored_recall");

# The restored cluster takes new rows and recalls them.
my $id = $restored->safe_psql('postgres', q{SELECT engram.observe('live_a', array_fill(-3::real, ARRAY[24]))});
is( $restored->safe_psql(
		'postgres', q{SELECT id || ' ' || distance FROM engram.recall('live_a', array_fill(-3::real, ARRAY[24]), 1)}),
	"$id 0",
	'the restored cluster recalls a new observation');
check_stored_sets($restored, 'restored, after a new row');
$restored->log_check('restored: no crash', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);

done_testing();
