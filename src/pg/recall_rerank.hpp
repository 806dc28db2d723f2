// Re-ranking the candidates of a recall from a quantized space (f16 or sq8)
// by their exact distances, with the float32 vectors of engram.observations.
//
// Why the table: it is the source of truth and already holds every vector
// in float32, so re-ranking costs no shared memory (a float32 copy beside a
// quantized graph would undo the saving). The price is reading the
// candidates' rows by primary key after the graph search, once per recall
// (docs/architecture.md, "Storage encodings", has the figures).
#pragma once

#include <cstdint>
#include <span>

#include "core/distance.hpp"

// distances[i] becomes the exact distance (the graph's conventions, see
// core/rerank.hpp) between the cue and the row of engram.observations with
// id ids[i] in the space. A row the statement's snapshot does not see (one
// deleted after the recall's as_of generation) keeps the distance it had.
// Reads the table as the caller (recall has checked that a SELECT would be
// allowed); runs its own SPI connection.
void rerank_from_table(std::int32_t space_id, engram::core::Metric metric, std::span<const float> cue,
					   std::span<const std::int64_t> ids, std::span<float> distances);
