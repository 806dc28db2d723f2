# A database owner who is not a superuser sets the database's search_path to
# a schema of its own whose operators (=, <>, >=, <= on the types engram's
# SQL compares) would make it a superuser when a superuser runs them. The
# workers run as the bootstrap superuser, and superusers' sessions in that
# database get the same search_path; neither may run the owner's code: after
# a restart, ingest (row records and id ranges), sessions, recall, rebuild,
# ownership changes, a drop and a second restart's load, the role is still
# not a superuser and its operators were never called. Last, a call by the
# owner itself shows the trap was armed all along.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

# A small ring, so that a batch of 1,000 128-d rows travels as id ranges,
# which the workers read back from the table with their own SQL.
my $node = engram_node('search_path', 'engram.ring_size' => "'1MB'");
my $dim = 128;

sub batch
{
	my ($space, $rows, $seed) = @_;
	return "SELECT engram.observe_batch('$space', (SELECT array_agg(array_fill((g * 0.001 + $seed)::real, ARRAY[$dim])) "
	  . "FROM generate_series(1, $rows) g))";
}

$node->safe_psql('postgres', "SELECT engram.create_space('victim', $dim, 'l2')");
$node->safe_psql('postgres', batch('victim', 200, 0));
$node->safe_psql(
	'postgres', q{
	CREATE ROLE mallory LOGIN;
	ALTER DATABASE postgres OWNER TO mallory;
	GRANT USAGE ON SCHEMA engram TO mallory;});

sub as_mallory
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'mallory' ]);
}

# The trap: every operator records who called it and, when that is a
# superuser, makes mallory one. Its own body names everything it uses.
as_mallory(
	q{
	CREATE SCHEMA evil;
	CREATE TABLE evil.calls (who name, superuser boolean);
	GRANT USAGE ON SCHEMA evil TO PUBLIC;
	GRANT INSERT ON evil.calls TO PUBLIC;
	DO $do$
	DECLARE
		op record;
	BEGIN
		FOR op IN SELECT * FROM (VALUES ('eq', '=', 'int4'), ('eq', '=', 'int8'), ('eq', '=', 'text'),
										('eq', '=', 'uuid'), ('eq', '=', 'oid'), ('ne', '<>', 'int4'),
										('ge', '>=', 'int8'), ('le', '<=', 'int8'), ('lt', '<', 'int8'))
								 AS o(name, symbol, type) LOOP
			EXECUTE pg_catalog.format($f$
				CREATE FUNCTION evil.%1$s(a %2$s, b %2$s) RETURNS boolean
				LANGUAGE plpgsql SET search_path = pg_catalog AS $b$
				DECLARE
					elevated boolean := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
				BEGIN
					INSERT INTO evil.calls VALUES (current_user, elevated);
					IF elevated THEN
						EXECUTE 'ALTER ROLE mallory SUPERUSER';
					END IF;
					RETURN a %3$s b;
				END $b$$f$, op.name, op.type, op.symbol);
			EXECUTE pg_catalog.format('CREATE OPERATOR evil.%s (FUNCTION = evil.%s, LEFTARG = %s, RIGHTARG = %s)',
									  op.symbol, op.name, op.type, op.type);
		END LOOP;
	END
	$do$;
	ALTER DATABASE postgres SET search_path = evil, pg_catalog;});
$node->restart;

is($node->safe_psql('postgres', 'SHOW search_path'), 'evil, pg_catalog',
	"a superuser's session in the database gets the owner's search_path");

# Everything a superuser does with engram in that database, and everything
# the workers do for it. No operator appears in these statements themselves.
ok(wait_stored($node), 'the workers loaded the spaces after the restart');
$node->safe_psql('postgres', "SELECT engram.create_space('fresh', $dim, 'cosine')");
$node->safe_psql('postgres', batch('fresh', 10, 1));
$node->safe_psql('postgres', batch('victim', 1000, 2));
$node->safe_psql('postgres', "INSERT INTO engram.observations (space_id, embedding)
	SELECT engram._space_id('victim'), array_fill(3::real, ARRAY[$dim])");
my $session = $node->safe_psql('postgres', "SELECT engram.open_session('victim')");
$node->safe_psql(
	'postgres', qq{
	SELECT engram.observe('victim', array_fill(4::real, ARRAY[$dim]), session => '$session', seq => 1);
	SELECT engram.observe('victim', array_fill(4::real, ARRAY[$dim]), session => '$session', seq => 1);
	SELECT engram.close_session('$session');});
ok(wait_stored($node), 'the workers stored row records and id ranges');
is($node->safe_psql('postgres', "SELECT engram.wait_linked('victim', NULL, 120000)"), 't', 'victim is linked');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM engram.recall('victim', array_fill(0.1::real, ARRAY[$dim]), 10)"),
	'10',
	'recall answers');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.stored_ids('victim')"), '1202',
	'victim stores its 1,202 rows');
$node->safe_psql(
	'postgres', q{
	SELECT engram.current_generation('victim');
	SELECT count(*) FROM engram.spaces;
	SELECT count(*) FROM engram.workers;
	SELECT * FROM engram.pressure();
	SELECT engram.rebuild('victim');
	SELECT engram.alter_space_owner('fresh', 'mallory');
	SELECT engram.drop_space('fresh');});
$node->restart;
ok(wait_stored($node), 'the workers loaded the spaces again after a second restart');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.stored_ids('victim')"), '1202',
	'victim stores its 1,202 rows after the reload');

is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'mallory'"),
	'f', 'the database owner never became a superuser');
is($node->safe_psql('postgres', 'SELECT count(*) FROM evil.calls'), '0', "none of the owner's operators ever ran");

# The control: an unqualified = in that database runs the owner's operator.
as_mallory('SELECT 1 = 1');
is($node->safe_psql('postgres', 'SELECT who, superuser FROM evil.calls'), 'mallory|f',
	'the trap was armed: an unqualified = runs it');

done_testing();
