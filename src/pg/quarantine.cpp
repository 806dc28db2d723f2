// Quarantining a space and reporting it (see quarantine.hpp).
#include "pg/quarantine.hpp"

#include <cstdio>
#include <cstring>

#include "pg/guc.hpp"
#include "pg/metrics.hpp"
#include "pg/shared.hpp"
#include "pg/worker_store.hpp"

#include "pg/postgres.hpp"

namespace {

// 2100000 -> "2,100,000"
void
group_digits(std::uint64_t n, char *out, std::size_t size)
{
	char digits[32];
	const int len = snprintf(digits, sizeof digits, "%llu", static_cast<unsigned long long>(n));
	std::size_t o = 0;
	for (int i = 0; i < len && o + 1 < size; ++i) {
		if (i > 0 && (len - i) % 3 == 0 && o + 2 < size)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

double
megabytes(std::uint64_t bytes)
{
	return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

// Why the slot's space was quarantined, as a clause: "engram.memory_limit
// was exhausted at 2,100,000 observations (64.0 of 64.0 MB in use)". The
// caller holds the directory lock.
void
describe_cause(const SpaceSlot &slot, char *out, std::size_t size)
{
	char count[32];
	group_digits(slot.cause_observations, count, sizeof count);
	const double used = megabytes(slot.cause_used_bytes), capacity = megabytes(slot.cause_capacity_bytes);
	int n = 0;
	switch (slot.cause) {
	case QUARANTINE_MEMORY_LIMIT:
		n = snprintf(out, size, "engram.memory_limit was exhausted at %s observations (%.1f of %.1f MB in use%s%s)",
					 count, used, capacity, slot.cause_text[0] != '\0' ? ", " : "", slot.cause_text);
		break;
	case QUARANTINE_MEMORY_RESERVE:
		n = snprintf(out, size,
					 "engram.memory_limit was nearly exhausted at %s observations (%.1f of %.1f MB in use%s%s) and "
					 "the space held the most memory, so the rest (engram.memory_reserve) was kept for the others",
					 count, used, capacity, slot.cause_text[0] != '\0' ? ", " : "", slot.cause_text);
		break;
	default:
		n = snprintf(out, size, "a record could not be stored at %s observations: %s", count, slot.cause_text);
		break;
	}
	const std::uint64_t dropped = slot.dropped_observations.load(std::memory_order_relaxed);
	if (dropped > 0 && n > 0 && static_cast<std::size_t>(n) < size) {
		char later[32];
		group_digits(dropped, later, sizeof later);
		snprintf(out + n, size - static_cast<std::size_t>(n), "; %s observations committed since are not indexed",
				 later);
	}
}

const char *
hint_for(QuarantineCause cause, bool homeless)
{
	if (homeless)
		return "Raise engram.max_spaces (takes a restart) or drop unused spaces, then run engram.rebuild() on the "
			   "space: it rebuilds the index from engram.observations.";
	if (cause == QUARANTINE_UNSTORABLE)
		return "Run engram.rebuild() on the space: it rebuilds the index from engram.observations.";
	return "Raise engram.memory_limit (takes a restart) or drop unused spaces, then run engram.rebuild() on the "
		   "space: it rebuilds the index from engram.observations.";
}

// "space \"name\"", or "space 12" for a space without a slot (the directory
// holds the names).
const char *
space_label(const char *name, const SpaceCondition &c, std::int32_t space_id)
{
	if (name == nullptr && c.name[0] != '\0')
		name = c.name;
	return name != nullptr ? psprintf("space \"%s\"", name) : psprintf("space %d", space_id);
}

[[noreturn]] void
report_quarantined(const char *label, const SpaceCondition &c)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("%s is quarantined", label),
					errdetail("Its index was given up: %s.", c.reason), errhint("%s", hint_for(c.cause, c.homeless))));
	pg_unreachable();
}

} // namespace

void
quarantine_space(SpaceSlot *slot, QuarantineCause cause, std::uint64_t observations, const char *text)
{
	const engram::core::Arena arena = shared_arena();
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	slot->cause = cause;
	slot->cause_observations = observations;
	slot->cause_used_bytes = arena.used_bytes();
	slot->cause_capacity_bytes = arena.capacity_bytes();
	slot->cause_time = GetCurrentTimestamp();
	strlcpy(slot->cause_text, text != nullptr ? text : "", sizeof slot->cause_text);
	slot->dropped_observations.store(0, std::memory_order_relaxed);
	slot->health.store(SPACE_QUARANTINED, std::memory_order_release);
	char reason[384];
	describe_cause(*slot, reason, sizeof reason);
	LWLockRelease(shared_directory_lock());

	engram::core::IndexSlot &index = directory_index(slot);
	directory_destroy_graph(index, 0);
	directory_destroy_graph(index, 1);
	// A rebuild of this space is over: its waiter learns it failed, and the
	// snapshot filter it armed no longer has a graph to protect.
	if (load_filter.active && load_filter.space_id == slot->space_id)
		filter_clear();
	if (slot->rebuild_requested.exchange(0, std::memory_order_acq_rel) != 0)
		slot->rebuilds_failed.fetch_add(1, std::memory_order_acq_rel);
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("space \"%s\" is quarantined", slot->name),
			 errdetail("Its index was given up: %s. Its memory is freed, its observations stay in "
					   "engram.observations, and recalls and commits are refused until it is rebuilt; "
					   "the other spaces are not affected.",
					   reason),
			 errhint("%s", hint_for(cause, false))));
}

SpaceCondition
space_condition(std::int32_t space_id)
{
	SpaceCondition c{};
	c.health = SPACE_READY;
	const EngramShared *s = shared_state();
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	if (const SpaceSlot *slot = directory_find(space_id)) {
		strlcpy(c.name, slot->name, sizeof c.name);
		c.health = static_cast<SpaceHealth>(slot->health.load(std::memory_order_acquire));
		c.cause = static_cast<QuarantineCause>(slot->cause);
		if (c.health == SPACE_QUARANTINED)
			describe_cause(*slot, c.reason, sizeof c.reason);
		else if (c.health == SPACE_LOADING)
			strlcpy(c.reason, "being rebuilt from engram.observations after a quarantine", sizeof c.reason);
		else
			c.rebuilding = slot->rebuild_requested.load(std::memory_order_acquire) != 0;
	} else if (directory_homeless(space_id)) {
		c.health = SPACE_QUARANTINED;
		c.homeless = true;
		snprintf(c.reason, sizeof c.reason, "no slot in the space directory: all %u of engram.max_spaces are in use",
				 directory_capacity());
	}
	LWLockRelease(shared_directory_lock());
	if (c.health == SPACE_READY && s->load_state.load(std::memory_order_acquire) != LOAD_DONE) {
		c.health = SPACE_LOADING;
		c.starting = true;
		strlcpy(c.reason, "the workers are loading the spaces from engram.observations after a start", sizeof c.reason);
	}
	return c;
}

const char *
space_health_name(SpaceHealth health)
{
	switch (health) {
	case SPACE_LOADING:
		return "loading";
	case SPACE_QUARANTINED:
		return "quarantined";
	default:
		return "ready";
	}
}

void
space_require_recallable(std::int32_t space_id, const char *name)
{
	const SpaceCondition c = space_condition(space_id);
	if (c.health == SPACE_QUARANTINED)
		report_quarantined(space_label(name, c, space_id), c);
	// A space loading after a start is waited for by the recall itself.
	if (c.health == SPACE_LOADING && !c.starting)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("%s is being rebuilt", space_label(name, c, space_id)),
						errdetail("Its index was quarantined and is being rebuilt from engram.observations."),
						errhint("Retry once engram.rebuild() has returned.")));
}

void
space_require_committable(std::int32_t space_id)
{
	const SpaceCondition c = space_condition(space_id);
	if (c.health == SPACE_QUARANTINED) {
		metrics_count_refusal(REFUSED_QUARANTINED);
		report_quarantined(space_label(nullptr, c, space_id), c);
	}
}
