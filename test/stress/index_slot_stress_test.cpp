// IndexSlot under real concurrency: readers in threads and in forked
// processes pin the current graph and check that it stays intact while a
// writer keeps installing replacements, switching to them, retiring the old
// ones and poisoning and freeing them once drained. A reader that ever sees a
// poisoned block while holding a pin shows a use after free.
#include "core/arena.hpp"
#include "core/index_slot.hpp"

#include <gtest/gtest.h>

#include "../unit/heap_region.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::SharedRegion;

constexpr std::uint64_t k_alive = 0xA11CEA11CEA11CEULL;
constexpr std::uint64_t k_dead = 0xDEADDEADDEADDEADULL;
constexpr std::size_t k_block_words = 64;

// The shared state of one run: the slot, the stop flag and the counters.
struct Shared {
	IndexSlot slot;
	std::atomic<bool> stop;
	std::atomic<std::uint64_t> reads;
	std::atomic<std::uint64_t> bad;
};

// Every word of a live block holds k_alive; a retired one is overwritten.
std::uint64_t
make_block(Arena arena)
{
	const std::uint64_t offset = arena.allocate(k_block_words * sizeof(std::uint64_t));
	auto *words = arena.at<std::atomic<std::uint64_t>>(offset);
	for (std::size_t i = 0; i < k_block_words; ++i)
		new (&words[i]) std::atomic<std::uint64_t>(k_alive);
	return offset;
}

void
poison_and_free(Arena arena, std::uint64_t offset)
{
	auto *words = arena.at<std::atomic<std::uint64_t>>(offset);
	for (std::size_t i = 0; i < k_block_words; ++i)
		words[i].store(k_dead, std::memory_order_relaxed);
	arena.release(offset, k_block_words * sizeof(std::uint64_t));
}

void
read_until_stopped(Shared &shared, Arena arena)
{
	while (!shared.stop.load(std::memory_order_acquire)) {
		GraphPin pin = pin_current(shared.slot);
		if (!pin)
			continue;
		const auto *words = arena.at<std::atomic<std::uint64_t>>(pin.offset());
		for (std::size_t i = 0; i < k_block_words; ++i)
			if (words[i].load(std::memory_order_relaxed) != k_alive)
				shared.bad.fetch_add(1, std::memory_order_relaxed);
		shared.reads.fetch_add(1, std::memory_order_relaxed);
	}
}

// Replaces the current block again and again, the way a rebuild replaces a
// graph: for at least a second and at least k_min_rounds times, so a loaded
// machine (where a pin can outlive a time slice) only makes it slower; the
// generous cap only stops a writer that no longer makes progress. Returns
// the rounds.
constexpr int k_min_rounds = 20;

int
replace_blocks(Shared &shared, Arena arena)
{
	// Start once the readers are reading, so the replacements meet them.
	while (shared.reads.load(std::memory_order_relaxed) == 0)
		std::this_thread::yield();
	const auto start = std::chrono::steady_clock::now();
	const auto busy = [&](int rounds) {
		const auto elapsed = std::chrono::steady_clock::now() - start;
		return elapsed < std::chrono::seconds(120) && (elapsed < std::chrono::seconds(1) || rounds < k_min_rounds);
	};
	int rounds = 0;
	for (; busy(rounds); ++rounds) {
		const unsigned old = shared.slot.current.load(std::memory_order_relaxed);
		const unsigned next = 1 - old;
		install(shared.slot, next, make_block(arena));
		make_current(shared.slot, next);
		const std::uint64_t retired = retire(shared.slot, old);
		while (!drained(shared.slot, old))
			std::this_thread::yield();
		poison_and_free(arena, retired);
	}
	return rounds;
}

class IndexSlotStress : public ::testing::TestWithParam<int> {};

TEST_P(IndexSlotStress, PinnedGraphsAreNeverFreedUnderThreads)
{
	const int readers = GetParam();
	SharedRegion region(4 << 20);
	auto *shared = new (region.base) Shared{};
	Arena arena = Arena::create(region.base + 4096, region.size - 4096);
	reset(shared->slot);
	install(shared->slot, 0, make_block(arena));
	std::vector<std::thread> threads;
	for (int i = 0; i < readers; ++i)
		threads.emplace_back([&] { read_until_stopped(*shared, arena); });
	EXPECT_GE(replace_blocks(*shared, arena), k_min_rounds);
	shared->stop = true;
	for (auto &t : threads)
		t.join();
	EXPECT_EQ(shared->bad.load(), 0u);
	EXPECT_GT(shared->reads.load(), 0u);
	poison_and_free(arena, retire(shared->slot, shared->slot.current.load()));
	EXPECT_EQ(arena.used_bytes(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Readers, IndexSlotStress, ::testing::Values(1, 2, 4, 8));

TEST(IndexSlotStressProcesses, PinnedGraphsAreNeverFreedUnderForkedReaders)
{
	SharedRegion region(4 << 20);
	auto *shared = new (region.base) Shared{};
	Arena arena = Arena::create(region.base + 4096, region.size - 4096);
	reset(shared->slot);
	install(shared->slot, 0, make_block(arena));
	std::vector<pid_t> children;
	for (int i = 0; i < 3; ++i) {
		const pid_t pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			// The child sees the same bytes through its own mapping.
			read_until_stopped(*shared, Arena(region.base + 4096));
			_exit(0);
		}
		children.push_back(pid);
	}
	EXPECT_GE(replace_blocks(*shared, arena), k_min_rounds);
	shared->stop = true;
	for (pid_t pid : children) {
		int status = 0;
		waitpid(pid, &status, 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	EXPECT_EQ(shared->bad.load(), 0u);
	EXPECT_GT(shared->reads.load(), 0u);
}

TEST(IndexSlot, PinFailsOnceRetiredAndCurrentFollowsTheSwitch)
{
	IndexSlot slot;
	reset(slot);
	EXPECT_FALSE(pin_current(slot));
	install(slot, 0, 4096);
	{
		GraphPin pin = pin_current(slot);
		ASSERT_TRUE(pin);
		EXPECT_EQ(pin.offset(), 4096u);
		EXPECT_FALSE(drained(slot, 0));
		GraphPin moved = std::move(pin);
		EXPECT_FALSE(pin);
		EXPECT_TRUE(moved);
	}
	EXPECT_TRUE(drained(slot, 0));
	install(slot, 1, 8192);
	EXPECT_EQ(pin_current(slot).offset(), 4096u) << "installed is not current yet";
	make_current(slot, 1);
	EXPECT_EQ(pin_current(slot).offset(), 8192u);
	EXPECT_EQ(retire(slot, 0), 4096u);
	EXPECT_FALSE(GraphPin(slot, 0));
	EXPECT_EQ(retire(slot, 0), 0u);
}

} // namespace
} // namespace engram::core
