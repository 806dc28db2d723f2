// What the filtered-recall and forgetting benchmarks do to a server, for
// either system they compare: engram (a space in engram.observations, asked
// through engram.recall with filter, observed_after and observed_before) and
// pgvector (a table engram_bench.items with an HNSW index, asked with ORDER BY
// cosine distance and a WHERE clause on the same jsonb metadata and
// timestamptz). Rows are loaded with COPY and the answers are scored against
// the exact filtered truth of filter_data.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "filter_data.hpp"
#include "pg_client.hpp"

namespace engram_load {

enum class Target : std::uint8_t { engram, pgvector };

using Clock = std::chrono::steady_clock;

inline double
seconds_since(Clock::time_point started)
{
	return std::chrono::duration<double>(Clock::now() - started).count();
}

Target target_of(const Options &o);

// COPY of the given rows (content = row index for engram, id = row index for
// pgvector) from o.clients clients in batches of o.batch; returns the seconds
// it took. engram: into space o.space, which must exist.
double copy_rows(const Options &o, Target target, const FilterData &data, const std::vector<std::uint32_t> &rows);

// Observation or table id -> row of the data set, for the rows now in the table.
std::unordered_map<long long, std::uint32_t> rows_by_id(PGconn *c, const Options &o, Target target);

struct CaseResult {
	std::size_t queries = 0;       // answered (all, unless --case-seconds cut the case short)
	std::size_t expected = 0;      // sum over queries of min(k, matches)
	std::size_t hits = 0;          // returned rows among the exact nearest
	std::size_t short_answers = 0; // queries answered with fewer than min(k, matches) rows
	std::size_t missing_rows = 0;  // rows those answers lacked
	std::size_t foreign_rows = 0;  // rows returned that do not match the filter or are deleted
	std::vector<std::size_t> matches;
	std::vector<double> micros;
	double seconds = 0;
};

// Prepares the statement of a case on c (engram: one statement for every case).
std::string prepare_case(PGconn *c, Target target, const FilterCase &fc);

// Sends every query of the case one after another on c and scores the answers.
CaseResult run_case(PGconn *c, const Options &o, Target target, const FilterData &data, const FilterCase &fc,
					const CaseTruth &truth, const std::unordered_map<long long, std::uint32_t> &rows,
					const std::vector<char> &live);

// One line: label, case, recall@k, short answers, QPS, latency.
void print_case(const std::string &label, const FilterCase &fc, const CaseResult &r, int k);

// engram: the space's row of engram.spaces as "name=value" pairs.
std::string space_figures(PGconn *c, const Options &o);

} // namespace engram_load
