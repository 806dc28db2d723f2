// Exact distances for re-ranking quantized candidates (see rerank.hpp).
#include "core/rerank.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace engram::core {

void
exact_distances(Metric metric, std::span<const float> query, std::span<const float *const> vectors,
				std::span<float> distances) noexcept
{
	const DistanceKernels &kernels = distance_kernels();
	const DistanceFn distance = kernels.get(metric, Encoding::float32);
	const DistanceFn dot_distance = kernels.get(Metric::inner_product, Encoding::float32);
	const auto dim = static_cast<std::uint32_t>(query.size());
	const auto *query_bytes = reinterpret_cast<const std::byte *>(query.data());
	// |q| once; under cosine each vector's norm comes from its own dot product.
	const float query_norm = metric == Metric::cosine
								 ? std::sqrt(std::max(0.0f, 1.0f - dot_distance(query.data(), query_bytes, dim)))
								 : 1.0f;
	for (std::size_t i = 0; i < vectors.size() && i < distances.size(); ++i) {
		const float *v = vectors[i];
		if (v == nullptr)
			continue;
		const auto *bytes = reinterpret_cast<const std::byte *>(v);
		const float d = distance(query.data(), bytes, dim);
		if (metric != Metric::cosine) {
			distances[i] = d;
			continue;
		}
		const float norms = query_norm * std::sqrt(std::max(0.0f, 1.0f - dot_distance(v, bytes, dim)));
		distances[i] = norms > 0.0f ? 1.0f - (1.0f - d) / norms : 1.0f;
	}
}

} // namespace engram::core
