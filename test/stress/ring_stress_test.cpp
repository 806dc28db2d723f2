// The ring under real concurrency: producer threads and forked producer
// processes race to reserve, commit and cancel while consumers take turns to
// drain. Every committed record must come out exactly once and intact, no
// cancelled record may come out, and a producer killed with SIGKILL in the
// middle of a record must not wedge the consumers.
#include "core/ring.hpp"

#include <gtest/gtest.h>

#include "../unit/heap_region.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::SharedRegion;

bool
always_alive(std::uint32_t) noexcept
{
	return true;
}

// A record: producer id, sequence number, checksum, then filler.
struct Item {
	std::uint32_t producer;
	std::uint32_t seq;
	std::uint32_t filler_bytes;
	std::uint32_t checksum;
};

std::uint32_t
checksum_of(const Item &item)
{
	return item.producer * 2654435761u ^ item.seq * 40503u ^ item.filler_bytes;
}

// Reserves one record (retrying while full), fills it, and commits or cancels
// it; returns true if committed.
bool
produce_one(Ring &ring, std::uint32_t producer, std::uint32_t seq, std::uint32_t owner)
{
	const std::uint32_t filler = (seq * 37 + producer * 11) % 700;
	Reservation r;
	while ((r = ring.try_reserve(sizeof(Item) + filler, owner)).status == ReserveStatus::full)
		std::this_thread::yield();
	Item item{producer, seq, filler, 0};
	item.checksum = checksum_of(item);
	std::memcpy(r.payload.data(), &item, sizeof item);
	std::memset(r.payload.data() + sizeof item, static_cast<int>(seq & 0xff), filler);
	if (seq % 5 == 4) {
		ring.cancel(r.position);
		return false;
	}
	return ring.commit(std::span(&r.position, 1)) != 0;
}

// Drains whatever is ready; returns how many records it took.
std::size_t
drain(Ring &ring, std::uint32_t token, std::vector<std::uint32_t> &next_seq, std::atomic<std::uint64_t> &errors,
	  std::uint64_t &last_generation_seen)
{
	if (!ring.try_acquire_consumer(token))
		return 0;
	std::size_t taken = 0;
	for (;;) {
		RecordView v = ring.peek();
		if (v.status != PeekStatus::ready)
			break;
		Item item;
		std::memcpy(&item, v.payload.data(), sizeof item);
		bool ok = v.payload.size() == sizeof item + item.filler_bytes && item.checksum == checksum_of(item) &&
				  item.producer < next_seq.size() && item.seq % 5 != 4;
		for (std::uint32_t i = 0; ok && i < item.filler_bytes; ++i)
			ok = v.payload[sizeof item + i] == static_cast<std::byte>(item.seq & 0xff);
		// Records of one producer come out in its own order (it commits in order).
		if (ok && item.seq < next_seq[item.producer])
			ok = false;
		if (ok)
			next_seq[item.producer] = item.seq + 1;
		if (!ok)
			errors.fetch_add(1);
		last_generation_seen = std::max(last_generation_seen, v.generation);
		ring.pop(v);
		++taken;
	}
	ring.advance_published();
	ring.release_consumer(token);
	return taken;
}

class RingThreads : public ::testing::TestWithParam<int> {};

TEST_P(RingThreads, EveryCommittedRecordArrivesOnceAndIntact)
{
	const int producers = GetParam();
	constexpr std::uint32_t per_producer = 20000;
	constexpr std::size_t capacity = 64 * 1024; // small, so producers wrap and meet "full" often
	std::vector<std::byte> storage(Ring::region_bytes(capacity) + 64);
	auto *aligned =
		reinterpret_cast<std::byte *>((reinterpret_cast<std::uintptr_t>(storage.data()) + 63) & ~std::uintptr_t{63});
	Ring ring = Ring::create(aligned, capacity, always_alive);

	std::atomic<int> producers_done{0};
	std::atomic<std::uint64_t> committed{0};
	std::vector<std::thread> threads;
	for (int p = 0; p < producers; ++p)
		threads.emplace_back([&, p] {
			std::uint64_t mine = 0;
			for (std::uint32_t s = 0; s < per_producer; ++s)
				mine += produce_one(ring, static_cast<std::uint32_t>(p), s, static_cast<std::uint32_t>(p + 1));
			committed.fetch_add(mine);
			producers_done.fetch_add(1);
		});

	// Two consumers take turns through the consumer token.
	std::atomic<std::uint64_t> consumed{0}, errors{0};
	std::vector<std::uint32_t> next_seq(producers, 0);
	std::vector<std::thread> consumers;
	for (std::uint32_t c = 0; c < 2; ++c)
		consumers.emplace_back([&, c] {
			std::uint64_t last_gen = 0;
			for (;;) {
				const bool finished = producers_done.load() == producers;
				consumed.fetch_add(drain(ring, 1000 + c, next_seq, errors, last_gen));
				if (finished && ring.used_cells() == 0)
					break;
				std::this_thread::yield();
			}
		});
	for (auto &t : threads)
		t.join();
	for (auto &t : consumers)
		t.join();

	EXPECT_EQ(errors.load(), 0u);
	EXPECT_EQ(consumed.load(), committed.load());
	EXPECT_EQ(committed.load(), producers * (per_producer - per_producer / 5));
	EXPECT_EQ(ring.published_generation(), ring.last_generation());
}

INSTANTIATE_TEST_SUITE_P(Producers, RingThreads, ::testing::Values(1, 2, 4, 8));

TEST(RingProcesses, ForkedProducersAndConsumersShareOneRegion)
{
	constexpr int producers = 4;
	constexpr std::uint32_t per_producer = 20000;
	constexpr std::size_t capacity = 128 * 1024;
	SharedRegion region(Ring::region_bytes(capacity) + sizeof(std::atomic<std::uint64_t>) * 4);
	ASSERT_NE(region.base, nullptr);
	Ring ring = Ring::create(region.base, capacity);
	auto *counters = reinterpret_cast<std::atomic<std::uint64_t> *>(region.base + Ring::region_bytes(capacity));
	auto &committed = counters[0];
	auto &consumed = counters[1];
	auto &errors = counters[2];
	auto &done = counters[3];
	committed = consumed = errors = done = 0;

	std::vector<pid_t> children;
	for (int p = 0; p < producers; ++p) {
		pid_t pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			Ring mine(region.base);
			std::uint64_t n = 0;
			for (std::uint32_t s = 0; s < per_producer; ++s)
				n += produce_one(mine, static_cast<std::uint32_t>(p), s, static_cast<std::uint32_t>(getpid()));
			committed.fetch_add(n);
			done.fetch_add(1);
			_exit(0);
		}
		children.push_back(pid);
	}
	// Two consumer processes (the test process is one of them).
	pid_t consumer = fork();
	ASSERT_GE(consumer, 0);
	auto consume_loop = [&] {
		Ring mine(region.base);
		std::vector<std::uint32_t> next_seq(producers, 0);
		std::atomic<std::uint64_t> local_errors{0};
		std::uint64_t last_gen = 0;
		for (;;) {
			const bool finished = done.load() == producers;
			consumed.fetch_add(drain(mine, static_cast<std::uint32_t>(getpid()), next_seq, local_errors, last_gen));
			if (finished && mine.used_cells() == 0)
				break;
			usleep(50);
		}
		errors.fetch_add(local_errors.load());
	};
	if (consumer == 0) {
		consume_loop();
		_exit(0);
	}
	consume_loop();
	for (pid_t pid : children) {
		int status = 0;
		waitpid(pid, &status, 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	int status = 0;
	waitpid(consumer, &status, 0);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	// Per-producer ordering is checked per consumer; across the two consumers
	// the counts must still add up exactly.
	EXPECT_EQ(errors.load(), 0u);
	EXPECT_EQ(consumed.load(), committed.load());
	EXPECT_EQ(committed.load(), producers * (per_producer - per_producer / 5));
	EXPECT_EQ(ring.published_generation(), ring.last_generation());
}

TEST(RingProcesses, ProducerKilledMidRecordDoesNotWedgeConsumers)
{
	constexpr std::size_t capacity = 64 * 1024;
	SharedRegion region(Ring::region_bytes(capacity));
	ASSERT_NE(region.base, nullptr);
	Ring ring = Ring::create(region.base, capacity);
	int ready[2];
	ASSERT_EQ(pipe(ready), 0);
	pid_t victim = fork();
	ASSERT_GE(victim, 0);
	if (victim == 0) {
		Ring mine(region.base);
		Reservation r = mine.try_reserve(1000, static_cast<std::uint32_t>(getpid()));
		std::memset(r.payload.data(), 0xab, 500); // half written
		char c = 1;
		(void) !write(ready[1], &c, 1);
		pause(); // never commits
		_exit(0);
	}
	char c;
	ASSERT_EQ(read(ready[0], &c, 1), 1);
	// A healthy producer commits behind the victim's record.
	Reservation r = ring.try_reserve(sizeof(std::uint32_t), static_cast<std::uint32_t>(getpid()));
	const std::uint32_t marker = 0xfeed;
	std::memcpy(r.payload.data(), &marker, sizeof marker);
	ring.commit(std::span(&r.position, 1));

	ASSERT_TRUE(ring.try_acquire_consumer(static_cast<std::uint32_t>(getpid())));
	EXPECT_EQ(ring.peek().status, PeekStatus::blocked) << "a live producer's record must be waited for";
	kill(victim, SIGKILL);
	int status = 0;
	waitpid(victim, &status, 0);
	ASSERT_TRUE(WIFSIGNALED(status));
	RecordView v = ring.peek();
	ASSERT_EQ(v.status, PeekStatus::ready);
	std::uint32_t got;
	std::memcpy(&got, v.payload.data(), sizeof got);
	EXPECT_EQ(got, marker);
	EXPECT_EQ(ring.abandoned_records(), 1u);
	ring.pop(v);
	EXPECT_EQ(ring.peek().status, PeekStatus::empty);
}

TEST(RingProcesses, ConsumerKilledWhileHoldingTheTokenIsReplaced)
{
	constexpr std::size_t capacity = 64 * 1024;
	SharedRegion region(Ring::region_bytes(capacity));
	ASSERT_NE(region.base, nullptr);
	Ring ring = Ring::create(region.base, capacity);
	pid_t holder = fork();
	ASSERT_GE(holder, 0);
	if (holder == 0) {
		Ring mine(region.base);
		mine.try_acquire_consumer(static_cast<std::uint32_t>(getpid()));
		pause();
		_exit(0);
	}
	while (reinterpret_cast<RingHeader *>(region.base)->consumer.load() != static_cast<std::uint32_t>(holder))
		usleep(100);
	EXPECT_FALSE(ring.try_acquire_consumer(static_cast<std::uint32_t>(getpid())));
	kill(holder, SIGKILL);
	waitpid(holder, nullptr, 0);
	EXPECT_TRUE(ring.try_acquire_consumer(static_cast<std::uint32_t>(getpid())));
}

} // namespace
} // namespace engram::core
