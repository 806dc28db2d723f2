// engram_load: streams generated observations into a running server from
// several concurrent clients and reports what happened. It is the main job's
// driver and the ingest benchmark's client.
//
//   engram_load --conninfo STR --mode observe_batch|copy|plain_copy
//               --space NAME --dim N --rows N --clients N --batch N
//
// observe_batch sends engram.observe_batch calls with the embeddings as a
// binary real[] parameter; copy sends COPY engram.observations; plain_copy
// sends the same COPY text to engram_bench.plain, a table of the same shape
// without engram (the ceiling for durable ingest). Payloads are generated
// before the clock starts, so the figures measure the server, not the client.
// A monitor connection samples engram.pressure() every 50 ms.
#include <libpq-fe.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
	std::string conninfo = "dbname=postgres";
	std::string mode = "observe_batch";
	std::string space = "demo";
	int dim = 128;
	long rows = 300000;
	int clients = 4;
	int batch = 500;
};

[[noreturn]] void
die(const std::string &message)
{
	std::fprintf(stderr, "engram_load: %s\n", message.c_str());
	std::exit(1);
}

Options
parse(int argc, char **argv)
{
	Options o;
	for (int i = 1; i + 1 < argc; i += 2) {
		const std::string k = argv[i], v = argv[i + 1];
		if (k == "--conninfo")
			o.conninfo = v;
		else if (k == "--mode")
			o.mode = v;
		else if (k == "--space")
			o.space = v;
		else if (k == "--dim")
			o.dim = std::stoi(v);
		else if (k == "--rows")
			o.rows = std::stol(v);
		else if (k == "--clients")
			o.clients = std::stoi(v);
		else if (k == "--batch")
			o.batch = std::stoi(v);
		else
			die("unknown option " + k);
	}
	if (o.mode != "observe_batch" && o.mode != "copy" && o.mode != "plain_copy")
		die("--mode must be observe_batch, copy or plain_copy");
	return o;
}

PGconn *
connect(const Options &o)
{
	PGconn *c = PQconnectdb(o.conninfo.c_str());
	if (PQstatus(c) != CONNECTION_OK)
		die(PQerrorMessage(c));
	return c;
}

void
exec_ok(PGconn *c, const std::string &sql)
{
	PGresult *r = PQexec(c, sql.c_str());
	const auto status = PQresultStatus(r);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		die(sql + ": " + PQerrorMessage(c));
	PQclear(r);
}

std::string
scalar(PGconn *c, const std::string &sql)
{
	PGresult *r = PQexec(c, sql.c_str());
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die(sql + ": " + PQerrorMessage(c));
	std::string v = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
	PQclear(r);
	return v;
}

// One batch's payload: a binary 2-D real[] (observe_batch) or COPY text.
std::string
binary_matrix(const std::vector<float> &values, int rows, int dim)
{
	std::string out;
	auto put32 = [&](std::uint32_t v) {
		v = htonl(v);
		out.append(reinterpret_cast<const char *>(&v), 4);
	};
	put32(2);   // ndim
	put32(0);   // no nulls
	put32(700); // float4
	put32(static_cast<std::uint32_t>(rows));
	put32(1);
	put32(static_cast<std::uint32_t>(dim));
	put32(1);
	for (float f : values) {
		put32(4);
		std::uint32_t bits;
		std::memcpy(&bits, &f, 4);
		put32(bits);
	}
	return out;
}

std::string
copy_text(const std::vector<float> &values, int rows, int dim, const std::string &space_id)
{
	std::string out;
	char buf[32];
	for (int r = 0; r < rows; ++r) {
		out += space_id;
		out += "\t{";
		for (int d = 0; d < dim; ++d) {
			if (d)
				out += ',';
			auto res = std::to_chars(buf, buf + sizeof buf, values[static_cast<std::size_t>(r) * dim + d]);
			out.append(buf, res.ptr);
		}
		out += "}\n";
	}
	return out;
}

struct Monitor {
	std::atomic<bool> stop{false};
	std::mutex mutex;
	std::map<std::string, int> levels;
	float max_fill = 0;
};

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

} // namespace

int
main(int argc, char **argv)
{
	const Options o = parse(argc, argv);
	PGconn *admin = connect(o);
	const bool plain = o.mode == "plain_copy";
	std::string space_id = "1";
	if (plain) {
		exec_ok(admin, "CREATE SCHEMA IF NOT EXISTS engram_bench");
		exec_ok(admin, "DROP TABLE IF EXISTS engram_bench.plain");
		exec_ok(admin, "CREATE TABLE engram_bench.plain (LIKE engram.observations INCLUDING DEFAULTS INCLUDING STORAGE)");
		exec_ok(admin, "ALTER TABLE engram_bench.plain ALTER COLUMN id SET DEFAULT nextval('engram.observations_id_seq')");
		exec_ok(admin, "ALTER TABLE engram_bench.plain ADD PRIMARY KEY (id)");
		exec_ok(admin, "ALTER TABLE engram_bench.plain SET (toast_tuple_target = 8160)");
		exec_ok(admin, "CREATE INDEX ON engram_bench.plain (space_id, id)");
	} else {
		const std::string exists = scalar(admin, "SELECT count(*) FROM engram.space_catalog WHERE name = '" + o.space + "'");
		if (exists == "0")
			exec_ok(admin, "SELECT engram.create_space('" + o.space + "', " + std::to_string(o.dim) + ", 'l2')");
		space_id = scalar(admin, "SELECT space_id FROM engram.space_catalog WHERE name = '" + o.space + "'");
	}

	// Generate every client's batches up front.
	const long per_client = o.rows / o.clients;
	struct Payload {
		std::string bytes;
		long rows;
	};
	std::vector<std::vector<Payload>> payloads(o.clients);
	for (int c = 0; c < o.clients; ++c) {
		std::mt19937 rng(1234 + c);
		std::normal_distribution<float> gauss;
		for (long done = 0; done < per_client; done += o.batch) {
			const int n = static_cast<int>(std::min<long>(o.batch, per_client - done));
			std::vector<float> values(static_cast<std::size_t>(n) * o.dim);
			for (float &v : values)
				v = gauss(rng);
			payloads[c].push_back({o.mode == "observe_batch" ? binary_matrix(values, n, o.dim)
															 : copy_text(values, n, o.dim, space_id),
								   n});
		}
	}

	Monitor monitor;
	std::thread monitor_thread;
	if (!plain)
		monitor_thread = std::thread(monitor_pressure, std::cref(o), std::ref(monitor));
	std::atomic<long> sent{0}, refused{0};
	const auto started = std::chrono::steady_clock::now();
	std::vector<std::thread> clients;
	for (int c = 0; c < o.clients; ++c)
		clients.emplace_back([&, c] {
			PGconn *conn = connect(o);
			const std::string table = plain ? "engram_bench.plain" : "engram.observations";
			for (const auto &[payload, rows] : payloads[c]) {
				PGresult *r;
				if (o.mode == "observe_batch") {
					const char *values[2] = {o.space.c_str(), payload.data()};
					const int lengths[2] = {0, static_cast<int>(payload.size())};
					const int formats[2] = {0, 1};
					const Oid types[2] = {25, 1021};
					r = PQexecParams(conn, "SELECT engram.observe_batch($1, $2)", 2, types, values, lengths, formats, 0);
				} else {
					r = PQexec(conn, ("COPY " + table + " (space_id, embedding) FROM STDIN").c_str());
					if (PQresultStatus(r) != PGRES_COPY_IN)
						die(PQerrorMessage(conn));
					PQclear(r);
					if (PQputCopyData(conn, payload.data(), static_cast<int>(payload.size())) != 1 ||
						PQputCopyEnd(conn, nullptr) != 1)
						die(PQerrorMessage(conn));
					r = PQgetResult(conn);
				}
				const auto status = PQresultStatus(r);
				if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
					sent += rows;
				else if (std::strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "53E01") == 0)
					refused++;
				else
					die(PQerrorMessage(conn));
				PQclear(r);
				while ((r = PQgetResult(conn)) != nullptr)
					PQclear(r);
			}
			PQfinish(conn);
		});
	for (auto &t : clients)
		t.join();
	const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
	std::printf("mode=%s dim=%d clients=%d batch=%d rows=%ld seconds=%.2f rate=%.0f rows/s refused_batches=%ld\n",
				o.mode.c_str(), o.dim, o.clients, o.batch, sent.load(), seconds, sent.load() / seconds, refused.load());
	if (!plain) {
		const std::string drained = scalar(admin, "SELECT engram.wait_stored(60000)");
		const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
		monitor.stop = true;
		monitor_thread.join();
		std::printf("stored_all=%s seconds_until_stored=%.2f end_to_end_rate=%.0f rows/s\n", drained.c_str(), total,
					sent.load() / total);
		std::printf("pressure samples:");
		for (const auto &[level, count] : monitor.levels)
			std::printf(" %s=%d", level.c_str(), count);
		std::printf(" max_fill=%.3f\n", monitor.max_fill);
		PGresult *r = PQexec(admin, "SELECT worker_id, pid, state, spaces, observed_total, round(busy_ratio::numeric, 3) "
									"FROM engram.workers ORDER BY worker_id");
		std::printf("workers:\n");
		for (int i = 0; i < PQntuples(r); ++i)
			std::printf("  worker %s pid %s state %s spaces %s stored %s busy %s\n", PQgetvalue(r, i, 0),
						PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
						PQgetvalue(r, i, 5));
		PQclear(r);
	}
	PQfinish(admin);
	return 0;
}
