// Pure pieces of the ingest pipeline: the ring payload format, the vector
// store step of the graph and the pressure arithmetic.
#include "core/arena.hpp"
#include "core/observation_batch.hpp"
#include "core/pressure.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"

#include <cstring>
#include <vector>

namespace engram::core {
namespace {

TEST(ObservationBatch, VectorsRoundTrip)
{
	const std::uint32_t n = 3, dim = 5;
	const std::uint32_t counts[n] = {2, 0, 1};
	std::vector<std::byte> payload(vectors_payload_bytes(n, dim, 3));
	VectorsSections s = write_vectors_header(payload, 7, dim, n, 3, 1234, InstanceId{5, 16384});
	for (std::uint32_t i = 0; i < n; ++i) {
		s.ids[i] = 100 + i;
		s.observed_at[i] = 1000 * i;
		s.confidences[i] = 0.1f * i;
		s.token_counts[i] = counts[i];
		for (std::uint32_t d = 0; d < dim; ++d)
			s.vectors[i * dim + d] = static_cast<float>(i * 10 + d);
	}
	s.tokens[0] = 11;
	s.tokens[1] = 12;
	s.tokens[2] = 31;
	auto v = parse_batch(payload);
	ASSERT_TRUE(v.has_value());
	EXPECT_EQ(v->header.kind, BatchKind::vectors);
	EXPECT_EQ(v->header.space_id, 7);
	EXPECT_EQ(v->header.xid, 1234u);
	EXPECT_EQ(v->header.instance, (InstanceId{5, 16384}));
	EXPECT_EQ(observation_count(*v), 3u);
	EXPECT_EQ(v->ids[2], 102);
	EXPECT_EQ(v->observed_at[2], 2000);
	EXPECT_FLOAT_EQ(v->confidences[1], 0.1f);
	EXPECT_EQ(v->token_counts[0], 2u);
	EXPECT_EQ(v->tokens[2], 31u);
	EXPECT_FLOAT_EQ(v->vectors[2 * dim + 4], 24.0f);
	// Token counts that disagree with the header are refused.
	s.token_counts[1] = 1;
	EXPECT_FALSE(parse_batch(payload).has_value());
}

TEST(ObservationBatch, RangesAndForgetsRoundTripAndTruncatedPayloadsAreRejected)
{
	for (const BatchKind kind : {BatchKind::id_ranges, BatchKind::forgets}) {
		std::vector<std::byte> payload(ranges_payload_bytes(2));
		std::span<IdRange> r = write_ranges_header(payload, kind, 3, 768, 2, 99, InstanceId{1, 4000000000u});
		r[0] = {1, 10};
		r[1] = {20, 20};
		auto v = parse_batch(payload);
		ASSERT_TRUE(v.has_value());
		EXPECT_EQ(v->header.kind, kind);
		EXPECT_EQ(v->header.instance, (InstanceId{1, 4000000000u}));
		EXPECT_EQ(v->ranges[1].first, 20);
		EXPECT_EQ(observation_count(*v), kind == BatchKind::forgets ? 0u : 11u);
		EXPECT_FALSE(parse_batch(std::span(payload).first(payload.size() - 1)).has_value());
		EXPECT_FALSE(parse_batch(std::span(payload).first(8)).has_value());
	}
}

TEST(ObservationBatch, SpilledForgetsCarryTheirKeyAndNothingElse)
{
	std::vector<std::byte> payload(spilled_forgets_payload_bytes());
	write_spilled_forgets(payload, 3, 768, 0x1234567890ull, 99, InstanceId{1, 4000000000u});
	auto v = parse_batch(payload);
	ASSERT_TRUE(v.has_value());
	EXPECT_EQ(v->header.kind, BatchKind::spilled_forgets);
	EXPECT_EQ(v->header.space_id, 3);
	EXPECT_EQ(v->header.dim, 768u);
	EXPECT_EQ(v->header.xid, 99u);
	EXPECT_EQ(v->spill, 0x1234567890ull);
	EXPECT_TRUE(v->ranges.empty());
	EXPECT_EQ(observation_count(*v), 0u);
	EXPECT_FALSE(parse_batch(std::span(payload).first(payload.size() - 1)).has_value());
	// A count other than zero does not describe this payload.
	BatchHeader header{};
	std::memcpy(&header, payload.data(), sizeof header);
	header.count = 1;
	std::memcpy(payload.data(), &header, sizeof header);
	EXPECT_FALSE(parse_batch(payload).has_value());
}

TEST(InstanceId, PacksBothHalvesIntoOneWord)
{
	// Shared memory publishes an installation as one 64-bit word; OIDs use all 32 bits.
	const InstanceId id{4294967295u, 16385};
	EXPECT_EQ(InstanceId::unpacked(id.packed()), id);
	EXPECT_NE(InstanceId::unpacked(id.packed()), (InstanceId{16385, 4294967295u}));
	EXPECT_TRUE(id.valid());
	EXPECT_FALSE(InstanceId::unpacked(0).valid());
	EXPECT_FALSE((InstanceId{5, 0}).valid());
}

TEST(ObservationBatch, RowBytesBoundWhatARowAdds)
{
	for (std::uint32_t dim : {1u, 3u, 128u, 768u, 2000u})
		for (std::uint64_t tokens : {0u, 1u, 7u})
			for (std::uint32_t n : {0u, 1u, 2u, 5u}) {
				const std::size_t grown = vectors_payload_bytes(n + 1, dim, tokens * (n + 1));
				EXPECT_LE(grown, vectors_payload_bytes(n, dim, tokens * n) + vectors_row_bytes(dim, tokens));
			}
}

TEST(HnswGraphStore, ReserveGuaranteesTheAppendsThatFollow)
{
	// The drain reserves room for a whole ring record before appending any
	// of its rows, so a record is stored whole or not at all.
	test_support::Region region(16 << 20);
	HnswConfig config;
	config.dim = 100;
	config.first_chunk_log2 = 4;
	std::uint64_t offset = 0;
	ASSERT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	std::vector<float> v(100, 1.0f);
	for (int i = 0; i < 1000; i += 50) {
		ASSERT_EQ(graph.reserve(graph.size() + 50), HnswStatus::ok);
		for (int j = 0; j < 50; ++j) {
			v[0] = static_cast<float>(i + j);
			std::uint32_t id = 0;
			ASSERT_EQ(graph.append(v, NodeData{7, i + j + 1, 0.5f}, id), HnswStatus::ok);
		}
	}
	EXPECT_EQ(graph.size(), 1000u);
	EXPECT_EQ(graph.label(999), 1000);
	EXPECT_EQ(graph.reserve(100000), HnswStatus::out_of_memory) << "16 MiB cannot hold 100,000 vectors";
	EXPECT_EQ(graph.size(), 1000u);
	graph.destroy();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

TEST(Pressure, LevelsFollowTheThresholds)
{
	const PressureThresholds t{0.5, 0.8, 0.95};
	EXPECT_EQ(pressure_level(0.1, t), PressureLevel::normal);
	EXPECT_EQ(pressure_level(0.5, t), PressureLevel::warning);
	EXPECT_EQ(pressure_level(0.85, t), PressureLevel::critical);
	EXPECT_EQ(pressure_level(0.95, t), PressureLevel::overloaded);
	// Out-of-order thresholds behave as if sorted.
	EXPECT_EQ(pressure_level(0.6, PressureThresholds{0.9, 0.5, 0.7}), PressureLevel::critical);
}

TEST(Pressure, ReportSuggestsBatchesAndARetryTimeFromBothStagesRates)
{
	const PressureThresholds t{0.5, 0.8, 0.95};
	PressureReport r = assess_pressure(0.2, t, Backlog{100, 1000, 0, 0}, 100);
	EXPECT_EQ(r.suggested_batch, 10);
	EXPECT_EQ(r.retry_after_ms, 0);
	// Only the ring holds work: 800 cells at 1000 cells/s is 0.8 s to clear,
	// and at fill 0.8 the part above warning is 3/8 of it.
	r = assess_pressure(0.8, t, Backlog{800, 1000, 0, 0}, 100);
	EXPECT_EQ(r.level, PressureLevel::critical);
	EXPECT_EQ(r.suggested_batch, 500);
	EXPECT_EQ(r.retry_after_ms, 300);
	// Linking is the slow stage: 2000 vectors at 1000/s add 2 s.
	r = assess_pressure(0.8, t, Backlog{800, 1000, 2000, 1000}, 100);
	EXPECT_EQ(r.retry_after_ms, 1050);
	// A stage with waiting work and no measured rate: the fallback.
	r = assess_pressure(1.0, t, Backlog{800, 1000, 10, 0}, 100);
	EXPECT_EQ(r.level, PressureLevel::overloaded);
	EXPECT_EQ(r.suggested_batch, 1000);
	EXPECT_EQ(r.retry_after_ms, 100);
	r = assess_pressure(1.0, t, Backlog{800, 0, 0, 0}, 100);
	EXPECT_EQ(r.retry_after_ms, 100);
	// Never more than a minute.
	r = assess_pressure(0.99, t, Backlog{0, 0, 1e9, 1}, 100);
	EXPECT_EQ(r.retry_after_ms, 60000);
	EXPECT_STREQ(pressure_level_name(PressureLevel::warning), "warning");
}

} // namespace
} // namespace engram::core
