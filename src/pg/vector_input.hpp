// One check for every vector that enters engram from SQL: an observation's
// embedding and a recall's cue get the same errors for the same faults.
#pragma once

#include <cstdint>

#include "pg/postgres.hpp"

// What a space's vectors must look like, from engram.space_catalog.
struct SpaceShape {
	std::int32_t space_id;
	std::int32_t dim;
	bool cosine;
	char name[NAMEDATALEN + 16];
};

// The space's shape (remembered by the backend); raises 42704 if there is no
// such space.
const SpaceShape *space_shape(std::int32_t space_id);

// Raises the matching error unless `a` is a one-dimensional array of `dim`
// finite components without nulls (and not all zero when the space uses
// cosine distance); returns the components. `what` names the argument.
const float *check_vector(ArrayType *a, const char *what, const char *space_name, int dim, bool cosine);
