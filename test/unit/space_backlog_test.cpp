// The spaces' backlog (core/space_backlog.hpp) and the fair-share rule
// (core/pressure.hpp, space_fill): admission holds back only the spaces over
// their share, the counts balance whatever the order of operations, and the
// table stays consistent through collisions and removals.
#include "core/space_backlog.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

struct BacklogRegion {
	explicit BacklogRegion(std::uint32_t spaces)
		: bytes(SpaceBacklog::region_bytes(spaces) / sizeof(std::uint64_t) + 1),
		  backlog(SpaceBacklog::create(reinterpret_cast<std::byte *>(bytes.data()), spaces))
	{
	}
	std::vector<std::uint64_t> bytes; // 8-byte aligned
	SpaceBacklog backlog;
};

// A 1 MiB pipeline with nothing in the ring and memory to spare.
PipelineState
pipeline(void)
{
	return PipelineState{1 << 20, 0, 0, 0.1, 0};
}

constexpr std::uint32_t k_dim = 4; // 28 bytes a row

TEST(SpaceFill, IsTheBacklogShareCappedByTheSpacesOwnShare)
{
	PipelineState p{1000, 0, 980, 0.01, 2};
	EXPECT_DOUBLE_EQ(pipeline_fill(p), 0.98);
	// Two spaces with work: each is entitled to 500 bytes.
	EXPECT_DOUBLE_EQ(space_fill(p, 970), 0.98) << "the space holding nearly everything meets the full fill";
	EXPECT_DOUBLE_EQ(space_fill(p, 10), 0.02) << "the other is far within its share";
	EXPECT_DOUBLE_EQ(space_fill(p, 0), 0.01) << "an idle space meets only the memory share";
	// Below the overloaded level, nobody's fill exceeds the pipeline's.
	p.backlog = 400;
	EXPECT_DOUBLE_EQ(space_fill(p, 400), 0.4);
	// Memory is shared: a full arena holds back everyone.
	p.memory_fill = 0.97;
	EXPECT_DOUBLE_EQ(space_fill(p, 0), 0.97);
	EXPECT_DOUBLE_EQ(pipeline_fill(p), 0.97);
	// The ring's own occupancy counts when it exceeds the backlog.
	EXPECT_DOUBLE_EQ(backlog_share(PipelineState{1000, 900, 100, 0, 1}), 0.9);
}

TEST(SpaceBacklog, ABulkLoadHoldsBackOnlyItsOwnSpace)
{
	BacklogRegion r(64);
	SpaceBacklog &b = r.backlog;
	// A bulk transaction admitted into a quiet pipeline: twice the capacity.
	const BacklogDemand bulk{7, k_dim, 2 * (1 << 20) / row_backlog_bytes(k_dim)};
	AdmitVerdict v = b.admit(std::span(&bulk, 1), pipeline(), 0.95);
	ASSERT_EQ(v.status, AdmitStatus::admitted);
	EXPECT_EQ(b.active_spaces(), 1u);
	EXPECT_EQ(b.queued_rows(), bulk.rows);
	// Its next commit waits: space 7 holds more than its share.
	const BacklogDemand more{7, k_dim, 1};
	v = b.admit(std::span(&more, 1), pipeline(), 0.95);
	EXPECT_EQ(v.status, AdmitStatus::over_share);
	EXPECT_EQ(v.space_id, 7);
	EXPECT_GE(v.space_fill, 0.95);
	EXPECT_EQ(b.queued_rows(), bulk.rows) << "a refused demand adds nothing";
	// Other spaces' small commits go on, one after another.
	for (std::int32_t space = 100; space < 110; ++space) {
		const BacklogDemand small{space, k_dim, 1};
		v = b.admit(std::span(&small, 1), pipeline(), 0.95);
		EXPECT_EQ(v.status, AdmitStatus::admitted) << "space " << space;
	}
	EXPECT_EQ(b.active_spaces(), 11u);
	// A transaction into a quiet space and the bulk space waits for the bulk space.
	const BacklogDemand both[] = {{200, k_dim, 1}, {7, k_dim, 1}};
	v = b.admit(both, pipeline(), 0.95);
	EXPECT_EQ(v.status, AdmitStatus::over_share);
	EXPECT_EQ(b.space(200).queued_rows, 0u) << "nothing of it was added";
}

TEST(SpaceBacklog, RowsMoveFromQueuedToUnlinkedAndLeaveByTheCensus)
{
	BacklogRegion r(64);
	SpaceBacklog &b = r.backlog;
	const BacklogDemand d{3, k_dim, 100};
	ASSERT_EQ(b.admit(std::span(&d, 1), pipeline(), 0.95).status, AdmitStatus::admitted);
	EXPECT_EQ(b.queued_bytes(), 100 * row_backlog_bytes(k_dim));
	// The worker pops two records: 60 rows stored, then 40 rows it skipped.
	b.consumed(3, k_dim, 60, 60);
	b.consumed(3, k_dim, 40, 0);
	EXPECT_EQ(b.queued_rows(), 0u);
	EXPECT_EQ(b.unlinked_rows(), 60u);
	EXPECT_EQ(b.space(3).unlinked_rows, 60u);
	EXPECT_EQ(b.active_spaces(), 1u);
	// The census finds 25 still unlinked, then none: the entry goes.
	const CensusRow some{3, k_dim, 25};
	b.census(std::span(&some, 1));
	EXPECT_EQ(b.unlinked_rows(), 25u);
	EXPECT_EQ(b.unlinked_bytes(), 25 * row_backlog_bytes(k_dim));
	b.census({});
	EXPECT_EQ(b.unlinked_rows(), 0u);
	EXPECT_EQ(b.unlinked_bytes(), 0u);
	EXPECT_EQ(b.active_spaces(), 0u);
	EXPECT_EQ(b.space(3).queued_rows + b.space(3).unlinked_rows, 0u);
	// The census also brings in spaces whose rows were loaded from the table.
	const CensusRow loaded[] = {{5, k_dim, 10}, {6, 8, 20}};
	b.census(loaded);
	EXPECT_EQ(b.active_spaces(), 2u);
	EXPECT_EQ(b.unlinked_bytes(), 10 * row_backlog_bytes(k_dim) + 20 * row_backlog_bytes(8));
}

TEST(SpaceBacklog, WithdrawTakesBackExactlyWhatWasAdmitted)
{
	BacklogRegion r(64);
	SpaceBacklog &b = r.backlog;
	const BacklogDemand first[] = {{1, k_dim, 5}, {2, 16, 7}};
	const BacklogDemand second{1, k_dim, 3};
	ASSERT_EQ(b.admit(first, pipeline(), 0.95).status, AdmitStatus::admitted);
	ASSERT_EQ(b.admit(std::span(&second, 1), pipeline(), 0.95).status, AdmitStatus::admitted);
	b.withdraw(first);
	EXPECT_EQ(b.space(1).queued_rows, 3u);
	EXPECT_EQ(b.space(2).queued_rows, 0u);
	EXPECT_EQ(b.active_spaces(), 1u);
	b.withdraw(std::span(&second, 1));
	EXPECT_EQ(b.queued_rows(), 0u);
	EXPECT_EQ(b.queued_bytes(), 0u);
	EXPECT_EQ(b.active_spaces(), 0u);
}

TEST(SpaceBacklog, AFullTableRefusesAndAddsNothing)
{
	BacklogRegion r(32); // 64 entries, used up to 48
	SpaceBacklog &b = r.backlog;
	const std::uint32_t room = b.capacity() / 4 * 3;
	for (std::uint32_t s = 1; s <= room; ++s) {
		const BacklogDemand d{static_cast<std::int32_t>(s), k_dim, 1};
		ASSERT_EQ(b.admit(std::span(&d, 1), pipeline(), 0.95).status, AdmitStatus::admitted) << s;
	}
	const BacklogDemand d[] = {{1, k_dim, 1}, {1000, k_dim, 1}};
	const AdmitVerdict v = b.admit(d, pipeline(), 0.95);
	EXPECT_EQ(v.status, AdmitStatus::no_room);
	EXPECT_EQ(v.space_id, 1000);
	EXPECT_EQ(b.space(1).queued_rows, 1u) << "the part already added was taken back";
	EXPECT_EQ(b.queued_rows(), room);
	// Once a space's rows are consumed its entry is free for another.
	b.consumed(1, k_dim, 1, 0);
	const BacklogDemand newcomer{1000, k_dim, 1};
	EXPECT_EQ(b.admit(std::span(&newcomer, 1), pipeline(), 0.95).status, AdmitStatus::admitted);
}

// Random operations against a plain map: colliding ids, removals that shift
// entries back, census rounds; every count must match the model throughout.
TEST(SpaceBacklog, MatchesAModelThroughRandomOperations)
{
	BacklogRegion r(64);
	SpaceBacklog &b = r.backlog;
	struct Model {
		std::uint64_t queued = 0, unlinked = 0;
	};
	std::map<std::int32_t, Model> model;
	std::mt19937 rng(42);
	// Ids that are multiples of the table size all hash near each other.
	auto random_space = [&] { return static_cast<std::int32_t>((rng() % 40) * (rng() % 2 ? 1 : 128) + 1); };
	for (int step = 0; step < 20000; ++step) {
		const std::int32_t space = random_space();
		switch (rng() % 4) {
		case 0: {
			const BacklogDemand d{space, k_dim, rng() % 50 + 1};
			if (b.admit(std::span(&d, 1), PipelineState{1e12, 0, 0, 0, 0}, 0.95).status == AdmitStatus::admitted)
				model[space].queued += d.rows;
			break;
		}
		case 1: {
			Model &m = model[space];
			const std::uint64_t rows = m.queued == 0 ? 0 : rng() % m.queued + 1;
			const std::uint64_t stored = rows == 0 ? 0 : rng() % (rows + 1);
			if (rows == 0)
				break;
			b.consumed(space, k_dim, rows, stored);
			m.queued -= rows;
			m.unlinked += stored;
			break;
		}
		case 2: {
			Model &m = model[space];
			const std::uint64_t rows = m.queued == 0 ? 0 : rng() % m.queued + 1;
			const BacklogDemand d{space, k_dim, rows};
			if (rows > 0) {
				b.withdraw(std::span(&d, 1));
				m.queued -= rows;
			}
			break;
		}
		default: {
			std::vector<CensusRow> rows;
			for (auto &[id, m] : model) {
				m.unlinked = m.unlinked / 2;
				rows.push_back(CensusRow{id, k_dim, m.unlinked});
			}
			b.census(rows);
			break;
		}
		}
		std::uint64_t queued = 0, unlinked = 0;
		std::uint32_t active = 0;
		for (const auto &[id, m] : model) {
			const SpaceLoad load = b.space(id);
			ASSERT_EQ(load.queued_rows, m.queued) << "space " << id << " step " << step;
			ASSERT_EQ(load.unlinked_rows, m.unlinked) << "space " << id << " step " << step;
			queued += m.queued;
			unlinked += m.unlinked;
			active += m.queued > 0 || m.unlinked > 0;
		}
		ASSERT_EQ(b.queued_rows(), queued);
		ASSERT_EQ(b.unlinked_rows(), unlinked);
		ASSERT_EQ(b.active_spaces(), active);
	}
}

// Committers admitting and withdrawing on several threads while a worker
// consumes and counts: everything balances back to zero (run under TSan too).
TEST(SpaceBacklog, BalancesUnderConcurrentCommittersAndAWorker)
{
	BacklogRegion r(64);
	SpaceBacklog &b = r.backlog;
	std::atomic<std::uint64_t> committed{0};
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; ++t) {
		threads.emplace_back([&, t] {
			for (int i = 0; i < 5000; ++i) {
				const BacklogDemand d{t * 10 + i % 3 + 1, k_dim, 2};
				if (b.admit(std::span(&d, 1), PipelineState{1e12, 0, 0, 0, 0}, 0.95).status != AdmitStatus::admitted)
					continue;
				if (i % 2 == 0)
					b.withdraw(std::span(&d, 1));
				else
					committed.fetch_add(1);
			}
		});
	}
	for (std::thread &t : threads)
		t.join();
	EXPECT_EQ(b.queued_rows(), committed.load() * 2);
	for (int t = 0; t < 4; ++t)
		for (int s = 1; s <= 3; ++s) {
			const std::int32_t space = t * 10 + s;
			const std::uint64_t rows = b.space(space).queued_rows;
			b.consumed(space, k_dim, rows, 0);
		}
	EXPECT_EQ(b.queued_rows(), 0u);
	EXPECT_EQ(b.queued_bytes(), 0u);
	EXPECT_EQ(b.active_spaces(), 0u);
}

} // namespace
} // namespace engram::core
