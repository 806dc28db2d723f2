// The one formula that turns a recall hit into its score, shared by the
// graph's ranking (snapshot_search with SearchParams::scoring) and by the
// glue's `score` column, so that rows are ranked by exactly what they show.
//
//   similarity s in [0, 1] from the distance d as the graph reports it
//   (distance.hpp conventions):
//     l2                       s = 1 / (1 + sqrt(d))   (d is the squared distance)
//     inner product, cosine    s = clamp(1 - d, 0, 1)  (1 - d is the dot product)
//   score = s · (1 − w + w·c) · 2^(−max(0, now − observed_at) / half_life)
// where c is the node's confidence and w the confidence weight in [0, 1]
// (w = 0: confidence plays no part; w = 1: the score scales with it), and
// the last factor halves the score per half_life of age (1 when half_life is
// 0; a row observed after `now` counts as new). Without Scoring the score is
// s alone, which is what recall reported before scoring existed (the
// similarity of the Euclidean distance it shows for l2).
#pragma once

#include <cstdint>

#include "core/distance.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

struct Scoring {
	float confidence_weight = 0; // w in [0, 1]
	double half_life = 0;        // in the observed_at unit; 0 = no recency factor
	std::int64_t now = 0;        // same clock as observed_at
};

float similarity(Metric metric, float distance) noexcept;

float score(Metric metric, float distance, float confidence, std::int64_t observed_at, const Scoring &scoring) noexcept;

} // namespace engram::core
