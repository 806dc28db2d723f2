// The forget spill: where a transaction's forgets go when they are too many
// for its ring records.
//
// A DELETE (or UPDATE) of many rows whose ids are not consecutive, such as
// one tenant's rows in a shared space, cannot be carried as id ranges in the
// ring: each id is a range of its own, and a transaction's records must fit
// in half of the ring. So the capture trigger writes them, in chunks of up to
// k_forget_spill_chunk_ranges ranges, into engram._forget_spill within the
// deleting transaction (they commit or roll back with it, savepoints
// included), under a spill key: the transaction's full id. Its ring record
// (BatchKind::spilled_forgets) carries only the key; the worker reads the
// chunks back, forgets their ids at the record's generation, and deletes the
// chunks in its drain transaction, which commits only after the record was
// popped, so a worker that stops before then finds them again.
//
// The table is unlogged: a crash empties it, and after one the load reads the
// table, where the deleted rows are gone; nor does it replicate (a
// subscriber's apply worker spills its own). A start-up load deletes every
// chunk its snapshot sees (their records are filtered out of the loaded
// graphs, and the ring records of earlier runs of the server are gone), so
// chunks whose records were lost never accumulate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/observation_batch.hpp"

// Ranges per chunk (one row of engram._forget_spill, 1 MB of ids at most).
inline constexpr std::size_t k_forget_spill_chunk_ranges = 65536;

// Writes one chunk of the space's forgets (at most k_forget_spill_chunk_ranges
// ranges) as the tables' owner, in the current (sub)transaction.
void forget_spill_write(std::uint64_t spill, std::int32_t space_id, std::int32_t chunk,
						std::span<const engram::core::IdRange> ranges);

// Reads the space's chunk that follows chunk `after` with a fresh snapshot:
// its number into *chunk and its ranges into `ranges` (room for
// k_forget_spill_chunk_ranges); returns how many, 0 when no chunk follows.
// Raises an error for a chunk that is not a list of id pairs.
std::size_t forget_spill_read(std::uint64_t spill, std::int32_t space_id, std::int32_t after, std::int32_t *chunk,
							  engram::core::IdRange *ranges);

// Deletes the space's chunks of the spill (a worker that has forgotten them).
void forget_spill_delete(std::uint64_t spill, std::int32_t space_id);

// Deletes every chunk the active snapshot sees (the start-up load's); does
// nothing for a catalog older than 0.4.0, which has no such table.
void forget_spill_clear_seen(void);
