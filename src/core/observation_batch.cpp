#include "core/observation_batch.hpp"

#include <cstring>

namespace engram::core {

namespace {

constexpr std::size_t
pad8(std::size_t n) noexcept
{
	return (n + 7) & ~std::size_t{7};
}

struct VectorsLayout {
	std::size_t ids, observed_at, confidences, token_counts, tokens, vectors, end;
};

VectorsLayout
vectors_layout(std::uint32_t count, std::uint32_t dim, std::uint64_t tokens) noexcept
{
	VectorsLayout l;
	l.ids = sizeof(BatchHeader);
	l.observed_at = l.ids + sizeof(std::int64_t) * count;
	l.confidences = l.observed_at + sizeof(std::int64_t) * count;
	l.token_counts = l.confidences + pad8(sizeof(float) * count);
	l.tokens = l.token_counts + pad8(sizeof(std::uint32_t) * count);
	l.vectors = l.tokens + sizeof(std::uint64_t) * tokens;
	l.end = l.vectors + sizeof(float) * std::size_t{count} * dim;
	return l;
}

template <typename T>
std::span<T>
section(std::span<std::byte> payload, std::size_t offset, std::size_t n) noexcept
{
	return {reinterpret_cast<T *>(payload.data() + offset), n};
}

template <typename T>
std::span<const T>
section(std::span<const std::byte> payload, std::size_t offset, std::size_t n) noexcept
{
	return {reinterpret_cast<const T *>(payload.data() + offset), n};
}

} // namespace

std::size_t
vectors_payload_bytes(std::uint32_t count, std::uint32_t dim, std::uint64_t tokens) noexcept
{
	return vectors_layout(count, dim, tokens).end;
}

std::size_t
vectors_row_bytes(std::uint32_t dim, std::uint64_t tokens) noexcept
{
	// id, time, confidence, token count, tokens, vector; the two 4-byte
	// sections may each need 8 bytes of padding more.
	return 2 * sizeof(std::int64_t) + 2 * 8 + sizeof(std::uint64_t) * tokens + sizeof(float) * std::size_t{dim};
}

std::size_t
ranges_payload_bytes(std::uint32_t count) noexcept
{
	return sizeof(BatchHeader) + sizeof(IdRange) * count;
}

std::size_t
spilled_forgets_payload_bytes(void) noexcept
{
	return sizeof(BatchHeader) + sizeof(std::uint64_t);
}

VectorsSections
write_vectors_header(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim, std::uint32_t count,
					 std::uint64_t tokens, std::uint32_t xid, InstanceId instance) noexcept
{
	const BatchHeader h{BatchKind::vectors, space_id, dim, count, xid, static_cast<std::uint32_t>(tokens), instance};
	std::memcpy(payload.data(), &h, sizeof h);
	const VectorsLayout l = vectors_layout(count, dim, tokens);
	// Padding is zeroed so that a record never carries stale bytes.
	std::memset(payload.data() + sizeof h, 0, l.vectors - sizeof h);
	return {section<std::int64_t>(payload, l.ids, count),
			section<std::int64_t>(payload, l.observed_at, count),
			section<float>(payload, l.confidences, count),
			section<std::uint32_t>(payload, l.token_counts, count),
			section<std::uint64_t>(payload, l.tokens, tokens),
			section<float>(payload, l.vectors, std::size_t{count} * dim)};
}

std::span<IdRange>
write_ranges_header(std::span<std::byte> payload, BatchKind kind, std::int32_t space_id, std::uint32_t dim,
					std::uint32_t count, std::uint32_t xid, InstanceId instance) noexcept
{
	const BatchHeader h{kind, space_id, dim, count, xid, 0, instance};
	std::memcpy(payload.data(), &h, sizeof h);
	return section<IdRange>(payload, sizeof(BatchHeader), count);
}

void
write_spilled_forgets(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim, std::uint64_t spill,
					  std::uint32_t xid, InstanceId instance) noexcept
{
	const BatchHeader h{BatchKind::spilled_forgets, space_id, dim, 0, xid, 0, instance};
	std::memcpy(payload.data(), &h, sizeof h);
	std::memcpy(payload.data() + sizeof h, &spill, sizeof spill);
}

std::optional<BatchView>
parse_batch(std::span<const std::byte> payload) noexcept
{
	if (payload.size() < sizeof(BatchHeader))
		return std::nullopt;
	BatchView v{};
	std::memcpy(&v.header, payload.data(), sizeof v.header);
	const std::uint32_t n = v.header.count;
	if (v.header.kind == BatchKind::vectors) {
		const VectorsLayout l = vectors_layout(n, v.header.dim, v.header.tokens);
		if (payload.size() != l.end)
			return std::nullopt;
		v.ids = section<std::int64_t>(payload, l.ids, n);
		v.observed_at = section<std::int64_t>(payload, l.observed_at, n);
		v.confidences = section<float>(payload, l.confidences, n);
		v.token_counts = section<std::uint32_t>(payload, l.token_counts, n);
		v.tokens = section<std::uint64_t>(payload, l.tokens, v.header.tokens);
		v.vectors = section<float>(payload, l.vectors, std::size_t{n} * v.header.dim);
		std::uint64_t counted = 0;
		for (const std::uint32_t c : v.token_counts)
			counted += c;
		if (counted != v.header.tokens)
			return std::nullopt;
		return v;
	}
	if (v.header.kind == BatchKind::id_ranges || v.header.kind == BatchKind::forgets) {
		if (payload.size() != ranges_payload_bytes(n))
			return std::nullopt;
		v.ranges = section<IdRange>(payload, sizeof(BatchHeader), n);
		return v;
	}
	if (v.header.kind == BatchKind::spilled_forgets) {
		if (n != 0 || payload.size() != spilled_forgets_payload_bytes())
			return std::nullopt;
		std::memcpy(&v.spill, payload.data() + sizeof(BatchHeader), sizeof v.spill);
		return v;
	}
	return std::nullopt;
}

std::uint64_t
observation_count(const BatchView &batch) noexcept
{
	if (batch.header.kind == BatchKind::vectors)
		return batch.header.count;
	if (batch.header.kind == BatchKind::forgets || batch.header.kind == BatchKind::spilled_forgets)
		return 0;
	std::uint64_t rows = 0;
	for (const IdRange &r : batch.ranges)
		rows += static_cast<std::uint64_t>(r.last - r.first + 1);
	return rows;
}

} // namespace engram::core
