# Backpressure with the ring at its minimum size. The workers are paused
# (SIGSTOP) so the ring fills for certain: policy "error" then refuses with
# SQLSTATE 53E01 and nothing refused is stored; policy "wait" blocks until the
# workers resume and completes every transaction. Finally four clients flood
# the ring under "wait" with the workers running. After each phase the stores
# hold exactly the committed rows, and engram.metrics() counted the refusals
# and the commits held back.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = engram_node('pressure', 'engram.ring_size' => "'1MB'");
my $dim = 256;
$node->safe_psql('postgres', "SELECT engram.create_space('flood', $dim, 'l2')");

# 50 rows of 256 floats: about 51 kB per transaction, below the id-range
# threshold (an eighth of the ring), so every batch travels as vectors.
my $batch = 'SELECT engram.observe_batch(\'flood\', array_fill(0.5::real, ARRAY[50, ' . $dim . ']))';

# The sum of a metric's samples in engram.metrics() (all label sets).
sub metric
{
	my ($name) = @_;
	my $sum = 0;
	for my $line (split /\n/, $node->safe_psql('postgres', 'SELECT engram.metrics()'))
	{
		$sum += $1 if $line =~ /^\Q$name\E(?:\{[^}]*\})? (\S+)$/;
	}
	return $sum;
}

sub signal_workers
{
	my ($signal) = @_;
	kill $signal, worker_pids($node);
	return;
}

# --- policy error ---------------------------------------------------------
my $refusals_before = metric('engram_commits_refused_total');
my $activations_before = metric('engram_streaming_backpressure_activations_total');
signal_workers('STOP');
my ($accepted, $refused, $detail) = (0, 0, '');
for my $i (1 .. 200)
{
	my ($ret, $out, $err) = $node->psql('postgres', "SET engram.overload_policy = 'error'; $batch",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	if ($ret == 0) { $accepted++; next; }
	$refused++;
	$detail = $err;
	last if $refused >= 3;
}
cmp_ok($accepted, '>', 0, "some batches were accepted before the ring filled ($accepted)");
is($refused, 3, 'then commits were refused');
like($detail, qr/ERROR:  53E01: engram ingest pipeline is overloaded/, 'refusal carries SQLSTATE 53E01');
like($detail, qr/DETAIL:  The pipeline is \d+% full \(overloaded at 95%\)/, 'refusal says how full the pipeline is');
like($detail, qr/HINT:  .*engram\.ring_size/, 'refusal hints at the setting to change');
is($node->safe_psql('postgres', 'SELECT level FROM engram.pressure()'), 'overloaded', 'pressure reports overloaded');
is(metric('engram_commits_refused_total') - $refusals_before, 3, 'engram.metrics() counted the three refusals');
is(metric('engram_streaming_backpressure_activations_total') - $activations_before,
	3, 'and as many backpressure activations');
signal_workers('CONT');
check_converged($node, 'policy error');
is($node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'), $accepted * 50,
	'exactly the accepted batches were committed');

# --- policy wait --------------------------------------------------------------
$refusals_before = metric('engram_commits_refused_total');
$activations_before = metric('engram_streaming_backpressure_activations_total');
signal_workers('STOP');
my $committed_before = $node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations');
my $script = "SET engram.overload_policy = 'wait';\nSET engram.overload_timeout = '120s';\n"
  . join('', map { "$batch;\n" } 1 .. 40);
my ($waiter, $err) = start_psql_script($node, $script, '-v', 'ON_ERROR_STOP=1');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'Extension' AND backend_type = 'client backend'"),
	'a committing client waits while the workers are paused');
signal_workers('CONT');
ok($waiter->finish, 'every waiting transaction completed once the workers resumed') or diag($$err);
is($node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations') - $committed_before,
	40 * 50, 'all 40 batches committed');
cmp_ok(metric('engram_streaming_backpressure_activations_total') - $activations_before,
	'>=', 1, 'the commits that waited count as backpressure activations');
is(metric('engram_commits_refused_total') - $refusals_before, 0, 'and none as refused');
check_converged($node, 'policy wait');

# --- four clients flooding, policy wait -----------------------------------
my @clients;
for my $c (1 .. 4)
{
	my $flood = "SET engram.overload_policy = 'wait';\nSET engram.overload_timeout = '120s';\n"
	  . join('', map { "$batch;\n" } 1 .. 100);
	push @clients, [ start_psql_script($node, $flood, '-v', 'ON_ERROR_STOP=1') ];
}
for my $c (@clients)
{
	ok($c->[0]->finish, 'flooding client completed under policy wait') or diag(${ $c->[1] });
}
check_converged($node, 'flood');

done_testing();
