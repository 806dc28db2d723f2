// The data of the filtered-recall and forgetting benchmarks (issue 11): the
// base and query vectors of a data set (glove100), metadata and observation
// times made up for every row from a fixed seed, the filters the queries are
// asked with, and the exact filtered top-k by brute force, against which both
// engram and pgvector are scored.
//
// Row r gets metadata {"user": "u<t>", "category": "<c>"} and an observed_at:
//   category  c50, c10, c1 and c01 hold exactly 50%, 10%, 1% and 0.1% of the
//             rows (rounded), the rest is "other": a random permutation of the
//             rows is cut into those shares
//   user      one of --tenants users (10,000), drawn uniformly per row, so a
//             user holds a Poisson number of rows (mean rows / tenants)
//   observed  uniform over 1,000 days from 2025-01-01 UTC, to the second
// A query for a user asks for the user of a random row (so the user has at
// least one row); a time window is 100 days starting on a random second of the
// first 900 (about 10% of the rows).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/fvecs.hpp"

namespace engram_load {

struct Options;

enum class FilterKind : std::uint8_t { none, category, user, window };

// One way of asking every query: what a row must match.
struct FilterCase {
	std::string name; // for the report, e.g. "category 1%"
	FilterKind kind;
	int category = 0; // FilterKind::category: index into FilterData::categories
};

// What one query of one case sends besides the cue: a jsonb filter and a time
// window; empty strings stand for SQL NULL.
struct QueryFilter {
	std::string json, after, before;
};

class FilterData {
public:
	explicit FilterData(const Options &o);

	std::size_t rows() const { return base_.rows(); }
	std::size_t queries() const { return queries_.rows(); }
	int dim() const { return static_cast<int>(base_.dim); }
	const float *row(std::size_t r) const { return base_.row(r).data(); }
	const float *query(std::size_t q) const { return queries_.row(q).data(); }

	// The filter cases of the benchmark: no filter, each category, a user, a window.
	const std::vector<FilterCase> &cases() const { return cases_; }
	QueryFilter filter_of(const FilterCase &c, std::size_t query) const;
	bool matches(const FilterCase &c, std::size_t query, std::size_t row) const;

	// The rows a category or user case matches (every row of them), so that
	// the truth need not test each row; nullptr for the other cases.
	const std::vector<std::uint32_t> *rows_of(const FilterCase &c, std::size_t query) const;

	std::string metadata_json(std::size_t row) const;
	std::string observed_at_text(std::size_t row) const;
	std::size_t category_rows(int category) const;

	static constexpr const char *categories[] = {"c50", "c10", "c1", "c01", "other"};

private:
	engram::core::Matrix<float> base_, queries_;
	std::vector<std::uint8_t> category_;
	std::vector<std::uint32_t> user_;
	std::vector<std::int64_t> observed_s_;
	std::vector<std::uint32_t> query_user_;
	std::vector<std::int64_t> query_window_s_;
	std::vector<FilterCase> cases_;
	std::vector<std::vector<std::uint32_t>> rows_by_category_, rows_by_user_;
};

// The exact answer of every query of one case over the rows still alive:
// the nearest min(k, matches) matching rows by cosine distance, and how many
// rows matched.
struct CaseTruth {
	std::vector<std::vector<std::uint32_t>> nearest; // per query, nearest first
	std::vector<std::size_t> matches;                // per query
};

// Brute force over all rows for every query (on every core), then per case
// a selection among the matching live rows. live empty means every row.
std::vector<CaseTruth> exact_truth(const FilterData &data, const std::vector<FilterCase> &cases, int k,
								   const std::vector<char> &live);

} // namespace engram_load
