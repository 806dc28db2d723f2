// libpq helpers, binary arrays and vector sources of the load client.
#include "pg_client.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "support/fvecs.hpp"

namespace engram_load {

void
die(const std::string &message)
{
	std::fprintf(stderr, "engram_load: %s\n", message.c_str());
	std::exit(1);
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

std::string
quote_literal(PGconn *c, const std::string &text)
{
	char *quoted = PQescapeLiteral(c, text.c_str(), text.size());
	if (quoted == nullptr)
		die(PQerrorMessage(c));
	std::string out = quoted;
	PQfreemem(quoted);
	return out;
}

std::string
binary_real_array(const float *values, int rows, int dim)
{
	std::string out;
	auto put32 = [&](std::uint32_t v) {
		v = htonl(v);
		out.append(reinterpret_cast<const char *>(&v), 4);
	};
	put32(rows == 0 ? 1 : 2); // ndim
	put32(0);                 // no nulls
	put32(700);               // float4
	if (rows != 0) {
		put32(static_cast<std::uint32_t>(rows));
		put32(1);
	}
	put32(static_cast<std::uint32_t>(dim));
	put32(1);
	const long n = static_cast<long>(rows == 0 ? 1 : rows) * dim;
	for (long i = 0; i < n; ++i) {
		put32(4);
		std::uint32_t bits;
		std::memcpy(&bits, &values[i], 4);
		put32(bits);
	}
	return out;
}

std::string
pgvector_opclass(const std::string &metric)
{
	if (metric == "l2")
		return "public.vector_l2_ops";
	if (metric == "cosine")
		return "public.vector_cosine_ops";
	if (metric == "ip")
		return "public.vector_ip_ops";
	die("--metric must be l2, cosine or ip");
}

std::string
pgvector_operator(const std::string &metric)
{
	if (metric == "l2")
		return "OPERATOR(public.<->)";
	if (metric == "cosine")
		return "OPERATOR(public.<=>)";
	if (metric == "ip")
		return "OPERATOR(public.<#>)";
	die("--metric must be l2, cosine or ip");
}

VectorSource::VectorSource(const Options &o) : dim_(o.dim), from_file_(!o.fvecs.empty())
{
	if (from_file_) {
		engram::core::Matrix<float> m;
		if (const std::string error = engram::core::read_fvecs(o.fvecs, m); !error.empty())
			die(error);
		dim_ = static_cast<int>(m.dim);
		values_ = std::move(m.values);
		return;
	}
	std::mt19937 rng(1234);
	std::normal_distribution<float> gauss;
	values_.resize(static_cast<std::size_t>(o.rows) * dim_);
	for (float &v : values_)
		v = gauss(rng);
}

} // namespace engram_load
