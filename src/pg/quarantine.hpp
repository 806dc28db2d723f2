// Quarantine: how one space that cannot proceed stays a local fault.
//
// A space whose index cannot grow (engram.memory_limit exhausted for it, or
// engram.memory_reserve kept from it), whose record cannot be read or
// stored, or which has no slot in the directory, gives its index up instead
// of holding the ring (and with it every other space) back, or sending a
// worker into a restart loop:
//   - its state says why, in shared memory (engram.spaces: state, state_detail),
//     and one WARNING in the server log says so when it happens;
//   - its graphs are freed, so the other spaces can use the memory;
//   - its records are consumed and dropped; the rows stay in
//     engram.observations (the index is derived, nothing committed is lost);
//   - recall on it, and commits into it, are refused with SQLSTATE 55000 and
//     a hint to free memory and run engram.rebuild(space), which rebuilds the
//     index from the table and clears the quarantine.
#pragma once

#include <cstdint>

#include "pg/directory.hpp"

// Gives up the space's index (a worker holding the consumer token): records
// the cause, frees the graphs, ends a rebuild in progress and logs once.
// `observations` is what the index held; `text` adds context (may be null).
void quarantine_space(SpaceSlot *slot, QuarantineCause cause, std::uint64_t observations, const char *text);

// A space's state as engram.spaces shows it.
struct SpaceCondition {
	SpaceHealth health;
	bool rebuilding;               // a rebuild of a ready space is in progress
	bool homeless;                 // quarantined for want of a directory slot
	bool starting;                 // loading because the start-up load has not finished
	char name[k_space_name_bytes]; // empty when the space has no slot
	char reason[384];              // why it is quarantined or loading; empty when ready
	QuarantineCause cause;
};
SpaceCondition space_condition(std::int32_t space_id);

const char *space_health_name(SpaceHealth health);

// Raises the error for a space that cannot serve a recall (quarantined or
// loading), or take a commit (quarantined); returns if it can. `name` may be
// null (then the directory's copy or the id is used).
void space_require_recallable(std::int32_t space_id, const char *name);
void space_require_committable(std::int32_t space_id);
