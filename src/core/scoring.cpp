// The score formula (scoring.hpp). Age is computed in double so that any
// two clock values subtract without overflow.
#include "core/scoring.hpp"

#include <algorithm>
#include <cmath>

namespace engram::core {

float
similarity(Metric metric, float distance) noexcept
{
	if (metric == Metric::l2)
		return 1.0f / (1.0f + std::sqrt(std::max(distance, 0.0f)));
	return std::clamp(1.0f - distance, 0.0f, 1.0f);
}

float
score(Metric metric, float distance, float confidence, std::int64_t observed_at, const Scoring &scoring) noexcept
{
	const double w = scoring.confidence_weight;
	double result = similarity(metric, distance) * (1.0 - w + w * confidence);
	if (scoring.half_life > 0) {
		const double age = static_cast<double>(scoring.now) - static_cast<double>(observed_at);
		result *= std::exp2(-std::max(0.0, age) / scoring.half_life);
	}
	return static_cast<float>(result);
}

} // namespace engram::core
