# Without shared_preload_libraries engram refuses to load, with a hint that
# says how to fix it, and nothing is created. With it, the workers wait for
# CREATE EXTENSION in engram.database and then report themselves.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
my ($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION engram');
isnt($ret, 0, 'CREATE EXTENSION fails without preloading');
like($err, qr/ERROR:  engram must be loaded via shared_preload_libraries/, 'the error says why');
like($err, qr/HINT:  Add engram to shared_preload_libraries in postgresql.conf and restart the server\./,
	'the hint says how to fix it');
is($plain->safe_psql('postgres', "SELECT count(*) FROM pg_namespace WHERE nspname = 'engram'"),
	0, 'nothing was created');
($ret, $out, $err) = $plain->psql('postgres', "LOAD 'engram'");
like($err, qr/engram must be loaded via shared_preload_libraries/, 'LOAD is refused the same way');
$plain->stop;

my $node = PostgreSQL::Test::Cluster->new('preloaded');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'engram'\nengram.database = 'postgres'\nengram.workers = 3\n");
$node->start;
ok($node->wait_for_log(qr/engram worker 2 is waiting for CREATE EXTENSION engram in database "postgres"/),
	'workers wait for the extension');
$node->safe_psql('postgres', 'CREATE EXTENSION engram');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 3 FROM engram.workers WHERE pid IS NOT NULL AND state = 'idle'"),
	'all three workers run once the extension exists');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'engram worker'"),
	3, 'the workers show in pg_stat_activity under their own type');

# SIGHUP reaches the workers: a reload changes a threshold they read.
$node->append_conf('postgresql.conf', "engram.pressure_warning = 0.25\n");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT current_setting('engram.pressure_warning') = '0.25'"),
	'settings reload');
# SIGTERM of a worker: it exits cleanly and the postmaster starts it again.
my ($first) = worker_pids($node);
kill 'TERM', $first;
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 3 FROM engram.workers WHERE pid IS NOT NULL AND pid <> $first"),
	'a terminated worker is restarted');
$node->safe_psql('postgres', "SELECT engram.create_space('after', 2, 'l2'); SELECT engram.observe('after', '{1,2}')");
check_converged($node, 'after a worker restart');

done_testing();
