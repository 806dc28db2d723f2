// Metadata, filters and exact filtered truth of the filtered-recall and
// forgetting benchmarks. Everything random comes from std::mt19937_64 with a
// fixed seed and plain modulo draws, so the engram run and the pgvector run
// (separate processes) see the same rows, filters and truth.
#include "filter_data.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <numeric>
#include <random>
#include <thread>

#include "pg_client.hpp"

namespace engram_load {

namespace {

constexpr std::int64_t k_epoch_2025 = 1735689600; // 2025-01-01 00:00:00 UTC
constexpr std::int64_t k_day = 86400;
constexpr std::int64_t k_span_days = 1000;
constexpr std::int64_t k_window_days = 100;
// Shares of the categories c50, c10, c1, c01 in millionths; "other" takes the rest.
constexpr std::int64_t k_category_millionths[] = {500000, 100000, 10000, 1000};

std::string
timestamp_text(std::int64_t seconds_since_2025)
{
	const std::time_t t = static_cast<std::time_t>(k_epoch_2025 + seconds_since_2025);
	std::tm tm{};
	gmtime_r(&t, &tm);
	char out[40];
	std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S+00", &tm);
	return out;
}

// Eight partial sums, so that the compiler can keep them in vector registers
// without reordering one sum (which it may not do without -ffast-math).
float
dot(const float *a, const float *b, int dim)
{
	float lanes[8] = {};
	int d = 0;
	for (; d + 8 <= dim; d += 8)
		for (int l = 0; l < 8; ++l)
			lanes[l] += a[d + l] * b[d + l];
	float s = 0;
	for (; d < dim; ++d)
		s += a[d] * b[d];
	for (float lane : lanes)
		s += lane;
	return s;
}

float
norm_of(const float *v, int dim)
{
	return std::sqrt(dot(v, v, dim));
}

} // namespace

FilterData::FilterData(const Options &o)
{
	if (o.fvecs.empty() || o.queries.empty())
		die("--mode " + o.mode + " needs --fvecs with the base vectors and --queries with the queries");
	if (const std::string error = engram::core::read_fvecs(o.fvecs, base_, static_cast<std::size_t>(o.rows));
		!error.empty())
		die(error);
	if (const std::string error = engram::core::read_fvecs(o.queries, queries_); !error.empty())
		die(error);
	if (base_.dim != queries_.dim)
		die("the base vectors and the queries differ in dimension");
	if (o.tenants < 1)
		die("--tenants must be positive");
	const std::size_t n = base_.rows();
	std::mt19937_64 rng(20261202);

	std::vector<std::uint32_t> order(n);
	std::iota(order.begin(), order.end(), 0u);
	for (std::size_t i = n; i > 1; --i)
		std::swap(order[i - 1], order[rng() % i]);
	category_.assign(n, 4);
	std::size_t at = 0;
	for (int c = 0; c < 4; ++c) {
		const auto share =
			static_cast<std::size_t>((static_cast<std::int64_t>(n) * k_category_millionths[c] + 500000) / 1000000);
		for (std::size_t i = 0; i < share && at < n; ++i)
			category_[order[at++]] = static_cast<std::uint8_t>(c);
	}

	user_.resize(n);
	observed_s_.resize(n);
	rows_by_category_.resize(5);
	rows_by_user_.resize(static_cast<std::size_t>(o.tenants));
	for (std::size_t r = 0; r < n; ++r) {
		user_[r] = static_cast<std::uint32_t>(rng() % static_cast<std::uint64_t>(o.tenants));
		observed_s_[r] = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(k_span_days * k_day));
		rows_by_category_[category_[r]].push_back(static_cast<std::uint32_t>(r));
		rows_by_user_[user_[r]].push_back(static_cast<std::uint32_t>(r));
	}
	const std::size_t nq = queries_.rows();
	query_user_.resize(nq);
	query_window_s_.resize(nq);
	for (std::size_t q = 0; q < nq; ++q) {
		query_user_[q] = user_[rng() % n];
		query_window_s_[q] =
			static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>((k_span_days - k_window_days) * k_day));
	}

	cases_.push_back({"no filter", FilterKind::none});
	const char *shares[] = {"50%", "10%", "1%", "0.1%"};
	for (int c = 0; c < 4; ++c)
		cases_.push_back({std::string("category ") + shares[c], FilterKind::category, c});
	cases_.push_back({"one user of " + std::to_string(o.tenants), FilterKind::user});
	cases_.push_back({"100-day window", FilterKind::window});
}

QueryFilter
FilterData::filter_of(const FilterCase &c, std::size_t query) const
{
	switch (c.kind) {
	case FilterKind::none:
		return {};
	case FilterKind::category:
		return {std::string("{\"category\": \"") + categories[c.category] + "\"}", "", ""};
	case FilterKind::user:
		return {"{\"user\": \"u" + std::to_string(query_user_[query]) + "\"}", "", ""};
	case FilterKind::window:
		return {"", timestamp_text(query_window_s_[query]),
				timestamp_text(query_window_s_[query] + k_window_days * k_day)};
	}
	return {};
}

bool
FilterData::matches(const FilterCase &c, std::size_t query, std::size_t row) const
{
	switch (c.kind) {
	case FilterKind::none:
		return true;
	case FilterKind::category:
		return category_[row] == c.category;
	case FilterKind::user:
		return user_[row] == query_user_[query];
	case FilterKind::window:
		return observed_s_[row] >= query_window_s_[query] &&
			   observed_s_[row] < query_window_s_[query] + k_window_days * k_day;
	}
	return false;
}

const std::vector<std::uint32_t> *
FilterData::rows_of(const FilterCase &c, std::size_t query) const
{
	if (c.kind == FilterKind::category)
		return &rows_by_category_[static_cast<std::size_t>(c.category)];
	if (c.kind == FilterKind::user)
		return &rows_by_user_[query_user_[query]];
	return nullptr;
}

std::string
FilterData::metadata_json(std::size_t row) const
{
	return "{\"user\": \"u" + std::to_string(user_[row]) + "\", \"category\": \"" + categories[category_[row]] + "\"}";
}

std::string
FilterData::observed_at_text(std::size_t row) const
{
	return timestamp_text(observed_s_[row]);
}

std::size_t
FilterData::category_rows(int category) const
{
	return static_cast<std::size_t>(std::count(category_.begin(), category_.end(), category));
}

std::vector<CaseTruth>
exact_truth(const FilterData &data, const std::vector<FilterCase> &cases, int k, const std::vector<char> &live)
{
	const std::size_t n = data.rows(), nq = data.queries();
	const int dim = data.dim();
	std::vector<float> row_norm(n);
	for (std::size_t r = 0; r < n; ++r)
		row_norm[r] = norm_of(data.row(r), dim);
	std::vector<CaseTruth> truth(cases.size());
	for (CaseTruth &t : truth) {
		t.nearest.resize(nq);
		t.matches.resize(nq);
	}
	const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
	std::vector<std::thread> pool;
	for (unsigned t = 0; t < threads; ++t)
		pool.emplace_back([&, t] {
			std::vector<float> distance(n);
			std::vector<std::uint32_t> candidates;
			for (std::size_t q = t; q < nq; q += threads) {
				const float *cue = data.query(q);
				const float cue_norm = norm_of(cue, dim);
				for (std::size_t r = 0; r < n; ++r)
					distance[r] = 1.0f - dot(cue, data.row(r), dim) / (cue_norm * row_norm[r]);
				for (std::size_t c = 0; c < cases.size(); ++c) {
					candidates.clear();
					if (const std::vector<std::uint32_t> *indexed = data.rows_of(cases[c], q)) {
						for (const std::uint32_t r : *indexed)
							if (live.empty() || live[r])
								candidates.push_back(r);
					} else {
						for (std::size_t r = 0; r < n; ++r)
							if ((live.empty() || live[r]) && data.matches(cases[c], q, r))
								candidates.push_back(static_cast<std::uint32_t>(r));
					}
					const std::size_t keep = std::min<std::size_t>(static_cast<std::size_t>(k), candidates.size());
					std::partial_sort(candidates.begin(), candidates.begin() + static_cast<long>(keep),
									  candidates.end(), [&](std::uint32_t a, std::uint32_t b) {
										  return distance[a] != distance[b] ? distance[a] < distance[b] : a < b;
									  });
					truth[c].matches[q] = candidates.size();
					truth[c].nearest[q].assign(candidates.begin(), candidates.begin() + static_cast<long>(keep));
				}
			}
		});
	for (std::thread &t : pool)
		t.join();
	return truth;
}

} // namespace engram_load
