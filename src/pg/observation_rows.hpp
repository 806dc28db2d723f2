// Reading rows of engram.observations back into the workers: the start-up
// load, a rebuild and the id-range records of bulk transactions all read the
// table. One place checks that a row holds a vector of its space's dimension,
// and one place runs such a read in a subtransaction, so that rows that cannot
// be read quarantine their space instead of restarting the worker.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/hnsw_graph.hpp"

#include "pg/metadata_tokens.hpp"
#include "pg/postgres.hpp"

// The columns every reader selects, in this order.
#define ENGRAM_OBSERVATION_COLUMNS "id, embedding, confidence, observed_at, metadata"

// Copies the n rows of an SPI result (ENGRAM_OBSERVATION_COLUMNS) into node
// data visible from `generation`: each embedding into `vectors` (n * dim),
// the metadata's attribute tokens into `tokens` (emptied first; rows[i].tokens
// point into it until its next use). Raises an error for a row whose
// embedding is not a vector of `dim` components.
void copy_observations(SPITupleTable *table, std::uint32_t n, std::uint32_t dim, std::uint64_t generation,
					   float *vectors, engram::core::NodeData *rows, TokenBuffer *tokens);

// Runs step(arg) in an internal subtransaction: true if it finished, false
// with the error's message in `error` if it raised one. A cancel is raised
// again, so that the worker stops rather than carry on.
bool run_in_subtransaction(void (*step)(void *), void *arg, char *error, std::size_t error_size);

// The same for any callable, e.g. a lambda capturing by reference.
template <typename Step>
bool
run_in_subtransaction(Step &step, char *error, std::size_t error_size)
{
	return run_in_subtransaction([](void *s) { (*static_cast<Step *>(s))(); }, &step, error, error_size);
}
