# Crashes mid-stream. A worker killed with SIGKILL makes the postmaster
# reinitialise shared memory; an immediate shutdown and restart replays WAL.
# Either way the workers reload the stores from the table, and the stores end
# up holding exactly the committed rows, none twice; recalls wait for that
# reload rather than answer from a partial index.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = engram_node('crash', restart_after_crash => 'on');
$node->safe_psql('postgres', "SELECT engram.create_space('stream', 32, 'l2'), engram.create_space('side', 8, 'ip')");

# A client that keeps committing small batches until told to stop; it
# reconnects after a crash and carries on.
sub start_stream
{
	my ($space, $dim) = @_;
	my $sql = "\\set ON_ERROR_STOP 0\n"
	  . join('', map { "SELECT engram.observe_batch('$space', array_fill(random()::real, ARRAY[20, $dim]));\n" } 1 .. 3000);
	my ($harness) = start_psql_script($node, $sql);
	return $harness;
}

sub rows { return $node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'); }

# --- SIGKILL of a worker mid-stream -------------------------------------------
my @streams = (start_stream('stream', 32), start_stream('side', 8));
$node->poll_query_until('postgres', 'SELECT count(*) > 5000 FROM engram.observations') or die 'stream did not start';
my ($victim) = worker_pids($node);
kill 'KILL', $victim;
ok($node->poll_query_until('postgres', "SELECT count(*) = 2 FROM engram.workers WHERE pid IS NOT NULL AND pid <> $victim"),
	'the cluster restarted its workers after the kill');
$_->finish for @streams;    # the crash ended their connections
@streams = (start_stream('stream', 32));
$node->poll_query_until('postgres', 'SELECT count(*) > 20000 FROM engram.observations');
$_->kill_kill for @streams;
$node->log_check('postmaster reinitialised after the worker was killed', 0,
	log_like => [qr/terminated by signal 9: Killed/]);
check_converged($node, 'after SIGKILL of a worker');

# --- immediate shutdown and restart mid-stream --------------------------------
@streams = (start_stream('stream', 32), start_stream('side', 8));
my $before = rows();
$node->poll_query_until('postgres', "SELECT count(*) > $before + 5000 FROM engram.observations");
my $marker = $node->safe_psql('postgres', "SELECT engram.observe('stream', array_fill(7.5::real, ARRAY[32]), 'marker')");
$node->stop('immediate');
$_->finish for @streams;
$node->start;
# The very first recall after the restart waits for the workers to reload
# the indexes from the table instead of answering from a partial one.
is($node->safe_psql('postgres', "SELECT id || ' ' || distance FROM engram.recall('stream', array_fill(7.5::real, ARRAY[32]), 1)"),
	"$marker 0", 'the first recall after the restart finds an observation committed before the crash');
my $after_restart = rows();
cmp_ok($after_restart, '>', $before, 'rows committed before the crash survived it');
check_converged($node, 'after an immediate restart');

# The stream resumes on the restarted server and keeps converging.
@streams = (start_stream('side', 8));
$node->poll_query_until('postgres', "SELECT count(*) > $after_restart + 2000 FROM engram.observations");
$_->kill_kill for @streams;
check_converged($node, 'streaming after the restart');

done_testing();
