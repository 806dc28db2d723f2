// Exact float32 distances for the candidates of a quantized search.
//
// Why: a float16 or sq8 graph ranks by approximate distances, and the k-th
// and (k+1)-th neighbours of real embeddings are often closer together than
// the quantization error, so the last few places of an answer can be wrong.
// Searching for more candidates than asked and ranking them again by their
// exact distances puts those places right. The float32 vectors live outside
// the graph (engram: the rows of engram.observations), so the caller fetches
// them and passes them here; the graph never holds a second copy.
//
// Distances follow the graph's conventions (distance.hpp): squared l2,
// 1 - <q, v> for inner product, 1 - cos(q, v) for cosine, so an exact
// distance and a quantized one can be compared and mixed.
#pragma once

#include <span>

#include "core/distance.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

// distances[i] becomes the exact distance between query and vectors[i]
// (each of query.size() components); a null vectors[i] leaves distances[i]
// as it was (a candidate whose vector could not be read keeps its quantized
// distance). Under cosine neither side needs to be normalised; a zero
// vector is at distance 1.
void exact_distances(Metric metric, std::span<const float> query, std::span<const float *const> vectors,
					 std::span<float> distances) noexcept;

} // namespace engram::core
