// Recall mode of the load client: clients send engram.recall through SQL (a
// prepared statement with the cue as a binary real[]; --sql sends another
// statement with the same parameters, such as a peer's query) and the run reports
// queries per second and the latency of each call as the client sees it
// (p50/p90/p99/p99.9/max), and, given the ground truth, recall@k. With --rate,
// call i is not sent before i / rate seconds after its client connected, so that the
// clients together ask a fixed number of recalls a second (a call behind its
// time goes at once; its latency counts from when it was sent, and the report
// says how many were late by more than a millisecond).
//
// Ground truth names rows of the base file the space was loaded from, and
// the ingest mode stored row i with content = i, so the run maps the
// observation ids it gets back to rows through engram.observations first.
//
// With --target pgvector the statement asks engram_bench.vectors (filled by
// the ingest modes with id = row index) with --metric's operator unless --sql
// is given, ids are rows, and --ef sets hnsw.ef_search instead of
// engram.ef_search.
//
// With --seconds and --truth, the run goes on past the deadline until every
// query has been answered once, so that recall is scored over all of them.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "support/fvecs.hpp"
#include "pg_client.hpp"

namespace engram_load {

namespace {

using Clock = std::chrono::steady_clock;

std::unordered_map<long long, std::int32_t>
rows_by_id(PGconn *admin, const Options &o)
{
	const std::string sql = "SELECT o.id, o.content FROM engram.observations o JOIN engram.space_catalog c "
							"USING (space_id) WHERE c.name = " +
							quote_literal(admin, o.space) + " AND o.content ~ '^[0-9]+$'";
	PGresult *r = PQexec(admin, sql.c_str());
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die(PQerrorMessage(admin));
	std::unordered_map<long long, std::int32_t> rows;
	for (int i = 0; i < PQntuples(r); ++i)
		rows.emplace(std::stoll(PQgetvalue(r, i, 0)), std::stoi(PQgetvalue(r, i, 1)));
	PQclear(r);
	return rows;
}

} // namespace

int
run_recall(const Options &o)
{
	if (o.fvecs.empty())
		die("--mode recall needs --fvecs with the queries");
	engram::core::Matrix<float> queries;
	if (const std::string error = engram::core::read_fvecs(o.fvecs, queries); !error.empty())
		die(error);
	const std::size_t n = queries.rows();
	const bool pgvector = o.target == "pgvector";
	if (o.target != "engram" && !pgvector)
		die("--target must be engram or pgvector");
	const std::string statement = pgvector && o.sql == Options{}.sql
									  ? "SELECT id FROM engram_bench.vectors ORDER BY embedding " +
											pgvector_operator(o.metric) + " $2::public.vector LIMIT $3"
									  : o.sql;
	const std::string ef_setting = pgvector ? "hnsw.ef_search" : "engram.ef_search";
	PGconn *admin = connect(o);
	std::unordered_map<long long, std::int32_t> rows;
	engram::core::Matrix<std::int32_t> truth;
	if (!o.truth.empty()) {
		if (const std::string error = engram::core::read_ivecs(o.truth, truth); !error.empty())
			die(error);
		if (!pgvector)
			rows = rows_by_id(admin, o);
	}
	std::vector<std::string> cues(n);
	for (std::size_t q = 0; q < n; ++q)
		cues[q] = binary_real_array(queries.row(q).data(), 0, static_cast<int>(queries.dim));

	// found[q]: the rows of query q's first answer (k_no_row where unknown).
	constexpr std::uint32_t k_no_row = UINT32_MAX;
	std::vector<std::uint32_t> found(n * o.k, k_no_row);
	std::mutex merge;
	std::vector<double> micros;
	std::atomic<long> calls{0}, late{0};
	const auto started = Clock::now();
	const auto deadline =
		started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
	std::vector<std::thread> clients;
	for (int c = 0; c < o.clients; ++c)
		clients.emplace_back([&, c] {
			PGconn *conn = connect(o);
			if (o.ef > 0)
				exec_ok(conn, "SET " + ef_setting + " = " + std::to_string(o.ef));
			const Oid types[3] = {25, 1021, 23};
			PGresult *prepared = PQprepare(conn, "recall", statement.c_str(), 3, types);
			if (PQresultStatus(prepared) != PGRES_COMMAND_OK)
				die(PQerrorMessage(conn));
			PQclear(prepared);
			const std::string k = std::to_string(o.k);
			const auto paced_from = Clock::now(); // --rate: the schedule starts once connected
			std::vector<double> mine;
			std::vector<std::pair<std::size_t, std::vector<long long>>> answers;
			for (std::size_t i = c;; i += o.clients) {
				const bool pass_done = i >= n;
				if (o.seconds > 0 ? Clock::now() >= deadline && (o.truth.empty() || pass_done) : pass_done)
					break;
				const std::size_t q = i % n;
				if (o.rate > 0) {
					const auto due = paced_from + std::chrono::duration_cast<Clock::duration>(
													  std::chrono::duration<double>(static_cast<double>(i) / o.rate));
					if (Clock::now() > due + std::chrono::milliseconds(1))
						late++;
					std::this_thread::sleep_until(due);
					if (o.seconds > 0 && Clock::now() >= deadline && (o.truth.empty() || pass_done))
						break;
				}
				const char *values[3] = {o.space.c_str(), cues[q].data(), k.c_str()};
				const int lengths[3] = {0, static_cast<int>(cues[q].size()), 0};
				const int formats[3] = {0, 1, 0};
				const auto sent = Clock::now();
				PGresult *r = PQexecPrepared(conn, "recall", 3, values, lengths, formats, 0);
				mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
				if (PQresultStatus(r) != PGRES_TUPLES_OK)
					die(PQerrorMessage(conn));
				if (i < n) {
					std::vector<long long> ids;
					for (int t = 0; t < PQntuples(r); ++t)
						ids.push_back(std::stoll(PQgetvalue(r, t, 0)));
					answers.emplace_back(q, std::move(ids));
				}
				PQclear(r);
			}
			PQfinish(conn);
			std::lock_guard lock(merge);
			calls += static_cast<long>(mine.size());
			micros.insert(micros.end(), mine.begin(), mine.end());
			for (auto &[q, ids] : answers) {
				for (std::size_t t = 0; t < ids.size() && t < static_cast<std::size_t>(o.k); ++t) {
					if (pgvector) {
						found[q * o.k + t] = static_cast<std::uint32_t>(ids[t]);
						continue;
					}
					const auto row = rows.find(ids[t]);
					found[q * o.k + t] = row == rows.end() ? k_no_row : static_cast<std::uint32_t>(row->second);
				}
			}
		});
	for (auto &t : clients)
		t.join();
	const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
	if (micros.empty())
		die("no recall was sent");
	std::sort(micros.begin(), micros.end());
	const auto ms = [&](double p) {
		return micros[std::min(micros.size() - 1, static_cast<std::size_t>(p * micros.size()))] / 1000.0;
	};
	std::printf("mode=recall space=%s clients=%d k=%d ef=%s calls=%ld seconds=%.2f qps=%.0f "
				"latency_ms p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f",
				o.space.c_str(), o.clients, o.k, o.ef > 0 ? std::to_string(o.ef).c_str() : "default", calls.load(),
				seconds, calls.load() / seconds, ms(0.5), ms(0.9), ms(0.99), ms(0.999), micros.back() / 1000.0);
	if (o.rate > 0)
		std::printf(" offered_qps=%g late_calls=%ld", o.rate, late.load());
	if (!o.truth.empty())
		std::printf(" recall@%d=%.4f", o.k, engram::core::recall_at_k(truth, found, static_cast<std::uint32_t>(o.k)));
	std::printf("\n");
	PQfinish(admin);
	return 0;
}

} // namespace engram_load
