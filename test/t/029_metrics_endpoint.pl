# The metrics endpoint (engram.metrics_address) scraped by a real Prometheus
# server on loopback while clients ingest into three spaces and recall.
# First the endpoint itself: it serves what engram.metrics() shows at
# /metrics, refuses other requests, outlives a client that stalls, refuses a
# malformed address, and a second server whose port is taken keeps running
# and binds once the port is free. Then Prometheus (Debian's `prometheus`,
# installed by test/scripts/engram.sh; skipped when absent) scrapes it every
# second: its HTTP API must show a positive ingest rate, a recall latency
# quantile, and per-space gauges equal to engram.spaces; and every query of
# the Grafana dashboard in docs/monitoring/ must name metrics the endpoint
# emits and return data.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use HTTP::Tiny;
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $address = "127.0.0.1:$port";
my $node = engram_node('endpoint', 'engram.metrics_address' => "'$address'");
my $http = HTTP::Tiny->new(timeout => 30);

# The endpoint starts with the server; wait until it answers.
my $response;
for (1 .. 100)
{
	$response = $http->get("http://$address/metrics");
	last if $response->{status} == 200;
	usleep(100_000);
}
is($response->{status}, 200, 'GET /metrics answers 200');
like($response->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'in the text exposition format 0.0.4');

# The families and their types, from an exposition's TYPE lines.
sub families
{
	my ($text) = @_;
	return { map { /^# TYPE (\S+) (\S+)$/ ? ($1 => $2) : () } split /\n/, $text };
}
my $served = families($response->{content});
is_deeply($served, families($node->safe_psql('postgres', 'SELECT engram.metrics()')),
	'it serves the families engram.metrics() shows, with the same types');
ok(exists $served->{$_}, "it serves $_")
  for qw(engram_streaming_observations_total engram_streaming_queue_depth engram_streaming_worker_utilization
  engram_streaming_backpressure_activations_total engram_streaming_observation_latency_seconds
  engram_streaming_recall_latency_seconds);

is($http->get("http://$address/")->{status}, 404, 'another path is not found');
my $post = $http->post_form("http://$address/metrics", {});
is($post->{status}, 405, 'POST is not allowed');
is($post->{headers}{allow}, 'GET, HEAD', 'and the answer says what is');
my $head = $http->head("http://$address/metrics");
is($head->{status}, 200, 'HEAD /metrics answers 200');
is($head->{content} // '', '', 'without a body');

# A client that connects and says nothing holds the endpoint for its timeout
# at most: a scrape behind it is still answered.
my $staller = IO::Socket::INET->new(PeerAddr => $address, Proto => 'tcp') or die "cannot connect: $!";
is($http->get("http://$address/metrics")->{status}, 200, 'a stalled client does not keep a scrape from its answer');
close $staller;

# A malformed address is refused with a reason.
my ($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET engram.metrics_address = '::1:9188'");
isnt($ret, 0, 'ALTER SYSTEM refuses an address that is not host:port');
like($err, qr/must be empty \(no endpoint\) or "host:port"/, 'and says what it takes');

# A second server configured for the same address runs without its
# endpoint, says why once, and binds when the port is freed.
my $second = engram_node('taken', 'engram.metrics_address' => "'$address'");
my $taken_line = qr/engram metrics endpoint cannot listen on "\Q$address\E"/;
my $complaints = 0;
for (1 .. 100)
{
	$complaints = () = slurp_file($second->logfile) =~ /$taken_line/g;
	last if $complaints;
	usleep(100_000);
}
is($complaints, 1, 'the second server says once that the address is taken');
$second->safe_psql('postgres', "SELECT engram.create_space('second', 2, 'l2'); SELECT engram.observe('second', '{1,2}')");
ok(wait_stored($second), 'and its engram works without the endpoint');
$node->stop;
my $moved;
for (1 .. 300)
{
	$moved = slurp_file($second->logfile) =~ /engram metrics endpoint listening on/;
	last if $moved;
	usleep(100_000);
}
ok($moved, 'once the first server stops, the second binds the address');
my $spaces_seen = $http->get("http://$address/metrics")->{content} // '';
like($spaces_seen, qr/^engram_space_observations\{space="second"\} 1$/m, 'and serves its own metrics');
is(scalar(() = slurp_file($second->logfile) =~ /$taken_line/g), 1, 'having complained only once');
$second->stop;
$node->start;

SKIP:
{
	my ($prometheus) = grep { -x } map { "$_/prometheus" } split /:/, $ENV{PATH};
	skip 'prometheus is not installed (test/scripts/engram.sh installs it)', 1 unless $prometheus;

	my $web = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
	my $dir = $node->basedir . '/prometheus';
	my $rules = "$FindBin::Bin/../../docs/monitoring/engram-alerts.yml";
	mkdir $dir;
	open my $config, '>', "$dir/prometheus.yml" or die $!;
	print $config <<"EOF";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: engram
    static_configs:
      - targets: ['$address']
rule_files:
  - '$rules'
EOF
	close $config;
	my $prometheus_log = "$dir/prometheus.log";
	my $server = IPC::Run::start(
		[
			$prometheus, "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/data",
			"--web.listen-address=$web", '--log.level=warn'
		],
		'>', $prometheus_log, '2>&1');

	my $ready = 0;
	for (1 .. 300)
	{
		$ready = $http->get("http://$web/-/ready")->{status} == 200;
		last if $ready;
		usleep(100_000);
	}
	ok($ready, 'Prometheus is up');

	# An instant query's vector: [[labels, value], ...]; undef on an error.
	my $query = sub {
		my ($promql) = @_;
		my $answer = $http->get("http://$web/api/v1/query?" . $http->www_form_urlencode({ query => $promql }));
		return undef unless $answer->{status} == 200;
		my $body = decode_json($answer->{content});
		return undef unless $body->{status} eq 'success';
		return [ map { [ $_->{metric}, $_->{value}[1] ] } @{ $body->{data}{result} } ];
	};
	# Polls $promql until $accept takes its vector (up to 90 s); the last vector.
	my $poll = sub {
		my ($promql, $accept) = @_;
		my $vector;
		for (1 .. 180)
		{
			$vector = $query->($promql);
			return $vector if $vector && $accept->($vector);
			usleep(500_000);
		}
		return $vector;
	};

	# Clients: three spaces fed in batches of 20 rows while recalls run, for
	# about 40 seconds.
	$node->safe_psql('postgres', "SELECT engram.create_space('tenant_$_', 8, 'l2')") for 1 .. 3;
	my @clients;
	for my $s (1 .. 3)
	{
		my $sql = '';
		$sql .= "SELECT engram.observe_batch('tenant_$s', "
		  . "(SELECT array_agg(ARRAY[random(), random(), random(), random(), random(), random(), random(), random()]::real[]) "
		  . "FROM generate_series(1, 20)));\nSELECT pg_sleep(0.05);\n"
		  for 1 .. 600;
		push @clients, (start_psql_script($node, $sql))[0];
	}
	my $recalls = "SELECT count(*) FROM engram.recall('tenant_1', '{0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5}', 10);\n"
	  . "SELECT pg_sleep(0.02);\n";
	push @clients, (start_psql_script($node, $recalls x 2500))[0];

	my $rate = $poll->(
		'sum(rate(engram_streaming_observations_total[10s]))',
		sub { @{ $_[0] } && $_[0][0][1] > 0 });
	cmp_ok($rate && @$rate ? $rate->[0][1] : 0, '>', 0, 'rate(engram_streaming_observations_total) > 0');
	my $quantile = $poll->(
		'histogram_quantile(0.99, sum by (le) (rate(engram_streaming_recall_latency_seconds_bucket[10s])))',
		sub { @{ $_[0] } && $_[0][0][1] =~ /^[0-9.e+-]+$/ });
	ok($quantile && @$quantile && $quantile->[0][1] =~ /^[0-9.e+-]+$/,
		'histogram_quantile(0.99) of the recall latency is a number ('
		  . ($quantile && @$quantile ? $quantile->[0][1] : 'none') . ')');

	# Every query of the dashboard names metrics the endpoint emits and
	# returns data while the clients run (Grafana's variables replaced).
	my $dashboard = decode_json(slurp_file("$FindBin::Bin/../../docs/monitoring/engram-dashboard.json"));
	my @queries = map { map { $_->{expr} } @{ $_->{targets} } } @{ $dashboard->{panels} };
	cmp_ok(scalar(@queries), '>=', 8, 'the dashboard has queries (' . scalar(@queries) . ')');
	my $families = families($http->get("http://$address/metrics")->{content});
	for my $promql (@queries)
	{
		my @names = $promql =~ /\b(engram_[a-z0-9_]+)/g;
		my @unknown = grep {
			my $family = $_;
			$family =~ s/_(bucket|sum|count)$// if !exists $families->{$family};
			!exists $families->{$family}
		} @names;
		ok(@names && !@unknown, "dashboard query names emitted metrics: $promql");
		(my $instant = $promql) =~ s/\$__rate_interval/10s/g;
		$instant =~ s/\$space/.*/g;
		my $vector = $poll->($instant, sub { scalar @{ $_[0] } });
		ok($vector && @$vector, "and returns data: $instant");
	}

	# The alerting rules: promtool accepts them, they name emitted metrics,
	# and Prometheus evaluates each without an error.
	my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
	my $checked = '';
	my $accepted = $promtool && IPC::Run::run([ $promtool, 'check', 'rules', $rules ], '>', \$checked, '2>&1');
	ok($accepted, "promtool check rules accepts docs/monitoring/engram-alerts.yml: $checked");
	my @alerts;
	for (1 .. 60)
	{
		my $answer = decode_json($http->get("http://$web/api/v1/rules")->{content});
		@alerts = map { @{ $_->{rules} } } @{ $answer->{data}{groups} };
		last if @alerts && !grep { !$_->{lastEvaluation} || $_->{lastEvaluation} =~ /^0001-/ } @alerts;
		usleep(500_000);
	}
	cmp_ok(scalar(@alerts), '>=', 8, 'Prometheus loaded the alerting rules (' . scalar(@alerts) . ')');
	for my $alert (@alerts)
	{
		my @names = $alert->{query} =~ /\b(engram_[a-z0-9_]+)/g;
		my @unknown = grep {
			my $family = $_;
			$family =~ s/_(bucket|sum|count)$// if !exists $families->{$family};
			!exists $families->{$family}
		} @names;
		ok(!@unknown && $alert->{health} eq 'ok',
			"alert $alert->{name} names emitted metrics and evaluates ($alert->{health}"
			  . ($alert->{lastError} ? ": $alert->{lastError}" : '') . ')');
	}

	$_->finish for @clients;
	ok(wait_stored($node), 'the clients are done and their rows stored');
	$node->safe_psql('postgres', "SELECT engram.wait_linked('tenant_$_')") for 1 .. 3;

	# Per-space gauges equal engram.spaces once Prometheus has scraped the
	# settled state.
	for my $column (qw(observations linked pending memory_bytes))
	{
		my %want = split /[|\n]/,
		  $node->safe_psql('postgres', "SELECT name, $column FROM engram.spaces ORDER BY name");
		my $render = sub { join ', ', map { "$_=$_[0]{$_}" } sort keys %{ $_[0] } };
		my $got = {};
		$poll->(
			"engram_space_$column",
			sub {
				$got = { map { $_->[0]{space} => $_->[1] } @{ $_[0] } };
				return $render->($got) eq $render->(\%want);
			});
		is($render->($got), $render->(\%want), "engram_space_$column in Prometheus equals engram.spaces");
	}

	$server->signal('TERM');
	$server->finish;
}

done_testing();
