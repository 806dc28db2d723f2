// What the load client's modes share: options, libpq helpers that end the
// program on any unexpected error, binary real[] encoding, and the vectors
// a run sends (an .fvecs file, or Gaussian noise when none is given).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <string>
#include <vector>

namespace engram_load {

struct Options {
	std::string conninfo = "dbname=postgres";
	std::string mode = "observe_batch";
	std::string space = "demo";
	std::string metric = "l2";
	int spaces = 1; // ingest: spread batches over SPACE_0 .. SPACE_{n-1} when > 1
	int dim = 128;
	long rows = 300000;
	long first = 0; // ingest: the source's row sent first (rows go on from there)
	int clients = 4;
	int batch = 500;
	// ingest: rows per second over all clients; recall: calls per second over all clients; 0 = as fast as possible
	double rate = 0;
	bool wait_linked = false;
	std::string fvecs; // ingest: base vectors (content = row index); recall: the queries
	std::string truth; // recall: ground truth (.ivecs) of the queries against the base rows
	// recall: run for this long, cycling through the queries, 0 = one pass; ingest: stop sending then, 0 = every row
	double seconds = 0;
	int k = 10;
	int ef = 0; // recall: engram.ef_search for the session, 0 = the server's setting
	// recall, startup: the statement sent, with the space ($1), the cue as real[] ($2) and k ($3)
	std::string sql = "SELECT id FROM engram.recall($1, $2, $3)";
	long long since_ns = 0; // startup: when the server was started (ns since the epoch), 0 = now
	double baseline_ms = 0; // startup: recall p50 before the restart, 0 = do not wait for normal latency
	double settle = 5;      // startup: seconds to go on after linked and normal latency
	// filtered, forget (filtered.cpp, forgetting.cpp, filter_data.hpp)
	std::string target = "engram"; // engram or pgvector (also copy, plain_copy, recall)
	std::string queries;           // the query vectors (--fvecs holds the base rows)
	int tenants = 10000;           // users the rows are spread over
	bool load = true;              // filtered: load the rows first
	int ef_construction = 200;     // filtered, copy into pgvector: the HNSW index's ef_construction
	int m = 16;                    // copy into pgvector: the HNSW index's m
	std::string iterative = "off"; // filtered, pgvector: hnsw.iterative_scan settings to run, comma-separated
	std::string label;             // filtered: names the run in the report (default: the target)
	double case_seconds = 0;       // filtered, forget: stop a case after this long, 0 = every query
	bool vacuum = true;            // forget, pgvector: VACUUM after the delete and ask again
};

[[noreturn]] void die(const std::string &message);

PGconn *connect(const Options &o);
void exec_ok(PGconn *c, const std::string &sql);
std::string scalar(PGconn *c, const std::string &sql);
std::string quote_literal(PGconn *c, const std::string &text);

// A real[] in the binary wire format: 1-D when rows == 0, else rows x dim.
std::string binary_real_array(const float *values, int rows, int dim);

// Rows of vectors: from an .fvecs file (rows wrap around at its end) or
// generated N(0,1) noise.
class VectorSource {
public:
	explicit VectorSource(const Options &o);
	int dim() const { return dim_; }
	long available() const { return static_cast<long>(values_.size() / dim_); }
	const float *row(long i) const { return values_.data() + (i % available()) * dim_; }
	bool from_file() const { return from_file_; }

private:
	int dim_;
	bool from_file_;
	std::vector<float> values_;
};

// pgvector's operator class and distance operator for a metric (l2, cosine or ip).
std::string pgvector_opclass(const std::string &metric);
std::string pgvector_operator(const std::string &metric);

int run_ingest(const Options &o);
int run_recall(const Options &o);
int run_startup(const Options &o);
int run_filtered(const Options &o);
int run_forget(const Options &o);

} // namespace engram_load
