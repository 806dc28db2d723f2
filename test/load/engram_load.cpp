// engram_load: drives a running server from several concurrent clients and
// reports what happened. It is the main job's driver and the client of the
// ingest and SQL recall benchmarks.
//
//   ingest:  engram_load --conninfo STR --mode observe_batch|copy|plain_copy
//                        --space NAME [--spaces N] [--metric l2|cosine|ip]
//                        [--fvecs BASE | --dim N] --rows N [--first ROW] --clients N --batch N
//                        [--rate ROWS_PER_S] [--seconds S] [--wait-linked 1]
//                        [--target pgvector [--m N --ef-construction N]]
//   recall:  engram_load --conninfo STR --mode recall --space NAME
//                        --fvecs QUERIES [--truth GROUNDTRUTH] [--k N] [--ef N]
//                        --clients N [--seconds S] [--rate CALLS_PER_S] [--sql STATEMENT]
//                        [--target pgvector --metric l2|cosine|ip]
//   startup: engram_load --conninfo STR --mode startup --space NAME
//                        --fvecs QUERIES [--since NS] [--baseline-ms MS]
//                        [--wait-linked 1 --rows N] [--settle S] --seconds S
//                        [--sql STATEMENT]
//   filtered: engram_load --conninfo STR --mode filtered --target engram|pgvector
//                        [--space NAME] --fvecs BASE --queries QUERIES [--rows N]
//                        [--tenants N] [--load 0] [--ef N] [--ef-construction N]
//                        [--iterative off,relaxed_order,strict_order] [--label TEXT]
//                        [--case-seconds S] [--clients N --batch N]
//   forget:  engram_load --conninfo STR --mode forget --target engram|pgvector
//                        [--space NAME] --fvecs BASE --queries QUERIES [--rows N]
//                        [--tenants N] [--ef N] [--vacuum 0] --seconds S
//
// ingest.cpp, recall.cpp, startup.cpp, filtered.cpp and forgetting.cpp
// describe the modes.
#include <string>

#include "pg_client.hpp"

namespace {

engram_load::Options
parse(int argc, char **argv)
{
	engram_load::Options o;
	if (argc % 2 != 1)
		engram_load::die("options come in pairs: --name value");
	for (int i = 1; i + 1 < argc; i += 2) {
		const std::string k = argv[i], v = argv[i + 1];
		if (k == "--conninfo")
			o.conninfo = v;
		else if (k == "--mode")
			o.mode = v;
		else if (k == "--space")
			o.space = v;
		else if (k == "--spaces")
			o.spaces = std::stoi(v);
		else if (k == "--metric")
			o.metric = v;
		else if (k == "--dim")
			o.dim = std::stoi(v);
		else if (k == "--rows")
			o.rows = std::stol(v);
		else if (k == "--first")
			o.first = std::stol(v);
		else if (k == "--clients")
			o.clients = std::stoi(v);
		else if (k == "--batch")
			o.batch = std::stoi(v);
		else if (k == "--rate")
			o.rate = std::stod(v);
		else if (k == "--wait-linked")
			o.wait_linked = v != "0";
		else if (k == "--fvecs")
			o.fvecs = v;
		else if (k == "--truth")
			o.truth = v;
		else if (k == "--seconds")
			o.seconds = std::stod(v);
		else if (k == "--k")
			o.k = std::stoi(v);
		else if (k == "--ef")
			o.ef = std::stoi(v);
		else if (k == "--sql")
			o.sql = v;
		else if (k == "--since")
			o.since_ns = std::stoll(v);
		else if (k == "--baseline-ms")
			o.baseline_ms = std::stod(v);
		else if (k == "--settle")
			o.settle = std::stod(v);
		else if (k == "--target")
			o.target = v;
		else if (k == "--queries")
			o.queries = v;
		else if (k == "--tenants")
			o.tenants = std::stoi(v);
		else if (k == "--load")
			o.load = v != "0";
		else if (k == "--ef-construction")
			o.ef_construction = std::stoi(v);
		else if (k == "--m")
			o.m = std::stoi(v);
		else if (k == "--iterative")
			o.iterative = v;
		else if (k == "--label")
			o.label = v;
		else if (k == "--case-seconds")
			o.case_seconds = std::stod(v);
		else if (k == "--vacuum")
			o.vacuum = v != "0";
		else
			engram_load::die("unknown option " + k);
	}
	if (o.clients < 1 || o.batch < 1 || o.spaces < 1 || o.k < 1 || o.dim < 1)
		engram_load::die("--clients, --batch, --spaces, --k and --dim must be positive");
	return o;
}

} // namespace

int
main(int argc, char **argv)
{
	const engram_load::Options o = parse(argc, argv);
	if (o.mode == "recall")
		return engram_load::run_recall(o);
	if (o.mode == "startup")
		return engram_load::run_startup(o);
	if (o.mode == "observe_batch" || o.mode == "copy" || o.mode == "plain_copy")
		return engram_load::run_ingest(o);
	if (o.mode == "filtered")
		return engram_load::run_filtered(o);
	if (o.mode == "forget")
		return engram_load::run_forget(o);
	engram_load::die("--mode must be observe_batch, copy, plain_copy, recall, startup, filtered or forget");
}
