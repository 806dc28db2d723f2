# One installation, one identity; upgrades; snapshots older than a reload.
#
# 1. Upgrade: CREATE EXTENSION engram VERSION '0.1.0', observe, ALTER
#    EXTENSION engram UPDATE, recall the same rows, observe and recall again.
#    At 0.5.0 (embeddings stored inline) a 4,096-d space is refused with a
#    hint to update.
#    The upgraded catalog (functions with their settings and privileges,
#    tables, columns, constraints, indexes, triggers, views, configuration
#    tables) must equal a fresh CREATE EXTENSION's.
# 2. as_of from before a restart gets an error naming the oldest answerable
#    generation; that generation and later ones answer.
# 3. DROP EXTENSION and CREATE EXTENSION at once, then a new space with the
#    same space id and observation ids that collide with the old ones: its
#    index holds exactly the new rows, none of the old installation's.
#    With the workers stopped (SIGSTOP), observations of the old
#    installation (as id ranges) wait in the ring through a reinstall: they
#    are dropped, and
#    the new installation's space with the same id holds only its own rows.
# 4. DROP EXTENSION (the workers free the indexes and wait), CREATE
#    EXTENSION, sift5k through COPY: recall@10 >= 0.95, no duplicate ids, and
#    every hit is the new table's row at its true distance; as_of from the old
#    installation gets the error.
# 5. CREATE EXTENSION in a second database fails with a clear error and
#    hint, and the first database answers exactly as before.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramData;
use EngramTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'sift5k not found in ' . data_dir() . ' (set ENGRAM_DATA)'
  unless -f data_dir() . '/sift5k/sift5k_base.fvecs';

my $node = PostgreSQL::Test::Cluster->new('identity');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'engram'
engram.database = 'postgres'
engram.workers = 2
engram.ring_size = '8MB'
engram.memory_limit = '512MB'
max_worker_processes = 16
});
$node->start;

# Runs SQL expected to fail; returns psql's stderr (with SQLSTATEs).
sub psql_error
{
	my ($db, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql");
	isnt($ret, 0, "fails: $sql");
	return $err;
}

# The extension's objects as the catalog describes them, one per line (with
# every name qualified).
my $catalog_sql = q{
	SET search_path = pg_catalog;
	WITH ext AS (SELECT oid, extversion, extconfig, extcondition FROM pg_extension WHERE extname = 'engram'),
	rels AS (SELECT c.* FROM pg_class c WHERE c.relnamespace = 'engram'::regnamespace)
	SELECT string_agg(line, E'\n' ORDER BY line) FROM (
		SELECT format('function %s(%s) returns %s kind=%s volatile=%s strict=%s secdef=%s parallel=%s rows=%s '
					  'config=%s acl=%s language=%s source=%s', p.proname, pg_get_function_arguments(p.oid),
					  pg_get_function_result(p.oid), p.prokind, p.provolatile, p.proisstrict, p.prosecdef,
					  p.proparallel, p.prorows, p.proconfig, p.proacl, l.lanname, md5(p.prosrc || coalesce(p.probin, '')))
		FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = 'engram'::regnamespace
		UNION ALL
		SELECT format('relation %s kind=%s acl=%s options=%s', relname, relkind, relacl, reloptions) FROM rels
		UNION ALL
		SELECT format('column %s.%s %s notnull=%s default=%s storage=%s', c.relname, a.attname,
					  format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attstorage)
		FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT format('constraint %s.%s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
		FROM rels c JOIN pg_constraint k ON k.conrelid = c.oid
		UNION ALL
		SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM rels c JOIN pg_index i ON i.indrelid = c.oid
		UNION ALL
		SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
		FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid WHERE NOT t.tgisinternal
		UNION ALL
		SELECT format('view %s %s', relname, pg_get_viewdef(oid)) FROM rels WHERE relkind = 'v'
		UNION ALL
		SELECT format('dumped %s where %s', x::regclass, coalesce(ext.extcondition[i], ''))
		FROM ext, unnest(ext.extconfig) WITH ORDINALITY u(x, i)
		UNION ALL
		SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
		FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
		UNION ALL
		SELECT format('initial privileges %s %s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), ip.initprivs)
		FROM pg_init_privs ip, pg_depend d, ext
		WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
		  AND ip.classoid = d.classid AND ip.objoid = d.objid
		UNION ALL
		SELECT 'version ' || extversion FROM ext) lines(line)};

# --- 1. upgrade from 0.1.0 ---------------------------------------------------------
$node->safe_psql('postgres', "CREATE EXTENSION engram VERSION '0.1.0'");
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'engram'"), '0.1.0',
	'0.1.0 installed');
$node->safe_psql('postgres', q{
	SELECT engram.create_space('upgraded', 3, 'l2');
	SELECT engram.observe_batch('upgraded', '{{0,0,0},{1,0,0},{0,2,0}}', '{origin,x1,y2}');});
my $up_session = $node->safe_psql('postgres', "SELECT engram.open_session('upgraded')");
$node->safe_psql('postgres', "SELECT engram.observe('upgraded', '{0,0,3}', 'z3', session => '$up_session', seq => 1)");
my $recall_up = q{SELECT string_agg(o.content, ',' ORDER BY r.distance, o.content)
	FROM engram.recall('upgraded', '{0,0,0}', 10) r JOIN engram.observations o USING (id)};
is($node->safe_psql('postgres', $recall_up), 'origin,x1,y2,z3', '0.1.0: recall answers');

# At 0.5.0 the table still stores embeddings inline: a space wider than a
# heap page can hold is refused until the last update.
$node->safe_psql('postgres', "ALTER EXTENSION engram UPDATE TO '0.5.0'");
my ($wide_ret, $wide_out, $wide_err) = $node->psql('postgres',
	"SELECT engram.create_space('too_wide', 4096, 'l2', storage => 'f16')", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($wide_ret, 0, '0.5.0: a 4,096-d f16 space is refused');
like($wide_err, qr/55000: engram.observations cannot hold vectors of 4096 dimensions yet/, 'with SQLSTATE 55000');
like($wide_err, qr/HINT:  Run ALTER EXTENSION engram UPDATE/, 'and a hint to update');
$node->safe_psql('postgres', 'ALTER EXTENSION engram UPDATE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'engram'"), '0.8.0',
	'ALTER EXTENSION engram UPDATE reaches 0.8.0');
is($node->safe_psql('postgres', "SELECT storage FROM engram.spaces WHERE name = 'upgraded'"), 'f32',
	'after the update: a space created before storage existed is f32');
is($node->safe_psql('postgres', $recall_up), 'origin,x1,y2,z3', 'after the update: recall answers the same');
$node->safe_psql('postgres', qq{
	SELECT engram.observe('upgraded', '{0,0,4}', 'z4', session => '$up_session', seq => 2);
	SELECT engram.observe_batch('upgraded', '{{5,0,0},{0,6,0}}', '{x5,y6}');});
is($node->safe_psql('postgres', $recall_up), 'origin,x1,y2,z3,z4,x5,y6',
	'after the update: new observations are recalled');
check_converged($node, 'after the update');
my $upgraded = $node->safe_psql('postgres', $catalog_sql);
like($upgraded, qr/^dumped engram\.observations where $/m, 'after the update: engram.observations is dumped');
like($upgraded, qr/^dumped engram\.observations_id_seq where $/m, 'after the update: its sequence is dumped');
like($upgraded, qr/^function recall\(/m, 'the catalog description lists the functions');

# --- 2. as_of across a restart -------------------------------------------------------
# A clean restart loads the graph files written at shutdown, which keep every
# row's own generation: a snapshot from before the restart still answers.
my $before_restart = $node->safe_psql('postgres', "SELECT engram.current_generation('upgraded')");
my $as_of_before = "SELECT count(*) FROM engram.recall('upgraded', '{0,0,0}', 10, as_of => $before_restart)";
is($node->safe_psql('postgres', $as_of_before), 7, 'before the restart, as_of the current generation sees every row');
$node->restart;
is($node->safe_psql('postgres', $as_of_before), 7,
	'after a clean restart, as_of from before it answers from the graph file');
# Without graph files every row is loaded from the table, at the generation
# of the load, so snapshots from before it cannot be told apart.
$node->append_conf('postgresql.conf', "engram.persist = off\n");
$node->restart;
my $since_restart = -s $node->logfile;
my $err = psql_error('postgres', "SELECT * FROM engram.recall('upgraded', '{0,0,0}', 10, as_of => $before_restart)");
like($err, qr/ERROR:  22023: generation $before_restart is older than the index can answer/,
	'after a restart without graph files, as_of an older generation is refused');
my ($oldest) = $err =~ /DETAIL:  The index cannot answer snapshots from generation 0 up to generation (\d+):/;
ok(defined $oldest && $oldest > $before_restart, 'the detail names the oldest answerable generation')
  or diag($err);
like($err, qr/HINT:  Use as_of => $oldest or later/, 'the hint says which as_of works');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.recall('upgraded', '{0,0,0}', 10, as_of => $oldest)"),
	7, 'as_of the oldest answerable generation sees every row');
is($node->safe_psql('postgres', $recall_up), 'origin,x1,y2,z3,z4,x5,y6', 'after the restart: recall answers');
$node->append_conf('postgresql.conf', "engram.persist = on\n");
$node->reload;

# --- 3. reinstall at once ------------------------------------------------------------
my $queries = load_queries($node, 'postgres', 'sift5k', 'public.sift_q');
my $old_generation = $node->safe_psql('postgres', "SELECT engram.current_generation('upgraded')");
$node->safe_psql('postgres', 'DROP EXTENSION engram CASCADE; CREATE EXTENSION engram;');
is($node->safe_psql('postgres', $catalog_sql), $upgraded,
	'a fresh install has the same functions, settings, privileges and tables as the upgraded one');
is($node->safe_psql('postgres', "SELECT engram.create_space('probe', 128, 'l2')"), 1,
	'the new installation numbers spaces from 1 again');
# Ids 1..100 again: the old installation's space 1 held ids 1..7.
$node->safe_psql('postgres', q{
	INSERT INTO engram.observations (space_id, embedding, content) SELECT 1, cue, qid FROM sift_q ORDER BY qid});
is($node->safe_psql('postgres', q{SELECT min(id) || ' - ' || max(id) FROM engram.observations}), '1 - 100',
	'the new observations reuse ids 1..100');
my $probe_sql = q{
	SELECT count(*) FILTER (WHERE r.id IS NOT NULL AND o.content = q.qid::text AND r.distance = 0)
	FROM sift_q q LEFT JOIN LATERAL engram.recall('probe', q.cue, 1) r ON true
	LEFT JOIN engram.observations o ON o.id = r.id};
is($node->safe_psql('postgres', $probe_sql), $queries, 'each probe is its own nearest at distance 0, at once');
check_converged($node, 'right after the reinstall');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.stored_ids('probe')"), 100,
	'the index holds the 100 new rows and nothing of the old installation');
$err = psql_error('postgres', "SELECT * FROM engram.recall('probe', (SELECT cue FROM sift_q WHERE qid = 0), 1, as_of => $old_generation)");
like($err, qr/ERROR:  22023: generation $old_generation is older than the index can answer/,
	'as_of from the old installation is refused');

# Records of the old installation still in the ring when the new one starts.
my @workers = worker_pids($node);
is(scalar @workers, 2, 'two workers run');
my $offset = -s $node->logfile;
kill 'STOP', @workers;
$node->safe_psql('postgres', q{
	INSERT INTO engram.observations (space_id, embedding, content)
	SELECT 1, cue, 'stale' FROM sift_q, generate_series(1, 30);
	DROP EXTENSION engram CASCADE;
	CREATE EXTENSION engram;
	SELECT engram.create_space('fresh', 128, 'l2');
	INSERT INTO engram.observations (space_id, embedding, content)
	SELECT 1, array_prepend(cue[1] + 1, cue[2:128]), 'fresh' FROM sift_q WHERE qid < 10;});
sleep(2); # longer than the workers' interval between looks at the catalog
kill 'CONT', @workers;
# 1.5 MB in one transaction: more than an eighth of the ring, so its record
# holds id ranges, which must not be read from the new table of that name.
ok($node->wait_for_log(qr/engram dropped 3000 observations of another installation of engram/, $offset),
	'the old installation\'s observations in the ring are dropped');
check_converged($node, 'after a reinstall with records in the ring');
is($node->safe_psql('postgres', q{SELECT count(*) FROM engram.stored_ids('fresh') s(id)
	JOIN engram.observations o ON o.id = s.id AND o.content = 'fresh'}), 10,
	'the new space holds exactly its 10 rows');

# --- 4. drop, wait, reinstall, sift5k --------------------------------------------------
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP EXTENSION engram CASCADE');
ok($node->wait_for_log(qr/freed the indexes of \d+ spaces: the extension was dropped/, $offset),
	'after DROP EXTENSION the workers free the indexes');
ok($node->wait_for_log(qr/is waiting for CREATE EXTENSION engram in database "postgres"/, $offset),
	'and wait for the extension');
$node->safe_psql('postgres', 'CREATE EXTENSION engram');
my $sift_id = $node->safe_psql('postgres', "SELECT engram.create_space('sift5k', 128, 'l2')");
is($sift_id, 1, 'sift5k is space 1, like the old probe space');
is(copy_base($node, 'postgres', 'sift5k', $sift_id), 5000, 'sift5k: 5,000 base vectors copied');
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('sift5k', NULL, 600000)") eq 't', 'sift5k is linked');
check_converged($node, 'after the second reinstall');

my $answers_sql = q{
	SELECT q.qid, r.id, r.distance, o.content::int = ANY (q.truth) AS hit,
		   sqrt((SELECT sum((a - b) ^ 2) FROM unnest(q.cue, o.embedding) v(a, b))) AS true_distance
	FROM sift_q q CROSS JOIN LATERAL engram.recall('sift5k', q.cue, 10) r
	LEFT JOIN engram.observations o ON o.id = r.id};
my ($rows, $hits, $duplicates, $strangers, $wrong_distance, $at_zero) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT count(*), count(*) FILTER (WHERE hit),
		   count(*) - count(DISTINCT (qid, id)),
		   count(*) FILTER (WHERE true_distance IS NULL),
		   count(*) FILTER (WHERE abs(distance - true_distance) > 1e-3 * greatest(1, true_distance)),
		   count(*) FILTER (WHERE distance < 1e-3)
	FROM ($answers_sql) a});
is($rows, 10 * $queries, 'sift5k: 10 results per query');
is($duplicates, 0, 'sift5k: no id twice in one answer');
is($strangers, 0, 'sift5k: every recalled id is a row of the new table');
is($wrong_distance, 0, "sift5k: every hit is at its row's true distance (no vector of the old installation)");
is($at_zero, 0, 'sift5k: no old probe (a query vector itself) is recalled');
my $recall = $hits / (10 * $queries);
cmp_ok($recall, '>=', 0.95, sprintf('sift5k after reinstalling: recall@10 %.4f >= 0.95', $recall));

# --- 5. a second database ------------------------------------------------------------------
my $answers = $node->safe_psql('postgres', "$answers_sql ORDER BY q.qid, r.distance, r.id");
$node->safe_psql('postgres', 'CREATE DATABASE other');
$err = psql_error('other', 'CREATE EXTENSION engram');
like($err, qr/ERROR:  55000: engram can only be used in database "postgres"/,
	'CREATE EXTENSION in another database fails with SQLSTATE 55000');
like($err, qr/DETAIL:  This is database "other"\./, 'the detail names the database');
like($err, qr/HINT:  Connect to database "postgres", or set engram.database = 'other' in postgresql.conf/,
	'the hint names engram.database');
$err = psql_error('other', "CREATE EXTENSION engram VERSION '0.1.0'");
like($err, qr/engram can only be used in database "postgres"/, 'so does installing 0.1.0 there');
is($node->safe_psql('other', "SELECT count(*) FROM pg_namespace WHERE nspname = 'engram'"), 0,
	'nothing was created in the other database');
is($node->safe_psql('postgres', "$answers_sql ORDER BY q.qid, r.distance, r.id"), $answers,
	'the first database answers exactly as before');
check_converged($node, 'after the attempt in another database');

$node->log_check('no crash and no worker error since the restart', $since_restart,
	log_unlike => [ qr/PANIC|TRAP:|terminated by signal|exited with exit code/ ]);

done_testing();
