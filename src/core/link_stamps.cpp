// Pushing, settling and moving the commit stamps of unlinked rows (see
// link_stamps.hpp).
#include "core/link_stamps.hpp"

#include <algorithm>

#include "core/hnsw_layout.hpp"

namespace engram::core {

namespace {

LinkStampEntry &
at(LinkStamps &s, std::uint32_t i) noexcept
{
	return s.entries[(s.head + i) % k_link_stamp_entries];
}

std::uint32_t
stamp_distance(std::uint32_t a, std::uint32_t b) noexcept
{
	const auto d = static_cast<std::int32_t>(b - a);
	return d < 0 ? static_cast<std::uint32_t>(-static_cast<std::int64_t>(d)) : static_cast<std::uint32_t>(d);
}

// `later` folded into `earlier`: the later end, both counts, and the stamp
// their rows' mean (modulo 2^32, as stamps wrap).
void
merge_into(LinkStampEntry &earlier, const LinkStampEntry &later) noexcept
{
	const std::uint64_t rows = std::uint64_t{earlier.rows} + later.rows;
	if (rows != 0) {
		const auto d = static_cast<std::int64_t>(static_cast<std::int32_t>(later.stamp - earlier.stamp));
		earlier.stamp +=
			static_cast<std::uint32_t>(d * static_cast<std::int64_t>(later.rows) / static_cast<std::int64_t>(rows));
	}
	earlier.end = later.end;
	earlier.rows = static_cast<std::uint32_t>(rows);
}

// Under the lock, with every entry taken: makes room for `next` by merging
// the neighbours with the nearest stamps (the newest such pair on a tie),
// `next` itself counting as the last; returns whether `next` was merged.
bool
merge_nearest(LinkStamps &s, const LinkStampEntry &next) noexcept
{
	const std::uint32_t n = k_link_stamp_entries;
	std::uint32_t best = n - 1; // the pair (last entry, next)
	std::uint32_t best_distance = stamp_distance(at(s, n - 1).stamp, next.stamp);
	for (std::uint32_t i = n - 1; i-- > 0;) {
		const std::uint32_t d = stamp_distance(at(s, i).stamp, at(s, i + 1).stamp);
		if (d < best_distance) {
			best = i;
			best_distance = d;
		}
	}
	if (best == n - 1) {
		merge_into(at(s, n - 1), next);
		return true;
	}
	merge_into(at(s, best), at(s, best + 1));
	for (std::uint32_t i = best + 1; i + 1 < n; ++i)
		at(s, i) = at(s, i + 1);
	s.pending.fetch_sub(1, std::memory_order_acq_rel);
	return false;
}

void
append(LinkStamps &s, const LinkStampEntry &entry) noexcept
{
	const std::uint32_t n = s.pending.load(std::memory_order_relaxed);
	if (n == k_link_stamp_entries && merge_nearest(s, entry))
		return;
	at(s, s.pending.load(std::memory_order_relaxed)) = entry;
	s.pending.fetch_add(1, std::memory_order_acq_rel);
}

} // namespace

void
push_link_stamp(LinkStamps &stamps, std::uint32_t end, std::uint32_t rows, std::uint32_t stamp) noexcept
{
	if (rows == 0)
		return;
	SpinLockGuard guard(stamps.lock);
	append(stamps, LinkStampEntry{end, rows, stamp});
}

std::uint64_t
settle_link_stamps(LinkStamps &stamps, std::uint64_t linked_prefix, LatencyHistogram *latency,
				   std::uint32_t (*clock)() noexcept) noexcept
{
	if (!has_pending_link_stamps(stamps))
		return 0;
	LinkStampEntry settled[k_link_stamp_entries];
	std::uint32_t count = 0;
	{
		SpinLockGuard guard(stamps.lock);
		const std::uint32_t n = stamps.pending.load(std::memory_order_relaxed);
		while (count < n && at(stamps, 0).end <= linked_prefix) {
			settled[count++] = at(stamps, 0);
			stamps.head = (stamps.head + 1) % k_link_stamp_entries;
		}
		if (count != 0)
			stamps.pending.fetch_sub(count, std::memory_order_acq_rel);
	}
	if (count == 0)
		return 0;
	const std::uint32_t now = clock();
	std::uint64_t rows = 0;
	for (std::uint32_t i = 0; i < count; ++i) {
		if (latency != nullptr)
			latency->observe(stamp_wait_us(settled[i].stamp, now), settled[i].rows);
		rows += settled[i].rows;
	}
	return rows;
}

bool
link_stamps_waiting(LinkStamps &stamps) noexcept
{
	return stamps.pending.fetch_add(0, std::memory_order_acq_rel) != 0;
}

bool
link_stamps_settled_to(LinkStamps &stamps, std::uint64_t end) noexcept
{
	if (!has_pending_link_stamps(stamps))
		return true;
	SpinLockGuard guard(stamps.lock);
	return stamps.pending.load(std::memory_order_relaxed) == 0 || at(stamps, 0).end > end;
}

void
move_link_stamps(LinkStamps &from, LinkStamps &to, std::span<const std::uint32_t> kept) noexcept
{
	const auto renumbered = [kept](std::uint32_t id) {
		return static_cast<std::uint32_t>(std::lower_bound(kept.begin(), kept.end(), id) - kept.begin());
	};
	SpinLockGuard from_guard(from.lock);
	SpinLockGuard to_guard(to.lock);
	const std::uint32_t n = from.pending.load(std::memory_order_relaxed);
	for (std::uint32_t i = 0; i < n; ++i) {
		const LinkStampEntry &e = at(from, i);
		const std::uint32_t end = renumbered(e.end);
		const std::uint32_t rows = std::min(e.rows, end - renumbered(e.end - e.rows));
		if (rows != 0)
			append(to, LinkStampEntry{end, rows, e.stamp});
	}
	from.head = 0;
	from.pending.exchange(0, std::memory_order_acq_rel);
}

} // namespace engram::core
