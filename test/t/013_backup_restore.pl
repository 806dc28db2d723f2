# Backups: pg_dump -Fc of a database with engram, restored with pg_restore
# into fresh clusters (engram preloaded, engram.database naming the restored
# database) three ways: plain, --single-transaction, and in parallel (-j 2)
# as docs/usage.md describes it: engram's rows in order, the rest in parallel
# (pg_restore -j does not order the rows of an extension's tables by their
# foreign keys: pg_dump records that order only in the archive's sequence,
# which a parallel restore does not follow). In the parallel restore the
# workers take up the new installation before its rows arrive, so every row
# must reach them through the capture trigger on the restore's COPY (in the
# others they may also find the rows in the table when they take it up). Each
# restore
# must bring back every row of engram.observations, engram.space_catalog and
# engram.sessions (compared by content, not only by count), the space ids
# and the sequences' positions, and the workers must index the restored rows
# (the capture trigger fires on the restore's COPY) so that recall answers
# exactly as the original: at engram.ef_search = 5000 over 5,000 vectors the
# search is exhaustive, so every one of sift5k's 100 queries must return the
# same 10 observation ids on both sides. After the restore, new ids continue
# above the restored ones and a restored session continues at its position.
# One restored cluster is then restarted and answers the same again, this
# time from indexes loaded from the table.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramData;
use EngramTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'sift5k not found in ' . data_dir() . ' (set ENGRAM_DATA)'
  unless -f data_dir() . '/sift5k/sift5k_base.fvecs';

my %settings = (
	shared_preload_libraries => "'engram'",
	'engram.database' => "'postgres'",
	'engram.workers' => 2,
	'engram.ring_size' => "'8MB'",
	'engram.memory_limit' => "'512MB'",
	max_worker_processes => 16);

# A started cluster with engram preloaded but not created: the restore creates it.
sub bare_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', join('', map { "$_ = $settings{$_}\n" } sort keys %settings));
	$node->start;
	return $node;
}

# --- the original ------------------------------------------------------------
my $source = engram_node('source', %settings);
# A dropped space first, so that space ids and observation ids have gaps.
$source->safe_psql('postgres', q{
	SELECT engram.create_space('scratch', 4, 'l2');
	SELECT engram.observe_batch('scratch', '{{1,2,3,4},{5,6,7,8},{9,10,11,12}}');
	SELECT engram.drop_space('scratch');});
my $sift_id = $source->safe_psql('postgres', "SELECT engram.create_space('sift5k', 128, 'l2')");
is($sift_id, 2, 'sift5k is space 2 (space 1 was dropped)');
is(copy_base($source, 'postgres', 'sift5k', $sift_id), 5000, 'sift5k: 5,000 base vectors copied');
my $queries = load_queries($source, 'postgres', 'sift5k', 'public.sift_q');

# A space fed through a session, with metadata, confidences and a position,
# stored as sq8 (the catalog's storage is restored with the rest).
$source->safe_psql('postgres', "SELECT engram.create_space('notes', 3, 'cosine', storage => 'sq8')");
my $session = $source->safe_psql('postgres', "SELECT engram.open_session('notes')");
$source->safe_psql('postgres', qq{
	SELECT engram.observe('notes', '{1,0,0}', 'first', 0.9, '{"topic": "a"}', '$session', 1);
	SELECT engram.observe_batch('notes', '{{0,1,0},{0,0,1}}', '{second,third}', '{0.2,0.3}', '$session', 2);
	SELECT engram.observe('notes', '{1,1,1}', 'no session');});
ok($source->safe_psql('postgres', "SELECT bool_and(engram.wait_linked(name, NULL, 600000)) FROM engram.spaces") eq 't',
	'source: every space is linked');

# Everything a restore must bring back, by content.
my $state_sql = q{
	SELECT 'observations ' || count(*) || ', max id ' || max(id) || ', md5 '
		   || md5(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s', id, space_id, embedding, content, confidence,
									metadata, observed_at, session_id, seq), E'\n' ORDER BY id))
	FROM engram.observations
	UNION ALL
	SELECT 'spaces ' || string_agg(format('%s:%s:%s:%s:%s:%s:%s:%s:%s', space_id, name, dim, metric, m,
										  ef_construction, storage, owner, created_at), ',' ORDER BY space_id)
	FROM engram.space_catalog
	UNION ALL
	SELECT 'sessions ' || string_agg(format('%s:%s:%s:%s', session_id, space_id, last_seq, opened_at), ','
									 ORDER BY session_id)
	FROM engram.sessions
	UNION ALL
	SELECT 'sequences ' || (SELECT last_value FROM engram.observations_id_seq) || ' '
		   || (SELECT last_value FROM engram.space_catalog_space_id_seq)};
my $state = $source->safe_psql('postgres', $state_sql);
like($state, qr/^observations 5004, max id 5007,/m, 'source: 5,004 observations with ids up to 5007');

# Every query's 10 observation ids (sorted, so ties in distance do not
# matter) and its hits in the ground truth, at an exhaustive ef_search.
my $answers_sql = qq{
	SET engram.ef_search = 5000;
	SELECT q.qid || ' ' || array_agg(r.id ORDER BY r.id)::text
		   || ' ' || count(*) FILTER (WHERE o.content::int = ANY (q.truth))
	FROM sift_q q
	CROSS JOIN LATERAL engram.recall('sift5k', q.cue, 10) r
	JOIN engram.observations o ON o.id = r.id
	GROUP BY q.qid, q.truth ORDER BY q.qid};
sub recall_at_10
{
	my ($answers) = @_;
	my $hits = 0;
	$hits += (split / /)[2] for split /\n/, $answers;
	return $hits / (10 * $queries);
}
my $answers = $source->safe_psql('postgres', $answers_sql);
is(scalar(split /\n/, $answers), $queries, "source: all $queries queries answered");
my $source_recall = recall_at_10($answers);
cmp_ok($source_recall, '>=', 0.99, sprintf('source: recall@10 at an exhaustive ef_search is %.4f', $source_recall));

# The dump holds the rows, not the indexes.
my $dump = $source->basedir . '/engram.dump';
my ($out, $err) = ('', '');
ok(IPC::Run::run([ 'pg_dump', '-Fc', '-f', $dump, '-d', $source->connstr('postgres') ], '>', \$out, '2>', \$err),
	'pg_dump -Fc succeeds')
  or diag($err);
is($err, '', 'pg_dump says nothing on stderr');
($out, $err) = ('', '');
IPC::Run::run([ 'pg_restore', '-l', $dump ], '>', \$out, '2>', \$err);
like($out, qr/TABLE DATA engram observations /, 'the dump holds the rows of engram.observations');
like($out, qr/TABLE DATA engram space_catalog /, 'the dump holds the rows of engram.space_catalog');
like($out, qr/TABLE DATA engram sessions /, 'the dump holds the rows of engram.sessions');
like($out, qr/SEQUENCE SET engram observations_id_seq /, 'the dump holds the position of the observation ids');
like($out, qr/SEQUENCE SET engram space_catalog_space_id_seq /, 'the dump holds the position of the space ids');

# --- restores ------------------------------------------------------------------
my @modes = (
	[ 'plain', [ [] ] ],
	[ 'single_transaction', [ ['--single-transaction'] ] ],
	[
		'two_jobs',
		[
			['--section=pre-data'], \&workers_serving, [ '--section=data', '-n', 'engram' ],
			[ '--section=data', '-N', 'engram', '-j', '2' ], [ '--section=post-data', '-j', '2' ], \&rows_captured
		]
	]);

# Waits until the workers serve the restored installation (it has no spaces yet).
sub workers_serving
{
	my ($node, $label) = @_;
	is($node->safe_psql('postgres', 'SELECT engram.wait_stored(60000)'), 't', "$label: the workers serve the new installation");
	ok($node->log_contains(qr/loaded 0 observations of 0 spaces/), "$label: before any row was restored");
}

# No load found a row in the table: every row came through the capture trigger.
sub rows_captured
{
	my ($node, $label) = @_;
	ok(!$node->log_contains(qr/loaded [1-9][0-9]* observations/), "$label: every row reached the workers at its COPY");
}
my $kept;
for my $mode (@modes)
{
	my ($label, $steps) = @$mode;
	my $node = bare_node("restore_$label");
	for my $options (@$steps)
	{
		if (ref $options eq 'CODE')
		{
			$options->($node, $label);
			next;
		}
		my $command = join(' ', 'pg_restore', @$options);
		($out, $err) = ('', '');
		ok( IPC::Run::run([ 'pg_restore', @$options, '-d', $node->connstr('postgres'), $dump ],
				'>', \$out, '2>', \$err),
			"$label: $command succeeds")
		  or diag($err);
		is($err, '', "$label: $command reports no error");
	}

	ok($node->safe_psql('postgres', "SELECT bool_and(engram.wait_linked(name, NULL, 600000)) FROM engram.spaces") eq 't',
		"$label: the workers indexed and linked every restored space");
	is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'engram'"),
		'0.8.0', "$label: the extension is at 0.8.0");
	is($node->safe_psql('postgres', $state_sql), $state, "$label: rows, space ids, sessions and sequences as dumped");
	is($node->safe_psql('postgres', "SELECT string_agg(name || ':' || storage, ',' ORDER BY name) FROM engram.spaces"),
		'notes:sq8,sift5k:f32', "$label: engram.spaces shows each space's storage as dumped");
	check_converged($node, $label);
	is($node->safe_psql('postgres', "SELECT observations || '/' || linked FROM engram.spaces WHERE name = 'sift5k'"),
		'5000/5000', "$label: sift5k's index holds and links 5,000 vectors without a restart");

	my $restored = $node->safe_psql('postgres', $answers_sql);
	is($restored, $answers, "$label: every query returns the same 10 ids as on the original");
	my $restored_recall = recall_at_10($restored);
	cmp_ok(abs($restored_recall - $source_recall), '<=', 0.001,
		sprintf('%s: recall@10 %.4f equals the original %.4f', $label, $restored_recall, $source_recall));

	# New ids continue above the restored ones; the session at its position.
	my ($new_id, $new_space) = split /\|/, $node->safe_psql('postgres', q{
		SELECT engram.observe('sift5k', (SELECT cue FROM sift_q WHERE qid = 0)),
			   engram.create_space('after_restore', 2, 'l2')});
	cmp_ok($new_id, '>', 5007, "$label: a new observation gets id $new_id, above the restored maximum 5007");
	cmp_ok($new_space, '>', 3, "$label: a new space gets id $new_space, above the restored spaces");
	my ($again, $next) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT engram.observe('notes', '{0,1,0}', session => '$session', seq => 2),
			   engram.observe('notes', '{2,0,1}', 'fourth', session => '$session', seq => 4)});
	is($again, $node->safe_psql('postgres', "SELECT id FROM engram.observations WHERE session_id = '$session' AND seq = 2"),
		"$label: a retried sequence number is acknowledged with the restored id");
	cmp_ok($next, '>', $new_id, "$label: the session continues at sequence number 4");
	my ($top) = split /\|/, $node->safe_psql('postgres',
		"SELECT id || '|' || distance FROM engram.recall('sift5k', (SELECT cue FROM sift_q WHERE qid = 0), 1)");
	is($top, $new_id, "$label: the new observation is recalled");
	check_converged($node, "$label, after new observations");
	$node->log_check("$label: no crash and no worker error", 0,
		log_unlike => [ qr/PANIC|TRAP:|terminated by signal|exited with exit code/ ]);

	if ($label eq 'plain') { $kept = $node; }
	else { $node->stop; }
}
my $kept_answers = $kept->safe_psql('postgres', $answers_sql);

# --- a restart of a restored cluster loads the indexes from the table ------------
$kept->restart;
ok($kept->safe_psql('postgres', "SELECT bool_and(engram.wait_linked(name, NULL, 600000)) FROM engram.spaces") eq 't',
	'after a restart: every space is linked again');
check_converged($kept, 'after a restart');
is($kept->safe_psql('postgres', $answers_sql), $kept_answers,
	'after a restart: every query returns the same 10 ids as before it');

done_testing();
