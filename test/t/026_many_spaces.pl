# Many spaces: a cluster of 100,000 spaces, the per-tenant use the design is for.
#   - 100,000 spaces are created (in transactions of 10,000) and take no
#     index memory until rows arrive; engram.memory_usage() counts them (for
#     pg_monitor: refused to other roles);
#   - 1,000 of them are fed 20 rows each in one transaction, and each answers
#     a recall of one of its rows with that row first and only its own rows
#     (checked for every one of the 1,000 inside the server); a space of 20
#     rows holds less than 32 KB of index memory;
#   - a drop rolled back keeps its space; then all 100,000 are dropped at
#     once, the workers free every slot, and the index memory returns to
#     where it started, in no free block (everything merged back);
#   - 1,000 new spaces fed the same way then take about the same memory again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $spaces = 100_000;
my $fed_every = 100;    # 1,000 of them get rows
my $rows = 20;
my $node = engram_node('many', 'engram.max_spaces' => $spaces + 100);

sub usage
{
	my ($column) = @_;
	return $node->safe_psql('postgres', "SELECT $column FROM engram.memory_usage()");
}

is(usage('used_bytes'), '0', 'no index memory before any space');
$node->safe_psql('postgres', 'CREATE ROLE tenant_app LOGIN; CREATE ROLE watcher LOGIN IN ROLE pg_monitor; '
	  . 'GRANT USAGE ON SCHEMA engram TO tenant_app, watcher');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT used_bytes FROM engram.memory_usage()', extra_params => [ '-U', 'tenant_app' ]);
like($err, qr/permission denied for function memory_usage/, 'memory_usage() is refused to a role without pg_monitor');
($rc, $out, $err) = $node->psql('postgres', 'SELECT used_bytes FROM engram.memory_usage()', extra_params => [ '-U', 'watcher' ]);
is($out, '0', 'and answers a member of pg_monitor');
is(usage('max_spaces'), $spaces + 100, 'memory_usage reports engram.max_spaces');

for (my $from = 1; $from <= $spaces; $from += 10_000)
{
	my $to = $from + 9_999;
	$node->safe_psql('postgres',
		"SELECT count(engram.create_space('tenant_' || g, 16, 'l2')) FROM generate_series($from, $to) g");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM engram.spaces'), $spaces, "$spaces spaces exist");
is(usage('spaces'), $spaces, 'each holds a directory slot');
is(usage('used_bytes'), '0', 'empty spaces hold no index memory');

# Row r of tenant t: component d is t / 1000 + r / 10 + d / 100, so rows of
# one tenant are 0.1 apart per component and tenants far apart from each other.
sub feed
{
	my ($prefix) = @_;
	$node->safe_psql(
		'postgres', qq{
		INSERT INTO engram.observations (space_id, embedding, content)
		SELECT c.space_id,
			   (SELECT array_agg((t / 1000.0 + r / 10.0 + d / 100.0)::real ORDER BY d) FROM generate_series(1, 16) d),
			   c.name || ':' || r
		FROM engram.space_catalog c, LATERAL (SELECT substr(c.name, length('$prefix') + 1)::int AS t) n,
			 generate_series(1, $rows) r
		WHERE c.name LIKE '$prefix%' AND t % $fed_every = 0});
	return $node->safe_psql('postgres', "SELECT count(*) FROM engram.space_catalog WHERE name LIKE '$prefix%' AND "
		  . "substr(name, length('$prefix') + 1)::int % $fed_every = 0");
}

# For every fed space: recall row 7's own vector; the first answer must be
# that row, and every answer a row of the space. Counts the spaces that fail.
sub check_recalls
{
	my ($prefix) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FILTER (WHERE NOT ok) || '/' || count(*)
		FROM (SELECT c.name,
					 (SELECT bool_and(o.space_id = c.space_id) AND count(*) = 5
							 AND (array_agg(o.content ORDER BY r.distance, r.id))[1] = c.name || ':7'
					  FROM engram.recall(c.name, (SELECT array_agg((t / 1000.0 + 7 / 10.0 + d / 100.0)::real ORDER BY d)
												  FROM generate_series(1, 16) d), 5) r
					  JOIN engram.observations o ON o.id = r.id) AS ok
			  FROM engram.space_catalog c, LATERAL (SELECT substr(c.name, length('$prefix') + 1)::int AS t) n
			  WHERE c.name LIKE '$prefix%' AND t % $fed_every = 0) x});
}

my $fed = feed('tenant_');
is($fed, $spaces / $fed_every, "$fed spaces fed $rows rows each");
ok(wait_stored($node, 300000), 'the workers stored every row');
is($node->safe_psql('postgres', "SELECT engram.wait_linked('tenant_$fed_every', NULL, 120000)"),
	't', 'a fed space is linked');
is(check_recalls('tenant_'), "0/$fed", 'every fed space recalls its own rows, its probed row first');
my $used = usage('used_bytes');
cmp_ok($used, '>', 0, 'fed spaces hold index memory');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.spaces WHERE observations = $rows AND memory_bytes < 32768"),
	$fed, "a space of $rows rows holds less than 32 KB");
note "index memory of $fed spaces of $rows rows: $used bytes";

$node->safe_psql('postgres', "BEGIN; SELECT engram.drop_space('tenant_$fed_every'); ROLLBACK;");
ok(wait_stored($node), 'workers resolved the rolled back drop');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.recall('tenant_$fed_every', "
		  . "(SELECT array_agg(0::real) FROM generate_series(1, 16)), 3)"),
	'3', 'a drop rolled back keeps its space and its rows');

$node->safe_psql('postgres', 'SELECT count(engram.drop_space(name)) FROM engram.space_catalog');
is($node->safe_psql('postgres', 'SELECT count(*) FROM engram.spaces'), '0', 'every space dropped');
is( poll_until(
		$node, 'SELECT spaces = 0 AND used_bytes = 0 AND free_blocks = 0 FROM engram.memory_usage()',
		't', 300),
	't', 'the workers freed every slot and all index memory, merged back into one');

$node->safe_psql('postgres',
	"SELECT count(engram.create_space('again_' || g, 16, 'l2')) FROM generate_series($fed_every, $fed_every * 1000, $fed_every) g");
$fed = feed('again_');
is($fed, 1000, 'a new round of 1,000 spaces fed');
ok(wait_stored($node, 300000), 'the workers stored the new rows');
is($node->safe_psql('postgres', "SELECT engram.wait_linked('again_$fed_every', NULL, 120000)"),
	't', 'a new space is linked');
is(check_recalls('again_'), '0/1000', 'every new space recalls its own rows');
my $again = usage('used_bytes');
note "index memory of the second round: $again bytes";
cmp_ok(abs($again - $used), '<=', $used / 10,
	'the new spaces take about the memory the first ones took (their node levels differ)');

done_testing();
