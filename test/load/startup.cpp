// Start-up mode of the load client: how long after the postmaster starts a
// server answers recalls, has every space linked, and answers at the latency
// it had before the restart. It is the client of the start-up benchmark
// (graph files against relinking from the table).
//
// The benchmark notes the wall-clock time just before it starts the server
// (--since, nanoseconds since the epoch) and launches this mode at once; every
// time reported counts from there. One client connects as soon as the server
// lets it (trying every 10 ms) and sends recalls back to back, cycling through
// the queries; while the workers load, recalls are refused with SQLSTATE 53E01
// and sent again 5 ms later. With --wait-linked, a second connection samples
// engram.spaces every 50 ms until every space has linked all its observations
// and they add up to --rows.
//
// Normal latency: the first 20 consecutive answers whose median is within
// 1.5x of --baseline-ms (the p50 of the same recalls before the restart); the
// time reported is when the last of them returned. The run ends --settle
// seconds after both that and the linking, or after --seconds, and reports the
// latency of the answers before the linking finished and of those after.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "support/fvecs.hpp"
#include "pg_client.hpp"

namespace engram_load {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int k_normal_window = 20;
constexpr double k_normal_factor = 1.5;
constexpr double k_never = -1;

// Converts --since into the steady clock, so that intervals stay monotonic.
Clock::time_point
start_of(const Options &o)
{
	const auto steady_now = Clock::now();
	if (o.since_ns == 0)
		return steady_now;
	const auto wall_now = std::chrono::system_clock::now().time_since_epoch();
	return steady_now - std::chrono::duration_cast<Clock::duration>(wall_now - std::chrono::nanoseconds(o.since_ns));
}

// A connection as soon as the server accepts one; nullptr at the deadline.
PGconn *
connect_when_up(const Options &o, Clock::time_point deadline)
{
	for (;;) {
		PGconn *c = PQconnectdb(o.conninfo.c_str());
		if (PQstatus(c) == CONNECTION_OK)
			return c;
		PQfinish(c);
		if (Clock::now() >= deadline)
			return nullptr;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
}

struct Answer {
	double at_ms;      // when it returned, since the start
	double latency_ms; // as the client saw it
};

std::string
percentiles(std::vector<double> ms)
{
	if (ms.empty())
		return "calls=0";
	std::sort(ms.begin(), ms.end());
	const auto at = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * ms.size()))]; };
	char out[128];
	std::snprintf(out, sizeof out, "calls=%zu p50=%.3f p99=%.3f max=%.3f", ms.size(), at(0.5), at(0.99), ms.back());
	return out;
}

std::string
milliseconds(double ms)
{
	return ms == k_never ? "never" : std::to_string(static_cast<long long>(ms + 0.5));
}

} // namespace

int
run_startup(const Options &o)
{
	if (o.fvecs.empty())
		die("--mode startup needs --fvecs with the queries");
	if (o.seconds <= 0)
		die("--mode startup needs --seconds, the longest it waits");
	engram::core::Matrix<float> queries;
	if (const std::string error = engram::core::read_fvecs(o.fvecs, queries); !error.empty())
		die(error);
	std::vector<std::string> cues(queries.rows());
	for (std::size_t q = 0; q < cues.size(); ++q)
		cues[q] = binary_real_array(queries.row(q).data(), 0, static_cast<int>(queries.dim));
	const auto started = start_of(o);
	const auto deadline =
		Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
	const auto since_start = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - started).count(); };

	PGconn *conn = connect_when_up(o, deadline);
	if (conn == nullptr)
		die("the server did not accept a connection within --seconds");
	const double connected_ms = since_start();

	std::atomic<double> linked_ms{o.wait_linked ? k_never : connected_ms};
	std::atomic<bool> stop{false};
	std::thread watcher;
	if (o.wait_linked)
		watcher = std::thread([&] {
			PGconn *c = connect_when_up(o, deadline);
			const std::string sql = "SELECT coalesce(bool_and(linked = observations), true) AND "
									"coalesce(sum(observations), 0) >= " +
									std::to_string(o.rows) + " FROM engram.spaces";
			while (c != nullptr && !stop.load()) {
				PGresult *r = PQexec(c, sql.c_str());
				const bool linked = PQresultStatus(r) == PGRES_TUPLES_OK && std::strcmp(PQgetvalue(r, 0, 0), "t") == 0;
				PQclear(r);
				if (linked) {
					linked_ms = since_start();
					break;
				}
				std::this_thread::sleep_for(std::chrono::milliseconds(50));
			}
			PQfinish(c);
		});

	const Oid types[3] = {25, 1021, 23};
	PGresult *prepared = PQprepare(conn, "recall", o.sql.c_str(), 3, types);
	if (PQresultStatus(prepared) != PGRES_COMMAND_OK)
		die(PQerrorMessage(conn));
	PQclear(prepared);
	const std::string k = std::to_string(o.k);
	const double threshold_ms = o.baseline_ms * k_normal_factor;
	std::vector<Answer> answers;
	std::vector<double> window;
	long refused = 0;
	double normal_ms = o.baseline_ms > 0 ? k_never : connected_ms;
	for (std::size_t i = 0;; ++i) {
		const double now = since_start();
		const double linked = linked_ms.load();
		if (linked != k_never && normal_ms != k_never && now >= std::max(linked, normal_ms) + o.settle * 1000)
			break;
		if (Clock::now() >= deadline)
			break;
		const std::size_t q = i % cues.size();
		const char *values[3] = {o.space.c_str(), cues[q].data(), k.c_str()};
		const int lengths[3] = {0, static_cast<int>(cues[q].size()), 0};
		const int formats[3] = {0, 1, 0};
		const auto sent = Clock::now();
		PGresult *r = PQexecPrepared(conn, "recall", 3, values, lengths, formats, 0);
		const double latency = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			if (state == nullptr || std::strcmp(state, "53E01") != 0)
				die(PQerrorMessage(conn));
			PQclear(r);
			refused++;
			window.clear();
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
			continue;
		}
		PQclear(r);
		answers.push_back({since_start(), latency});
		if (normal_ms == k_never) {
			window.push_back(latency);
			if (window.size() > k_normal_window)
				window.erase(window.begin());
			if (window.size() == k_normal_window) {
				std::vector<double> sorted = window;
				std::nth_element(sorted.begin(), sorted.begin() + k_normal_window / 2, sorted.end());
				if (sorted[k_normal_window / 2] <= threshold_ms)
					normal_ms = answers.back().at_ms;
			}
		}
	}
	stop = true;
	if (watcher.joinable())
		watcher.join();
	PQfinish(conn);

	const double linked = linked_ms.load();
	std::vector<double> before_linked, after;
	for (const Answer &a : answers) {
		if (linked == k_never || a.at_ms < linked)
			before_linked.push_back(a.latency_ms);
		else if (a.at_ms >= std::max(linked, normal_ms))
			after.push_back(a.latency_ms);
	}
	std::printf("mode=startup connected_ms=%s first_answer_ms=%s first_latency_ms=%.3f refused=%ld linked_ms=%s "
				"normal_ms=%s baseline_p50=%.3f\n",
				milliseconds(connected_ms).c_str(), answers.empty() ? "never" : milliseconds(answers[0].at_ms).c_str(),
				answers.empty() ? 0.0 : answers[0].latency_ms, refused, milliseconds(linked).c_str(),
				milliseconds(normal_ms).c_str(), o.baseline_ms);
	std::printf("answers before linked: %s\n", percentiles(before_linked).c_str());
	std::printf("answers after linked and normal: %s\n", percentiles(after).c_str());
	return 0;
}

} // namespace engram_load
