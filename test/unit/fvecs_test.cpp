// The data-set files round-trip: what write_fvecs/write_ivecs write,
// read_fvecs/read_ivecs read back exactly, and damaged files are refused
// with a message.
#include "support/fvecs.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <unistd.h>

namespace engram::core {
namespace {

std::string
temp_path(const char *name)
{
	return (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + name)).string();
}

TEST(Fvecs, WrittenRowsReadBackExactly)
{
	Matrix<float> floats{3, {1.5f, -2.0f, 0.0f, 4.25f, 1e-30f, -7.0f}};
	Matrix<std::int32_t> ints{2, {7, -1, 0, 2147483647}};
	const std::string fpath = temp_path("_rt.fvecs"), ipath = temp_path("_rt.ivecs");
	ASSERT_EQ(write_fvecs(fpath, floats), "");
	ASSERT_EQ(write_ivecs(ipath, ints), "");
	Matrix<float> floats_back;
	Matrix<std::int32_t> ints_back;
	ASSERT_EQ(read_fvecs(fpath, floats_back), "");
	ASSERT_EQ(read_ivecs(ipath, ints_back), "");
	EXPECT_EQ(floats_back.dim, 3u);
	EXPECT_EQ(floats_back.values, floats.values);
	EXPECT_EQ(ints_back.dim, 2u);
	EXPECT_EQ(ints_back.values, ints.values);
	EXPECT_EQ(std::filesystem::file_size(fpath), 2 * (4 + 3 * 4));

	Matrix<float> first;
	ASSERT_EQ(read_fvecs(fpath, first, 1), "");
	EXPECT_EQ(first.rows(), 1u);
	std::remove(fpath.c_str());
	std::remove(ipath.c_str());
}

TEST(Fvecs, TruncatedAndMissingFilesAreRefused)
{
	const std::string path = temp_path("_cut.fvecs");
	ASSERT_EQ(write_fvecs(path, Matrix<float>{4, {1, 2, 3, 4, 5, 6, 7, 8}}), "");
	std::filesystem::resize_file(path, std::filesystem::file_size(path) - 2);
	Matrix<float> m;
	EXPECT_NE(read_fvecs(path, m).find("truncated"), std::string::npos);
	std::remove(path.c_str());
	EXPECT_NE(read_fvecs(path, m).find("cannot open"), std::string::npos);
	EXPECT_NE(write_fvecs("/nonexistent-dir/x.fvecs", m).find("cannot create"), std::string::npos);
}

} // namespace
} // namespace engram::core
