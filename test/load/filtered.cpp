// Filtered-recall mode of the load client (issue 11): loads a data set with
// the metadata of filter_data.hpp into engram or pgvector, then asks every
// query under each filter case (no filter, categories holding 50%, 10%, 1%
// and 0.1% of the rows, one user of 10,000, a 100-day window) and reports
// recall@k against the exact filtered truth, how many answers came back with
// fewer than min(k, matches) rows, QPS of one client and latency.
//
// engram (--target engram): creates the space (cosine, the space defaults
// m 16 and ef_construction 200) unless it exists, COPYs every row
// (content = row index), waits until every row is linked; recalls at the
// server's engram.ef_search unless --ef is given.
//
// pgvector (--target pgvector): a table engram_bench.items (id, embedding
// vector(dim), metadata jsonb, observed_at timestamptz) filled by COPY, then
// an HNSW index (vector_cosine_ops, m 16, ef_construction --ef-construction)
// built and timed; each setting of --iterative (a comma-separated list of
// hnsw.iterative_scan values) runs every case with hnsw.ef_search = --ef.
// With --load 0 the table and index are kept as they are (a later run after
// the script added another index, say), and --label names the run.
// pg_stat_user_indexes tells which indexes each case used.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "filter_client.hpp"

namespace engram_load {

namespace {

void
load_engram(PGconn *admin, const Options &o, const FilterData &data, const std::vector<std::uint32_t> &all)
{
	const std::string space = quote_literal(admin, o.space);
	if (scalar(admin, "SELECT count(*) FROM engram.space_catalog WHERE name = " + space) == "0")
		exec_ok(admin, "SELECT engram.create_space(" + space + ", dim => " + std::to_string(data.dim()) +
						   ", metric => 'cosine')");
	const auto started = Clock::now();
	const double copied = copy_rows(o, Target::engram, data, all);
	if (scalar(admin, "SELECT engram.wait_linked(" + space + ", NULL, 3600000)") != "t")
		die("space " + o.space + " was not linked within an hour");
	const double linked = seconds_since(started);
	std::printf("engram: %zu rows copied in %.2f s, linked after %.2f s (%.0f rows/s); %s\n", all.size(), copied,
				linked, static_cast<double>(all.size()) / linked, space_figures(admin, o).c_str());
}

void
load_pgvector(PGconn *admin, const Options &o, const FilterData &data, const std::vector<std::uint32_t> &all)
{
	exec_ok(admin, "CREATE SCHEMA IF NOT EXISTS engram_bench");
	exec_ok(admin, "DROP TABLE IF EXISTS engram_bench.items");
	exec_ok(admin, "CREATE TABLE engram_bench.items (id bigint PRIMARY KEY, embedding public.vector(" +
					   std::to_string(data.dim()) + "), metadata jsonb, observed_at timestamptz)");
	const double copied = copy_rows(o, Target::pgvector, data, all);
	auto started = Clock::now();
	exec_ok(admin, "CREATE INDEX items_hnsw ON engram_bench.items USING hnsw (embedding public.vector_cosine_ops) "
				   "WITH (m = 16, ef_construction = " +
					   std::to_string(o.ef_construction) + ")");
	const double built = seconds_since(started);
	exec_ok(admin, "VACUUM (ANALYZE) engram_bench.items");
	std::printf("pgvector: %zu rows copied in %.2f s; HNSW index (m 16, ef_construction %d) built in %.2f s; "
				"table %s bytes, index %s bytes\n",
				all.size(), copied, o.ef_construction, built,
				scalar(admin, "SELECT pg_table_size('engram_bench.items')").c_str(),
				scalar(admin, "SELECT pg_relation_size('engram_bench.items_hnsw')").c_str());
}

// Scans of each index of engram_bench.items so far, as "name=count" pairs.
std::string
index_scans(PGconn *c)
{
	exec_ok(c, "SELECT pg_stat_force_next_flush()");
	return scalar(c, "SELECT string_agg(indexrelname || '=' || idx_scan, ' ' ORDER BY indexrelname) "
					 "FROM pg_stat_user_indexes WHERE relname = 'items' AND schemaname = 'engram_bench'");
}

std::vector<std::string>
split_list(const std::string &list)
{
	std::vector<std::string> out;
	std::stringstream in(list);
	for (std::string item; std::getline(in, item, ',');)
		out.push_back(item);
	return out;
}

} // namespace

int
run_filtered(const Options &o)
{
	const Target target = target_of(o);
	const FilterData data(o);
	std::vector<std::uint32_t> all(data.rows());
	std::iota(all.begin(), all.end(), 0u);
	PGconn *admin = connect(o);
	std::printf("data: %zu rows x %d, %zu queries, k %d; rows per category:", data.rows(), data.dim(), data.queries(),
				o.k);
	for (int c = 0; c < 5; ++c)
		std::printf(" %s=%zu", FilterData::categories[c], data.category_rows(c));
	std::printf("\n");
	if (o.load)
		(target == Target::engram ? load_engram : load_pgvector)(admin, o, data, all);

	const auto started = Clock::now();
	const std::vector<CaseTruth> truth = exact_truth(data, data.cases(), o.k, {});
	std::printf("exact filtered truth of %zu cases computed in %.2f s\n", data.cases().size(), seconds_since(started));
	const auto rows = rows_by_id(admin, o, target);
	if (rows.size() != data.rows())
		die("the table holds " + std::to_string(rows.size()) + " rows of the data set, not " +
			std::to_string(data.rows()));

	PGconn *c = connect(o);
	std::vector<std::string> settings = {""};
	if (target == Target::pgvector) {
		exec_ok(c, "SET plan_cache_mode = force_custom_plan");
		exec_ok(c, "SET hnsw.ef_search = " + std::to_string(o.ef > 0 ? o.ef : 128));
		settings = split_list(o.iterative);
	} else if (o.ef > 0) {
		exec_ok(c, "SET engram.ef_search = " + std::to_string(o.ef));
	}
	for (const std::string &setting : settings) {
		std::string label = o.label.empty() ? o.target : o.label;
		if (target == Target::pgvector) {
			exec_ok(c, "SET hnsw.iterative_scan = " + setting);
			label += " iterative_scan=" + setting;
		}
		for (std::size_t i = 0; i < data.cases().size(); ++i) {
			const std::string scans_before = target == Target::pgvector ? index_scans(c) : "";
			const CaseResult r = run_case(c, o, target, data, data.cases()[i], truth[i], rows, {});
			print_case(label, data.cases()[i], r, o.k);
			if (target == Target::pgvector)
				std::printf("    index scans before: %s; after: %s\n", scans_before.c_str(), index_scans(c).c_str());
		}
	}
	PQfinish(c);
	PQfinish(admin);
	return 0;
}

} // namespace engram_load
