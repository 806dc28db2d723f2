// Ring throughput and latency: 1, 2 and 4 producer threads reserve, fill and
// commit 512-byte records while one consumer thread drains concurrently,
// as backends and a worker do. Reported per producer: records/s, bytes/s and
// the p50/p99 latency of one reserve+fill+commit (including retries while the
// ring is full, so the figure includes backpressure from the consumer).
#include "core/ring.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace {

using engram::core::PeekStatus;
using engram::core::Reservation;
using engram::core::ReserveStatus;
using engram::core::Ring;

constexpr std::size_t k_capacity = 16 << 20;
constexpr std::size_t k_payload = 512;

bool
always_alive(std::uint32_t) noexcept
{
	return true;
}

struct Shared {
	std::unique_ptr<std::byte[]> storage;
	std::byte *region = nullptr;
	std::atomic<bool> stop{false};
	std::thread consumer;
	std::atomic<std::uint64_t> consumed{0};
};
Shared *shared = nullptr;

void
setup(const benchmark::State &)
{
	shared = new Shared;
	shared->storage = std::make_unique<std::byte[]>(Ring::region_bytes(k_capacity) + 64);
	shared->region = reinterpret_cast<std::byte *>((reinterpret_cast<std::uintptr_t>(shared->storage.get()) + 63) &
												   ~std::uintptr_t{63});
	Ring::create(shared->region, k_capacity, always_alive);
	shared->consumer = std::thread([] {
		Ring ring(shared->region, always_alive);
		ring.try_acquire_consumer(1);
		std::byte sink[k_payload];
		while (!shared->stop.load(std::memory_order_relaxed)) {
			engram::core::RecordView v = ring.peek();
			if (v.status != PeekStatus::ready) {
				std::this_thread::yield();
				continue;
			}
			std::memcpy(sink, v.payload.data(), std::min(v.payload.size(), sizeof sink));
			benchmark::DoNotOptimize(sink);
			ring.pop(v);
			shared->consumed.fetch_add(1, std::memory_order_relaxed);
		}
	});
}

void
teardown(const benchmark::State &)
{
	shared->stop = true;
	shared->consumer.join();
	delete shared;
	shared = nullptr;
}

void
BM_RingProduceCommit(benchmark::State &state)
{
	Ring ring(shared->region, always_alive);
	std::byte payload[k_payload];
	std::memset(payload, 0x5a, sizeof payload);
	const auto owner = static_cast<std::uint32_t>(2 + state.thread_index());
	std::vector<std::uint32_t> latencies;
	latencies.reserve(1 << 20);
	for (auto _ : state) {
		const auto t0 = std::chrono::steady_clock::now();
		Reservation r;
		while ((r = ring.try_reserve(k_payload, owner)).status == ReserveStatus::full)
			std::this_thread::yield();
		std::memcpy(r.payload.data(), payload, k_payload);
		ring.commit(std::span(&r.position, 1));
		const auto ns =
			std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
		if (latencies.size() < latencies.capacity())
			latencies.push_back(static_cast<std::uint32_t>(ns));
	}
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * k_payload);
	if (!latencies.empty()) {
		std::sort(latencies.begin(), latencies.end());
		state.counters["p50_ns"] = benchmark::Counter(latencies[latencies.size() / 2], benchmark::Counter::kAvgThreads);
		state.counters["p99_ns"] =
			benchmark::Counter(latencies[latencies.size() * 99 / 100], benchmark::Counter::kAvgThreads);
	}
}
BENCHMARK(BM_RingProduceCommit)->Setup(setup)->Teardown(teardown)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// The consumer side alone: drain a full ring of committed records.
void
BM_RingDrain(benchmark::State &state)
{
	auto storage = std::make_unique<std::byte[]>(Ring::region_bytes(k_capacity) + 64);
	auto *region =
		reinterpret_cast<std::byte *>((reinterpret_cast<std::uintptr_t>(storage.get()) + 63) & ~std::uintptr_t{63});
	Ring ring = Ring::create(region, k_capacity, always_alive);
	ring.try_acquire_consumer(1);
	std::byte sink[k_payload];
	std::int64_t drained = 0;
	for (auto _ : state) {
		state.PauseTiming();
		for (;;) {
			Reservation r = ring.try_reserve(k_payload, 2);
			if (r.status != ReserveStatus::ok)
				break;
			ring.commit(std::span(&r.position, 1));
		}
		state.ResumeTiming();
		for (engram::core::RecordView v = ring.peek(); v.status == PeekStatus::ready; v = ring.peek()) {
			std::memcpy(sink, v.payload.data(), k_payload);
			benchmark::DoNotOptimize(sink);
			ring.pop(v);
			++drained;
		}
	}
	state.SetItemsProcessed(drained);
	state.SetBytesProcessed(drained * static_cast<std::int64_t>(k_payload));
}
BENCHMARK(BM_RingDrain)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
