// The arena under real concurrency: threads, and forked processes sharing
// one mapping, allocate blocks of random sizes, fill each with a pattern of
// their own, check it later and release the blocks in random order. A block
// handed out twice, or a tag written into a live block, breaks someone's
// pattern; a block that does not come out zero shows freed memory that was
// not cleared. When everyone is done the arena is whole again: every block
// was merged back.
#include "core/arena.hpp"

#include <gtest/gtest.h>

#include "../unit/heap_region.hpp"
#include "../unit/sanitizers.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace engram::core {
namespace {

using test_support::SharedRegion;

constexpr std::size_t k_region = 32 << 20;
constexpr int k_rounds = test_support::k_sanitized ? 4000 : 20000;

struct Failures {
	std::atomic<std::uint64_t> not_zero;
	std::atomic<std::uint64_t> clobbered;
	std::atomic<std::uint64_t> allocations;
};

// One participant: keeps up to 64 blocks, each filled with its own byte.
void
churn(Arena arena, Failures &failures, unsigned seed)
{
	std::mt19937_64 rng(seed);
	std::vector<std::pair<std::uint64_t, std::size_t>> held;
	auto check_and_release = [&](std::size_t i) {
		const auto [offset, bytes] = held[i];
		const auto *p = arena.at<const unsigned char>(offset);
		const auto mark = static_cast<unsigned char>(offset / 64 * 31 + seed);
		if (!std::all_of(p, p + bytes, [mark](unsigned char x) { return x == mark; }))
			failures.clobbered.fetch_add(1, std::memory_order_relaxed);
		arena.release(offset, bytes);
		held[i] = held.back();
		held.pop_back();
	};
	for (int round = 0; round < k_rounds; ++round) {
		if (held.size() < 64 && rng() % 2 == 0) {
			const std::size_t bytes = 1 + rng() % (rng() % 16 == 0 ? 65536 : 2048);
			const std::uint64_t offset = arena.allocate(bytes);
			if (offset == 0)
				continue;
			auto *p = arena.at<unsigned char>(offset);
			if (!std::all_of(p, p + Arena::rounded(bytes), [](unsigned char x) { return x == 0; }))
				failures.not_zero.fetch_add(1, std::memory_order_relaxed);
			std::memset(p, static_cast<unsigned char>(offset / 64 * 31 + seed), bytes);
			held.emplace_back(offset, bytes);
			failures.allocations.fetch_add(1, std::memory_order_relaxed);
		} else if (!held.empty())
			check_and_release(rng() % held.size());
	}
	while (!held.empty())
		check_and_release(held.size() - 1);
}

void
expect_whole(Arena arena, const Failures &failures)
{
	EXPECT_EQ(failures.not_zero.load(), 0u);
	EXPECT_EQ(failures.clobbered.load(), 0u);
	EXPECT_GT(failures.allocations.load(), 0u);
	EXPECT_EQ(arena.used_bytes(), 0u);
	EXPECT_EQ(arena.free_blocks(), 0u) << "every block merged back into the bump frontier";
	EXPECT_NE(arena.allocate(arena.capacity_bytes()), 0u);
}

TEST(ArenaStress, ThreadsShareOneArena)
{
	test_support::Region region(k_region);
	Failures failures{};
	std::vector<std::thread> threads;
	for (unsigned t = 0; t < 4; ++t)
		threads.emplace_back([&, t] { churn(region.arena, failures, 100 + t); });
	for (std::thread &t : threads)
		t.join();
	expect_whole(region.arena, failures);
}

TEST(ArenaStress, ForkedProcessesShareOneArena)
{
	SharedRegion region(k_region + 4096);
	auto *failures = new (region.base) Failures{};
	Arena arena = Arena::create(region.base + 4096, k_region);
	std::vector<pid_t> children;
	for (unsigned i = 0; i < 3; ++i) {
		const pid_t pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			// The child sees the same bytes through its own mapping.
			churn(Arena(region.base + 4096), *failures, 200 + i);
			_exit(0);
		}
		children.push_back(pid);
	}
	churn(arena, *failures, 300);
	for (pid_t pid : children) {
		int status = 0;
		waitpid(pid, &status, 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	expect_whole(arena, *failures);
}

} // namespace
} // namespace engram::core
