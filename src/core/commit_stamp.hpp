// Commit stamps: the time of a commit in 32 bits, so that it can travel with
// the commit's ring records and the rows they store (core/ring.hpp,
// core/link_stamps.hpp) and tell, in any process of the host, how long those
// rows have waited since.
//
// A stamp counts units of 100 microseconds of the monotonic clock
// (std::chrono::steady_clock, CLOCK_MONOTONIC on Linux: the same for every
// process of the host) and wraps after about five days: a wait is the
// difference modulo 2^32, right for anything settled within that time. 0
// means "no stamp" (the commit was not timed), so a commit at the instant
// the clock reads 0 says 1.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::uint64_t k_stamp_unit_us = 100;

inline std::uint32_t
commit_stamp_now() noexcept
{
	const auto us =
		std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
			.count();
	const auto stamp = static_cast<std::uint32_t>(static_cast<std::uint64_t>(us) / k_stamp_unit_us);
	return stamp == 0 ? 1 : stamp;
}

// Microseconds from `stamp` to `now` (both commit stamps).
inline std::uint64_t
stamp_wait_us(std::uint32_t stamp, std::uint32_t now) noexcept
{
	return static_cast<std::uint64_t>(static_cast<std::uint32_t>(now - stamp)) * k_stamp_unit_us;
}

} // namespace engram::core
