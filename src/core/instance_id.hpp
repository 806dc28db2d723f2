// InstanceId: which installation of engram a piece of shared state belongs
// to. An installation is one CREATE EXTENSION: the database it lives in and
// the OID of its table engram.observations. Both change when the extension is
// dropped and created again, and they differ between databases, so ring
// records, the space directory and the callers that read it can tell whether
// observation ids and space ids mean the same thing to each of them.
#pragma once

#include <cstdint>

#include "core/no_postgres.hpp"

namespace engram::core {

struct InstanceId {
	std::uint32_t database = 0;
	std::uint32_t relation = 0; // 0: no installation

	bool valid() const noexcept { return relation != 0; }
	// Both halves in one word, so that shared memory can publish them atomically.
	std::uint64_t packed() const noexcept { return std::uint64_t{database} << 32 | relation; }
	static InstanceId unpacked(std::uint64_t word) noexcept
	{
		return {static_cast<std::uint32_t>(word >> 32), static_cast<std::uint32_t>(word)};
	}
	friend bool operator==(const InstanceId &, const InstanceId &) = default;
};

} // namespace engram::core
