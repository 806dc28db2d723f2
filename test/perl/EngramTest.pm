# Helpers shared by engram's TAP tests: a node with engram preloaded, and the
# checks every test ends with (the stores hold exactly the committed rows).
package EngramTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Exporter 'import';
use IPC::Run;

our @EXPORT = qw(engram_node wait_stored check_converged worker_pids write_script start_psql_script);

# A started node with engram preloaded and created in database postgres.
sub engram_node
{
	my ($name, %settings) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my %conf = (
		shared_preload_libraries => "'engram'",
		'engram.database' => "'postgres'",
		'engram.workers' => 2,
		'engram.ring_size' => "'8MB'",
		'engram.memory_limit' => "'512MB'",
		max_worker_processes => 16,
		%settings);
	$node->append_conf('postgresql.conf', join('', map { "$_ = $conf{$_}\n" } sort keys %conf));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION engram');
	return $node;
}

sub wait_stored
{
	my ($node, $timeout_ms) = @_;
	$timeout_ms //= 60000;
	return $node->safe_psql('postgres', "SELECT engram.wait_stored($timeout_ms)") eq 't';
}

# Every space's store holds exactly its committed rows, each once.
sub check_converged
{
	my ($node, $label) = @_;
	ok(wait_stored($node), "$label: workers caught up");
	my $rows = $node->safe_psql(
		'postgres', q{
		SELECT c.name,
			   (SELECT count(*) FROM engram.observations o WHERE o.space_id = c.space_id),
			   coalesce(s.stored, 0),
			   (SELECT count(*) FROM engram._stored_ids(c.space_id) x(id)
				WHERE NOT EXISTS (SELECT 1 FROM engram.observations o WHERE o.id = x.id)),
			   (SELECT count(*) - count(DISTINCT x) FROM engram._stored_ids(c.space_id) x)
		FROM engram.space_catalog c LEFT JOIN engram._space_state() s USING (space_id)
		ORDER BY c.name});
	for my $line (split /\n/, $rows)
	{
		my ($space, $committed, $stored, $strangers, $duplicates) = split /\|/, $line;
		is($stored, $committed, "$label: space $space stores exactly its $committed committed rows");
		is($strangers, 0, "$label: space $space stores no row that is not committed");
		is($duplicates, 0, "$label: space $space stores no row twice");
	}
	return;
}

sub worker_pids
{
	my ($node) = @_;
	return split /\n/,
	  $node->safe_psql('postgres', 'SELECT pid FROM engram.workers WHERE pid IS NOT NULL ORDER BY worker_id');
}

# Writes SQL to a new file in the node's directory; returns its path.
my $script_count = 0;
sub write_script
{
	my ($node, $sql) = @_;
	my $file = $node->basedir . '/script' . (++$script_count) . '.sql';
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh $sql;
	close $fh;
	return $file;
}

# Starts psql on a script (written to a file, so it runs at once rather than
# when IPC::Run gets round to feeding stdin); returns the harness and a
# reference to its stderr.
sub start_psql_script
{
	my ($node, $sql, @options) = @_;
	my $file = write_script($node, $sql);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-q', @options, '-d', $node->connstr('postgres'), '-f', $file ],
		'>', \$out, '2>', \$err);
	return ($h, \$err);
}

1;
