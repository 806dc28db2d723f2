// Reading rows of engram.observations back into the workers: the start-up
// load, a rebuild and the id-range records of bulk transactions all read the
// table. One place checks that a row holds a vector of its space's dimension,
// and one place runs such a read in a subtransaction, so that rows that cannot
// be read quarantine their space instead of restarting the worker.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pg/postgres.hpp"

// The id and confidence of an SPI row (id, embedding, confidence), whose
// embedding is copied to `vector`; raises an error unless the embedding is a
// vector of `dim` components.
struct ObservationRow {
	std::int64_t id;
	float confidence;
};
ObservationRow copy_observation(HeapTuple tuple, TupleDesc desc, std::uint32_t dim, float *vector);

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
