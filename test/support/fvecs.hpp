// Reading and writing the .fvecs / .ivecs files of the benchmark data sets
// (per row: an int32 dimension, then that many float32 or int32 values,
// little-endian), and scoring search results against their ground truth.
//
// For tests, benchmarks and offline tools only: the extension never reads
// these files, and engram.so is built without this one. Errors come back as a message, never as an exception or a
// log line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace engram::core {

template <typename T>
struct Matrix {
	std::uint32_t dim = 0;
	std::vector<T> values; // rows end to end

	std::size_t rows() const noexcept { return dim == 0 ? 0 : values.size() / dim; }
	std::span<const T> row(std::size_t i) const noexcept { return {values.data() + i * dim, dim}; }
};

// Reads at most max_rows rows; an empty string means success, anything else
// describes what went wrong.
std::string read_fvecs(const std::string &path, Matrix<float> &out,
					   std::size_t max_rows = std::numeric_limits<std::size_t>::max());
std::string read_ivecs(const std::string &path, Matrix<std::int32_t> &out,
					   std::size_t max_rows = std::numeric_limits<std::size_t>::max());

// Writes every row of `m`; an empty string means success.
std::string write_fvecs(const std::string &path, const Matrix<float> &m);
std::string write_ivecs(const std::string &path, const Matrix<std::int32_t> &m);

// One of the data sets under a data directory: <dir>/<name>/<name>_{base,query}.fvecs
// and <name>_groundtruth.ivecs.
struct Dataset {
	std::string name;
	Matrix<float> base;
	Matrix<float> query;
	Matrix<std::int32_t> truth;
};

std::string load_dataset(const std::string &data_dir, const std::string &name, Dataset &out,
						 std::size_t max_queries = std::numeric_limits<std::size_t>::max());

// Fraction of the true k nearest (first k ground-truth ids of each query)
// found among the first k ids returned for that query. found holds k ids per
// query (fewer are padded with UINT32_MAX by the caller).
double recall_at_k(const Matrix<std::int32_t> &truth, std::span<const std::uint32_t> found, std::uint32_t k);

} // namespace engram::core
