# Graph files at start-up: a good file is loaded (nothing to catch up after a
# clean shutdown, and as_of snapshots taken before the restart answer the
# same after it); a file that cannot be proven to match the table is
# discarded with a LOG line saying why, and the space is relinked from the
# table while the other space still loads its own file:
#   corrupt                one byte flipped in the middle of the body
#   truncated              cut in half
#   another cluster        the same space's file from a second cluster
#   newer than the table   a file written after a base backup, put into the
#                          cluster restored from that backup
# After each start every space stores exactly its committed rows, recall
# finds rows at distance 0, and recall@10 against brute force stays high.
# Also: engram.checkpoint() needs superuser or pg_checkpoint (42501), fills
# engram.spaces' persisted columns (file_bytes is the file's size), a stray
# .tmp file is removed at start-up, drop_space removes the space's file when
# it commits (not when it rolls back), and engram.persist = off refuses
# checkpoints (55000) and removes the files.
#
# The nodes write files only when told (engram.checkpoint()) and at clean
# shutdown: engram.persist_interval and engram.persist_rows are 0.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(copy);
use Time::HiRes qw(time usleep);

my %persist = ('engram.persist_interval' => 0, 'engram.persist_rows' => 0);
my $node = engram_node('files', %persist, wal_level => 'replica', max_wal_senders => 4);

my $alpha = $node->safe_psql('postgres', "SELECT engram.create_space('alpha', 32, 'l2')");
my $beta = $node->safe_psql('postgres', "SELECT engram.create_space('beta', 16, 'cosine')");

# Random rows (seeded, so runs are alike) through a plain INSERT.
sub ingest
{
	my ($n, $space_id, $dim, $seed) = @_;
	$node->safe_psql(
		'postgres', qq{
		SELECT setseed($seed);
		INSERT INTO engram.observations (space_id, embedding, content)
		SELECT $space_id, (SELECT array_agg(random()::real) FROM generate_series(1, $dim) d WHERE g > 0), 'row ' || g
		FROM generate_series(1, $n) g;});
}
ingest(3000, $alpha, 32, 0.11);
ingest(1000, $beta, 16, 0.22);
$node->safe_psql(
	'postgres', q{
	CREATE FUNCTION public.l2sq(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
		SELECT sum((x - y) ^ 2) FROM unnest(a, b) t(x, y) $$;
	SELECT setseed(0.33);
	CREATE TABLE public.cues AS
	SELECT qid, (SELECT array_agg(random()::real) FROM generate_series(1, 32) d WHERE qid > 0) AS cue
	FROM generate_series(1, 20) qid;});
ok($node->safe_psql('postgres', "SELECT bool_and(engram.wait_linked(name, NULL, 600000)) FROM engram.spaces") eq 't',
	'both spaces are linked');

# --- checks every start ends with ----------------------------------------------

# recall@10 of alpha against brute force over its committed rows.
sub alpha_recall_at_10
{
	my ($n) = @_;
	return $n->safe_psql(
		'postgres', qq{
		SELECT round(avg(hits) / 10, 4) FROM (
			SELECT (SELECT count(*) FROM engram.recall('alpha', q.cue, 10) r
					WHERE r.id IN (SELECT o.id FROM engram.observations o WHERE o.space_id = $alpha
								   ORDER BY public.l2sq(o.embedding, q.cue), o.id LIMIT 10)) AS hits
			FROM public.cues q) s});
}

# Every space stores exactly its rows; every 97th row of alpha is recalled
# as its own top hit at distance 0, and beta's as its own top hit.
sub check_recall
{
	my ($n, $label, %opt) = @_;
	check_stored_sets($n, $label);
	for my $s ([ 'alpha', $alpha, 'AND r.distance = 0' ], [ 'beta', $beta, '' ])
	{
		my ($name, $id, $exact) = @$s;
		my ($probes, $wrong) = split /\|/, $n->safe_psql(
			'postgres', qq{
			SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
				SELECT 1 FROM engram.recall('$name', o.embedding, 1) r WHERE r.id = o.id $exact))
			FROM engram.observations o WHERE o.space_id = $id AND o.id % 97 = 0});
		cmp_ok($probes, '>', 5, "$label: $probes rows of $name probed");
		is($wrong, 0, "$label: every probed row of $name is its own top hit" . ($exact ? ' at distance 0' : ''));
	}
	if ($opt{recall})
	{
		my $r = alpha_recall_at_10($n);
		cmp_ok($r, '>=', 0.95, "$label: alpha's recall\@10 against brute force is $r");
	}
}

# Starts the node and waits until the log has a graph-file line for each of
# the named spaces; returns the events.
sub start_and_wait_events
{
	my ($n, @names) = @_;
	my $offset = log_offset($n);
	$n->start;
	my $events = wait_graph_file_events($n, $offset, @names);
	return $events;
}

# The spec's LOG line for a discarded file, with the expected reason, and
# the other space still loaded from its own file with nothing to catch up.
sub check_discarded
{
	my ($n, $events, $label, $reason, $beta_rows) = @_;
	my $why = $events->{discarded}{alpha} // [];
	is(scalar(@$why), 1, "$label: alpha's file is discarded once") or diag(explain($events));
	like($why->[0] // '', $reason, "$label: the log says why: " . ($why->[0] // '(nothing)'));
	ok(!$events->{loaded}{alpha}, "$label: alpha is not loaded from the discarded file");
	is_deeply($events->{loaded}{beta}, [ [ $beta_rows, 0 ] ], "$label: beta still loads its own file, nothing caught up")
	  or diag(explain($events));
}

sub file_size { return -s $_[0] // 0; }

# Waits up to 30 s for a file to go (the worker and the writer remove files
# in their next round, not in the statement); returns the seconds it took,
# or undef if it stayed.
sub seconds_until_gone
{
	my ($path) = @_;
	my $started = time;
	while (-e $path)
	{
		return undef if time - $started > 30;
		usleep(50_000);
	}
	return sprintf('%.2f', time - $started);
}

# --- before any file: the settings write none -----------------------------------
is( $node->safe_psql(
		'postgres', q{
		SELECT string_agg(format('%s %s %s %s %s', name, persisted_observations, persisted_generation,
								 persisted_at IS NULL, file_bytes), ', ' ORDER BY name)
		FROM engram.spaces}),
	'alpha 0 0 t 0, beta 0 0 t 0', 'before any checkpoint no space is persisted');
ok(!-e graph_file($node, $alpha) && !-e graph_file($node, $beta), 'and no graph file exists');

# --- who may checkpoint -------------------------------------------------------------
$node->safe_psql(
	'postgres', q{
	CREATE ROLE ckpt_plain LOGIN;
	CREATE ROLE ckpt_member LOGIN IN ROLE pg_checkpoint;
	GRANT USAGE ON SCHEMA engram TO ckpt_plain, ckpt_member;});
my $r = run_as($node, 'ckpt_plain', 'SELECT engram.checkpoint()');
is($r->{state}, '42501', 'a role without superuser or pg_checkpoint cannot checkpoint (42501)');
unlike($r->{error} // '', qr/schema/, 'refused for the checkpoint, not for the schema') or diag($r->{error});
ok(!-e graph_file($node, $alpha), 'the refused checkpoint wrote no file');
$r = run_as($node, 'ckpt_member', 'SELECT engram.checkpoint()');
is($r->{state}, '00000', 'a member of pg_checkpoint can checkpoint') or diag($r->{err});

# --- checkpoint and engram.spaces ---------------------------------------------------
# The caller's own commits just before are covered.
$node->safe_psql(
	'postgres', qq{
	SELECT setseed(0.44);
	SELECT engram.observe_batch('alpha', (SELECT array_agg(v) FROM (SELECT array_agg(random()::real) v
		FROM generate_series(1, 100) r, generate_series(1, 32) d GROUP BY r) s));
	SELECT engram.checkpoint();});
my $spaces_sql = q{SELECT name, observations, persisted_observations, persisted_generation,
	   persisted_at IS NOT NULL AND persisted_at <= now(), file_bytes, generation
	FROM engram.spaces ORDER BY name};
for my $line (split /\n/, $node->safe_psql('postgres', $spaces_sql))
{
	my ($name, $rows, $persisted, $generation, $at, $bytes) = split /\|/, $line;
	my $file = graph_file($node, $name eq 'alpha' ? $alpha : $beta);
	is($persisted, $rows, "after a checkpoint ${name}'s persisted_observations equal its observations ($rows)");
	is($rows, $name eq 'alpha' ? 3100 : 1000, "$name holds its rows");
	cmp_ok($generation, '>', 0, "${name}'s persisted_generation is set");
	is($at, 't', "${name}'s persisted_at is set");
	ok(-f $file, "${name}'s file is $file");
	is($bytes, file_size($file), "${name}'s file_bytes is the size of its file");
}

# --- as_of snapshots and a clean restart ----------------------------------------------
my $as_of = $node->safe_psql('postgres', "SELECT engram.current_generation('alpha')");
my $answers_sql = sub {
	my ($generation) = @_;
	return qq{SELECT q.qid || ' ' || array_agg(r.id ORDER BY r.distance, r.id)::text
		FROM public.cues q CROSS JOIN LATERAL engram.recall('alpha', q.cue, 10, $generation) r
		GROUP BY q.qid ORDER BY q.qid};
};
my $old_answers = $node->safe_psql('postgres', $answers_sql->($as_of));
ingest(300, $alpha, 32, 0.55);
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('alpha', NULL, 600000)") eq 't', 'alpha linked again');
my $latest_answers = $node->safe_psql('postgres', $answers_sql->('NULL'));
is($node->safe_psql('postgres', $answers_sql->($as_of)), $old_answers, "the as_of $as_of snapshot ignores later rows");
isnt($latest_answers, $old_answers, 'the latest answers include later rows (so the snapshot is tested)');

$node->stop;
ok(-f graph_file($node, $alpha) && -f graph_file($node, $beta), 'after a clean shutdown both files exist');
my $stray = graph_file($node, $alpha) . '.tmp';
copy(graph_file($node, $beta), $stray) or die "cannot copy: $!";
my $orphan = graph_file($node, 999);
copy(graph_file($node, $beta), $orphan) or die "cannot copy: $!";
my $events = start_and_wait_events($node, 'alpha', 'beta');
is_deeply($events->{loaded}, { alpha => [ [ 3400, 0 ] ], beta => [ [ 1000, 0 ] ] },
	'after a clean restart both spaces load from their files with nothing to catch up')
  or diag(explain($events));
is_deeply($events->{discarded}, {}, 'and no file is discarded');
my $took = seconds_until_gone($stray);
ok(defined $took, 'a stray .tmp file is removed at start-up' . (defined $took ? " ($took s after the load)" : ''));
$took = seconds_until_gone($orphan);
ok(defined $took,
	'the file of a space that does not exist is removed at start-up' . (defined $took ? " ($took s after the load)" : ''));
is($node->safe_psql('postgres', $answers_sql->($as_of)), $old_answers,
	"after the restart the as_of $as_of snapshot answers as before it");
is($node->safe_psql('postgres', $answers_sql->('NULL')), $latest_answers, 'and so do the latest answers');
check_recall($node, 'clean restart', recall => 1);

# --- a corrupt file ---------------------------------------------------------------------
sub good_files
{
	my ($n, $label) = @_;
	$n->safe_psql('postgres', 'SELECT engram.checkpoint()');
	is($n->safe_psql('postgres', 'SELECT count(*) FROM engram.spaces WHERE persisted_observations <> observations'),
		0, "$label: a checkpoint covers every space");
}
good_files($node, 'before corrupting');
$node->stop;
my $file = graph_file($node, $alpha);
my $size = file_size($file);
cmp_ok($size, '>', 100_000, "alpha's file has $size bytes");
open my $fh, '+<:raw', $file or die "cannot open $file: $!";
seek $fh, int($size / 2), 0;
read $fh, my $byte, 1;
seek $fh, int($size / 2), 0;
print $fh chr(ord($byte) ^ 0x5a);
close $fh;
$events = start_and_wait_events($node, 'alpha', 'beta');
check_discarded($node, $events, 'one byte flipped', qr/corrupt/, 1000);
check_recall($node, 'after a corrupt file', recall => 1);

# --- a truncated file -----------------------------------------------------------------
good_files($node, 'before truncating');
$node->stop;
$size = file_size($file);
truncate $file, int($size / 2) or die "cannot truncate $file: $!";
$events = start_and_wait_events($node, 'alpha', 'beta');
check_discarded($node, $events, 'cut in half', qr/truncated/, 1000);
check_recall($node, 'after a truncated file', recall => 1);

# --- a file of another cluster ------------------------------------------------------------
my $other = engram_node('other', %persist);
is($other->safe_psql('postgres', "SELECT engram.create_space('alpha', 32, 'l2')"), $alpha,
	'the other cluster has the same space alpha with the same id');
$other->safe_psql(
	'postgres', qq{
	INSERT INTO engram.observations (space_id, embedding)
	SELECT $alpha, (SELECT array_agg(random()::real) FROM generate_series(1, 32) d WHERE g > 0)
	FROM generate_series(1, 500) g;
	SELECT engram.checkpoint();});
$other->stop;
ok(-f graph_file($other, $alpha), "the other cluster wrote alpha's file");
good_files($node, 'before the foreign file');
$node->stop;
copy(graph_file($other, $alpha), $file) or die "cannot copy: $!";
$events = start_and_wait_events($node, 'alpha', 'beta');
check_discarded($node, $events, "another cluster's file", qr/another cluster or installation/, 1000);
check_recall($node, "after another cluster's file", recall => 1);

# --- a file newer than the table -----------------------------------------------------------
good_files($node, 'before the base backup');
$node->backup('older');
ingest(300, $alpha, 32, 0.66);
good_files($node, 'after more rows');
$node->stop;
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'older');
my $older_file = graph_file($restored, $alpha);
ok(-f $older_file, 'the base backup holds the older file of alpha');
cmp_ok(file_size($file), '>', file_size($older_file), 'the newer file is bigger');
copy($file, $older_file) or die "cannot copy: $!";
$events = start_and_wait_events($restored, 'alpha', 'beta');
check_discarded($restored, $events, 'a file newer than the table',
	qr/observations that engram\.observations does not hold/, 1000);
is($restored->safe_psql('postgres', "SELECT count(*) FROM engram.observations WHERE space_id = $alpha"),
	3400, 'the restored table holds alpha\'s rows as of the backup');
check_recall($restored, 'restored with a newer file', recall => 1);
$restored->stop;

# --- drop_space -------------------------------------------------------------------------
$node->start;
my $beta_file = graph_file($node, $beta);
ok(-f $beta_file, "beta has its file $beta_file");
$node->safe_psql('postgres', "BEGIN; SELECT engram.drop_space('beta'); ROLLBACK;");
ok(-f $beta_file, 'a rolled-back drop_space keeps the file');
$node->safe_psql('postgres', "SELECT engram.drop_space('beta')");
$took = seconds_until_gone($beta_file);
ok(defined $took, 'drop_space removes the file once it commits' . (defined $took ? " ($took s after the commit)" : ''));
ok(-f $file, "alpha's file stays");
$events = do { $node->stop; start_and_wait_events($node, 'alpha') };
is_deeply($events->{loaded}, { alpha => [ [ 3700, 0 ] ] }, 'after the drop alpha alone loads from its file')
  or diag(explain($events));
ok(!-e $beta_file, 'the dropped space has no file after the restart');
check_recall_alpha_only('after drop_space');

sub check_recall_alpha_only
{
	my ($label) = @_;
	check_stored_sets($node, $label);
	my $r10 = alpha_recall_at_10($node);
	cmp_ok($r10, '>=', 0.95, "$label: alpha's recall\@10 against brute force is $r10");
}

# --- engram.persist = off --------------------------------------------------------------------
$node->append_conf('postgresql.conf', "engram.persist = off\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('engram.persist') = 'off'");
$r = run_as($node, $node->safe_psql('postgres', 'SELECT current_user'), 'SELECT engram.checkpoint()');
is($r->{state}, '55000', 'with engram.persist off a checkpoint is refused (55000)');
my $deadline = time + 60;
usleep(100_000) while -e $file && time < $deadline;
ok(!-e $file, 'with engram.persist off the files are removed');
$node->stop;
my $offset = log_offset($node);
$node->start;
check_recall_alpha_only('with engram.persist off');
is_deeply(graph_file_events($node, $offset), { loaded => {}, discarded => {} },
	'and nothing is loaded from a file at the next start');
ok(!-e $file, 'nor written at the shutdown before it');

$node->log_check('no server process crashed', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);

done_testing();
