// Loading, asking and scoring for the filtered-recall and forgetting
// benchmarks. One client sends the queries of a case back to back as a
// prepared statement (cue as a binary real[], the filter as jsonb text, the
// window as timestamptz text), so QPS is that of one connection, and latency
// is the round trip the client sees. pgvector's statements are planned for
// each execution (plan_cache_mode = force_custom_plan), as literal queries
// would be, so that its planner sees the filter's value.
#include "filter_client.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

namespace engram_load {

namespace {

void
append_vector(std::string &out, const float *v, int dim, char open, char close)
{
	char buf[32];
	out += open;
	for (int d = 0; d < dim; ++d) {
		if (d)
			out += ',';
		const auto res = std::to_chars(buf, buf + sizeof buf, v[d]);
		out.append(buf, res.ptr);
	}
	out += close;
}

std::string
copy_batch(Target target, const FilterData &data, const std::uint32_t *rows, std::size_t n, const std::string &space_id)
{
	std::string out;
	for (std::size_t i = 0; i < n; ++i) {
		const std::uint32_t r = rows[i];
		if (target == Target::engram) {
			out += space_id + '\t';
			append_vector(out, data.row(r), data.dim(), '{', '}');
			out += '\t' + std::to_string(r);
		} else {
			out += std::to_string(r) + '\t';
			append_vector(out, data.row(r), data.dim(), '[', ']');
		}
		out += '\t' + data.metadata_json(r) + '\t' + data.observed_at_text(r) + '\n';
	}
	return out;
}

void
copy_in(PGconn *c, const std::string &statement, const std::string &payload)
{
	PGresult *r = PQexec(c, statement.c_str());
	if (PQresultStatus(r) != PGRES_COPY_IN)
		die(statement + ": " + PQerrorMessage(c));
	PQclear(r);
	if (PQputCopyData(c, payload.data(), static_cast<int>(payload.size())) != 1 || PQputCopyEnd(c, nullptr) != 1)
		die(PQerrorMessage(c));
	r = PQgetResult(c);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die(statement + ": " + PQerrorMessage(c));
	PQclear(r);
	while ((r = PQgetResult(c)) != nullptr)
		PQclear(r);
}

std::string
pgvector_statement(const FilterCase &fc)
{
	std::string where;
	if (fc.kind == FilterKind::category || fc.kind == FilterKind::user)
		where = " WHERE metadata OPERATOR(pg_catalog.@>) $4";
	else if (fc.kind == FilterKind::window)
		where = " WHERE observed_at >= $5 AND observed_at < $6";
	return "SELECT id FROM engram_bench.items" + where +
		   " ORDER BY embedding OPERATOR(public.<=>) $2::public.vector LIMIT $3";
}

} // namespace

Target
target_of(const Options &o)
{
	if (o.target == "engram")
		return Target::engram;
	if (o.target == "pgvector")
		return Target::pgvector;
	die("--target must be engram or pgvector");
}

double
copy_rows(const Options &o, Target target, const FilterData &data, const std::vector<std::uint32_t> &rows)
{
	std::string space_id;
	if (target == Target::engram) {
		PGconn *admin = connect(o);
		space_id =
			scalar(admin, "SELECT space_id FROM engram.space_catalog WHERE name = " + quote_literal(admin, o.space));
		PQfinish(admin);
		if (space_id.empty())
			die("space " + o.space + " does not exist");
	}
	const std::string statement =
		target == Target::engram
			? "COPY engram.observations (space_id, embedding, content, metadata, observed_at) FROM STDIN"
			: "COPY engram_bench.items (id, embedding, metadata, observed_at) FROM STDIN";
	std::vector<std::vector<std::string>> batches(o.clients);
	for (std::size_t first = 0, b = 0; first < rows.size(); first += o.batch, ++b)
		batches[b % o.clients].push_back(copy_batch(target, data, rows.data() + first,
													std::min<std::size_t>(o.batch, rows.size() - first), space_id));
	const auto started = Clock::now();
	std::vector<std::thread> clients;
	for (int c = 0; c < o.clients; ++c)
		clients.emplace_back([&, c] {
			PGconn *conn = connect(o);
			for (const std::string &payload : batches[c])
				copy_in(conn, statement, payload);
			PQfinish(conn);
		});
	for (std::thread &t : clients)
		t.join();
	return std::chrono::duration<double>(Clock::now() - started).count();
}

std::unordered_map<long long, std::uint32_t>
rows_by_id(PGconn *c, const Options &o, Target target)
{
	const std::string sql =
		target == Target::engram
			? "SELECT o.id, o.content FROM engram.observations o JOIN engram.space_catalog s USING (space_id) "
			  "WHERE s.name = " +
				  quote_literal(c, o.space)
			: "SELECT id, id FROM engram_bench.items";
	PGresult *r = PQexec(c, sql.c_str());
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die(sql + ": " + PQerrorMessage(c));
	std::unordered_map<long long, std::uint32_t> rows;
	for (int i = 0; i < PQntuples(r); ++i)
		rows.emplace(std::stoll(PQgetvalue(r, i, 0)), static_cast<std::uint32_t>(std::stoul(PQgetvalue(r, i, 1))));
	PQclear(r);
	return rows;
}

std::string
prepare_case(PGconn *c, Target target, const FilterCase &fc)
{
	const std::string name = target == Target::engram ? "recall" : "case_" + std::to_string(static_cast<int>(fc.kind));
	const std::string sql = target == Target::engram
								? "SELECT id FROM engram.recall($1, $2, $3, filter => $4, observed_after => $5, "
								  "observed_before => $6)"
								: pgvector_statement(fc);
	PGresult *exists = PQdescribePrepared(c, name.c_str());
	const bool prepared = PQresultStatus(exists) == PGRES_COMMAND_OK;
	PQclear(exists);
	if (prepared)
		return name;
	const Oid types[6] = {25, 1021, 23, 3802, 1184, 1184}; // text, real[], int4, jsonb, timestamptz x 2
	PGresult *r = PQprepare(c, name.c_str(), sql.c_str(), 6, types);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die(sql + ": " + PQerrorMessage(c));
	PQclear(r);
	return name;
}

CaseResult
run_case(PGconn *c, const Options &o, Target target, const FilterData &data, const FilterCase &fc,
		 const CaseTruth &truth, const std::unordered_map<long long, std::uint32_t> &rows,
		 const std::vector<char> &live)
{
	const std::string statement = prepare_case(c, target, fc);
	const std::string k = std::to_string(o.k);
	CaseResult result;
	const auto started = Clock::now();
	const auto deadline = started + std::chrono::duration_cast<Clock::duration>(
										std::chrono::duration<double>(o.case_seconds > 0 ? o.case_seconds : 1e9));
	for (std::size_t q = 0; q < data.queries() && Clock::now() < deadline; ++q) {
		const std::string cue = binary_real_array(data.query(q), 0, data.dim());
		const QueryFilter filter = data.filter_of(fc, q);
		const char *values[6] = {o.space.c_str(),
								 cue.data(),
								 k.c_str(),
								 filter.json.empty() ? nullptr : filter.json.c_str(),
								 filter.after.empty() ? nullptr : filter.after.c_str(),
								 filter.before.empty() ? nullptr : filter.before.c_str()};
		const int lengths[6] = {0, static_cast<int>(cue.size()), 0, 0, 0, 0};
		const int formats[6] = {0, 1, 0, 0, 0, 0};
		const auto sent = Clock::now();
		PGresult *r = PQexecPrepared(c, statement.c_str(), 6, values, lengths, formats, 0);
		result.micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die(fc.name + ": " + PQerrorMessage(c));
		const std::vector<std::uint32_t> &nearest = truth.nearest[q];
		const std::size_t expected = nearest.size();
		const std::size_t got = static_cast<std::size_t>(PQntuples(r));
		for (std::size_t t = 0; t < got; ++t) {
			const auto found = rows.find(std::stoll(PQgetvalue(r, static_cast<int>(t), 0)));
			if (found == rows.end() || (!live.empty() && !live[found->second]) || !data.matches(fc, q, found->second)) {
				result.foreign_rows++;
				continue;
			}
			result.hits += std::count(nearest.begin(), nearest.end(), found->second) != 0 ? 1 : 0;
		}
		PQclear(r);
		if (got < expected) {
			result.short_answers++;
			result.missing_rows += expected - got;
		}
		result.expected += expected;
		result.matches.push_back(truth.matches[q]);
		result.queries++;
	}
	result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
	return result;
}

void
print_case(const std::string &label, const FilterCase &fc, const CaseResult &r, int k)
{
	if (r.queries == 0)
		die(fc.name + ": no query was answered");
	std::vector<double> micros = r.micros;
	std::sort(micros.begin(), micros.end());
	const auto ms = [&](double p) {
		return micros[std::min(micros.size() - 1, static_cast<std::size_t>(p * micros.size()))] / 1000.0;
	};
	std::vector<std::size_t> matches = r.matches;
	std::sort(matches.begin(), matches.end());
	std::printf("%s | %s | queries=%zu matches_min/median/max=%zu/%zu/%zu recall@%d=%.4f short=%zu missing_rows=%zu "
				"foreign_rows=%zu qps=%.0f p50=%.3f p99=%.3f max=%.3f\n",
				label.c_str(), fc.name.c_str(), r.queries, matches.front(), matches[matches.size() / 2], matches.back(),
				k, r.expected == 0 ? 1.0 : static_cast<double>(r.hits) / static_cast<double>(r.expected),
				r.short_answers, r.missing_rows, r.foreign_rows, static_cast<double>(r.queries) / r.seconds, ms(0.5),
				ms(0.99), micros.back() / 1000.0);
	std::fflush(stdout);
}

std::string
space_figures(PGconn *c, const Options &o)
{
	return scalar(c, "SELECT string_agg(key || '=' || value, ' ' ORDER BY key) FROM engram.spaces s, "
					 "jsonb_each_text(to_jsonb(s)) WHERE s.name = " +
						 quote_literal(c, o.space) +
						 " AND key IN ('observations', 'linked', 'pending', 'forgotten', 'memory_bytes', "
						 "'file_bytes', 'generation')");
}

} // namespace engram_load
