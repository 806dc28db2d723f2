// Single-threaded behaviour of the ring: record lifecycle, ordering, wrap
// padding, fullness, abandonment of dead owners and the published generation.
#include "core/ring.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace engram::core {
namespace {

bool
always_alive(std::uint32_t) noexcept
{
	return true;
}
bool
owner_7_dead(std::uint32_t owner) noexcept
{
	return owner != 7;
}

struct RingFixture {
	explicit RingFixture(std::size_t capacity, OwnerAlive alive = always_alive)
		: region(Ring::region_bytes(capacity) / 64 + 1), ring(Ring::create(bytes(), capacity, alive))
	{
	}
	std::byte *bytes() { return reinterpret_cast<std::byte *>(region.data()); }
	struct alignas(64) Line {
		std::byte b[64];
	};
	std::vector<Line> region;
	Ring ring;
};

std::uint64_t
put(Ring &ring, std::uint32_t value, std::uint32_t owner = 1, std::size_t bytes = sizeof(std::uint32_t))
{
	Reservation r = ring.try_reserve(bytes, owner);
	EXPECT_EQ(r.status, ReserveStatus::ok);
	std::memcpy(r.payload.data(), &value, sizeof value);
	return r.position;
}

std::uint32_t
value_of(const RecordView &v)
{
	std::uint32_t x;
	std::memcpy(&x, v.payload.data(), sizeof x);
	return x;
}

TEST(Ring, CommittedRecordsComeOutInPositionOrderWithTheirGeneration)
{
	RingFixture f(64 * 1024);
	std::uint64_t a = put(f.ring, 10);
	std::uint64_t b = put(f.ring, 20);
	const std::uint64_t gb = f.ring.commit(std::span(&b, 1));
	const std::uint64_t ga = f.ring.commit(std::span(&a, 1));
	EXPECT_LT(gb, ga);
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	RecordView v = f.ring.peek();
	ASSERT_EQ(v.status, PeekStatus::ready);
	EXPECT_EQ(value_of(v), 10u);
	EXPECT_EQ(v.generation, ga);
	f.ring.pop(v);
	v = f.ring.peek();
	ASSERT_EQ(v.status, PeekStatus::ready);
	EXPECT_EQ(value_of(v), 20u);
	EXPECT_EQ(v.generation, gb);
	f.ring.pop(v);
	EXPECT_EQ(f.ring.peek().status, PeekStatus::empty);
	EXPECT_EQ(f.ring.used_cells(), 0u);
}

TEST(Ring, PoppedRecordsLeaveNoPayloadBytesBehind)
{
	// Erasure: a consumed record's bytes (a forgotten vector, say) must not
	// stay in the ring until a later record happens to reuse its cells.
	RingFixture f(64 * 1024);
	const std::uint32_t secret = 0xC0FFEE42u;
	std::uint64_t a = put(f.ring, secret, 1, 1000);
	f.ring.commit(std::span(&a, 1));
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	RecordView v = f.ring.peek();
	ASSERT_EQ(v.status, PeekStatus::ready);
	const std::byte *payload = v.payload.data();
	f.ring.pop(v);
	for (std::size_t i = 0; i < 1000; ++i)
		ASSERT_EQ(payload[i], std::byte{0}) << "byte " << i;
	const std::byte *begin = f.bytes(), *end = begin + f.region.size() * sizeof(RingFixture::Line);
	const auto *pattern = reinterpret_cast<const std::byte *>(&secret);
	EXPECT_EQ(std::search(begin, end, pattern, pattern + sizeof secret), end);
}

TEST(Ring, ReservedRecordBlocksUntilCommittedAndCancelledOnesAreSkipped)
{
	RingFixture f(64 * 1024);
	std::uint64_t a = put(f.ring, 1);
	std::uint64_t b = put(f.ring, 2);
	std::uint64_t c = put(f.ring, 3);
	f.ring.commit(std::span(&c, 1));
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	EXPECT_EQ(f.ring.peek().status, PeekStatus::blocked);
	f.ring.cancel(a);
	EXPECT_EQ(f.ring.peek().status, PeekStatus::blocked);
	f.ring.cancel(b);
	RecordView v = f.ring.peek();
	ASSERT_EQ(v.status, PeekStatus::ready);
	EXPECT_EQ(value_of(v), 3u);
}

TEST(Ring, OneTransactionSharesOneGeneration)
{
	RingFixture f(64 * 1024);
	std::uint64_t ps[3] = {put(f.ring, 1), put(f.ring, 2), put(f.ring, 3)};
	const std::uint64_t g = f.ring.commit(ps);
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	for (int i = 0; i < 3; ++i) {
		RecordView v = f.ring.peek();
		ASSERT_EQ(v.status, PeekStatus::ready);
		EXPECT_EQ(v.generation, g);
		f.ring.pop(v);
	}
}

TEST(Ring, RefusesWhenFullAndAcceptsAgainAfterDraining)
{
	RingFixture f(4096); // 64 cells; each 100-byte record takes 2
	std::vector<std::uint64_t> positions;
	for (;;) {
		Reservation r = f.ring.try_reserve(100, 1);
		if (r.status == ReserveStatus::full)
			break;
		ASSERT_EQ(r.status, ReserveStatus::ok);
		positions.push_back(r.position);
	}
	EXPECT_EQ(positions.size(), 32u);
	EXPECT_DOUBLE_EQ(f.ring.fill(), 1.0);
	f.ring.commit(positions);
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	for (int i = 0; i < 5; ++i) {
		RecordView v = f.ring.peek();
		ASSERT_EQ(v.status, PeekStatus::ready);
		f.ring.pop(v);
	}
	EXPECT_EQ(f.ring.try_reserve(100, 1).status, ReserveStatus::ok);
}

TEST(Ring, RecordsThatWouldWrapArePaddedAndStayContiguous)
{
	RingFixture f(4096); // 64 cells
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	std::uint32_t expected = 0;
	for (std::uint32_t i = 0; i < 500; ++i) {
		// 1..9 cells per record, so the end of the array is hit at varying offsets.
		const std::size_t bytes = 48 + 64 * (i % 9);
		Reservation r = f.ring.try_reserve(bytes, 1);
		ASSERT_EQ(r.status, ReserveStatus::ok) << i;
		std::memset(r.payload.data(), static_cast<int>(i & 0xff), bytes);
		std::memcpy(r.payload.data(), &i, sizeof i);
		f.ring.commit(std::span(&r.position, 1));
		RecordView v = f.ring.peek();
		ASSERT_EQ(v.status, PeekStatus::ready);
		ASSERT_EQ(v.payload.size(), bytes);
		EXPECT_EQ(value_of(v), expected++);
		EXPECT_EQ(v.payload[bytes - 1], static_cast<std::byte>(i & 0xff));
		f.ring.pop(v);
	}
}

TEST(Ring, RejectsRecordsLargerThanTheRing)
{
	RingFixture f(4096);
	EXPECT_EQ(f.ring.try_reserve(f.ring.max_payload_bytes() + 1, 1).status, ReserveStatus::too_large);
	EXPECT_EQ(f.ring.try_reserve(f.ring.max_payload_bytes(), 1).status, ReserveStatus::ok);
}

TEST(Ring, DeadOwnersRecordsAreAbandonedInsteadOfBlocking)
{
	RingFixture f(64 * 1024, owner_7_dead);
	put(f.ring, 1, 7); // reserved by a producer that then died
	std::uint64_t b = put(f.ring, 2, 8);
	f.ring.commit(std::span(&b, 1));
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	RecordView v = f.ring.peek();
	ASSERT_EQ(v.status, PeekStatus::ready);
	EXPECT_EQ(value_of(v), 2u);
	EXPECT_EQ(f.ring.abandoned_records(), 1u);
}

TEST(Ring, ConsumerTokenIsExclusiveAndStolenFromDeadHolders)
{
	RingFixture f(4096, owner_7_dead);
	EXPECT_TRUE(f.ring.try_acquire_consumer(5));
	EXPECT_FALSE(f.ring.try_acquire_consumer(6));
	f.ring.release_consumer(5);
	EXPECT_TRUE(f.ring.try_acquire_consumer(7));
	EXPECT_TRUE(f.ring.try_acquire_consumer(6)); // 7 is dead
}

TEST(Ring, PublishedGenerationWaitsForEveryEarlierCommit)
{
	RingFixture f(64 * 1024);
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	std::uint64_t a = put(f.ring, 1);
	std::uint64_t b = put(f.ring, 2);
	const std::uint64_t gb = f.ring.commit(std::span(&b, 1));
	// a blocks the head, so b (committed) is not consumed: nothing published.
	ASSERT_EQ(f.ring.peek().status, PeekStatus::blocked);
	EXPECT_EQ(f.ring.advance_published(), gb - 1);
	const std::uint64_t ga = f.ring.commit(std::span(&a, 1));
	RecordView v = f.ring.peek();
	f.ring.pop(v);
	EXPECT_EQ(f.ring.advance_published(), gb - 1) << "b is still in the ring";
	v = f.ring.peek();
	f.ring.pop(v);
	EXPECT_EQ(f.ring.advance_published(), ga);
	EXPECT_EQ(f.ring.published_generation(), ga);
}

TEST(Ring, SeededGenerationKeepsCountingUpwards)
{
	RingFixture f(4096);
	f.ring.seed_generation(1000);
	std::uint64_t a = put(f.ring, 1);
	EXPECT_EQ(f.ring.commit(std::span(&a, 1)), 1001u);
	f.ring.seed_generation(10);
	EXPECT_EQ(f.ring.last_generation(), 1001u);
}

TEST(Ring, EveryRecordOfACommitCarriesItsStamp)
{
	RingFixture f(4096);
	std::uint64_t first[2] = {put(f.ring, 1), put(f.ring, 2)};
	f.ring.commit(first, 0xDEADBEEFu);
	std::uint64_t second = put(f.ring, 3);
	f.ring.commit(std::span(&second, 1));
	ASSERT_TRUE(f.ring.try_acquire_consumer(99));
	for (std::uint32_t expected : {0xDEADBEEFu, 0xDEADBEEFu, 0u}) {
		const RecordView v = f.ring.peek();
		ASSERT_EQ(v.status, PeekStatus::ready);
		EXPECT_EQ(v.stamp, expected);
		f.ring.pop(v);
	}
}

} // namespace
} // namespace engram::core
