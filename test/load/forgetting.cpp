// Forgetting mode of the load client (issue 11): on a space or table that
// --mode filtered loaded, deletes half of the rows (a fixed random half) in
// one transaction and measures recall@k against the exact top-k of the rows
// that remain, before and after the deleted nodes are erased.
//
// engram (--target engram): engram.checkpoint(), then engram.forget() of the
// half; one pass of the unfiltered queries at once (the deleted nodes are
// only marks then, unless a compaction already ran: engram.spaces.forgotten
// before and after the pass tells); then waits until forgotten is 0 (the
// compaction erased every deleted node; at most --seconds) and asks every
// filter case; engram.checkpoint() again for the file's size; finally COPYs
// the deleted rows back in as new observations and asks the unfiltered
// queries over all rows again, to see whether the freed memory is reused.
// engram.spaces' figures (memory_bytes, file_bytes, ...) are printed at each
// step. A build without engram.spaces.forgotten cannot compact: the mode says
// so and ends.
//
// pgvector (--target pgvector): DELETE of the same half, the unfiltered
// queries (hnsw.iterative_scan off, hnsw.ef_search --ef), then (unless
// --vacuum 0: its HNSW vacuum repairs the graph and takes minutes) VACUUM and
// the same queries again; the index's size at each step.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <thread>

#include "filter_client.hpp"

namespace engram_load {

namespace {

// A fixed random half of the rows, as a mask of those that stay.
std::vector<char>
surviving_half(std::size_t rows)
{
	std::vector<std::uint32_t> order(rows);
	std::iota(order.begin(), order.end(), 0u);
	std::mt19937_64 rng(20261203);
	for (std::size_t i = rows; i > 1; --i)
		std::swap(order[i - 1], order[rng() % i]);
	std::vector<char> live(rows, 1);
	for (std::size_t i = 0; i < rows / 2; ++i)
		live[order[i]] = 0;
	return live;
}

std::string
id_array(const std::unordered_map<long long, std::uint32_t> &rows, const std::vector<char> &live)
{
	std::string out = "{";
	for (const auto &[id, row] : rows)
		if (!live[row])
			out += (out.size() > 1 ? "," : "") + std::to_string(id);
	return out + "}";
}

std::size_t
exec_count(PGconn *c, const std::string &sql, const std::string &ids)
{
	const char *values[1] = {ids.c_str()};
	PGresult *r = PQexecParams(c, sql.c_str(), 1, nullptr, values, nullptr, nullptr, 0);
	const auto status = PQresultStatus(r);
	if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
		die(sql + ": " + PQerrorMessage(c));
	const std::size_t n = std::stoul(status == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : PQcmdTuples(r));
	PQclear(r);
	return n;
}

void
report(const char *step, const std::string &figures)
{
	std::printf("%s: %s\n", step, figures.c_str());
	std::fflush(stdout);
}

int
forget_engram(const Options &o, const FilterData &data)
{
	PGconn *admin = connect(o);
	if (scalar(admin, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'engram.spaces'::regclass AND "
					  "attname = 'forgotten'") == "0") {
		std::printf("engram.spaces has no column forgotten: this build cannot compact; the forgetting part is left "
					"out\n");
		PQfinish(admin);
		return 0;
	}
	const FilterCase &unfiltered = data.cases().front();
	const std::vector<char> live = surviving_half(data.rows());
	auto rows = rows_by_id(admin, o, Target::engram);
	if (rows.size() != data.rows())
		die("the space holds " + std::to_string(rows.size()) + " rows of the data set, not " +
			std::to_string(data.rows()));
	auto started = Clock::now();
	const std::vector<CaseTruth> truth = exact_truth(data, data.cases(), o.k, live);
	std::printf("exact truth over the %zu remaining rows computed in %.2f s\n", data.rows() - data.rows() / 2,
				seconds_since(started));
	exec_ok(admin, "SELECT engram.checkpoint()");
	report("before the delete, after engram.checkpoint()", space_figures(admin, o));

	started = Clock::now();
	const std::size_t forgotten =
		exec_count(admin, "SELECT engram.forget(" + quote_literal(admin, o.space) + ", $1)", id_array(rows, live));
	std::printf("engram.forget() of %zu rows committed in %.2f s\n", forgotten, seconds_since(started));
	const auto deleted_at = Clock::now();
	PGconn *c = connect(o);
	if (o.ef > 0)
		exec_ok(c, "SET engram.ef_search = " + std::to_string(o.ef));
	report("right after the delete", space_figures(admin, o));
	print_case("engram, deleted, not yet compacted", unfiltered,
			   run_case(c, o, Target::engram, data, unfiltered, truth.front(), rows, live), o.k);
	report("after that pass", space_figures(admin, o));

	const std::string space = quote_literal(admin, o.space);
	const auto deadline =
		Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
	while (scalar(admin, "SELECT forgotten FROM engram.spaces WHERE name = " + space) != "0") {
		if (Clock::now() >= deadline) {
			report("compaction not finished within --seconds", space_figures(admin, o));
			return 1;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(250));
	}
	std::printf("forgotten = 0 (every deleted node erased) %.2f s after the delete committed\n",
				seconds_since(deleted_at));
	report("compacted", space_figures(admin, o));
	for (std::size_t i = 0; i < data.cases().size(); ++i)
		print_case("engram, compacted", data.cases()[i],
				   run_case(c, o, Target::engram, data, data.cases()[i], truth[i], rows, live), o.k);
	exec_ok(admin, "SELECT engram.checkpoint()");
	report("compacted, after engram.checkpoint()", space_figures(admin, o));

	std::vector<std::uint32_t> deleted;
	for (std::uint32_t r = 0; r < data.rows(); ++r)
		if (!live[r])
			deleted.push_back(r);
	started = Clock::now();
	copy_rows(o, Target::engram, data, deleted);
	if (scalar(admin, "SELECT engram.wait_linked(" + space + ", NULL, 3600000)") != "t")
		die("space " + o.space + " was not linked within an hour");
	std::printf("the %zu deleted rows observed again and linked in %.2f s\n", deleted.size(), seconds_since(started));
	report("observed again", space_figures(admin, o));
	rows = rows_by_id(admin, o, Target::engram);
	const std::vector<CaseTruth> full = exact_truth(data, {unfiltered}, o.k, {});
	print_case("engram, observed again", unfiltered,
			   run_case(c, o, Target::engram, data, unfiltered, full.front(), rows, {}), o.k);
	PQfinish(c);
	PQfinish(admin);
	return 0;
}

int
forget_pgvector(const Options &o, const FilterData &data)
{
	PGconn *admin = connect(o);
	const FilterCase &unfiltered = data.cases().front();
	const std::vector<char> live = surviving_half(data.rows());
	const auto rows = rows_by_id(admin, o, Target::pgvector);
	if (rows.size() != data.rows())
		die("engram_bench.items holds " + std::to_string(rows.size()) + " rows, not " + std::to_string(data.rows()));
	const std::vector<CaseTruth> truth = exact_truth(data, {unfiltered}, o.k, live);
	const auto sizes = [&] {
		return "table " + scalar(admin, "SELECT pg_table_size('engram_bench.items')") + " bytes, index " +
			   scalar(admin, "SELECT pg_relation_size('engram_bench.items_hnsw')") + " bytes";
	};
	report("pgvector before the delete", sizes());
	auto started = Clock::now();
	const std::size_t deleted =
		exec_count(admin, "DELETE FROM engram_bench.items WHERE id = ANY ($1::bigint[])", id_array(rows, live));
	std::printf("pgvector: DELETE of %zu rows committed in %.2f s\n", deleted, seconds_since(started));
	PGconn *c = connect(o);
	exec_ok(c, "SET hnsw.ef_search = " + std::to_string(o.ef > 0 ? o.ef : 128));
	exec_ok(c, "SET hnsw.iterative_scan = off");
	print_case("pgvector iterative_scan=off, deleted, before VACUUM", unfiltered,
			   run_case(c, o, Target::pgvector, data, unfiltered, truth.front(), rows, live), o.k);
	if (!o.vacuum) {
		std::printf("pgvector: VACUUM left out (--vacuum 0)\n");
		PQfinish(c);
		PQfinish(admin);
		return 0;
	}
	started = Clock::now();
	exec_ok(admin, "VACUUM engram_bench.items");
	std::printf("pgvector: VACUUM took %.2f s\n", seconds_since(started));
	report("pgvector after VACUUM", sizes());
	print_case("pgvector iterative_scan=off, after VACUUM", unfiltered,
			   run_case(c, o, Target::pgvector, data, unfiltered, truth.front(), rows, live), o.k);
	PQfinish(c);
	PQfinish(admin);
	return 0;
}

} // namespace

int
run_forget(const Options &o)
{
	if (o.seconds <= 0)
		die("--mode forget needs --seconds, the longest it waits for the compaction");
	const FilterData data(o);
	return target_of(o) == Target::engram ? forget_engram(o, data) : forget_pgvector(o, data);
}

} // namespace engram_load
