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
use Time::HiRes qw(usleep);

our @EXPORT = qw(engram_node wait_stored check_converged worker_pids write_script start_psql_script
  log_offset server_crashes engram_worker_exits run_as start_bystander bystander_alive wait_serving
  check_stored_sets graph_file graph_file_events wait_graph_file_events open_session session_query poll_until clustered_rows brute_force_truth
  recall_against_truth recall_answers self_hits);

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

# Every space's stored ids, as a set, are exactly the ids of its committed
# rows in engram.observations: none missing, none extra (another space's or
# an uncommitted row's), none twice. Returns whether every space passed.
sub check_stored_sets
{
	my ($node, $label) = @_;
	ok(wait_stored($node), "$label: workers caught up");
	my $rows = $node->safe_psql(
		'postgres', q{
		SELECT c.name, t.rows, s.ids, m.n, m.sample, e.n, e.sample, s.ids - s.distinct_ids
		FROM engram.space_catalog c
		CROSS JOIN LATERAL (SELECT count(*) AS rows FROM engram.observations o WHERE o.space_id = c.space_id) t
		CROSS JOIN LATERAL (SELECT count(*) AS ids, count(DISTINCT x) AS distinct_ids
							FROM engram.stored_ids(c.name) x) s
		CROSS JOIN LATERAL (SELECT count(*) AS n, string_agg(id::text, ',' ORDER BY id) FILTER (WHERE r <= 5) AS sample
							FROM (SELECT id, row_number() OVER (ORDER BY id) AS r
								  FROM (SELECT o.id FROM engram.observations o WHERE o.space_id = c.space_id
										EXCEPT SELECT x FROM engram.stored_ids(c.name) x) d(id)) f) m
		CROSS JOIN LATERAL (SELECT count(*) AS n, string_agg(id::text, ',' ORDER BY id) FILTER (WHERE r <= 5) AS sample
							FROM (SELECT id, row_number() OVER (ORDER BY id) AS r
								  FROM (SELECT x FROM engram.stored_ids(c.name) x
										EXCEPT SELECT o.id FROM engram.observations o WHERE o.space_id = c.space_id) d(id)) f) e
		ORDER BY c.name});
	my $passed = 1;
	for my $line (split /\n/, $rows)
	{
		my ($space, $committed, $stored, $missing, $missing_sample, $extra, $extra_sample, $duplicates) = split /\|/,
		  $line;
		my $same = $missing == 0 && $extra == 0 && $duplicates == 0;
		ok($same, "$label: space $space stores exactly the ids of its $committed committed rows")
		  or diag("space $space: $stored ids stored; $missing committed rows missing (first: $missing_sample), "
			  . "$extra ids not among its committed rows (first: $extra_sample), $duplicates stored twice");
		$passed &&= $same;
	}
	return $passed;
}

# The path of a space's graph file in the node's data directory.
sub graph_file
{
	my ($node, $space_id) = @_;
	return $node->data_dir . "/engram/space_$space_id.graph";
}

# What the server log says since $offset about graph files at start-up (LOG
# lines only):
# { loaded => { space => [ [observations, caught_up], ... ] },
#   discarded => { space => [ reason, ... ] } }.
sub graph_file_events
{
	my ($node, $offset) = @_;
	my %events = (loaded => {}, discarded => {});
	for my $line (split /\n/, slurp_file($node->logfile, $offset))
	{
		if ($line =~
			/LOG:  engram loaded space "([^"]+)" from its graph file: (\d+) observations, (\d+) caught up from engram\.observations/
		  )
		{
			push @{ $events{loaded}{$1} }, [ $2, $3 ];
		}
		elsif ($line =~ /LOG:  engram discarded the graph file of space "([^"]+)": (.*)$/)
		{
			push @{ $events{discarded}{$1} }, $2;
		}
	}
	return \%events;
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
# when IPC::Run gets round to feeding stdin); returns the harness and
# references to its stderr and its stdout.
sub start_psql_script
{
	my ($node, $sql, @options) = @_;
	my $file = write_script($node, $sql);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-q', @options, '-d', $node->connstr('postgres'), '-f', $file ],
		'>', \$out, '2>', \$err);
	return ($h, \$err, \$out);
}

# Waits (up to 180 s) until the log after $offset has a graph-file line
# (loaded or discarded) for each of the named spaces; returns the events.
sub wait_graph_file_events
{
	my ($node, $offset, @names) = @_;
	my $deadline = time + 180;
	my $events;
	while (1)
	{
		$events = graph_file_events($node, $offset);
		last if !grep { !$events->{loaded}{$_} && !$events->{discarded}{$_} } @names;
		last if time > $deadline;
		usleep(200_000);
	}
	return $events;
}


# --- sessions held open -------------------------------------------------------
# An interactive psql session, for a transaction that stays open while other
# sessions act. session_query runs SQL in it and returns what it printed.

sub open_session
{
	my ($node) = @_;
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start([ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres') ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err}, IPC::Run::timeout(600));
	return \%s;
}

sub session_query
{
	my ($s, $sql) = @_;
	$s->{out} = '';
	$s->{in} .= "$sql;\n\\echo __done__\n";
	$s->{h}->pump until $s->{out} =~ /__done__\n/;
	(my $r = $s->{out}) =~ s/__done__\n$//;
	chomp $r;
	return $r;
}

# Runs $query until it prints $want or $seconds pass; returns its last answer.
sub poll_until
{
	my ($node, $query, $want, $seconds) = @_;
	my $got = '';
	for (1 .. $seconds * 10)
	{
		$got = $node->safe_psql('postgres', $query);
		return $got if $got eq $want;
		usleep(100_000);
	}
	return $got;
}

# --- crash detection ---------------------------------------------------------
# The postmaster keeps its pid through crash recovery, so only the server log
# tells whether some process died: these read it from an offset taken before
# the step under test.

sub log_offset
{
	my ($node) = @_;
	return -s $node->logfile // 0;
}

# Lines since $offset that show a server process killed by a signal or the
# cluster reinitialising after one (any crash recovery).
sub server_crashes
{
	my ($node, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	return grep {
		/LOG:  .*\(PID \d+\) was terminated by (signal|exception)/
		  || /LOG:  terminating any other active server processes/
		  || /LOG:  all server processes terminated; reinitializing/
		  || /PANIC:  /
	} split /\n/, $log;
}

# Lines since $offset where an engram worker exited on its own (the
# postmaster restarts it: a worker that fails on a record or a space keeps
# doing so, and these lines pile up). Exits while the server shuts down or
# recovers from a crash (reported by server_crashes) do not count.
sub engram_worker_exits
{
	my ($node, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	my ($stopping, @exits) = (0);
	for my $line (split /\n/, $log)
	{
		$stopping = 1
		  if $line =~ /LOG:  received (smart|fast|immediate) shutdown request|LOG:  terminating any other active server/;
		$stopping = 0 if $line =~ /LOG:  database system is ready to accept connections/;
		push @exits, $line
		  if !$stopping
		  && $line =~ /LOG:  background worker "engram[^"]*" \(PID \d+\) (exited with exit code [1-9]|was terminated)/;
	}
	return @exits;
}

# Runs SQL as $role over a connection of its own (not SET ROLE, so that
# session state is the role's own), with ON_ERROR_STOP and verbose errors.
# Returns a hash: state is the SQLSTATE of the first ERROR, '00000' when every
# statement succeeded, 'FATAL <code>' when the session was ended, 'LOST' when
# the connection broke without a message, 'TIMEOUT' when psql did not finish
# within timeout seconds (its backends are then terminated); out and err are
# psql's output, error the first ERROR line with its detail.
sub run_as
{
	my ($node, $role, $sql, %opt) = @_;
	my $db = $opt{dbname} // 'postgres';
	my $timeout = $opt{timeout} // $PostgreSQL::Test::Utils::timeout_default;
	my $file = write_script($node, $sql);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
			'-d', $node->connstr($db), '-U', $role, '-f', $file
		],
		'<', '/dev/null', '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
	my $finished = eval { $h->finish; 1 };
	my %r = (out => $out, err => $err);
	chomp $r{out};
	if (!$finished)
	{
		$h->kill_kill;
		$node->psql('postgres',
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '$role' AND pid <> pg_backend_pid()"
		);
		$r{state} = 'TIMEOUT';
		return \%r;
	}
	my $exit = $h->result(0);
	if ($err =~ /^(?:psql:[^\n]*?: )?ERROR:  ([0-9A-Z]{5}): ([^\n]*(?:\n(?:DETAIL|HINT|CONTEXT|LOCATION):[^\n]*)*)/m)
	{
		$r{state} = $1;
		$r{error} = $2;
	}
	elsif ($err =~ /FATAL:  ([0-9A-Z]{5}): ([^\n]*)/)
	{
		$r{state} = "FATAL $1";
		$r{error} = $2;
	}
	elsif ($exit == 0)
	{
		$r{state} = '00000';
	}
	else
	{
		$r{state} = 'LOST';
		$r{error} = $err;
	}
	return \%r;
}

# A long-lived session of $role that must outlive every attack: returns the
# BackgroundPsql session and its backend's pid.
sub start_bystander
{
	my ($node, $role) = @_;
	my $session = $node->background_psql('postgres', extra_params => [ '-U', $role ]);
	$session->set_query_timer_restart;
	my $pid = $session->query_safe('SELECT pg_backend_pid()');
	return ($session, $pid);
}

# True while the bystander's connection is the same backend as at its start.
sub bystander_alive
{
	my ($session, $pid) = @_;
	my $answer = eval { $session->query('SELECT pg_backend_pid()') };
	return defined $answer && $answer eq $pid;
}

# Waits (up to timeout seconds) until a superuser recall from $space answers
# k rows again, e.g. after crash recovery or a restart; returns whether it did.
sub wait_serving
{
	my ($node, $space, $cue, $k, $timeout) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		my ($ret, $out) = $node->psql('postgres', "SELECT count(*) FROM engram.recall('$space', '$cue', $k)");
		return 1 if $ret == 0 && $out eq $k;
		sleep 1;
	}
	return 0;
}

# Clustered test vectors: $centres random centres in [-1, 1]^$dim, and
# public.base(rid, v) of $rows rows and public.cues(qid, cue) of $cues cues,
# each a centre (rows by rid, cues by 7 * qid, modulo $centres) plus uniform
# noise of +-0.4 per component; seeded with $seed, so runs are alike.
sub clustered_rows
{
	my ($node, $seed, $dim, $centres, $rows, $cues) = @_;
	$node->safe_psql(
		'postgres', qq{
		SELECT setseed($seed);
		CREATE TABLE public.centres AS
		SELECT c, (SELECT array_agg((random() * 2 - 1)::real) FROM generate_series(1, $dim) d WHERE c >= 0) AS v
		FROM generate_series(0, $centres - 1) c;
		CREATE TABLE public.base AS
		SELECT g AS rid, (SELECT array_agg((ce.v[d] + (random() - 0.5) * 0.8)::real ORDER BY d)
						  FROM generate_series(1, $dim) d) AS v
		FROM generate_series(1, $rows) g JOIN public.centres ce ON ce.c = g % $centres;
		CREATE TABLE public.cues AS
		SELECT q AS qid, (SELECT array_agg((ce.v[d] + (random() - 0.5) * 0.8)::real ORDER BY d)
						  FROM generate_series(1, $dim) d) AS cue
		FROM generate_series(1, $cues) q JOIN public.centres ce ON ce.c = (q * 7) % $centres;});
	return;
}

# For tests that measure recall against a brute force computed in SQL. In:
# public.base(rid, v real[]) and public.cues(qid, cue real[]). Out:
# public.truth(metric, qid, rid), the exact 10 nearest rows of every cue by
# squared l2 and by cosine distance (ties to the lower rid).
sub brute_force_truth
{
	my ($node) = @_;
	$node->safe_psql(
		'postgres', q{
		CREATE TABLE public.distances AS
		SELECT q.qid, b.rid, m.l2, 1 - m.dot / sqrt(m.bb * m.qq) AS cosine
		FROM public.base b
		CROSS JOIN public.cues q
		CROSS JOIN LATERAL (SELECT sum((x::float8 - y) ^ 2) AS l2, sum(x::float8 * y) AS dot,
								   sum(x::float8 * x) AS bb, sum(y::float8 * y) AS qq
							FROM unnest(b.v, q.cue) t(x, y)) m;
		CREATE TABLE public.truth AS
		SELECT 'l2' AS metric, qid, rid FROM (
			SELECT qid, rid, row_number() OVER (PARTITION BY qid ORDER BY l2, rid) AS rank FROM public.distances) r
		WHERE rank <= 10
		UNION ALL
		SELECT 'cosine', qid, rid FROM (
			SELECT qid, rid, row_number() OVER (PARTITION BY qid ORDER BY cosine, rid) AS rank FROM public.distances) r
		WHERE rank <= 10;});
	return;
}

# recall@10 of every cue in space $space (id $space_id, fed public.base in
# rid order, so a row's id less the space's first id less one is its rid)
# against public.truth of $metric.
sub recall_against_truth
{
	my ($node, $space, $space_id, $metric) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT round(avg(hits) / 10, 4) FROM (
			SELECT (SELECT count(*) FROM engram.recall('$space', q.cue, 10) r
					WHERE r.id - (SELECT min(id) - 1 FROM engram.observations WHERE space_id = $space_id)
						IN (SELECT t.rid FROM public.truth t WHERE t.metric = '$metric' AND t.qid = q.qid))
				   AS hits
			FROM public.cues q) s});
}

# Every cue's answer from $space: ids and distances, in order.
sub recall_answers
{
	my ($node, $space) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT string_agg(a, E'\\n' ORDER BY qid) FROM (
			SELECT q.qid, (SELECT string_agg(r.id || ':' || r.distance, ' ') FROM engram.recall('$space', q.cue, 10) r) a
			FROM public.cues q) s});
}

# Recalls each row of space $space (id $space_id) that $where (a condition on
# o, a row of engram.observations) picks by its own vector: how many were
# probed, and how many did not come back first at a distance below $bound.
sub self_hits
{
	my ($node, $space, $space_id, $bound, $where) = @_;
	return split /\|/, $node->safe_psql(
		'postgres', qq{
		SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
			SELECT 1 FROM engram.recall('$space', o.embedding, 1) r WHERE r.id = o.id AND abs(r.distance) < $bound))
		FROM engram.observations o WHERE o.space_id = $space_id AND ($where)});
}

1;
