# Logical replication feeds observations: a publisher cluster publishes
# engram.observations, a subscriber cluster (both with engram preloaded)
# subscribes, and the rows the apply worker writes take the same path as a
# local INSERT on the subscriber (the capture trigger fires on replicas too),
# so the subscriber's workers index them and its sessions recall them.
#
# Checked: the initial copy and then a stream of observe, observe_batch and
# rolled-back transactions on the publisher arrive; the subscriber indexes
# exactly the committed rows; a vector observed on the publisher is recalled
# on the subscriber at distance 0; and a restart of the subscriber rebuilds
# its index from the replicated table.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $publisher = engram_node('publisher', wal_level => 'logical', max_wal_senders => 10, max_replication_slots => 10);
my $subscriber = engram_node('subscriber');

# The same space on both sides: observations refer to it by id.
for my $node ($publisher, $subscriber)
{
	is($node->safe_psql('postgres', "SELECT engram.create_space('shared_memory', 16, 'l2')"),
		'1', $node->name . ': the space has id 1');
}

sub cue
{
	my ($x) = @_;
	return "array_fill(${x}::real, ARRAY[16])";
}

# Rows committed before the subscription come with its initial copy.
$publisher->safe_psql('postgres',
	"SELECT engram.observe_batch('shared_memory', (SELECT array_agg(array_fill((g / 1000.0)::real, ARRAY[16])) FROM generate_series(1, 2000) g))");
$publisher->safe_psql('postgres', 'CREATE PUBLICATION memories FOR TABLE engram.observations');
my $publisher_conn = $publisher->connstr . ' dbname=postgres';
$subscriber->safe_psql('postgres', "CREATE SUBSCRIPTION memories CONNECTION '$publisher_conn' PUBLICATION memories");
$subscriber->wait_for_subscription_sync($publisher, 'memories');

# Then a stream: single observations, batches and transactions that roll back.
my $stream = '';
for my $i (1 .. 200)
{
	$stream .= "SELECT engram.observe('shared_memory', " . cue(5 + $i) . ", 'streamed $i');\n";
	$stream .= "SELECT engram.observe_batch('shared_memory', (SELECT array_agg(array_fill(((g + $i * 100) / 7.0)::real, ARRAY[16])) FROM generate_series(1, 10) g));\n"
	  if $i % 10 == 0;
	$stream .= "BEGIN; SELECT engram.observe('shared_memory', " . cue(-1000 - $i) . ", 'rolled back'); ROLLBACK;\n"
	  if $i % 25 == 0;
}
$publisher->safe_psql('postgres', $stream);
my $marker = $publisher->safe_psql('postgres', "SELECT engram.observe('shared_memory', " . cue(4242) . ", 'marker')");
$publisher->wait_for_catchup('memories');

my $committed = $publisher->safe_psql('postgres', 'SELECT count(*) FROM engram.observations');
is($committed, 2000 + 200 + 20 * 10 + 1, 'the publisher committed every observation but the rolled-back ones');
is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'),
	$committed, 'the subscriber received every committed row');

ok($subscriber->safe_psql('postgres', "SELECT engram.wait_linked('shared_memory', NULL, 60000)") eq 't',
	'the subscriber linked what arrived');
my ($observations, $linked) =
  split /\|/, $subscriber->safe_psql('postgres', "SELECT observations, linked FROM engram.spaces WHERE name = 'shared_memory'");
is($observations, $committed, 'the subscriber indexes exactly the committed rows');
is($linked, $committed, 'and all of them are linked');
check_converged($subscriber, 'subscriber');

is($subscriber->safe_psql('postgres', "SELECT id || ' ' || distance FROM engram.recall('shared_memory', " . cue(4242) . ', 1)'),
	"$marker 0", 'a vector observed on the publisher is recalled on the subscriber');
is($subscriber->safe_psql('postgres', "SELECT count(*) FROM engram.recall('shared_memory', " . cue(-1025) . ", 50) r
	JOIN engram.observations o USING (id) WHERE o.content = 'rolled back'"),
	'0', 'nothing rolled back on the publisher is recalled on the subscriber');

# A restart of the subscriber rebuilds its index from the replicated table.
$subscriber->restart;
is($subscriber->safe_psql('postgres', "SELECT id || ' ' || distance FROM engram.recall('shared_memory', " . cue(4242) . ', 1)'),
	"$marker 0", 'after a restart the subscriber still recalls it');
check_converged($subscriber, 'subscriber after restart');

# Replication continues after the restart.
my $after = $publisher->safe_psql('postgres', "SELECT engram.observe('shared_memory', " . cue(777) . ", 'after restart')");
$publisher->wait_for_catchup('memories');
is($subscriber->safe_psql('postgres', "SELECT id FROM engram.recall('shared_memory', " . cue(777) . ', 1)'),
	$after, 'an observation made after the restart arrives and is recalled');

$subscriber->log_check('no crash on the subscriber', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);
done_testing();
