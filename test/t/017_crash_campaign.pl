# A randomized crash campaign against the graph files. Four clients stream
# into three spaces (16-d l2, 32-d cosine, 64-d ip) through observe_batch,
# observe, explicit transactions over two spaces and COPY, and some of their
# transactions (and savepoints) roll back rows with a distinctive vector and
# content. The writer is set to write files all the time (small
# engram.persist_interval and engram.persist_rows). Each round, at a random
# moment, one of these is killed with SIGKILL:
#   writer     the `engram writer` while it writes a file (caught by its
#              pg_stat_activity.query; at a random moment if it is not caught)
#   postmaster the postmaster mid-ingest (its children exit on their own,
#              then the node is started again and replays WAL)
#   backend    a client backend while it runs COMMIT, COPY or observe_batch
# Right before the kill a marker (a vector no client writes) is committed
# synchronously. After every restart:
#   - the first recall issued finds that marker as its top hit at distance 0,
#     and every earlier round's marker is still found the same way;
#   - every space's stored ids are exactly the ids of its committed rows;
#   - no rolled-back vector is recalled, every recalled id is a committed row;
#   - a space loaded from its file covers, with its caught-up rows, exactly
#     the table's rows, and no file is ever discarded (a killed writer leaves
#     the previous file whole, and a file only holds committed rows).
# Across the campaign some restarts must load spaces from their files, some
# writer kills must land while it writes, and some rollbacks must happen, or
# the campaign has not tested what it claims.
#
# ENGRAM_CRASH_SEED repeats a campaign's choices (kinds, moments, vectors);
# the timing of the machine still differs. ENGRAM_CRASH_ROUNDS sets the
# number of rounds (at least 20 by default).
use strict;
use warnings;
use Cwd qw(abs_path);
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $seed = $ENV{ENGRAM_CRASH_SEED} // int(rand(2**31));
srand($seed);
note("crash campaign seed $seed (set ENGRAM_CRASH_SEED=$seed to repeat its choices)");
my $rounds = $ENV{ENGRAM_CRASH_ROUNDS} // 21;

my $node = engram_node(
	'campaign',
	restart_after_crash => 'on',
	'engram.persist_interval' => "'200ms'",
	'engram.persist_rows' => 300,
	'engram.ring_size' => "'16MB'");
my $data_dir = abs_path($node->data_dir);

my @spaces = (
	{ name => 'crash_l2', dim => 16, metric => 'l2' },
	{ name => 'crash_cos', dim => 32, metric => 'cosine' },
	{ name => 'crash_ip', dim => 64, metric => 'ip' });
for my $s (@spaces)
{
	$s->{id} = $node->safe_psql('postgres', "SELECT engram.create_space('$s->{name}', $s->{dim}, '$s->{metric}')");
}
my %space = map { $_->{name} => $_ } @spaces;

$node->safe_psql(
	'postgres', q{
	-- n random vectors of dim in [0, 1) as an n x dim array
	CREATE FUNCTION public.rand_batch(n int, dim int) RETURNS real[] LANGUAGE sql VOLATILE AS $$
		SELECT array_agg(v ORDER BY r)
		FROM (SELECT r, array_agg(random()::real ORDER BY d) AS v
			  FROM generate_series(1, n) r, generate_series(1, dim) d GROUP BY r) s $$;
	CREATE FUNCTION public.rand_vector(dim int) RETURNS real[] LANGUAGE sql VOLATILE AS $$
		SELECT array_agg(random()::real) FROM generate_series(1, dim) $$;
	-- n copies of the vector every rolled-back row carries (all -1: far from
	-- every committed row whatever the metric)
	CREATE FUNCTION public.doomed_batch(n int, dim int) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$
		SELECT array_fill(-1::real, ARRAY[n, dim]) $$;
	-- Polls pg_stat_activity (fresh each time) until a victim shows: the engram
	-- writer writing a file, or an ingest client committing; its pid, or null
	-- at the timeout.
	CREATE FUNCTION public.await_victim(kind text, timeout_s float8) RETURNS int LANGUAGE plpgsql AS $$
	DECLARE
		deadline timestamptz := clock_timestamp() + timeout_s * interval '1 second';
		victim int;
	BEGIN
		LOOP
			PERFORM pg_stat_clear_snapshot();
			IF kind = 'writer' THEN
				SELECT pid INTO victim FROM pg_stat_activity
				WHERE backend_type = 'engram writer' AND query LIKE 'writing the graph file of space %';
			ELSE
				SELECT pid INTO victim FROM pg_stat_activity
				WHERE backend_type = 'client backend' AND application_name LIKE 'ingest%' AND state = 'active'
					  AND query ~* '^\s*(commit|copy|select engram\.observe_batch)'
				ORDER BY random() LIMIT 1;
			END IF;
			IF victim IS NOT NULL OR clock_timestamp() > deadline THEN
				RETURN victim;
			END IF;
			PERFORM pg_sleep(0.0005);
		END LOOP;
	END $$;
	CREATE TABLE public.markers (round int PRIMARY KEY, id bigint NOT NULL, value real NOT NULL);});

# --- the clients ---------------------------------------------------------------
# Each script is long enough to outlast any round; psql ends when the crash
# takes its connection. Rolled-back work prints "rolled back <n>" (the rows
# it had inserted) so the campaign knows rollbacks happened.

sub rand_vector_text
{
	my ($dim) = @_;
	return '{' . join(',', map { sprintf('%.4f', rand()) } 1 .. $dim) . '}';
}

sub doomed_vector_text { return '{' . join(',', ('-1') x $_[0]) . '}'; }

sub batch { my ($s, $n) = @_; return "engram.observe_batch('$s->{name}', public.rand_batch($n, $s->{dim}))"; }

sub doomed_batch
{
	my ($s, $n) = @_;
	return "engram.observe_batch('$s->{name}', public.doomed_batch($n, $s->{dim}), "
	  . "array_fill('rolled back'::text, ARRAY[$n]))";
}

sub client_scripts
{
	my ($l2, $cos, $ip) = @space{qw(crash_l2 crash_cos crash_ip)};
	my @scripts = ('', '', '', '');
	$scripts[$_] = "SET application_name = 'ingest" . ($_ + 1) . "';\nSET log_statement = 'none';\n" for 0 .. 3;
	for my $i (1 .. 800)
	{
		# 1: autocommit batches into the l2 space; every fourth a rolled-back one
		$scripts[0] .= "SELECT " . batch($l2, 10) . ";\n";
		$scripts[0] .= "BEGIN;\nSELECT 'rolled back ' || " . doomed_batch($l2, 5) . ";\nROLLBACK;\n" if $i % 4 == 0;
		$scripts[0] .= "SELECT pg_sleep(0.03);\n";

		# 2: transactions over two spaces; every fifth rolls a savepoint back
		$scripts[1] .= "BEGIN;\nSELECT " . batch($cos, 8) . ";\nSELECT " . batch($ip, 4) . ";\n";
		$scripts[1] .= "SAVEPOINT doomed;\nSELECT 'rolled back ' || (" . doomed_batch($cos, 3) . ' + '
		  . doomed_batch($ip, 3) . ");\nROLLBACK TO SAVEPOINT doomed;\n"
		  if $i % 5 == 0;
		$scripts[1] .= "COMMIT;\nSELECT pg_sleep(0.03);\n";

		# 3: COPY into the l2 and ip spaces; every sixth COPY rolls back
		my $s = $i % 2 ? $l2 : $ip;
		my $doomed = $i % 6 == 0;
		$scripts[2] .= "BEGIN;\n" if $doomed;
		$scripts[2] .= "COPY engram.observations (space_id, embedding, content) FROM STDIN;\n";
		my $row =
		  $doomed
		  ? sub { doomed_vector_text($s->{dim}) . "\trolled back" }
		  : sub { rand_vector_text($s->{dim}) . "\t\\N" };
		$scripts[2] .= join('', map { "$s->{id}\t" . $row->() . "\n" } 1 .. 8);
		$scripts[2] .= "\\.\n";
		$scripts[2] .=
		  "SELECT 'rolled back ' || count(*) FROM engram.observations WHERE content = 'rolled back';\nROLLBACK;\n"
		  if $doomed;
		$scripts[2] .= "SELECT pg_sleep(0.04);\n";

		# 4: single observations into every space, autocommit and rolled back
		for my $t ($l2, $cos, $ip)
		{
			$scripts[3] .= "SELECT engram.observe('$t->{name}', public.rand_vector($t->{dim}));\n";
		}
		$scripts[3] .=
		  "BEGIN;\nSELECT 'rolled back ' || (engram.observe('$cos->{name}', '" . doomed_vector_text($cos->{dim})
		  . "', 'rolled back') > 0)::int;\nROLLBACK;\n"
		  if $i % 3 == 0;
		$scripts[3] .= "SELECT pg_sleep(0.02);\n";
	}
	return @scripts;
}

sub start_clients
{
	return map { [ start_psql_script($node, $_, '-A', '-t') ] } client_scripts();
}

# Ends the clients (the crash has normally ended them already: they get up to
# $grace seconds to notice) and returns the rows their rollbacks had inserted
# and their unexpected error lines.
sub reap_clients
{
	my ($grace, @clients) = @_;
	my ($rolled_back, @errors) = (0);
	for my $c (@clients)
	{
		my ($h, $err, $out) = @$c;
		my $deadline = time + $grace;
		while ($h->pumpable && time < $deadline)
		{
			$h->pump_nb;
			usleep(20_000);
		}
		$h->pumpable ? $h->kill_kill : $h->finish;
		$rolled_back += $1 while $$out =~ /^rolled back (\d+)$/mg;
		push @errors, grep { /ERROR:/ && !/terminat|crash|recovery mode|shutting down|starting up/ } split /\n/, $$err;
	}
	return ($rolled_back, @errors);
}

# --- killing the postmaster --------------------------------------------------
# Processes whose working directory is the data directory: the postmaster and
# its children, also after the postmaster is gone.
sub server_processes
{
	my @pids;
	opendir my $proc, '/proc' or die "cannot read /proc: $!";
	for my $pid (grep { /^\d+$/ } readdir $proc)
	{
		my $cwd = readlink "/proc/$pid/cwd";
		push @pids, $pid if defined $cwd && $cwd eq $data_dir;
	}
	closedir $proc;
	return @pids;
}

# The postmaster's pid stays taken until its parent (init, here) reaps it, and
# until then a new postmaster takes postmaster.pid for a running one: so the
# wait covers it too.
sub kill_postmaster_and_restart
{
	my ($postmaster) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	$node->kill9;
	my $deadline = time + 60;
	my @left;
	while ((@left = (server_processes(), grep { kill 0, $_ } $postmaster)) && time < $deadline) { usleep(50_000); }
	ok(!@left, 'every server process exits once the postmaster is gone')
	  or do
	{
		for my $pid (@left)
		{
			my $command = eval { slurp_file("/proc/$pid/cmdline") } // '?';
			$command =~ tr/\0/ /;
			diag("still running: $pid $command");
		}
		kill 'KILL', @left;
		usleep(500_000);
	};
	$node->start;
}

# --- the rounds ----------------------------------------------------------------
my @kinds = map { (qw(writer postmaster backend))[ $_ % 3 ] } 0 .. $rounds - 1;
for my $i (reverse 1 .. $#kinds)    # Fisher-Yates
{
	my $j = int(rand($i + 1));
	@kinds[ $i, $j ] = @kinds[ $j, $i ];
}

my %counts_sql = map { $_->{name} => "SELECT count(*) FROM engram.observations WHERE space_id = $_->{id}" } @spaces;
sub space_rows { return { map { $_ => $node->safe_psql('postgres', $counts_sql{$_}) } keys %counts_sql }; }

my ($rolled_back_total, $writer_caught, $writer_rounds, $rounds_loading_files, $files_loaded) = (0, 0, 0, 0, 0);
my %rows_streamed = map { $_->{name} => 0 } @spaces;
my $campaign_started = time;
for my $round (1 .. $rounds)
{
	my $kind = $kinds[ $round - 1 ];
	my $round_started = time;
	my $before = space_rows();
	my @clients = start_clients();
	usleep(500_000 + int(rand(2_000_000)));

	my $offset = log_offset($node);
	my $value = 100 + $round;
	my $marker_sql = "INSERT INTO public.markers SELECT $round, engram.observe('crash_l2', "
	  . "array_fill(${value}::real, ARRAY[16]), 'marker $round'), $value RETURNING id";
	my ($marker, $victim, $how);
	if ($kind eq 'postmaster')
	{
		$marker = $node->safe_psql('postgres', $marker_sql);
		$how = 'the postmaster';
		kill_postmaster_and_restart();
		like(slurp_file($node->logfile, $offset), qr/database system was interrupted|automatic recovery in progress/,
			"round $round: the restarted server recovered from the crash");
	}
	else
	{
		my $await = "SELECT public.await_victim('" . ($kind eq 'writer' ? 'writer' : 'commit') . "', 20)";
		($marker, $victim) = split /\n/, $node->safe_psql('postgres', "$marker_sql;\n$await");
		if ($kind eq 'writer')
		{
			$writer_rounds++;
			if ($victim)
			{
				$writer_caught++;
				$how = 'the engram writer while it wrote a file';
			}
			else
			{
				usleep(int(rand(300_000)));
				$victim = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'engram writer'");
				$how = 'the engram writer (not caught writing within 20 s)';
			}
		}
		else
		{
			$how = 'a client backend committing';
		}
		if (!ok($victim, "round $round: found a victim for a $kind kill"))
		{
			reap_clients(0, @clients);
			next;
		}
		ok(kill('KILL', $victim), "round $round: SIGKILL $how (pid $victim)");
		my $restarted = join('.*',
			"\\(PID $victim\\) was terminated by signal 9",
			'all server processes terminated; reinitializing',
			'database system is ready to accept connections');
		$node->wait_for_log(qr/$restarted/s, $offset);
	}

	# The very first recall after the restart.
	my ($ret, $first, $err) = $node->psql('postgres',
		"SELECT id || ' ' || distance FROM engram.recall('crash_l2', array_fill(${value}::real, ARRAY[16]), 1)");
	is($first, "$marker 0",
		"round $round ($kind): the first recall after the restart finds the marker committed before the kill")
	  or diag("recall returned $ret: $err");

	my ($rolled_back, @errors) = reap_clients(30, @clients);
	$rolled_back_total += $rolled_back;
	is(scalar(@errors), 0, "round $round: the clients met no error before the crash") or diag(join("\n", @errors));
	my $after = space_rows();
	$rows_streamed{$_} += $after->{$_} - $before->{$_} for keys %$after;
	note(sprintf('round %d (%s): %s rows committed, %d rolled back, %.1f s', $round, $kind,
		join(' + ', map { $after->{$_} - $before->{$_} } sort keys %$after), $rolled_back, time - $round_started));

	is( $node->safe_psql(
			'postgres', q{
			SELECT count(*) FROM public.markers m
			CROSS JOIN LATERAL engram.recall('crash_l2', array_fill(m.value, ARRAY[16]), 1) r
			WHERE r.id <> m.id OR r.distance <> 0}),
		0,
		"round $round: every marker of rounds 1..$round is still recalled first at distance 0");
	check_stored_sets($node, "round $round ($kind)");
	for my $s (@spaces)
	{
		my ($bad, $returned) = split /\|/, $node->safe_psql(
			'postgres', qq{
			SELECT count(*) FILTER (WHERE r.distance < 0.5 OR o.id IS NULL), count(*)
			FROM engram.recall('$s->{name}', array_fill(-1::real, ARRAY[$s->{dim}]), 5) r
			LEFT JOIN engram.observations o ON o.id = r.id AND o.space_id = $s->{id}});
		is($bad, 0, "round $round: a recall of the rolled-back vector in $s->{name} returns only committed rows");
		is($returned, 5, "round $round: that recall returns 5 rows");
	}

	my $events = graph_file_events($node, $offset);
	is_deeply($events->{discarded}, {}, "round $round: no graph file was discarded");
	my $loaded_here = 0;
	for my $name (sort keys %{ $events->{loaded} })
	{
		for my $load (@{ $events->{loaded}{$name} })
		{
			my ($from_file, $caught_up) = @$load;
			$loaded_here++;
			$files_loaded++;
			is($from_file + $caught_up, $after->{$name},
				"round $round: $name loaded $from_file rows from its file and caught up $caught_up: all its rows");
		}
	}
	$rounds_loading_files++ if $loaded_here;
}
note(sprintf('campaign of %d rounds (%s) took %.0f s', $rounds,
	join(', ', map { my $k = $_; "$k " . scalar(grep { $_ eq $k } @kinds) } qw(writer postmaster backend)),
	time - $campaign_started));

cmp_ok($rounds_loading_files, '>', 0,
	"$rounds_loading_files of $rounds restarts loaded spaces from their graph files ($files_loaded loads)");
cmp_ok($writer_caught, '>', 0, "$writer_caught of $writer_rounds writer kills landed while it wrote a file");
cmp_ok($rolled_back_total, '>', 0, "the clients rolled back $rolled_back_total rows in all");
cmp_ok($rows_streamed{$_}, '>', 0, "the clients committed $rows_streamed{$_} rows into $_")
  for sort keys %rows_streamed;

done_testing();
