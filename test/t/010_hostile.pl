# The privilege boundary and fault containment under attack (issue 9).
#
# Roles: alice owns spaces, bob owns the victim space and keeps a bystander
# session open throughout, mallory has nothing but USAGE on schema engram
# (plus CREATE on the database, for her own schemas), reader has USAGE and
# SELECT on engram.observations (what docs/usage.md tells admins to grant
# readers), tenant creates spaces by the thousand, dbowner owns the database
# the workers connect to. Each attack runs over a connection of its own as
# its role and must end with its expected SQLSTATE, and after it no server
# process may have died (read from the server log: the postmaster keeps its
# pid through crash recovery), no engram worker may have exited, alice's and
# bob's spaces keep their owners and rows, and their recalls for fixed cues
# return exactly the ids and distances of before the attacks. After each
# group, also: the bystander's connection is still the same backend and every
# space's index holds exactly its committed rows. Damage is reported, then
# repaired (rows restored from a copy, server restarted), so that each attack
# is judged on its own; the diagnostics end with one line per attack.
#
# Expected SQLSTATEs describe the correct behaviour: 42501 for privilege
# refusals, 22023 for bad arguments, 53E01 for overload, 54000 for what is too
# large, 39P01 for a trigger function fired where it does not belong, 42704 for
# unknown objects, 57014 for timeouts. Where the issue leaves the mechanism to
# the implementer (refuse EXECUTE to PUBLIC, or let the function check its
# caller and its arguments), a second code is accepted, and the comment on the
# group says why.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = engram_node(
	'hostile',
	restart_after_crash => 'on',    # a crash must be seen in the log, not end the test
	max_prepared_transactions => 2,
	'engram.max_overload_timeout' => "'5s'",
	'engram.ring_size' => "'8MB'");

my $cue8 = '{0.3,0.9,0.1,-0.5,0.2,0.7,-0.4,0.6}';
my $cue16 = '{0.5,-0.1,0.8,0.3,-0.6,0.2,0.9,-0.3,0.1,0.4,-0.7,0.6,0.2,-0.2,0.5,0.3}';
my $vec8 = 'ARRAY[sin(g), cos(g), sin(2 * g), cos(2 * g), sin(3 * g), cos(3 * g), sin(g / 2.0), cos(g / 2.0)]::real[]';
my $vec16 = 'ARRAY(SELECT sin(g * j + 1) FROM generate_series(1, 16) j)::real[]';

# --- set-up ---------------------------------------------------------------------

# What a role that creates, fills and drops its own spaces needs in 0.1.0,
# where no engram function runs as its owner: the catalog and the table
# directly (drop_space locks its catalog row FOR UPDATE and deletes the rows).
sub grant_writer
{
	my ($role) = @_;
	$node->safe_psql(
		'postgres', qq{
		GRANT USAGE ON SCHEMA engram TO $role;
		GRANT SELECT, INSERT, DELETE ON engram.observations TO $role;
		GRANT SELECT, INSERT, UPDATE, DELETE ON engram.space_catalog, engram.sessions TO $role;
		GRANT USAGE ON ALL SEQUENCES IN SCHEMA engram TO $role;
		GRANT EXECUTE ON FUNCTION engram.create_space(text, int, text, int, int, text) TO $role;
		GRANT SELECT ON engram.spaces TO $role;});
	return;
}

$node->safe_psql(
	'postgres', q{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE tenant LOGIN;
	CREATE ROLE mallory LOGIN; CREATE ROLE reader LOGIN; CREATE ROLE dbowner LOGIN;
	GRANT USAGE ON SCHEMA engram TO mallory, reader;
	GRANT SELECT ON engram.observations TO reader;
	GRANT CREATE ON DATABASE postgres TO mallory, reader, alice;
	ALTER DATABASE postgres OWNER TO dbowner;});
grant_writer($_) for qw(alice bob tenant);

sub as_role
{
	my ($role, $sql) = @_;
	my $r = run_as($node, $role, $sql);
	die "set-up as $role failed ($r->{state}): $r->{err}" unless $r->{state} eq '00000';
	return $r->{out};
}

as_role(
	'alice', qq{
	SELECT engram.create_space('alice_space', 8, 'l2');
	SELECT engram.create_space('alice_side', 4, 'l2');
	SELECT engram.create_space('alice_scratch', 4, 'l2');
	SELECT engram.create_space('alice_big', 8, 'l2');
	SELECT engram.create_space('alice_wide', 64, 'l2');
	SELECT engram.create_space('alice_mixed', 8, 'l2');
	SELECT engram.observe_batch('alice_space', (SELECT array_agg($vec8) FROM generate_series(1, 200) g));
	SELECT engram.observe_batch('alice_side', (SELECT array_agg(ARRAY[g, 1, 2, 3]::real[]) FROM generate_series(1, 20) g));});
as_role(
	'bob', qq{
	SELECT engram.create_space('bob_space', 16, 'cosine');
	SELECT engram.observe_batch('bob_space', (SELECT array_agg($vec16) FROM generate_series(1, 100) g));});
my $bob_session = as_role('bob', q{SELECT engram.open_session('bob_space')});
as_role('bob', qq{SELECT engram.observe('bob_space', '$cue16', session => '$bob_session', seq => 1)});

my %ids = map { split /\|/ } split /\n/,
  $node->safe_psql('postgres', 'SELECT name, space_id FROM engram.space_catalog');
ok(wait_stored($node), 'set-up: workers caught up');
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('alice_space', NULL, 120000)") eq 't', 'alice_space is linked');
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('bob_space', NULL, 120000)") eq 't', 'bob_space is linked');

# A copy of the rows, catalog and sessions, to repair what a successful
# attack destroys.
$node->safe_psql(
	'postgres', q{
	CREATE SCHEMA hostile_backup;
	CREATE TABLE hostile_backup.catalog AS SELECT * FROM engram.space_catalog;
	CREATE TABLE hostile_backup.sessions AS SELECT * FROM engram.sessions;
	CREATE TABLE hostile_backup.observations AS SELECT * FROM engram.observations;});

sub recall_signature
{
	my ($space, $cue) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT string_agg(id || ' ' || distance, ',' ORDER BY distance, id) FROM engram.recall('$space', '$cue', 10)");
	return $ret == 0 ? $out : "error: $err";
}

# Exact nearest ids from the table, so the baseline does not rest on the graph.
sub exact_ids
{
	my ($space, $cue, $distance) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT string_agg(id::text, ',' ORDER BY d, id) FROM (
			SELECT o.id, (SELECT $distance FROM unnest(o.embedding, '$cue'::real[]) u(e, c)) AS d
			FROM engram.observations o WHERE o.space_id = $ids{$space} ORDER BY d, o.id LIMIT 10) t});
}

my %baseline = (
	alice_space => recall_signature('alice_space', $cue8),
	bob_space => recall_signature('bob_space', $cue16));
sub ids_of { return join ',', map { (split / /)[0] } split /,/, $_[0]; }
is(ids_of($baseline{alice_space}), exact_ids('alice_space', $cue8, 'sum((e - c) ^ 2)'),
	"baseline: alice's recall is the exact top 10");
is(ids_of($baseline{bob_space}),
	exact_ids('bob_space', $cue16, '1 - sum(e * c) / sqrt(sum(e * e) * sum(c * c))'),
	"baseline: bob's recall is the exact top 10");

my ($bystander, $bystander_pid) = start_bystander($node, 'bob');
my $original_bystander = 1;

# --- checks after each attack and each group -----------------------------------

# Rows of the catalog whose index does not hold exactly their committed rows.
sub convergence_problems
{
	my ($ret, $out, $err) = $node->psql(
		'postgres', q{
		SELECT coalesce(string_agg(format('%s: %s committed, %s stored, %s not committed, %s twice',
			name, committed, stored, strangers, twice), '; '), '')
		FROM (SELECT c.name,
				(SELECT count(*) FROM engram.observations o WHERE o.space_id = c.space_id) AS committed,
				coalesce(s.stored, 0) AS stored,
				(SELECT count(*) FROM engram._stored_ids(c.space_id) x(id)
				 WHERE NOT EXISTS (SELECT 1 FROM engram.observations o WHERE o.id = x.id AND o.space_id = c.space_id))
				  AS strangers,
				(SELECT count(*) - count(DISTINCT x) FROM engram._stored_ids(c.space_id) x) AS twice
			FROM engram.space_catalog c LEFT JOIN engram._space_state() s USING (space_id)) t
		WHERE committed <> stored OR strangers <> 0 OR twice <> 0});
	return $ret == 0 ? $out : "error: $err";
}

# A query as superuser that never dies: its output, or "error: ..." (the
# server may be recovering from what an attack did).
sub query
{
	my ($sql, $db) = @_;
	my ($ret, $out, $err) = $node->psql($db // 'postgres', $sql);
	return $ret == 0 ? $out : "error: $err";
}

sub owners
{
	return query("SELECT string_agg(name || '=' || owner, ',' ORDER BY name) FROM engram.space_catalog
		WHERE name IN ('alice_space', 'bob_space')");
}

sub victim_rows
{
	return query("SELECT count(*) FROM engram.observations WHERE space_id IN ($ids{alice_space}, $ids{bob_space})");
}
my $baseline_owners = owners();
my $baseline_rows = victim_rows();

# Restores what attacks destroyed and restarts the server (the indexes are
# rebuilt from the table); the bystander is replaced.
sub repair
{
	my ($why) = @_;
	diag("repairing after: $why");
	for my $sql (
		q{INSERT INTO engram.space_catalog SELECT * FROM hostile_backup.catalog b
		  WHERE NOT EXISTS (SELECT 1 FROM engram.space_catalog c WHERE c.space_id = b.space_id)},
		q{UPDATE engram.space_catalog c SET owner = b.owner FROM hostile_backup.catalog b
		  WHERE b.space_id = c.space_id AND c.owner <> b.owner},
		q{INSERT INTO engram.sessions SELECT * FROM hostile_backup.sessions b
		  WHERE NOT EXISTS (SELECT 1 FROM engram.sessions s WHERE s.session_id = b.session_id)},
		q{INSERT INTO engram.observations SELECT * FROM hostile_backup.observations b
		  WHERE NOT EXISTS (SELECT 1 FROM engram.observations o WHERE o.id = b.id)})
	{
		my $out = query($sql);
		diag("repair step failed: $out") if $out =~ /^error/;
	}
	$node->restart;
	wait_serving($node, 'alice_space', $cue8, 10) or diag('alice_space does not answer after the repair');
	eval { $bystander->quit };
	($bystander, $bystander_pid) = start_bystander($node, 'bob');
	$original_bystander = 0;
	return;
}

# What an attack left broken for others: alice's and bob's spaces answer as
# before, keep their owners and rows, the workers keep up and none exited.
sub damage
{
	my ($offset) = @_;
	my @broken;
	push @broken, 'the workers did not catch up' if query('SELECT engram.wait_stored(30000)') ne 't';
	for my $space (sort keys %baseline)
	{
		push @broken, "$space recalls differently"
		  if recall_signature($space, $space eq 'alice_space' ? $cue8 : $cue16) ne $baseline{$space};
	}
	push @broken, 'owners changed' if owners() ne $baseline_owners;
	push @broken, 'rows of alice_space or bob_space changed' if victim_rows() ne $baseline_rows;
	my @exits = engram_worker_exits($node, $offset);
	push @broken, scalar(@exits) . ' worker exits' if @exits;
	return @broken;
}

my $group_offset;
my @findings;    # one line per attack: name -> expected -> got

sub begin_group
{
	my ($name) = @_;
	note("=== $name");
	$group_offset = log_offset($node);
	return;
}

# The invariants every group must leave intact; repaired when broken unless
# the caller will look at the broken state itself.
sub end_group
{
	my ($name, %opt) = @_;
	my @broken;
	my @crashes = server_crashes($node, $group_offset);
	is(scalar @crashes, 0, "$name: no server process died") or push @broken, "crash: $crashes[0]";
	my @exits = engram_worker_exits($node, $group_offset);
	is(scalar @exits, 0, "$name: no engram worker exited")
	  or push @broken, scalar(@exits) . " worker exits, e.g. $exits[0]";
	ok(bystander_alive($bystander, $bystander_pid), "$name: the bystander's connection survived")
	  or push @broken, 'bystander lost';
	my $caught_up = query('SELECT engram.wait_stored(60000)') eq 't';
	ok($caught_up, "$name: the workers caught up") or push @broken, 'workers did not catch up';
	for my $space (sort keys %baseline)
	{
		my $now = recall_signature($space, $space eq 'alice_space' ? $cue8 : $cue16);
		is($now, $baseline{$space}, "$name: recall from $space is unchanged")
		  or push @broken, "$space recall changed";
	}
	my $problems = $caught_up ? convergence_problems() : 'not caught up';
	is($problems, '', "$name: every index holds exactly its space's committed rows")
	  or push @broken, "indexes: $problems";
	is(owners(), $baseline_owners, "$name: owners unchanged") or push @broken, 'owners changed';
	repair("$name: " . join('; ', @broken)) if @broken && !$opt{no_repair};
	return;
}

sub substitute
{
	my ($sql) = @_;
	my %vars = (
		alice_id => $ids{alice_space},
		bob_id => $ids{bob_space},
		side_id => $ids{alice_side},
		bob_session => $bob_session,
		cue8 => $cue8,
		cue16 => $cue16);
	if ($sql =~ /%worker_pid%/)
	{
		my ($pid) = split /\n/, query('SELECT pid FROM engram.workers WHERE pid IS NOT NULL ORDER BY worker_id');
		$vars{worker_pid} = $pid // 0;
	}
	$sql =~ s/%(\w+)%/exists $vars{$1} ? $vars{$1} : "%$1%"/ge;
	return $sql;
}

# Runs one attack: { name, role, sql (or a sub returning it), expect => [SQLSTATE...], optionally
# output (what a successful statement must print), also_ok_if (superuser SQL:
# when it returns t, success is acceptable too), timeout, dbname, setup and
# cleanup (superuser SQL around the attack), frozen (the workers are
# stopped: damage is looked for at the end of the group) }. The attack
# passes when it ends with an expected SQLSTATE, no server process died and
# nothing of alice's or bob's was damaged; damage is then repaired.
sub attack
{
	my ($a) = @_;
	query(substitute($a->{setup})) if $a->{setup};
	my $offset = log_offset($node);
	my $sql = ref $a->{sql} eq 'CODE' ? $a->{sql}->() : $a->{sql};
	my $r = run_as($node, $a->{role}, substitute($sql), timeout => $a->{timeout} // 120, dbname => $a->{dbname});
	my @crashes = server_crashes($node, $offset);
	# The postmaster logs a crash when it reaps the process, which can be
	# after psql saw the connection go.
	for (my $i = 0; !@crashes && $r->{state} =~ /LOST|FATAL/ && $i < 50; $i++)
	{
		usleep(200_000);
		@crashes = server_crashes($node, $offset);
	}
	wait_serving($node, 'alice_space', $cue8, 10) or diag('the server does not answer after the crash')
	  if @crashes;
	my @expect = @{ $a->{expect} };
	push @expect, '00000' if $a->{also_ok_if} && query(substitute($a->{also_ok_if})) eq 't';
	my $got = $r->{state};
	my $ok = grep { $_ eq $got } @expect;
	if ($ok && $got eq '00000' && defined $a->{output} && $r->{out} ne $a->{output})
	{
		$ok = 0;
		$got .= " printing '" . substr($r->{out}, 0, 80) . "'";
	}
	if ($a->{cleanup})
	{
		my $out = query(substitute($a->{cleanup}));
		diag("cleanup after $a->{name} failed: $out") if $out =~ /^error/;
	}
	my @damage = $a->{frozen} ? () : damage($offset);
	$got .= ' + SERVER CRASH' if @crashes;
	$got .= ' + DAMAGE: ' . join(', ', @damage) if @damage;
	$ok &&= !@crashes && !@damage;
	ok($ok, "$a->{name} [$a->{role}]: expect " . join('|', @expect) . ", got $got")
	  or diag(($r->{error} // $r->{err} // '') . (@crashes ? "\n$crashes[0]" : ''));
	push @findings, sprintf('%s %-62s -> %-17s -> %s%s', $ok ? 'ok  ' : 'FAIL', "$a->{name} [$a->{role}]",
		join('|', @expect), $got, $r->{error} && !$ok ? " ($r->{error})" =~ s/\n.*//sr : '');
	repair("$a->{name}: " . join(', ', @damage)) if @damage;
	return $r;
}

sub run_group
{
	my ($name, @attacks) = @_;
	begin_group($name);
	attack($_) for @attacks;
	end_group($name);
	return;
}

# --- 1. internal functions called directly ---------------------------------------
# Every engram._* function, by mallory (USAGE only) and reader (SELECT): those
# that touch another owner's space must refuse with 42501. For the pure
# helpers the observe paths call (_space_id, _check_embedding, _batch_rows,
# _wait_linked) refusing EXECUTE to PUBLIC and validating the arguments are
# both sound, so bad arguments may get either 42501 or their own error. The
# two generation counters say no more than engram.current_generation() says
# to anyone, and _require_preload only whether the library is loaded: those
# may answer. _space_state and _worker_state may answer a role that may read
# the view over them, and no other.
run_group(
	'internal functions',
	# 0.2.0 drops _forget_space (drop_space checks the owner and does its
	# work itself), so the call finds no function (42883); where it exists
	# (0.1.0) it must refuse.
	{ name => '_forget_space of alice\'s space', role => 'mallory', sql => 'SELECT engram._forget_space(%alice_id%)',
		expect => [ '42501', '42883' ] },
	{ name => '_forget_space of bob\'s space', role => 'reader', sql => 'SELECT engram._forget_space(%bob_id%)',
		expect => [ '42501', '42883' ] },
	# STRICT would answer NULL without running the C code: only a refusal
	# (or a non-strict function that checks) gives an error.
	{ name => '_forget_space(NULL)', role => 'mallory', sql => 'SELECT engram._forget_space(NULL)',
		expect => [ '42501', '22004', '42883' ] },
	{ name => '_forget_space(-1)', role => 'mallory', sql => 'SELECT engram._forget_space(-1)',
		expect => [ '42501', '42704', '42883' ] },
	{ name => '_forget_space(2^31-1)', role => 'mallory', sql => 'SELECT engram._forget_space(2147483647)',
		expect => [ '42501', '42704', '42883' ] },
	{ name => '_rebuild of alice\'s space', role => 'mallory', sql => 'SELECT engram._rebuild(%alice_id%)',
		expect => ['42501'] },
	{ name => '_rebuild of bob\'s space', role => 'reader', sql => 'SELECT engram._rebuild(%bob_id%)',
		expect => ['42501'] },
	{ name => '_rebuild(-5)', role => 'mallory', sql => 'SELECT engram._rebuild(-5)', expect => [ '42501', '42704' ] },
	{ name => '_stored_ids of alice\'s space', role => 'mallory',
		sql => 'SELECT count(*) FROM engram._stored_ids(%alice_id%)', expect => ['42501'] },
	{ name => '_stored_ids(-1)', role => 'reader', sql => 'SELECT count(*) FROM engram._stored_ids(-1)',
		expect => [ '42501', '42704' ] },
	{ name => '_space_state() without access to engram.spaces', role => 'mallory',
		sql => 'SELECT count(*) FROM engram._space_state()', expect => ['42501'],
		also_ok_if => q{SELECT has_table_privilege('mallory', 'engram.spaces', 'SELECT')} },
	{ name => '_worker_state() without access to engram.workers', role => 'mallory',
		sql => 'SELECT count(*) FROM engram._worker_state()', expect => ['42501'],
		also_ok_if => q{SELECT has_table_privilege('mallory', 'engram.workers', 'SELECT')} },
	{ name => '_published_generation()', role => 'mallory', sql => 'SELECT engram._published_generation() >= 0',
		expect => [ '42501', '00000' ], output => 't' },
	{ name => '_current_generation()', role => 'mallory', sql => 'SELECT engram._current_generation() >= 0',
		expect => [ '42501', '00000' ], output => 't' },
	{ name => '_require_preload()', role => 'mallory', sql => 'SELECT engram._require_preload()',
		expect => [ '42501', '00000' ] },
	{ name => '_wait_linked of an unknown space', role => 'mallory', sql => 'SELECT engram._wait_linked(-7, NULL, 10)',
		expect => [ '42501', '42704' ] },
	{ name => '_wait_linked with a negative timeout', role => 'reader',
		sql => 'SELECT engram._wait_linked(%alice_id%, NULL, -1)', expect => [ '42501', '22023' ] },
	{ name => '_check_embedding of the wrong dimension', role => 'mallory',
		sql => q{SELECT engram._check_embedding(%alice_id%, '{1,2,3}')}, expect => [ '42501', '22000' ] },
	{ name => '_check_embedding of an unknown space', role => 'mallory',
		sql => q{SELECT engram._check_embedding(-1, '{1}')}, expect => [ '42501', '42704' ] },
	{ name => '_check_embedding(NULL embedding)', role => 'reader',
		sql => 'SELECT engram._check_embedding(%alice_id%, NULL)', expect => [ '42501', '22004' ] },
	{ name => '_batch_rows of a 1-D array', role => 'mallory',
		sql => q{SELECT count(*) FROM engram._batch_rows('{1,2,3}', NULL, NULL)}, expect => [ '42501', '2202E' ] },
	{ name => '_batch_rows(NULL)', role => 'mallory', sql => 'SELECT count(*) FROM engram._batch_rows(NULL, NULL, NULL)',
		expect => [ '42501', '22004' ] },
	{ name => '_batch_rows with too few contents', role => 'reader',
		sql => q{SELECT count(*) FROM engram._batch_rows('{{1,2},{3,4}}', '{a}', NULL)},
		expect => [ '42501', '2202E' ] },
	{ name => '_space_id(NULL)', role => 'mallory', sql => 'SELECT engram._space_id(NULL)', expect => [ '42501', '22004' ] },
	{ name => '_space_id of an unknown space', role => 'mallory', sql => q{SELECT engram._space_id('nosuchspace')},
		expect => [ '42501', '42704' ] },
	{ name => '_claim_seq of bob\'s session', role => 'mallory',
		sql => q{SELECT engram._claim_seq('%bob_session%', %bob_id%, 1, 1000000)}, expect => ['42501'] },
	{ name => '_claim_seq of bob\'s session', role => 'reader',
		sql => q{SELECT engram._claim_seq('%bob_session%', %bob_id%, 2, 1000000)}, expect => ['42501'] },
	# A trigger function called outside a trigger: PostgreSQL's own
	# triggers answer 0A000 (PL/pgSQL) or 39P01 (C, "not called by trigger
	# manager").
	{ name => '_capture() called directly', role => 'mallory', sql => 'SELECT engram._capture()',
		expect => [ '42501', '0A000', '39P01' ] },
	{ name => '_guard_immutable() called directly', role => 'mallory', sql => 'SELECT engram._guard_immutable()',
		expect => [ '42501', '0A000', '39P01' ] },
	{ name => 'stored_ids of alice\'s space', role => 'mallory',
		sql => q{SELECT count(*) FROM engram.stored_ids('alice_space')}, expect => ['42501'] },
	{ name => 'recall from alice\'s space', role => 'mallory',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%')}, expect => ['42501'] },
	# alice may write rows, but not another owner's space away.
	{ name => '_forget_space of bob\'s space, then delete its rows', role => 'alice',
		sql => q{BEGIN; SELECT engram._forget_space(%bob_id%);
				 DELETE FROM engram.observations WHERE space_id = %bob_id%; COMMIT;},
		expect => [ '42501', '42883' ] });

# --- 2. engram's trigger functions on the attacker's own tables ---------------------
# Refusing EXECUTE stops CREATE TRIGGER (42501); a trigger function that
# checks where it fires stops the first row (39P01). Either keeps every row
# away from the ring; anything else is an injection or a crash.
my $capture_table = q{CREATE TEMP TABLE t (id bigint, space_id int, embedding real[], confidence real);
CREATE TRIGGER c AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION engram._capture();
};
my @trigger = ('42501', '39P01');
run_group(
	'trigger functions on own tables',
	{ name => '_capture, right column types, forged id 5 at the cue', role => 'mallory',
		sql => $capture_table . q{INSERT INTO t VALUES (5, %alice_id%, '%cue8%', 0.5);}, expect => \@trigger },
	{ name => '_capture, bigint embedding', role => 'mallory',
		sql => q{CREATE TEMP TABLE t (id bigint, space_id int, embedding bigint, confidence real);
				 CREATE TRIGGER c AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION engram._capture();
				 INSERT INTO t VALUES (1, %alice_id%, 1, 0.5);}, expect => \@trigger },
	{ name => '_capture, bytea forged as an array of 10^8 floats', role => 'mallory',
		sql => q{CREATE TEMP TABLE t (id bigint, space_id int, embedding bytea, confidence real);
				 CREATE TRIGGER c AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION engram._capture();
				 INSERT INTO t VALUES (2, %alice_id%,
				   decode('0100000000000000bc02000000e1f50501000000' || repeat('0000803f', 8), 'hex'), 0.5);},
		expect => \@trigger },
	{ name => '_capture, bytea forged as an 8-float array', role => 'mallory',
		sql => q{CREATE TEMP TABLE t (id bigint, space_id int, embedding bytea, confidence real);
				 CREATE TRIGGER c AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION engram._capture();
				 INSERT INTO t VALUES (3, %alice_id%,
				   decode('0100000000000000bc0200000800000001000000' || repeat('00000000', 8), 'hex'), 0.5);},
		expect => \@trigger },
	{ name => '_capture, 3 rows of dimensions 8, 3 and 2000', role => 'mallory',
		sql => $capture_table . q{INSERT INTO t VALUES (11, %alice_id%, '%cue8%', 0.5), (12, %alice_id%, '{1,2,3}', 0.5),
				 (13, %alice_id%, array_fill(1::real, ARRAY[2000]), 0.5);}, expect => \@trigger },
	{ name => '_capture, first row larger than ring_size/8', role => 'mallory',
		sql => $capture_table . q{INSERT INTO t VALUES (14, %alice_id%, array_fill(0.5::real, ARRAY[300000]), 0.5);},
		expect => \@trigger },
	{ name => '_capture, confidence 7.5', role => 'mallory',
		sql => $capture_table . q{INSERT INTO t VALUES (999999, %alice_id%, '%cue8%', 7.5);}, expect => \@trigger },
	{ name => '_capture, int4[] embedding', role => 'mallory',
		sql => q{CREATE TEMP TABLE t (id bigint, space_id int, embedding int[], confidence real);
				 CREATE TRIGGER c AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION engram._capture();
				 INSERT INTO t VALUES (15, %alice_id%, '{1,2,3,4,5,6,7,8}', 0.5);}, expect => \@trigger },
	{ name => '_capture, NULL id, space and confidence', role => 'mallory',
		sql => $capture_table . q{INSERT INTO t VALUES (NULL, NULL, '%cue8%', NULL);}, expect => \@trigger },
	{ name => '_capture on a table without engram\'s columns', role => 'mallory',
		sql => q{CREATE TEMP TABLE t (a int);
				 CREATE TRIGGER c AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION engram._capture();
				 INSERT INTO t VALUES (1);}, expect => \@trigger },
	{ name => '_capture as a statement trigger', role => 'mallory',
		sql => q{CREATE TEMP TABLE t (id bigint, space_id int, embedding real[], confidence real);
				 CREATE TRIGGER c AFTER INSERT ON t FOR EACH STATEMENT EXECUTE FUNCTION engram._capture();
				 INSERT INTO t VALUES (16, %alice_id%, '%cue8%', 0.5);}, expect => \@trigger },
	{ name => '_capture as a BEFORE UPDATE trigger', role => 'mallory',
		sql => q{CREATE TEMP TABLE t (id bigint, space_id int, embedding real[], confidence real);
				 INSERT INTO t VALUES (17, %alice_id%, '%cue8%', 0.5);
				 CREATE TRIGGER c BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION engram._capture();
				 UPDATE t SET confidence = 0.6;}, expect => \@trigger },
	{ name => '_capture on mallory_obs.observations', role => 'mallory',
		sql => q{CREATE SCHEMA mallory_obs;
				 CREATE TABLE mallory_obs.observations (id bigint, space_id int, embedding real[], confidence real);
				 CREATE TRIGGER capture AFTER INSERT ON mallory_obs.observations
				   FOR EACH ROW EXECUTE FUNCTION engram._capture();
				 INSERT INTO mallory_obs.observations VALUES (18, %alice_id%, '%cue8%', 0.5);}, expect => \@trigger },
	{ name => '_capture, forged row into bob\'s space', role => 'reader',
		sql => $capture_table . q{INSERT INTO t VALUES (7, %bob_id%, '%cue16%', 0.9);},
		expect => \@trigger },
	{ name => '_guard_immutable on a table without space_id', role => 'mallory',
		sql => q{CREATE TEMP TABLE g (a int); INSERT INTO g VALUES (1);
				 CREATE TRIGGER x BEFORE DELETE ON g FOR EACH ROW EXECUTE FUNCTION engram._guard_immutable();
				 DELETE FROM g;}, expect => \@trigger },
	{ name => '_guard_immutable with a text space_id', role => 'mallory',
		sql => q{CREATE TEMP TABLE g (space_id text); INSERT INTO g VALUES ('x');
				 CREATE TRIGGER x BEFORE DELETE ON g FOR EACH ROW EXECUTE FUNCTION engram._guard_immutable();
				 DELETE FROM g;}, expect => \@trigger },
	{ name => '_guard_immutable as a BEFORE INSERT trigger', role => 'mallory',
		sql => q{CREATE TEMP TABLE g (space_id int);
				 CREATE TRIGGER x BEFORE INSERT ON g FOR EACH ROW EXECUTE FUNCTION engram._guard_immutable();
				 INSERT INTO g VALUES (%alice_id%);}, expect => \@trigger });

# --- 3. engram's tables and sequences ------------------------------------------------
run_group(
	'tables and sequences',
	{ name => 'INSERT into observations', role => 'mallory',
		sql => q{INSERT INTO engram.observations (space_id, embedding) VALUES (%alice_id%, '%cue8%')},
		expect => ['42501'] },
	{ name => 'INSERT into observations', role => 'reader',
		sql => q{INSERT INTO engram.observations (space_id, embedding) VALUES (%alice_id%, '%cue8%')},
		expect => ['42501'] },
	{ name => 'COPY into observations', role => 'mallory',
		sql => "COPY engram.observations (space_id, embedding) FROM STDIN;\n%alice_id%\t%cue8%\n\\.\n",
		expect => ['42501'] },
	{ name => 'UPDATE space_catalog owner', role => 'mallory',
		sql => q{UPDATE engram.space_catalog SET owner = 'mallory' WHERE name = 'alice_space'}, expect => ['42501'] },
	{ name => 'DELETE from space_catalog', role => 'mallory',
		sql => q{DELETE FROM engram.space_catalog WHERE name = 'alice_space'}, expect => ['42501'] },
	{ name => 'INSERT into space_catalog', role => 'mallory',
		sql => q{INSERT INTO engram.space_catalog (name, dim, metric, m, ef_construction)
				 VALUES ('mallory_space', 8, 'l2', 16, 200)}, expect => ['42501'] },
	{ name => 'INSERT into sessions', role => 'mallory',
		sql => 'INSERT INTO engram.sessions (space_id) VALUES (%bob_id%)', expect => ['42501'] },
	{ name => 'UPDATE sessions', role => 'mallory', sql => 'UPDATE engram.sessions SET last_seq = 999',
		expect => ['42501'] },
	{ name => 'DELETE from sessions', role => 'mallory', sql => 'DELETE FROM engram.sessions', expect => ['42501'] },
	{ name => 'TRUNCATE observations', role => 'mallory', sql => 'TRUNCATE engram.observations', expect => ['42501'] },
	{ name => 'TRUNCATE observations', role => 'reader', sql => 'TRUNCATE engram.observations', expect => ['42501'] },
	{ name => 'TRUNCATE space_catalog CASCADE', role => 'mallory', sql => 'TRUNCATE engram.space_catalog CASCADE',
		expect => ['42501'] },
	{ name => 'DELETE alice\'s rows', role => 'reader',
		sql => 'DELETE FROM engram.observations WHERE space_id = %alice_id%', expect => ['42501'] },
	{ name => 'SELECT observations', role => 'mallory', sql => 'SELECT count(*) FROM engram.observations',
		expect => ['42501'] },
	{ name => 'setval of the space id sequence', role => 'mallory',
		sql => q{SELECT setval('engram.space_catalog_space_id_seq', 1)}, expect => ['42501'] },
	{ name => 'nextval of the observation id sequence', role => 'mallory',
		sql => q{SELECT nextval('engram.observations_id_seq')}, expect => ['42501'] },
	{ name => 'DISABLE TRIGGER capture', role => 'mallory',
		sql => 'ALTER TABLE engram.observations DISABLE TRIGGER capture', expect => ['42501'] },
	{ name => 'CREATE TRIGGER on observations', role => 'mallory',
		sql => 'CREATE TRIGGER x AFTER INSERT ON engram.observations FOR EACH ROW EXECUTE FUNCTION engram._capture()',
		expect => ['42501'] },
	{ name => 'CREATE OR REPLACE engram._space_id', role => 'mallory',
		sql => q{CREATE OR REPLACE FUNCTION engram._space_id(space text) RETURNS int LANGUAGE sql AS 'SELECT 1'},
		expect => ['42501'] },
	# A writer may hold INSERT on the catalog (0.1.0 needs it for
	# create_space), but a shape create_space refuses must not get in: a
	# refusal of direct writes (42501) or constraints on the columns (23514).
	{ name => 'catalog row with m = 1 behind create_space\'s back, then observe', role => 'alice',
		sql => q{INSERT INTO engram.space_catalog (name, dim, metric, m, ef_construction)
				 VALUES ('forged_m1', 4, 'l2', 1, 1);
				 SELECT engram.observe('forged_m1', '{1,2,3,4}');}, expect => [ '42501', '23514' ],
		cleanup => q{SELECT engram.drop_space(name) FROM engram.space_catalog WHERE name = 'forged_m1'} },
	{ name => 'writer makes itself owner of bob\'s space, then rebuilds it', role => 'alice',
		sql => q{UPDATE engram.space_catalog SET owner = 'alice' WHERE name = 'bob_space';
				 SELECT engram.rebuild('bob_space');}, expect => ['42501'],
		cleanup => q{UPDATE engram.space_catalog SET owner = 'bob' WHERE name = 'bob_space'} });

# --- 4. other owners' spaces, sessions and the extension -------------------------
my $grant_update = 'GRANT UPDATE ON engram.space_catalog TO mallory';
my $revoke_update = q{REVOKE UPDATE ON engram.space_catalog FROM mallory;
	UPDATE engram.space_catalog SET owner = 'alice' WHERE name = 'alice_space'};
run_group(
	'other owners\' spaces',
	{ name => 'drop_space of alice\'s space', role => 'mallory', sql => q{SELECT engram.drop_space('alice_space')},
		expect => ['42501'] },
	{ name => 'drop_space of bob\'s space', role => 'reader', sql => q{SELECT engram.drop_space('bob_space')},
		expect => ['42501'] },
	{ name => 'drop_space of bob\'s space by another owner', role => 'alice',
		sql => q{SELECT engram.drop_space('bob_space')}, expect => ['42501'] },
	{ name => 'rebuild of alice\'s space', role => 'mallory', sql => q{SELECT engram.rebuild('alice_space')},
		expect => ['42501'] },
	{ name => 'rebuild of bob\'s space', role => 'reader', sql => q{SELECT engram.rebuild('bob_space')},
		expect => ['42501'] },
	{ name => 'alter_space_owner of alice\'s space to mallory', role => 'mallory',
		sql => q{SELECT engram.alter_space_owner('alice_space', 'mallory')}, expect => ['42501'] },
	{ name => 'alter_space_owner of bob\'s space to reader', role => 'reader',
		sql => q{SELECT engram.alter_space_owner('bob_space', 'reader')}, expect => ['42501'] },
	{ name => 'alter_space_owner of alice\'s space by bob', role => 'bob',
		sql => q{SELECT engram.alter_space_owner('alice_space', 'bob')}, expect => ['42501'] },
	{ name => 'alter_space_owner to an unknown role', role => 'alice',
		sql => q{SELECT engram.alter_space_owner('alice_space', 'nosuchrole')}, expect => ['42704'] },
	{ name => 'alter_space_owner of an unknown space', role => 'alice',
		sql => q{SELECT engram.alter_space_owner('nosuchspace', 'alice')}, expect => ['42704'] },
	# An admin's GRANT UPDATE on the catalog must not be a way to ownership.
	{ name => 'with UPDATE on the catalog: take alice\'s space, rebuild it', role => 'mallory',
		setup => $grant_update, cleanup => $revoke_update,
		sql => q{UPDATE engram.space_catalog SET owner = 'mallory' WHERE name = 'alice_space';
				 SELECT engram.rebuild('alice_space');}, expect => ['42501'] },
	{ name => 'with UPDATE on the catalog: take alice\'s space, drop it', role => 'mallory',
		setup => $grant_update, cleanup => $revoke_update,
		sql => q{UPDATE engram.space_catalog SET owner = 'mallory' WHERE name = 'alice_space';
				 SELECT engram.drop_space('alice_space');}, expect => ['42501'] },
	{ name => 'with UPDATE on the catalog: take alice\'s space, re-own it', role => 'mallory',
		setup => $grant_update, cleanup => $revoke_update,
		sql => q{UPDATE engram.space_catalog SET owner = 'mallory' WHERE name = 'alice_space';
				 SELECT engram.alter_space_owner('alice_space', 'mallory');}, expect => ['42501'] },
	{ name => 'create_space', role => 'mallory', sql => q{SELECT engram.create_space('mallory_space', 8)},
		expect => ['42501'] },
	{ name => 'observe into alice\'s space', role => 'reader',
		sql => q{SELECT engram.observe('alice_space', '%cue8%')}, expect => ['42501'] },
	{ name => 'open_session on bob\'s space', role => 'mallory', sql => q{SELECT engram.open_session('bob_space')},
		expect => ['42501'] },
	{ name => 'close_session of bob\'s session', role => 'mallory',
		sql => q{SELECT engram.close_session('%bob_session%')}, expect => ['42501'] },
	{ name => 'close_session of bob\'s session', role => 'reader',
		sql => q{SELECT engram.close_session('%bob_session%')}, expect => ['42501'] },
	{ name => 'observe through bob\'s session', role => 'reader',
		sql => q{SELECT engram.observe('bob_space', '%cue16%', session => '%bob_session%', seq => 2)},
		expect => ['42501'] },
	{ name => 'DROP EXTENSION engram', role => 'mallory', sql => 'DROP EXTENSION engram CASCADE', expect => ['42501'] },
	{ name => 'ALTER EXTENSION engram UPDATE', role => 'mallory', sql => 'ALTER EXTENSION engram UPDATE',
		expect => ['42501'] },
	{ name => 'pg_terminate_backend of an engram worker', role => 'mallory',
		sql => 'SELECT pg_terminate_backend(%worker_pid%)', expect => ['42501'] },
	{ name => 'pg_cancel_backend of an engram worker', role => 'mallory',
		sql => 'SELECT pg_cancel_backend(%worker_pid%)', expect => ['42501'] },
	{ name => 'LOAD engram', role => 'mallory', sql => q{LOAD 'engram'}, expect => ['42501'] });

# --- 5. settings ----------------------------------------------------------------------
# 55P02: a server-start or reload setting cannot be changed by SET.
run_group(
	'settings',
	{ name => 'SET engram.ring_size', role => 'mallory', sql => q{SET engram.ring_size = '1GB'}, expect => ['55P02'] },
	{ name => 'SET engram.workers', role => 'mallory', sql => 'SET engram.workers = 64', expect => ['55P02'] },
	{ name => 'SET engram.pressure_overloaded', role => 'mallory', sql => 'SET engram.pressure_overloaded = 0',
		expect => ['55P02'] },
	{ name => 'SET engram.database', role => 'mallory', sql => q{SET engram.database = 'template1'},
		expect => ['55P02'] },
	{ name => 'ALTER SYSTEM SET engram.pressure_overloaded', role => 'mallory',
		sql => 'ALTER SYSTEM SET engram.pressure_overloaded = 0', expect => ['42501'] },
	{ name => 'SET engram.ef_search = 10000000', role => 'mallory', sql => 'SET engram.ef_search = 10000000',
		expect => ['22023'] },
	{ name => 'SET engram.ef_search = 0', role => 'mallory', sql => 'SET engram.ef_search = 0', expect => ['22023'] },
	{ name => 'SET engram.overload_timeout = -1', role => 'mallory', sql => 'SET engram.overload_timeout = -1',
		expect => ['22023'] },
	# Out of range (22023), or reserved to the server by a tighter context (42501).
	{ name => 'SET engram.overload_timeout = 2^31-1', role => 'mallory',
		sql => 'SET engram.overload_timeout = 2147483647', expect => [ '22023', '42501' ] },
	{ name => 'SET engram.overload_policy = ignore', role => 'mallory', sql => q{SET engram.overload_policy = 'ignore'},
		expect => ['22023'] },
	{ name => 'SET an unknown engram.* setting', role => 'mallory', sql => 'SET engram.no_such_setting = 1',
		expect => ['42602'] },
	{ name => 'ALTER ROLE SET engram.ef_search = 10000000', role => 'mallory',
		sql => 'ALTER ROLE mallory SET engram.ef_search = 10000000', expect => ['22023'] });

# --- 6. search_path tricks in sessions ------------------------------------------------
# mallory's own schema holds look-alikes of what engram's functions call
# unqualified; with it first on her search_path they must still refuse her,
# and nothing of hers may run as another role.
run_group(
	'search_path in sessions',
	{ name => 'fake pg_has_role on the path, rebuild alice\'s space', role => 'mallory',
		sql => q{CREATE SCHEMA spoof_role;
				 CREATE FUNCTION spoof_role.pg_has_role(name, regrole, text) RETURNS boolean
				   LANGUAGE sql AS 'SELECT true';
				 SET search_path = spoof_role, pg_catalog;
				 SELECT engram.rebuild('alice_space');}, expect => ['42501'] },
	{ name => 'always-true = on the path, drop alice\'s space', role => 'mallory',
		sql => q{CREATE SCHEMA spoof_eq;
				 CREATE FUNCTION spoof_eq.eq(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT true';
				 CREATE FUNCTION spoof_eq.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
				 CREATE OPERATOR spoof_eq.= (LEFTARG = int, RIGHTARG = int, FUNCTION = spoof_eq.eq);
				 CREATE OPERATOR spoof_eq.= (LEFTARG = text, RIGHTARG = text, FUNCTION = spoof_eq.eq);
				 SET search_path = spoof_eq, pg_catalog;
				 SELECT engram.drop_space('alice_space');}, expect => ['42501'] },
	# The embedding check looks the space up by id; with = always true it
	# would take another space's shape. A 8-d row into the 4-d alice_side
	# must still be refused as the wrong dimension.
	{ name => 'always-true = on the path, 8-d row into a 4-d space', role => 'alice',
		sql => q{CREATE SCHEMA alice_spoof;
				 CREATE FUNCTION alice_spoof.eq(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT true';
				 CREATE OPERATOR alice_spoof.= (LEFTARG = int, RIGHTARG = int, FUNCTION = alice_spoof.eq);
				 SET search_path = alice_spoof, pg_catalog;
				 INSERT INTO engram.observations (space_id, embedding) VALUES (%side_id%, '%cue8%');},
		expect => ['22000'] },
	# recall looks the space up by name; with = always true it would answer
	# from another space. reader may read every space, so the right answer
	# is bob's own top 10.
	{ name => 'always-true text = on the path, recall bob\'s space', role => 'reader',
		sql => q{CREATE SCHEMA reader_spoof;
				 CREATE FUNCTION reader_spoof.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
				 CREATE OPERATOR reader_spoof.= (LEFTARG = text, RIGHTARG = text, FUNCTION = reader_spoof.eq);
				 SET search_path = reader_spoof, pg_catalog;
				 SELECT string_agg(id || ' ' || distance, ',' ORDER BY distance, id)
				 FROM engram.recall('bob_space', '%cue16%', 10);}, expect => ['00000'],
		output => $baseline{bob_space} },
	# Spies for = and the functions engram's SQL calls unqualified note who
	# runs them and try to make mallory superuser when run by one. After
	# every public engram function ran with them first on the path, they
	# must only ever have run as mallory (HX001 says otherwise).
	{ name => 'spies on the path, then every public function', role => 'mallory', expect => ['00000'],
		sql => <<'SQL' });
CREATE SCHEMA spy;
CREATE TABLE spy.seen (who name);
GRANT USAGE ON SCHEMA spy TO PUBLIC;
GRANT INSERT ON spy.seen TO PUBLIC;
CREATE FUNCTION spy.note() RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
	INSERT INTO spy.seen VALUES (current_user);
	IF (SELECT rolsuper FROM pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
		EXECUTE 'ALTER ROLE mallory SUPERUSER';
	END IF;
END $$;
CREATE FUNCTION spy.eq4(a int4, b int4) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM spy.note(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION spy.eq8(a int8, b int8) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM spy.note(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION spy.eqt(a text, b text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM spy.note(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION spy.equ(a uuid, b uuid) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM spy.note(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR spy.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = spy.eq4);
CREATE OPERATOR spy.= (LEFTARG = int8, RIGHTARG = int8, FUNCTION = spy.eq8);
CREATE OPERATOR spy.= (LEFTARG = text, RIGHTARG = text, FUNCTION = spy.eqt);
CREATE OPERATOR spy.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = spy.equ);
CREATE FUNCTION spy.pg_has_role(a name, b regrole, c text) RETURNS boolean LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$ BEGIN PERFORM spy.note(); RETURN pg_catalog.pg_has_role(a, b::oid, c); END $$;
CREATE FUNCTION spy.array_ndims(a anyarray) RETURNS int LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM spy.note(); RETURN pg_catalog.array_ndims(a); END $$;
CREATE FUNCTION spy.array_length(a anyarray, d int) RETURNS int LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM spy.note(); RETURN pg_catalog.array_length(a, d); END $$;
CREATE FUNCTION spy.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM spy.note(); RETURN pg_catalog.now(); END $$;
SET search_path = spy, pg_catalog;
DO $$
DECLARE
	q text;
BEGIN
	FOREACH q IN ARRAY ARRAY[
		'SELECT engram.create_space(''spy_space'', 8)',
		'SELECT engram.drop_space(''alice_space'')',
		'SELECT engram.rebuild(''alice_space'')',
		'SELECT engram.alter_space_owner(''alice_space'', ''mallory'')',
		'SELECT engram.observe(''alice_space'', ''%cue8%'')',
		'SELECT engram.observe_batch(''alice_space'', ''{{1,2,3,4,5,6,7,8}}'')',
		'SELECT * FROM engram.recall(''alice_space'', ''%cue8%'')',
		'SELECT engram.open_session(''bob_space'')',
		'SELECT engram.close_session(''%bob_session%'')',
		'SELECT engram.current_generation(''alice_space'')',
		'SELECT engram.wait_linked(''alice_space'', NULL, 10)',
		'SELECT engram.stored_ids(''alice_space'')',
		'SELECT * FROM engram.pressure()',
		'SELECT * FROM engram.spaces',
		'SELECT * FROM engram.workers']
	LOOP
		BEGIN
			EXECUTE q;
		EXCEPTION WHEN OTHERS THEN
			NULL;
		END;
	END LOOP;
END $$;
RESET search_path;
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM spy.seen WHERE who <> 'mallory')
	   OR (SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory') THEN
		RAISE EXCEPTION 'engram ran objects from mallory''s search_path as another role' USING ERRCODE = 'HX001';
	END IF;
END $$;
SQL
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f',
	'mallory is not superuser');

# --- 7. limits and bad arguments ------------------------------------------------------
run_group(
	'limits and bad arguments',
	{ name => 'recall k = 0', role => 'reader', sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 0)},
		expect => ['22023'] },
	{ name => 'recall k = -1', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', -1)}, expect => ['22023'] },
	{ name => 'recall k = 10001', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 10001)}, expect => ['22023'] },
	{ name => 'recall k = 2^31-1', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 2147483647)}, expect => ['22023'] },
	# Documented as out of range (22023); null_value_not_allowed fits too.
	{ name => 'recall k = NULL', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', NULL)}, expect => [ '22023', '22004' ] },
	{ name => 'recall as_of = -1', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 10, -1)}, expect => ['22023'] },
	{ name => 'recall as_of = 2^63-1', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 10, 9223372036854775807)},
		expect => ['22023'] },
	{ name => 'recall min_confidence = 7.5', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 10, NULL, 7.5)}, expect => ['22023'] },
	{ name => 'recall from an unknown space', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('nosuchspace', '%cue8%')}, expect => ['42704'] },
	{ name => 'ef_search 10000 and k 10000 over 200 rows', role => 'reader',
		sql => q{SET engram.ef_search = 10000; SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 10000)},
		expect => ['00000'], output => '200' },
	{ name => 'wait_linked timeout -1', role => 'reader', sql => q{SELECT engram.wait_linked('alice_space', NULL, -1)},
		expect => ['22023'] },
	{ name => 'wait_linked generation -1', role => 'reader', sql => q{SELECT engram.wait_linked('alice_space', -1)},
		expect => ['22023'] },
	{ name => 'wait_linked generation 2^63-1', role => 'reader',
		sql => q{SELECT engram.wait_linked('alice_space', 9223372036854775807)}, expect => ['22023'] },
	{ name => 'wait_stored timeout -1', role => 'reader', sql => 'SELECT engram.wait_stored(-1)', expect => ['22023'] },
	{ name => 'create_space dim 2^31-1', role => 'alice', sql => q{SELECT engram.create_space('huge_dim', 2147483647)},
		expect => ['22023'] },
	{ name => 'PREPARE TRANSACTION after observing', role => 'alice',
		sql => q{BEGIN; SELECT engram.observe('alice_side', '{1,2,3,4}'); PREPARE TRANSACTION 'hostile';},
		expect => ['0A000'] });
my $prepared = $node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts');
is($prepared, '0', 'no prepared transaction was left behind')
  or $node->safe_psql('postgres', q{ROLLBACK PREPARED 'hostile'});

# --- 8. overload and absurd timeouts (workers frozen) ----------------------------------
# SIGSTOP on the workers makes a real overload: nothing drains, the ring fills
# with alice's commits into alice_scratch. Then a commit with a one-hour
# overload timeout must fail within the server's ceiling
# (engram.max_overload_timeout, 5 s here: 53E01; or the SET is refused,
# 42501/22023); waits on a frozen pipeline honour
# statement_timeout; recall keeps answering from what is stored.
begin_group('overload and timeouts');
my @frozen = worker_pids($node);
kill 'STOP', @frozen;
my ($filled, $fill_error) = (0, '');
# Fair admission lets a small commit in while there is room and the space is
# within its share, so keep filling with smaller batches until even a single
# row is refused: then the pipeline is overloaded for every commit into it.
for my $rows (20000, 2000, 200, 20, 1)
{
	for my $i (1 .. 200)
	{
		my $r = run_as($node, 'alice',
			"SET engram.overload_policy = 'error';
			 SELECT engram.observe_batch('alice_scratch', array_fill(${i}::real, ARRAY[$rows, 4]))");
		next if $r->{state} eq '00000';
		($filled, $fill_error) = ($rows == 1, $r->{state});
		last;
	}
}
ok($filled && $fill_error eq '53E01', "the frozen pipeline refuses commits (got $fill_error)");
attack($_) for (
	{ name => 'commit under overload with overload_timeout = 1 h', role => 'alice', timeout => 240,
		sql => q{SET engram.overload_policy = 'wait'; SET engram.overload_timeout = 3600000;
				 SELECT engram.observe('alice_scratch', '{1,2,3,4}');}, expect => [ '53E01', '42501', '22023' ],
		frozen => 1 },
	{ name => 'wait_linked for 2^31-1 ms under statement_timeout', role => 'alice',
		sql => q{SET statement_timeout = '2s'; SELECT engram.wait_linked('alice_scratch', NULL, 2147483647);},
		expect => ['57014'], frozen => 1 },
	{ name => 'wait_stored for 2^31-1 ms under statement_timeout', role => 'alice',
		sql => q{SET statement_timeout = '2s'; SELECT engram.wait_stored(2147483647);}, expect => ['57014'],
		frozen => 1 },
	{ name => 'recall while the workers are frozen', role => 'reader',
		sql => q{SELECT count(*) FROM engram.recall('alice_space', '%cue8%', 10)}, expect => ['00000'],
		output => '10', frozen => 1 });
kill 'CONT', @frozen;
end_group('overload and timeouts');
my $dropped = run_as($node, 'alice', q{SELECT engram.drop_space('alice_scratch')});
diag("alice could not drop alice_scratch: $dropped->{err}") if $dropped->{state} ne '00000';

# --- 9. large and mixed transactions ---------------------------------------------------
my $big_recall = q{SET engram.ef_search = 10000;
	SELECT count(*) FROM engram.recall('alice_big', '%cue8%', 10000);};

# The big recall with statement_timeout at a quarter of its measured time
# (the machine's speed decides how long it takes; the timeout must fall
# inside it, not after it).
sub big_recall_with_timeout
{
	my $measured = run_as($node, 'reader', "\\timing on\n" . substitute($big_recall));
	my ($ms) = $measured->{out} =~ /Time: ([0-9.]+) ms/;
	$ms //= 0;
	note("the k = 10000 recall over alice_big took $ms ms");
	my $timeout = $ms >= 8 ? int($ms / 4) : 1;
	return "SET statement_timeout = '${timeout}ms';\n$big_recall";
}

run_group(
	'large and mixed transactions',
	{ name => 'observe_batch of 100,000 x 8 in one call', role => 'alice',
		sql => qq{SELECT engram.observe_batch('alice_big', (SELECT array_agg($vec8) FROM generate_series(1, 100000) g))},
		expect => ['00000'], output => '100000' },
	# Once stored, most of the bulk load is still unlinked. A statement
	# timeout of a quarter of what the same recall takes must stop it (on a
	# fast machine the recall takes a few ms and the timeout is 1 ms: still
	# a cancellation in the middle of recall's work, checked for its
	# SQLSTATE and, by the drop below, for pins left behind).
	{ name => 'statement_timeout on a k = 10000 recall', role => 'reader', expect => ['57014'],
		setup => 'SELECT engram.wait_stored(120000)', sql => sub { big_recall_with_timeout() } },
	{ name => 'k = 10000 recall returns 10000 rows', role => 'reader',
		sql => q{SET engram.ef_search = 10000; SELECT count(*) FROM engram.recall('alice_big', '%cue8%', 10000);},
		expect => ['00000'], output => '10000' },
	# Nothing stays pinned by the cancelled recall: the drop is freed.
	{ name => 'drop_space after the cancelled recall is freed', role => 'alice',
		sql => q{SELECT engram.drop_space('alice_big'); SELECT engram.wait_stored(120000);}, expect => ['00000'],
		output => "\nt" },
	# More vectors than the ring holds travel as id ranges (a few bytes of
	# ring), so such a transaction is accepted and indexed in full: refusing
	# it would refuse every bulk COPY, a restore's included. What the ring
	# cannot take is a transaction whose records themselves do not fit; see
	# test/t/016_fair_admission.pl. The group's end checks that the index
	# holds exactly the committed rows.
	{ name => 'one transaction of 10 MB of vectors (ring 8 MB)', role => 'alice',
		sql => q{SELECT engram.observe_batch('alice_wide',
				   (SELECT array_agg(array_fill((g % 97)::real, ARRAY[64])) FROM generate_series(1, 40000) g))},
		expect => ['00000'] },
	{ name => 'mixed transaction: spaces, savepoints, a spill', role => 'alice', expect => ['00000'],
		sql => q{BEGIN;
				 SELECT engram.observe('alice_side', '{1,0,0,0}');
				 SAVEPOINT a;
				 SELECT engram.observe_batch('alice_side', '{{9,9,9,9},{8,8,8,8}}');
				 ROLLBACK TO a;
				 SELECT engram.observe_batch('alice_mixed',
				   (SELECT array_agg(array_fill((g % 13)::real, ARRAY[8])) FROM generate_series(1, 40000) g));
				 SAVEPOINT b;
				 SELECT engram.observe('alice_side', '{0,1,0,0}');
				 RELEASE b;
				 SELECT engram.observe('alice_wide', array_fill(0.5::real, ARRAY[64]));
				 COMMIT;} });

# --- 10. a second database ---------------------------------------------------------
# CREATE EXTENSION engram in a database other than engram.database either
# fails with a clear error (55000 or 0A000, with a hint) and leaves nothing
# behind, or works fully isolated: its first space, which gets alice_space's
# id, answers only its own rows, and its drop leaves alice's space alone.
begin_group('second database');
query('CREATE DATABASE db2');
query('GRANT CREATE ON DATABASE db2 TO mallory', 'db2');
attack({ name => 'CREATE EXTENSION engram in a second database', role => 'mallory', dbname => 'db2',
		sql => 'CREATE EXTENSION engram', expect => ['42501'] });
my ($ret2, $out2, $err2) = $node->psql('db2', 'CREATE EXTENSION engram', extra_params => [ '-v', 'VERBOSITY=verbose' ]);
my ($state2) = $ret2 == 0 ? ('00000') : ($err2 =~ /ERROR:  ([0-9A-Z]{5}):/);
$state2 //= 'unknown';
ok((grep { $_ eq $state2 } qw(00000 55000 0A000)),
	"superuser CREATE EXTENSION engram in db2: succeeds or fails clearly (got $state2)")
  or diag($err2);
my $db2_outcome = $state2;
if ($state2 eq '00000')
{
	my $id2 = query("SELECT engram.create_space('iso_space', 8, 'l2')", 'db2');
	note("db2's space got id $id2 (alice_space has $ids{alice_space})");
	query("SELECT engram.observe_batch('iso_space', (SELECT array_agg('$cue8'::real[]) FROM generate_series(1, 5)))",
		'db2');
	ok(query('SELECT engram.wait_stored(60000)') eq 't', 'the workers caught up with db2\'s commit');
	my $own = query(
		"SELECT count(*) FILTER (WHERE o.id IS NULL) || ' foreign, ' || count(*) || ' in all'
		 FROM engram.recall('iso_space', '$cue8', 20) r LEFT JOIN engram.observations o USING (id)", 'db2');
	is($own, '0 foreign, 5 in all', "db2's recall answers exactly its own 5 rows");
	my $alice_after = recall_signature('alice_space', $cue8);
	is($alice_after, $baseline{alice_space}, "db2's observations leave alice's recall alone");
	query("SELECT engram.drop_space('iso_space')", 'db2');
	ok(query('SELECT engram.wait_stored(60000)') eq 't', 'the drop in db2 is done');
	my $alice_after_drop = recall_signature('alice_space', $cue8);
	is($alice_after_drop, $baseline{alice_space}, "db2's drop leaves alice's recall alone");
	$db2_outcome .= ", db2 recall: $own, alice after db2's rows: "
	  . ($alice_after eq $baseline{alice_space} ? 'unchanged' : 'CHANGED')
	  . ', after its drop: ' . ($alice_after_drop eq $baseline{alice_space} ? 'unchanged' : 'CHANGED');
}
else
{
	is(query(q{SELECT count(*) FROM pg_extension WHERE extname = 'engram'}, 'db2'),
		'0', 'the refused CREATE EXTENSION left nothing behind');
	like($err2, qr/HINT:  /, 'the refusal comes with a hint');
}
my $db2_ok = $state2 eq '00000' ? $db2_outcome !~ /CHANGED/ && $db2_outcome =~ /0 foreign, 5 in all/
  : (grep { $_ eq $state2 } qw(55000 0A000));
push @findings, sprintf('%s %-62s -> %-17s -> %s', ($db2_ok ? 'ok  ' : 'FAIL'),
	'CREATE EXTENSION in a second database [superuser]', '00000|55000|0A000', $db2_outcome);
end_group('second database');

ok($original_bystander && bystander_alive($bystander, $bystander_pid),
	'the bystander session started before the first attack is still connected');

# --- 11. more spaces than a fixed table holds -----------------------------------------
# 1,100 spaces, one commit into each. Either all work, or those beyond a
# limit are refused with 54000; the workers never exit over it, every
# accepted row is stored, and the other spaces are untouched. Not repaired:
# a restart with all of them in the catalog follows.
# Start from a quiet pipeline: the bulk loads above are linked.
$dropped = run_as($node, 'alice', q{SELECT engram.drop_space('alice_wide'); SELECT engram.drop_space('alice_mixed');});
diag("alice could not drop alice_wide, alice_mixed: $dropped->{err}") if $dropped->{state} ne '00000';
$node->poll_query_until('postgres', q{SELECT level = 'normal' FROM engram.pressure()})
  or diag('the pipeline did not come back to normal pressure');
begin_group('1,100 spaces');
my $many = join('', map { "SELECT engram.create_space('many_$_', 4, 'l2');\n" } 1 .. 1100)
  . join('', map { "SELECT engram.observe('many_$_', '{$_,1,2,3}');\n" } 1 .. 1100);
my $file = write_script($node, $many);
my ($many_out, $many_err) = ('', '');
IPC::Run::run(
	[
		'psql', '-X', '-q', '-v', 'VERBOSITY=verbose', '-d', $node->connstr('postgres'), '-U', 'tenant',
		'-f', $file
	],
	'<', '/dev/null', '>', \$many_out, '2>', \$many_err, IPC::Run::timeout(900));
my %many_states;
$many_states{$1}++ while $many_err =~ /ERROR:  ([0-9A-Z]{5}):/g;
my @other_states = grep { $_ ne '54000' } sort keys %many_states;
is("@other_states", '', 'creating and observing into 1,100 spaces fails only with 54000, if at all')
  or diag(substr($many_err, 0, 600));
my $observed_many = query(
	q{SELECT count(DISTINCT space_id) FROM engram.observations o JOIN engram.space_catalog c USING (space_id)
	  WHERE c.name LIKE 'many\_%'});
my $many_exits = scalar(engram_worker_exits($node, $group_offset));
my $many_stored = query('SELECT engram.wait_stored(60000)');
push @findings,
  sprintf('%s %-62s -> %-17s -> %s', (@other_states || $many_exits || $many_stored ne 't' ? 'FAIL' : 'ok  '),
	'1,100 spaces, one observation each [tenant]', '00000|54000',
	(join(',', map { "$_ x $many_states{$_}" } sort keys %many_states) || "all $observed_many accepted")
	  . ", $many_exits worker exits, workers caught up: $many_stored");
end_group('1,100 spaces', no_repair => 1);
eval { $bystander->quit };

# --- 12. a restart with more than 1,024 spaces in the catalog -----------------------------
$node->restart;
ok(wait_serving($node, 'alice_space', $cue8, 10, 120), 'after a restart with 1,100 more spaces, recall answers');
is(recall_signature('alice_space', $cue8), $baseline{alice_space}, 'and alice\'s recall is unchanged');
is(recall_signature('bob_space', $cue16), $baseline{bob_space}, 'and bob\'s recall is unchanged');
my $last_many = query(
	q{SELECT c.name FROM engram.space_catalog c JOIN engram.observations o USING (space_id)
	  WHERE c.name LIKE 'many\_%' ORDER BY c.space_id DESC LIMIT 1});
is(query("SELECT count(*) FROM engram.recall('$last_many', '{1,1,2,3}', 5)"),
	'1', "the last of the many spaces ($last_many) recalls its row after the restart");
query(q{SELECT engram.drop_space(name) FROM engram.space_catalog
	WHERE name LIKE 'many\_%'});
ok(query('SELECT engram.wait_stored(120000)') eq 't', 'the many spaces are dropped');

# --- 13. the database owner's search_path against the workers -------------------------
# dbowner owns the workers' database and sets its search_path to a schema with
# its own = and BETWEEN operators, whose function tries to make dbowner
# superuser whenever something other than a client backend runs it. After a
# restart the workers reload every space and read a spilled transaction back
# from the table; none of that may run the operators, and dbowner must not
# have become superuser.
my $evil = run_as($node, 'dbowner', <<'SQL');
CREATE SCHEMA evil;
CREATE TABLE evil.ran (who name, backend text);
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT INSERT ON evil.ran TO PUBLIC;
-- Acts once per process, so that the operators stay cheap.
CREATE FUNCTION evil.note() RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
	kind text;
BEGIN
	IF coalesce(current_setting('evil.seen', true), '') <> '' THEN
		RETURN;
	END IF;
	kind := (SELECT backend_type FROM pg_stat_activity WHERE pid OPERATOR(pg_catalog.=) pg_backend_pid());
	PERFORM set_config('evil.seen', coalesce(kind, 'unknown'), false);
	IF kind IS DISTINCT FROM 'client backend' THEN
		INSERT INTO evil.ran VALUES (current_user, kind);
		BEGIN
			EXECUTE 'ALTER ROLE dbowner SUPERUSER';
		EXCEPTION WHEN OTHERS THEN
			NULL;
		END;
	END IF;
END $$;
CREATE FUNCTION evil.eq4(a int4, b int4) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM evil.note(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.ge8(a int8, b int8) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM evil.note(); RETURN a OPERATOR(pg_catalog.>=) b; END $$;
CREATE FUNCTION evil.le8(a int8, b int8) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
	AS $$ BEGIN PERFORM evil.note(); RETURN a OPERATOR(pg_catalog.<=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = evil.eq4);
CREATE OPERATOR evil.>= (LEFTARG = int8, RIGHTARG = int8, FUNCTION = evil.ge8);
CREATE OPERATOR evil.<= (LEFTARG = int8, RIGHTARG = int8, FUNCTION = evil.le8);
ALTER DATABASE postgres SET search_path = evil, pg_catalog, public;
SQL
is($evil->{state}, '00000', 'the database owner set the database\'s search_path to its own operators')
  or diag($evil->{err});
$node->restart;
ok(wait_serving($node, 'alice_space', $cue8, 10), 'after the restart, recall answers');
my $spill = run_as($node, 'alice', q{SELECT engram.create_space('alice_spill', 32, 'l2');
	SELECT engram.observe_batch('alice_spill', array_fill(0.25::real, ARRAY[9000, 32]));});
is($spill->{state}, '00000', 'alice commits a transaction that spills to id ranges') or diag($spill->{err});
ok(query('SELECT engram.wait_stored(120000)') eq 't', 'the spilled transaction was read back and stored');
my $rolsuper = query(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'});
is($rolsuper, 'f', 'the database owner did not become superuser');
my $ran = query(q{SELECT coalesce(string_agg(DISTINCT backend || ' as ' || who, ', '), '') FROM evil.ran});
is($ran, '', 'no engram worker (nor any other background process) ran the owner\'s operators');
push @findings, sprintf('%s %-62s -> %-17s -> %s', ($rolsuper eq 'f' && $ran eq '' ? 'ok  ' : 'FAIL'),
	'database search_path + restart against the workers [dbowner]', 'not superuser',
	"rolsuper=$rolsuper, operators run by: " . ($ran || 'nobody'));
# A worker that ran the operators may hold dbowner's catalog row until its
# transaction ends: stop everything before undoing the escalation.
query('ALTER DATABASE postgres RESET search_path');
$node->stop('immediate');
$node->start;
query('ALTER ROLE dbowner NOSUPERUSER');
query('DROP SCHEMA evil CASCADE');
ok(wait_serving($node, 'alice_space', $cue8, 10, 120), 'after undoing the search_path, recall answers');
is(recall_signature('alice_space', $cue8), $baseline{alice_space}, 'alice\'s recall is unchanged after it all');

# --- 14. reinstall ------------------------------------------------------------------------
# DROP EXTENSION + CREATE EXTENSION: a new space (it gets alice_space's old id)
# starts empty, and new ids (the sequence starts over) never meet old entries.
my $reinstall_offset = log_offset($node);
is(query('DROP EXTENSION engram CASCADE'), '', 'DROP EXTENSION engram CASCADE');
is(query('CREATE EXTENSION engram'), '', 'CREATE EXTENSION engram again');
my $fresh = query(q{SELECT engram.create_space('fresh', 8, 'l2')});
note("the reinstalled extension's first space has id $fresh");
my $stale = query("SELECT count(*) FROM engram.recall('fresh', '$cue8', 50)");
is($stale, '0', 'a new space after a reinstall recalls nothing before its first observation');
query("SELECT engram.observe_batch('fresh', (SELECT array_agg($vec8) FROM generate_series(1, 30) g))");
ok(query('SELECT engram.wait_stored(60000)') eq 't', 'the reinstalled extension stores');
my $after = query(
	qq{SELECT count(*) || ' rows, ' || count(DISTINCT r.id) || ' distinct, ' || count(o.id) || ' in the table'
	   FROM engram.recall('fresh', '$cue8', 50) r LEFT JOIN engram.observations o ON o.id = r.id});
is($after, '30 rows, 30 distinct, 30 in the table', 'recall after the reinstall returns exactly the 30 new rows, each once');
is(scalar(server_crashes($node, $reinstall_offset)), 0, 'reinstall: no server process died');
push @findings, sprintf('%s %-62s -> %-17s -> %s', ($stale eq '0' && $after =~ /^30 rows, 30 distinct, 30/ ? 'ok  ' : 'FAIL'),
	'DROP/CREATE EXTENSION, new space, 30 rows [superuser]', '0 stale, 30 own',
	"before observing: $stale rows; after: $after");

diag("attack outcomes:\n" . join("\n", @findings));
done_testing();
