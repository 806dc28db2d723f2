// The link gate of a graph (hnsw_graph.hpp): a freeze refuses new link turns,
// returns only once the turns in flight have ended (and then sees what they
// linked), freezes nest, and a turn held through a LinkTurn ends even when the
// link inside it throws.
#include "core/fault_injection.hpp"
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;
using test_support::random_vectors;

constexpr std::uint32_t k_dim = 8;
// How long a freeze that should return may take on a loaded machine.
constexpr auto k_patience = std::chrono::seconds(60);

HnswGraph
graph_with(Region &region, std::uint32_t stored, std::uint32_t linked)
{
	HnswConfig config;
	config.dim = k_dim;
	config.m = 8;
	config.ef_construction = 32;
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	std::uint32_t first = 0;
	EXPECT_EQ(graph.append_batch(random_vectors(stored, k_dim, 3), std::vector<std::uint64_t>(stored, 1), first),
			  HnswStatus::ok);
	SearchContext context;
	EXPECT_EQ(graph.claim_unlinked(linked, first), linked);
	for (std::uint32_t id = 0; id < linked; ++id)
		EXPECT_TRUE(graph.link(id, context));
	return graph;
}

// freeze_links() on a thread of its own, so that a test can watch whether it
// has returned.
class Freezer {
public:
	explicit Freezer(const HnswGraph &graph)
		: thread_([this, &graph] {
			  graph.freeze_links();
			  returned_.store(true);
		  })
	{
	}
	~Freezer() { thread_.join(); }

	bool returned() const { return returned_.load(); }
	bool wait_returned() const
	{
		const auto give_up = std::chrono::steady_clock::now() + k_patience;
		while (!returned() && std::chrono::steady_clock::now() < give_up)
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		return returned();
	}

private:
	std::atomic<bool> returned_{false};
	std::thread thread_;
};

bool
wait_frozen(const HnswGraph &graph)
{
	const auto give_up = std::chrono::steady_clock::now() + k_patience;
	while (!graph.links_frozen() && std::chrono::steady_clock::now() < give_up)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	return graph.links_frozen();
}

TEST(LinkGate, FreezeRefusesNewTurnsUntilThawed)
{
	Region region(4 << 20);
	HnswGraph graph = graph_with(region, 10, 0);
	EXPECT_FALSE(graph.links_frozen());
	ASSERT_TRUE(graph.begin_link_turn());
	ASSERT_TRUE(graph.begin_link_turn()) << "turns do not exclude each other";
	graph.end_link_turn();
	graph.end_link_turn();

	graph.freeze_links(); // no turn in flight: returns at once
	EXPECT_TRUE(graph.links_frozen());
	EXPECT_FALSE(graph.begin_link_turn());
	{
		const LinkTurn turn(graph);
		EXPECT_FALSE(turn);
	}
	graph.thaw_links();
	EXPECT_FALSE(graph.links_frozen());
	{
		const LinkTurn turn(graph);
		EXPECT_TRUE(turn);
	}
	// Every refused and every ended turn was given back: a freeze returns.
	const Freezer freezer(graph);
	EXPECT_TRUE(freezer.wait_returned());
	graph.thaw_links();
}

// A linker holds a turn and claims and links nodes only when told; the freeze
// started meanwhile refuses new turns, does not return before the turn ends,
// and once it returns sees everything the turn linked.
TEST(LinkGate, FreezeWaitsForTheTurnInFlight)
{
	Region region(8 << 20);
	HnswGraph graph = graph_with(region, 200, 100);
	std::atomic<bool> holding{false}, go{false};
	std::atomic<std::uint32_t> claimed{0}, claimed_first{0};
	std::thread linker([&] {
		if (!graph.begin_link_turn())
			return;
		holding.store(true);
		while (!go.load())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		SearchContext context;
		std::uint32_t first = 0;
		const std::uint32_t n = graph.claim_unlinked(8, first);
		for (std::uint32_t id = first; id < first + n; ++id)
			EXPECT_TRUE(graph.link(id, context));
		claimed_first.store(first);
		claimed.store(n);
		graph.end_link_turn();
	});
	const auto give_up = std::chrono::steady_clock::now() + k_patience;
	while (!holding.load() && std::chrono::steady_clock::now() < give_up)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	if (!holding.load()) {
		ADD_FAILURE() << "the linker got no turn";
		go.store(true);
		linker.join();
		return;
	}
	{
		const Freezer freezer(graph);
		EXPECT_TRUE(wait_frozen(graph));
		EXPECT_FALSE(graph.begin_link_turn()) << "a freeze that waits already refuses new turns";
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
		EXPECT_FALSE(freezer.returned()) << "the freeze returned while a turn was in flight";
		go.store(true);
		EXPECT_TRUE(freezer.wait_returned());
		EXPECT_EQ(claimed.load(), 8u);
		for (std::uint32_t id = claimed_first.load(); id < claimed_first.load() + claimed.load(); ++id)
			EXPECT_TRUE(graph.is_linked(id)) << id;
		EXPECT_EQ(graph.linked_count(), 108u);
		EXPECT_FALSE(graph.begin_link_turn());
	}
	linker.join();
	graph.thaw_links();
	EXPECT_TRUE(graph.begin_link_turn());
	graph.end_link_turn();
}

TEST(LinkGate, FreezesNest)
{
	Region region(4 << 20);
	HnswGraph graph = graph_with(region, 10, 0);
	ASSERT_TRUE(graph.begin_link_turn());
	{
		// Two freezes wait for the same turn and both return once it ends.
		const Freezer first(graph), second(graph);
		EXPECT_TRUE(wait_frozen(graph));
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
		EXPECT_FALSE(first.returned());
		EXPECT_FALSE(second.returned());
		graph.end_link_turn();
		EXPECT_TRUE(first.wait_returned());
		EXPECT_TRUE(second.wait_returned());
	}
	graph.freeze_links(); // a third, from this thread
	for (int thawed = 0; thawed < 2; ++thawed) {
		graph.thaw_links();
		EXPECT_TRUE(graph.links_frozen()) << "after " << thawed + 1 << " thaws of 3";
		EXPECT_FALSE(graph.begin_link_turn()) << "after " << thawed + 1 << " thaws of 3";
	}
	graph.thaw_links();
	EXPECT_FALSE(graph.links_frozen());
	EXPECT_TRUE(graph.begin_link_turn());
	graph.end_link_turn();
}

void
fail_node_five(std::uint32_t id, std::uint32_t level)
{
	if (id == 5 && level == 0)
		throw std::runtime_error("injected");
}

TEST(LinkGate, LinkTurnEndsWhenTheLinkThrows)
{
	Region region(4 << 20);
	HnswGraph graph = graph_with(region, 10, 5);
	SearchContext context;
	fault::set_link_level_hook(&fail_node_five);
	bool thrown = false;
	try {
		const LinkTurn turn(graph);
		ASSERT_TRUE(turn);
		graph.link(5, context);
	} catch (const std::runtime_error &) {
		thrown = true;
	}
	fault::set_link_level_hook(nullptr);
	ASSERT_TRUE(thrown);
	EXPECT_FALSE(graph.is_linked(5));
	const Freezer freezer(graph);
	const bool returned = freezer.wait_returned();
	EXPECT_TRUE(returned) << "the turn outlived the exception";
	if (!returned)
		graph.end_link_turn(); // let the freezer go, so the test ends
	graph.thaw_links();
}

} // namespace
} // namespace engram::core
