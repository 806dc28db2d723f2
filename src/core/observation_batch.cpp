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
	std::size_t ids, confidences, vectors, end;
};

VectorsLayout
vectors_layout(std::uint32_t count, std::uint32_t dim) noexcept
{
	VectorsLayout l;
	l.ids = sizeof(BatchHeader);
	l.confidences = l.ids + sizeof(std::int64_t) * count;
	l.vectors = l.confidences + pad8(sizeof(float) * count);
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
vectors_payload_bytes(std::uint32_t count, std::uint32_t dim) noexcept
{
	return vectors_layout(count, dim).end;
}

std::size_t
ranges_payload_bytes(std::uint32_t count) noexcept
{
	return sizeof(BatchHeader) + sizeof(IdRange) * count;
}

std::uint32_t
vectors_per_payload(std::size_t max_bytes, std::uint32_t dim) noexcept
{
	const std::size_t per_row = sizeof(std::int64_t) + sizeof(float) + sizeof(float) * std::size_t{dim};
	if (max_bytes < sizeof(BatchHeader))
		return 0;
	auto n = static_cast<std::uint32_t>((max_bytes - sizeof(BatchHeader)) / per_row);
	// Padding the confidences to 8 bytes may cost the last row.
	while (n > 0 && vectors_layout(n, dim).end > max_bytes)
		--n;
	return n;
}

VectorsSections
write_vectors_header(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim, std::uint32_t count,
					 std::uint32_t xid, InstanceId instance) noexcept
{
	const BatchHeader h{BatchKind::vectors, space_id, dim, count, xid, 0, instance};
	std::memcpy(payload.data(), &h, sizeof h);
	const VectorsLayout l = vectors_layout(count, dim);
	return {section<std::int64_t>(payload, l.ids, count), section<float>(payload, l.confidences, count),
			section<float>(payload, l.vectors, std::size_t{count} * dim)};
}

std::span<IdRange>
write_ranges_header(std::span<std::byte> payload, std::int32_t space_id, std::uint32_t dim, std::uint32_t count,
					std::uint32_t xid, InstanceId instance) noexcept
{
	const BatchHeader h{BatchKind::id_ranges, space_id, dim, count, xid, 0, instance};
	std::memcpy(payload.data(), &h, sizeof h);
	return section<IdRange>(payload, sizeof(BatchHeader), count);
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
		const VectorsLayout l = vectors_layout(n, v.header.dim);
		if (payload.size() != l.end)
			return std::nullopt;
		v.ids = section<std::int64_t>(payload, l.ids, n);
		v.confidences = section<float>(payload, l.confidences, n);
		v.vectors = section<float>(payload, l.vectors, std::size_t{n} * v.header.dim);
		return v;
	}
	if (v.header.kind == BatchKind::id_ranges) {
		if (payload.size() != ranges_payload_bytes(n))
			return std::nullopt;
		v.ranges = section<IdRange>(payload, sizeof(BatchHeader), n);
		return v;
	}
	return std::nullopt;
}

std::uint64_t
observation_count(const BatchView &batch) noexcept
{
	if (batch.header.kind == BatchKind::vectors)
		return batch.header.count;
	std::uint64_t rows = 0;
	for (const IdRange &r : batch.ranges)
		rows += static_cast<std::uint64_t>(r.last - r.first + 1);
	return rows;
}

} // namespace engram::core
