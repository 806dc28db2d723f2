// ObservationBatch: the payload of one ring record, the observations of one
// transaction for one space.
//
// Two kinds. `vectors` carries everything the store needs (ids, confidences
// and the vectors themselves), so a worker stores it without touching the
// table: the fast path. `id_ranges` carries only ranges of observation ids;
// a backend switches a transaction to it when the transaction's vectors would
// not fit comfortably in the ring (a bulk COPY), and the worker then reads
// those rows back from the table. Either way the record also names the
// committing transaction, so a worker that has just loaded the table can tell
// which records it already holds, and the installation whose table the rows
// are in, so that no worker stores them into another installation's spaces.
//
// Layout (all little-endian, 8-byte aligned sections):
//   BatchHeader | ids int64[count] | confidences float[count] (padded) | vectors float[count*dim]
//   BatchHeader | ranges int64[2*count] (first, last inclusive)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "core/instance_id.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

enum class BatchKind : std::uint32_t { vectors = 1, id_ranges = 2 };

struct BatchHeader {
	BatchKind kind;
	std::int32_t space_id;
	std::uint32_t dim;
	std::uint32_t count;
	std::uint32_t xid;
	std::uint32_t unused;
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
	std::span<const float> confidences;
	std::span<const float> vectors; // count * dim
	std::span<const IdRange> ranges;
};

std::size_t vectors_payload_bytes(std::uint32_t count, std::uint32_t dim) noexcept;
std::size_t ranges_payload_bytes(std::uint32_t count) noexcept;
// The most observations of `dim` dimensions one payload of `max_bytes` can hold.
std::uint32_t vectors_per_payload(std::size_t max_bytes, std::uint32_t dim) noexcept;

// Writers fill a span of exactly *_payload_bytes(); they return the sections
// to fill (vectors are copied by the caller, straight from its own buffers).
struct VectorsSections {
	std::span<std::int64_t> ids;
	std::span<float> confidences;
	std::span<float> vectors;
};
VectorsSections write_vectors_header(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim,
									 std::uint32_t count, std::uint32_t xid, InstanceId instance) noexcept;
std::span<IdRange> write_ranges_header(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim,
									   std::uint32_t count, std::uint32_t xid, InstanceId instance) noexcept;

// Validates sizes; nullopt for a payload that does not parse.
std::optional<BatchView> parse_batch(std::span<const std::byte> payload) noexcept;

// How many observations a parsed batch carries (for id ranges, the rows they cover).
std::uint64_t observation_count(const BatchView &batch) noexcept;

} // namespace engram::core
