// File reading and writing for data sets: whole rows at a time with
// std::FILE, checking that every row read repeats the first row's dimension.
#include "support/fvecs.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>

namespace engram::core {

namespace {

struct FileCloser {
	void operator()(std::FILE *f) const noexcept { std::fclose(f); }
};

template <typename T>
std::string
read_vecs(const std::string &path, Matrix<T> &out, std::size_t max_rows)
{
	static_assert(sizeof(T) == 4);
	out.dim = 0;
	out.values.clear();
	std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
	if (!file)
		return "cannot open " + path;
	for (std::size_t row = 0; row < max_rows; ++row) {
		std::int32_t dim;
		const std::size_t got = std::fread(&dim, sizeof dim, 1, file.get());
		if (got == 0)
			break;
		if (dim <= 0 || (out.dim != 0 && static_cast<std::uint32_t>(dim) != out.dim))
			return path + ": row " + std::to_string(row) + " has dimension " + std::to_string(dim);
		out.dim = static_cast<std::uint32_t>(dim);
		const std::size_t at = out.values.size();
		out.values.resize(at + out.dim);
		if (std::fread(out.values.data() + at, sizeof(T), out.dim, file.get()) != out.dim)
			return path + ": row " + std::to_string(row) + " is truncated";
	}
	if (out.dim == 0)
		return path + " holds no vectors";
	return {};
}

template <typename T>
std::string
write_vecs(const std::string &path, const Matrix<T> &m)
{
	static_assert(sizeof(T) == 4);
	std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
	if (!file)
		return "cannot create " + path;
	const auto dim = static_cast<std::int32_t>(m.dim);
	for (std::size_t row = 0; row < m.rows(); ++row)
		if (std::fwrite(&dim, sizeof dim, 1, file.get()) != 1 ||
			std::fwrite(m.row(row).data(), sizeof(T), m.dim, file.get()) != m.dim)
			return "cannot write " + path;
	if (std::fclose(file.release()) != 0)
		return "cannot write " + path;
	return {};
}

} // namespace

std::string
write_fvecs(const std::string &path, const Matrix<float> &m)
{
	return write_vecs(path, m);
}

std::string
write_ivecs(const std::string &path, const Matrix<std::int32_t> &m)
{
	return write_vecs(path, m);
}

std::string
read_fvecs(const std::string &path, Matrix<float> &out, std::size_t max_rows)
{
	return read_vecs(path, out, max_rows);
}

std::string
read_ivecs(const std::string &path, Matrix<std::int32_t> &out, std::size_t max_rows)
{
	return read_vecs(path, out, max_rows);
}

std::string
load_dataset(const std::string &data_dir, const std::string &name, Dataset &out, std::size_t max_queries)
{
	out.name = name;
	const std::string prefix = data_dir + "/" + name + "/" + name;
	std::string error = read_fvecs(prefix + "_base.fvecs", out.base);
	if (error.empty())
		error = read_fvecs(prefix + "_query.fvecs", out.query, max_queries);
	if (error.empty())
		error = read_ivecs(prefix + "_groundtruth.ivecs", out.truth, max_queries);
	if (error.empty() && (out.base.dim != out.query.dim || out.truth.rows() != out.query.rows()))
		error = name + ": base, query and ground truth do not match";
	return error;
}

double
recall_at_k(const Matrix<std::int32_t> &truth, std::span<const std::uint32_t> found, std::uint32_t k)
{
	const std::size_t queries = std::min(truth.rows(), found.size() / k);
	if (queries == 0 || k == 0 || k > truth.dim)
		return 0.0;
	std::size_t hits = 0;
	for (std::size_t q = 0; q < queries; ++q) {
		const std::span<const std::int32_t> expected = truth.row(q).first(k);
		const std::span<const std::uint32_t> got = found.subspan(q * k, k);
		for (const std::uint32_t id : got)
			hits += std::count(expected.begin(), expected.end(), static_cast<std::int32_t>(id)) != 0 ? 1 : 0;
	}
	return static_cast<double>(hits) / static_cast<double>(queries * k);
}

} // namespace engram::core
