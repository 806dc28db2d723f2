// Ingest modes of the load client: observe_batch, copy (into
// engram.observations) and plain_copy (the same COPY into a table of the same
// shape without engram: the ceiling for durable ingest).
//
// With --target pgvector, copy and plain_copy fill pgvector's usual layout
// instead, engram_bench.vectors (id bigint, embedding vector(dim)) with id =
// row index: copy into a table that has an HNSW index from the start (the
// operator class of --metric, --m, --ef-construction), so that every row is
// indexed as it commits; plain_copy into the same table without any index.
//
// Row i of the vector source is sent with content = i, so that a later recall
// run can map observation ids back to rows of the source. Batch b holds rows
// first + [b * batch, (b + 1) * batch) (--first, 0 by default), goes to client b % clients and, with
// --spaces N, to space b % N. Payloads are encoded before the clock starts,
// so the figures measure the server, not the client. With --rate, batch b is
// not sent before b * batch / rate seconds after the start: a sustained
// stream instead of a flood (a batch behind its time goes at once). With
// --seconds, the clients stop sending at that time and the batches left are
// never sent, so an offered rate the server cannot take shows as a lower
// committed rate over a run of fixed length. A monitor connection samples
// engram.pressure() every 50 ms. The report separates the durable (store-only)
// rate, rows committed per second as the clients see them, from the linked
// rate, rows linked into the graphs per second, while sending and until
// engram.wait_linked.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "pg_client.hpp"

namespace engram_load {

namespace {

using Clock = std::chrono::steady_clock;

struct Batch {
	int space;
	long first_row;
	int rows;
	std::string payload;  // binary 2-D real[] (observe_batch) or COPY text
	std::string contents; // observe_batch: the contents as a text[] literal
};

// COPY text of rows [first, first + rows): space_id, real[], content for
// engram's table; id, vector for pgvector's (an empty space_id).
std::string
copy_text(const VectorSource &source, long first, int rows, const std::string &space_id)
{
	const bool pgvector = space_id.empty();
	std::string out;
	char buf[32];
	for (long r = first; r < first + rows; ++r) {
		out += pgvector ? std::to_string(r) + "\t[" : space_id + "\t{";
		const float *v = source.row(r);
		for (int d = 0; d < source.dim(); ++d) {
			if (d)
				out += ',';
			auto res = std::to_chars(buf, buf + sizeof buf, v[d]);
			out.append(buf, res.ptr);
		}
		out += pgvector ? "]\n" : "}\t" + std::to_string(r) + "\n";
	}
	return out;
}

std::string
contents_literal(long first, int rows)
{
	std::string out = "{";
	for (long r = first; r < first + rows; ++r)
		out += (r == first ? "" : ",") + std::to_string(r);
	return out + "}";
}

struct Monitor {
	std::atomic<bool> stop{false};
	std::mutex mutex;
	std::map<std::string, int> levels;
	float max_fill = 0;
};

void
print_levels(const char *title, const std::map<std::string, int> &levels)
{
	int total = 0;
	for (const auto &entry : levels)
		total += entry.second;
	std::printf("%s:", title);
	for (const auto &[level, count] : levels)
		std::printf(" %s=%d", level.c_str(), count);
	const auto overloaded = levels.find("overloaded");
	std::printf(" overloaded_share=%.2f",
				total && overloaded != levels.end() ? double(overloaded->second) / total : 0.0);
}

// The rows linked into the graphs of the run's spaces so far.
long
linked_rows(PGconn *admin, const std::string &names_literal)
{
	return std::stol(scalar(admin, "SELECT coalesce(sum(linked), 0) FROM engram.spaces WHERE name = ANY (" +
									   names_literal + "::text[])"));
}

std::string
load_average()
{
	char text[64] = {};
	if (FILE *f = std::fopen("/proc/loadavg", "r")) {
		if (std::fgets(text, sizeof text, f) == nullptr)
			text[0] = 0;
		std::fclose(f);
	}
	std::string out(text);
	const auto third = out.find(' ', out.find(' ', out.find(' ') + 1) + 1);
	return third == std::string::npos ? out : out.substr(0, third);
}

void
monitor_pressure(const Options &o, Monitor &m)
{
	PGconn *c = connect(o);
	while (!m.stop.load()) {
		PGresult *r = PQexec(c, "SELECT level, fill FROM engram.pressure()");
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			std::lock_guard lock(m.mutex);
			m.levels[PQgetvalue(r, 0, 0)]++;
			m.max_fill = std::max(m.max_fill, std::strtof(PQgetvalue(r, 0, 1), nullptr));
		}
		PQclear(r);
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	}
	PQfinish(c);
}

void
create_plain_table(PGconn *admin)
{
	exec_ok(admin, "CREATE SCHEMA IF NOT EXISTS engram_bench");
	exec_ok(admin, "DROP TABLE IF EXISTS engram_bench.plain");
	exec_ok(admin, "CREATE TABLE engram_bench.plain (LIKE engram.observations INCLUDING DEFAULTS INCLUDING STORAGE)");
	exec_ok(admin, "ALTER TABLE engram_bench.plain ALTER COLUMN id SET DEFAULT nextval('engram.observations_id_seq')");
	exec_ok(admin, "ALTER TABLE engram_bench.plain ADD PRIMARY KEY (id)");
	exec_ok(admin, "ALTER TABLE engram_bench.plain SET (toast_tuple_target = 8160)");
	exec_ok(admin, "CREATE INDEX ON engram_bench.plain (space_id, id)");
}

void
create_vector_table(PGconn *admin, const Options &o, int dim, bool indexed)
{
	exec_ok(admin, "CREATE SCHEMA IF NOT EXISTS engram_bench");
	exec_ok(admin, "DROP TABLE IF EXISTS engram_bench.vectors");
	exec_ok(admin,
			"CREATE TABLE engram_bench.vectors (id bigint, embedding public.vector(" + std::to_string(dim) + "))");
	if (indexed)
		exec_ok(admin, "CREATE INDEX vectors_hnsw ON engram_bench.vectors USING hnsw (embedding " +
						   pgvector_opclass(o.metric) + ") WITH (m = " + std::to_string(o.m) +
						   ", ef_construction = " + std::to_string(o.ef_construction) + ")");
}

// Sends one batch; false if the pipeline refused it (SQLSTATE 53E01). table
// names the table and its columns.
bool
send_batch(PGconn *conn, const Options &o, const Batch &b, const std::string &space, const std::string &table)
{
	PGresult *r;
	if (o.mode == "observe_batch") {
		const char *values[3] = {space.c_str(), b.payload.data(), b.contents.c_str()};
		const int lengths[3] = {0, static_cast<int>(b.payload.size()), 0};
		const int formats[3] = {0, 1, 0};
		const Oid types[3] = {25, 1021, 1009};
		r = PQexecParams(conn, "SELECT engram.observe_batch($1, $2, $3)", 3, types, values, lengths, formats, 0);
	} else {
		r = PQexec(conn, ("COPY " + table + " FROM STDIN").c_str());
		if (PQresultStatus(r) != PGRES_COPY_IN)
			die(PQerrorMessage(conn));
		PQclear(r);
		if (PQputCopyData(conn, b.payload.data(), static_cast<int>(b.payload.size())) != 1 ||
			PQputCopyEnd(conn, nullptr) != 1)
			die(PQerrorMessage(conn));
		r = PQgetResult(conn);
	}
	const auto status = PQresultStatus(r);
	bool accepted = true;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state == nullptr || std::strcmp(state, "53E01") != 0)
			die(PQerrorMessage(conn));
		accepted = false;
	}
	PQclear(r);
	while ((r = PQgetResult(conn)) != nullptr)
		PQclear(r);
	return accepted;
}

void
print_workers(PGconn *admin)
{
	PGresult *r = PQexec(admin, "SELECT worker_id, pid, state, spaces, observed_total, linked_total, "
								"round(busy_ratio::numeric, 3) FROM engram.workers ORDER BY worker_id");
	std::printf("workers:\n");
	for (int i = 0; i < PQntuples(r); ++i)
		std::printf("  worker %s pid %s state %s spaces %s stored %s linked %s busy %s\n", PQgetvalue(r, i, 0),
					PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
					PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
	PQclear(r);
}

} // namespace

int
run_ingest(const Options &o)
{
	const VectorSource source(o);
	PGconn *admin = connect(o);
	const bool plain = o.mode == "plain_copy";
	const bool pgvector = o.target == "pgvector";
	if (pgvector && o.mode == "observe_batch")
		die("--target pgvector takes --mode copy or plain_copy");
	if (o.target != "engram" && !pgvector)
		die("--target must be engram or pgvector");
	// Whether rows go through engram's pipeline (and are waited for).
	const bool into_engram = !plain && !pgvector;
	std::vector<std::string> names, ids;
	std::string table = "engram.observations (space_id, embedding, content)";
	if (pgvector) {
		create_vector_table(admin, o, source.dim(), !plain);
		table = "engram_bench.vectors (id, embedding)";
		names.push_back("");
		ids.push_back("");
	} else if (plain) {
		create_plain_table(admin);
		table = "engram_bench.plain (space_id, embedding, content)";
		names.push_back("");
		ids.push_back("1");
	} else {
		for (int s = 0; s < o.spaces; ++s) {
			const std::string name = o.spaces == 1 ? o.space : o.space + "_" + std::to_string(s);
			const std::string literal = quote_literal(admin, name);
			if (scalar(admin, "SELECT count(*) FROM engram.space_catalog WHERE name = " + literal) == "0")
				exec_ok(admin, "SELECT engram.create_space(" + literal + ", " + std::to_string(source.dim()) + ", " +
								   quote_literal(admin, o.metric) + ")");
			names.push_back(name);
			ids.push_back(scalar(admin, "SELECT space_id FROM engram.space_catalog WHERE name = " + literal));
		}
	}

	std::vector<std::vector<Batch>> batches(o.clients);
	for (long first = 0, b = 0; first < o.rows; first += o.batch, ++b) {
		const int n = static_cast<int>(std::min<long>(o.batch, o.rows - first));
		const int space = static_cast<int>(b % static_cast<long>(names.size()));
		Batch batch{space, first, n, {}, {}};
		if (o.mode == "observe_batch") {
			std::vector<float> values(static_cast<std::size_t>(n) * source.dim());
			for (int r = 0; r < n; ++r)
				std::copy_n(source.row(o.first + first + r), source.dim(),
							values.begin() + static_cast<long>(r) * source.dim());
			batch.payload = binary_real_array(values.data(), n, source.dim());
			batch.contents = contents_literal(o.first + first, n);
		} else {
			batch.payload = copy_text(source, o.first + first, n, ids[space]);
		}
		batches[b % o.clients].push_back(std::move(batch));
	}

	std::string names_literal = "'{";
	for (const std::string &name : names)
		names_literal += (names_literal.size() > 2 ? "," : "") + name;
	names_literal += "}'";
	const long linked_before = into_engram ? linked_rows(admin, names_literal) : 0;
	Monitor monitor;
	std::thread monitor_thread;
	if (into_engram)
		monitor_thread = std::thread(monitor_pressure, std::cref(o), std::ref(monitor));
	std::atomic<long> sent{0}, refused{0};
	const auto started = Clock::now();
	const auto stop_sending =
		started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
	std::vector<std::thread> clients;
	for (int c = 0; c < o.clients; ++c)
		clients.emplace_back([&, c] {
			PGconn *conn = connect(o);
			for (const Batch &b : batches[c]) {
				if (o.rate > 0)
					std::this_thread::sleep_until(started + std::chrono::duration_cast<Clock::duration>(
																std::chrono::duration<double>(b.first_row / o.rate)));
				if (o.seconds > 0 && Clock::now() >= stop_sending)
					break;
				if (send_batch(conn, o, b, names[b.space], table))
					sent += b.rows;
				else
					refused++;
			}
			PQfinish(conn);
		});
	for (auto &t : clients)
		t.join();
	const auto seconds_since = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };
	const double seconds = seconds_since();
	const long linked_while_sending = into_engram ? linked_rows(admin, names_literal) - linked_before : 0;
	std::map<std::string, int> levels_while_sending;
	{
		std::lock_guard lock(monitor.mutex);
		levels_while_sending = monitor.levels;
	}
	std::printf("mode=%s target=%s dim=%d clients=%d batch=%d spaces=%zu rows=%ld seconds=%.2f rate=%.0f rows/s "
				"refused_batches=%ld\n",
				o.mode.c_str(), o.target.c_str(), source.dim(), o.clients, o.batch, names.size(), sent.load(), seconds,
				sent.load() / seconds, refused.load());
	if (into_engram) {
		std::printf(
			"offered_rate=%s committed_rate=%.0f rows/s linked_while_sending=%ld linked_rate_while_sending=%.0f "
			"rows/s load average %s\n",
			o.rate > 0 ? std::to_string(static_cast<long>(o.rate)).c_str() : "unlimited", sent.load() / seconds,
			linked_while_sending, linked_while_sending / seconds, load_average().c_str());
		print_levels("pressure samples while sending", levels_while_sending);
		std::printf("\n");
		const std::string drained = scalar(admin, "SELECT engram.wait_stored(600000)");
		const double stored_after = seconds_since();
		std::printf("stored_all=%s seconds_until_stored=%.2f end_to_end_rate=%.0f rows/s\n", drained.c_str(),
					stored_after, sent.load() / stored_after);
		if (o.wait_linked) {
			for (const std::string &name : names)
				if (scalar(admin, "SELECT engram.wait_linked(" + quote_literal(admin, name) + ", NULL, 3600000)") !=
					"t")
					die("space " + name + " was not linked within an hour");
			const double linked_after = seconds_since();
			std::printf("linked_all=t seconds_until_linked=%.2f indexing_rate=%.0f rows/s\n", linked_after,
						sent.load() / linked_after);
		}
		monitor.stop = true;
		monitor_thread.join();
		print_levels("pressure samples", monitor.levels);
		std::printf(" max_fill=%.3f\n", monitor.max_fill);
		print_workers(admin);
	}
	PQfinish(admin);
	return 0;
}

} // namespace engram_load
