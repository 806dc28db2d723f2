// Fill is the larger of two shares: the pipeline's backlog against the
// ring's capacity, and the arena holding the graphs. The backlog is
// everything accepted but not yet linked: the ring's used bytes plus, for
// every stored-but-unlinked vector, the bytes its ring record took, as if it
// were still in the ring (it is still work ahead, and the exact scan every
// recall makes over it grows with it). A space that cannot grow is
// quarantined (quarantine.hpp) rather than holding the ring back, so memory
// counts here only through the arena's fill. The retry hint is the time the
// workers need, at their measured drain and link rates, to bring the fill
// back to the warning threshold (core/pressure.hpp).
#include "pg/pressure.hpp"

#include <algorithm>

#include "pg/guc.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

UnlinkedVectors
unlinked_vectors(void)
{
	UnlinkedVectors total{0, 0};
	for (const SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		engram::core::IndexSlot &index = directory_index(&slot);
		for (unsigned which = 0; which < 2; ++which) {
			if (index.graphs[which].load(std::memory_order_relaxed) == 0)
				continue;
			const engram::core::GraphPin pin(index, which);
			if (!pin)
				continue;
			const engram::core::HnswGraph graph = pinned_graph(pin);
			const std::uint64_t size = graph.size();
			const std::uint64_t linked = std::min(graph.linked_count(), size);
			total.count += size - linked;
			total.ring_bytes += (size - linked) * (std::uint64_t{graph.dim()} * sizeof(float) + 12);
		}
	}
	return total;
}

engram::core::PressureReport
pressure_now(bool *memory_bound)
{
	EngramShared *s = shared_state();
	engram::core::Ring ring = shared_ring();
	const UnlinkedVectors unlinked = unlinked_vectors();
	const double capacity = static_cast<double>(ring.capacity_cells());
	const double ring_cells = static_cast<double>(ring.used_cells());
	const double used = ring_cells + static_cast<double>(unlinked.ring_bytes) / engram::core::k_ring_cell_bytes;
	const engram::core::PressureThresholds thresholds{engram_pressure_warning, engram_pressure_critical,
													  engram_pressure_overloaded};
	double linked_per_s = 0;
	for (const WorkerSlot &w : s->workers)
		linked_per_s += static_cast<double>(w.linked_per_second.load(std::memory_order_relaxed));
	const engram::core::Backlog backlog{
		ring_cells, static_cast<double>(s->drain_cells_per_second.load(std::memory_order_relaxed)),
		static_cast<double>(unlinked.count), linked_per_s};
	engram::core::Arena arena = shared_arena();
	const double memory_fill = static_cast<double>(arena.used_bytes()) / static_cast<double>(arena.capacity_bytes());
	if (memory_bound != nullptr)
		*memory_bound = memory_fill > used / capacity;
	const double fill = std::min(1.0, std::max(used / capacity, memory_fill));
	return engram::core::assess_pressure(fill, thresholds, backlog, 100);
}
