// ObservationBatch: the payload of one ring record, the observations of one
// transaction for one space.
//
// Three kinds. `vectors` carries everything the store needs (ids,
// confidences, observation times, metadata attribute tokens and the vectors
// themselves), so a worker stores it without touching the table: the fast
// path. `id_ranges` carries only ranges of observation ids; a backend
// switches a transaction to it when the transaction's vectors would not fit
// comfortably in the ring (a bulk COPY), and the worker then reads those rows
// back from the table. `forgets` carries ranges of ids the transaction
// deleted (or updated: the new version follows in a vectors or id-range
// record); a transaction's forgets are planned before its other records, so
// a worker hides the old versions before it stores the new ones.
// `spilled_forgets` stands for forgets too many to carry as ranges (a delete
// of many ids that are not consecutive): the backend wrote them to
// engram._forget_spill in the deleting transaction under a spill key, which
// is all the record carries, and the worker reads them back. Every
// record also names the
// committing transaction, so a worker that has just loaded the table can tell
// which records it already holds, and the installation whose table the rows
// are in, so that no worker stores them into another installation's spaces.
//
// Layout (all little-endian, 8-byte aligned sections):
//   BatchHeader | ids int64[count] | observed_at int64[count] | confidences float[count] (padded)
//               | token counts uint32[count] (padded) | tokens uint64[header.tokens] | vectors float[count*dim]
//   BatchHeader | ranges int64[2*count] (first, last inclusive)   (id_ranges and forgets)
//   BatchHeader | spill key uint64                                 (spilled_forgets; count is 0)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "core/instance_id.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

enum class BatchKind : std::uint32_t { vectors = 1, id_ranges = 2, forgets = 3, spilled_forgets = 4 };

struct BatchHeader {
	BatchKind kind;
	std::int32_t space_id;
	std::uint32_t dim;
	std::uint32_t count;
	std::uint32_t xid;
	std::uint32_t tokens; // vectors: attribute tokens of all rows together
	InstanceId instance;
};
static_assert(sizeof(BatchHeader) == 32);

struct IdRange {
	std::int64_t first;
	std::int64_t last;
};

struct BatchView {
	BatchHeader header;
	std::span<const std::int64_t> ids;
	std::span<const std::int64_t> observed_at;
	std::span<const float> confidences;
	std::span<const std::uint32_t> token_counts; // row i's tokens follow row i - 1's
	std::span<const std::uint64_t> tokens;
	std::span<const float> vectors; // count * dim
	std::span<const IdRange> ranges;
	std::uint64_t spill; // spilled_forgets: the key of the transaction's rows in engram._forget_spill
};

std::size_t vectors_payload_bytes(std::uint32_t count, std::uint32_t dim, std::uint64_t tokens) noexcept;
std::size_t ranges_payload_bytes(std::uint32_t count) noexcept;
std::size_t spilled_forgets_payload_bytes(void) noexcept;
// What one more row of `dim` dimensions and `tokens` tokens adds to a
// vectors payload, at most (padding included).
std::size_t vectors_row_bytes(std::uint32_t dim, std::uint64_t tokens) noexcept;

// Writers fill a span of exactly *_payload_bytes(); they return the sections
// to fill (vectors are copied by the caller, straight from its own buffers).
struct VectorsSections {
	std::span<std::int64_t> ids;
	std::span<std::int64_t> observed_at;
	std::span<float> confidences;
	std::span<std::uint32_t> token_counts;
	std::span<std::uint64_t> tokens;
	std::span<float> vectors;
};
VectorsSections write_vectors_header(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim,
									 std::uint32_t count, std::uint64_t tokens, std::uint32_t xid,
									 InstanceId instance) noexcept;
// For id_ranges and forgets.
std::span<IdRange> write_ranges_header(std::span<std::byte> payload, BatchKind kind, std::int32_t space_id,
									   std::uint32_t dim, std::uint32_t count, std::uint32_t xid,
									   InstanceId instance) noexcept;

void write_spilled_forgets(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim, std::uint64_t spill,
						   std::uint32_t xid, InstanceId instance) noexcept;

// Validates sizes; nullopt for a payload that does not parse.
std::optional<BatchView> parse_batch(std::span<const std::byte> payload) noexcept;

// How many observations a parsed batch carries (for id ranges, the rows they
// cover); forgets, spilled or not, carry none.
std::uint64_t observation_count(const BatchView &batch) noexcept;

} // namespace engram::core
