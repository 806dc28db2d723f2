# The client examples in clients/ run against a real server. For each
# language (Python with psycopg, Node.js with pg), the ingester streams 20,000
# numbered observations through a streaming session while this test
#   - pauses linking, so the pipeline fills and engram refuses commits with
#     SQLSTATE 53E01, which the client must log and honour;
#   - terminates the client's backend three times mid-stream: once while rows
#     flow, twice while a commit waits for room in the pipeline;
# then checks that the space holds every sequence number 1..20,000 exactly
# once with the content and embedding sent under it, and that the recaller
# answers a row's own vector with that row first. A language whose runtime
# or driver is missing is skipped with a message.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use File::Copy;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $clients = "$FindBin::Bin/../../clients";
my $total = 20_000;
my $dim = 32;
my $probe = 12_345;    # the row whose own vector the recaller is given

# Refusals come quickly: a 1 MB ring fills at about 7,000 unlinked 32-d rows,
# and a commit waits at most 2 s for room before it is refused.
my $node = engram_node(
	'clients',
	'engram.ring_size' => "'1MB'",
	'engram.overload_timeout' => "'2s'");
my $tmp = PostgreSQL::Test::Utils::tempdir;

# The observations, as the clients read them: one JSON object a line.
srand(28);
my $input = "$tmp/observations.jsonl";
my %line_of;
open my $fh, '>', $input or die "cannot write $input: $!";
for my $seq (1 .. $total)
{
	my $embedding = '[' . join(',', map { sprintf('%.4f', rand() * 2 - 1) } 1 .. $dim) . ']';
	$line_of{$seq} = $embedding if $seq == 1 || $seq == $probe || $seq == $total;
	print $fh qq({"embedding":$embedding,"content":"obs $seq"}\n);
}
close $fh;

local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
local $ENV{PGDATABASE} = 'postgres';

sub succeeds
{
	my ($cmd) = @_;
	my ($out, $err) = ('', '');
	my $ok = eval { IPC::Run::run($cmd, '<', '/dev/null', '>', \$out, '2>', \$err) };
	return ($ok, "$out$err");
}

sub set_linking_paused
{
	my ($paused) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET engram.pause_linking = " . ($paused ? 'on' : 'off') . "; SELECT pg_reload_conf()");
	return;
}

sub slurp_or_empty
{
	my ($file) = @_;
	return -e $file ? slurp_file($file) : '';
}

# Waits up to 120 s for $query to return a non-empty answer; returns it.
sub wait_for_answer
{
	my ($query) = @_;
	my $deadline = time + 120;
	while (time < $deadline)
	{
		my $answer = $node->safe_psql('postgres', $query);
		return $answer if $answer ne '';
		usleep(100_000);
	}
	return '';
}

# Terminates the backend of the client named $app; returns whether one was.
sub terminate
{
	my ($app, $pid) = @_;
	my $where = defined $pid ? "pid = $pid" : "application_name = '$app'";
	return $node->safe_psql('postgres', "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE $where") > 0;
}

sub run_language
{
	my ($language, $app, $ingest, $recall) = @_;
	my $space = "clients_$language";
	# A fresh start forgets the link rate the previous language's run
	# measured, from which the server would advise long retries while
	# linking is paused; each run then meets the same server.
	$node->restart;
	$node->safe_psql('postgres', "SELECT engram.create_space('$space', $dim, 'l2')");
	my $space_id = $node->safe_psql('postgres', "SELECT space_id FROM engram.space_catalog WHERE name = '$space'");
	my $last_seq = "SELECT coalesce(max(last_seq), 0) FROM engram.sessions WHERE space_id = $space_id";
	my $waiting_commit = "SELECT pid FROM pg_stat_activity WHERE application_name = '$app' AND wait_event = 'Extension'";

	set_linking_paused(1);
	my $log = "$tmp/$language-ingest.log";
	# Without the PGAPPNAME the test framework sets, the client names itself.
	my $client = IPC::Run::start([ @$ingest, $space ], '<', $input, '>', '/dev/null', '2>', $log,
		init => sub { delete $ENV{PGAPPNAME} }, IPC::Run::timeout(600));

	# 1. While rows flow.
	ok(wait_for_answer("SELECT 1 WHERE ($last_seq) >= 1000"), "$language: the ingester streams");
	ok(terminate($app), "$language: its backend was terminated while rows flowed");

	# 2. While a commit waits for room (linking is paused, so none comes).
	my $pid = wait_for_answer($waiting_commit);
	isnt($pid, '', "$language: the pipeline filled and a commit of the ingester waits for room");
	my $before = $node->safe_psql('postgres', $last_seq);
	ok($pid ne '' && terminate($app, $pid), "$language: its backend was terminated while its commit waited");
	cmp_ok($before, '<', $total, "$language: that was mid-stream (at sequence number $before)");

	# 3. The wait runs out: 53E01, which the client logs and honours.
	my $deadline = time + 120;
	usleep(100_000) until slurp_or_empty($log) =~ /53E01/ || time > $deadline;
	like(
		slurp_or_empty($log),
		qr/^ingest: 53E01 engram ingest pipeline is overloaded: retrying after \d+ ms with batches of 1000$/m,
		"$language: the ingester logged the 53E01 refusal, the wait and the batch size the server suggested");
	# Nothing commits while linking is paused: every later row comes in the
	# batches the server suggested.
	my $refused_at = $node->safe_psql('postgres', $last_seq);

	# 4. Once more while it waits, then let the workers drain.
	$pid = wait_for_answer($waiting_commit);
	ok($pid ne '' && terminate($app, $pid), "$language: its backend was terminated again while its commit waited");
	set_linking_paused(0);

	ok($client->finish, "$language: the ingester completed") or diag(slurp_or_empty($log));
	my $text = slurp_or_empty($log);
	note("$language ingester's log:\n$text");
	my $lost = () = $text =~ /^ingest: connection lost/mg;
	cmp_ok($lost, '>=', 3, "$language: the ingester saw its connection go $lost times");
	like($text, qr/^ingest: done: $total observations in session /m, "$language: it acknowledged all $total");

	is( $node->safe_psql(
			'postgres', qq{
			SELECT count(*), count(DISTINCT seq), min(seq), max(seq), count(DISTINCT session_id),
				   count(*) FILTER (WHERE content IS DISTINCT FROM 'obs ' || seq)
			FROM engram.observations WHERE space_id = $space_id}),
		"$total|$total|1|$total|1|0",
		"$language: the space holds sequence numbers 1..$total exactly once each, with their content");
	my $full_batches_end = $refused_at + int(($total - $refused_at) / 1000) * 1000;
	is( $node->safe_psql(
			'postgres', qq{
			SELECT string_agg(DISTINCT n::text, ',') FROM (
				SELECT count(*) AS n FROM engram.observations
				WHERE space_id = $space_id AND seq > $refused_at AND seq <= $full_batches_end
				GROUP BY xmin::text) t}),
		'1000',
		"$language: after the refusal (at sequence number $refused_at) it committed batches of 1000");
	for my $seq (sort { $a <=> $b } keys %line_of)
	{
		(my $array = $line_of{$seq}) =~ tr/[]/{}/;
		is( $node->safe_psql(
				'postgres',
				"SELECT embedding = '$array'::real[] FROM engram.observations WHERE space_id = $space_id AND seq = $seq"),
			't',
			"$language: row $seq holds the embedding sent under its number");
	}
	is($node->safe_psql('postgres', "SELECT count(*) FROM engram.sessions WHERE space_id = $space_id"),
		0, "$language: the ingester closed its session");
	ok($node->safe_psql('postgres', "SELECT engram.wait_linked('$space', NULL, 120000)") eq 't',
		"$language: the workers linked every row");

	my $probe_id = $node->safe_psql('postgres',
		"SELECT id FROM engram.observations WHERE space_id = $space_id AND seq = $probe");
	my ($ok, $out) = succeeds([ @$recall, $space, '--cue', $line_of{$probe}, '-k', '5' ]);
	ok($ok, "$language: the recaller ran") or diag($out);
	my @lines = split /\n/, $out;
	is(scalar @lines, 5, "$language: the recaller printed k = 5 rows");
	is($lines[0], "1\t$probe_id\t0\tobs $probe", "$language: nearest is the row whose vector was the cue");
	my @distances = map { (split /\t/)[2] } @lines;
	ok(!grep({ $distances[$_] < $distances[ $_ - 1 ] } 1 .. $#distances), "$language: nearest first")
	  or diag($out);
	return;
}

subtest 'python' => sub {
	my ($has_psycopg) = succeeds([ 'python3', '-c', 'import psycopg' ]);
	plan skip_all => 'python3 with psycopg 3 is not available (Debian: python3-psycopg)' unless $has_psycopg;
	run_language('python', 'engram-ingest-python', [ 'python3', "$clients/python/ingest.py" ],
		[ 'python3', "$clients/python/recall.py" ]);
};

subtest 'node' => sub {
	my ($has_node) = succeeds([ 'node', '--version' ]);
	my ($has_npm) = succeeds([ 'npm', '--version' ]);
	plan skip_all => 'node and npm are not available (Debian: nodejs)' unless $has_node && $has_npm;
	# npm ci into a work directory, so the source tree gets no node_modules.
	my $dir = "$tmp/node";
	mkdir $dir or die "cannot create $dir: $!";
	copy("$clients/node/$_", "$dir/$_") or die "cannot copy $_: $!"
	  for qw(package.json package-lock.json ingest.js recall.js);
	my ($installed, $out) = succeeds([ 'npm', 'ci', '--prefix', $dir, '--no-audit', '--no-fund' ]);
	ok($installed, 'npm ci installed the locked dependencies') or diag($out);
	run_language('node', 'engram-ingest-node', [ 'node', "$dir/ingest.js" ], [ 'node', "$dir/recall.js" ]);
};

check_stored_sets($node, 'after both clients');

done_testing();
