// One check for every vector that enters engram from SQL: an observation's
// embedding and a recall's cue get the same errors for the same faults.
#pragma once

#include "pg/postgres.hpp"

// Raises the matching error unless `a` is a one-dimensional array of `dim`
// finite components without nulls (and not all zero when the space uses
// cosine distance); returns the components. `what` names the argument.
const float *check_vector(ArrayType *a, const char *what, const char *space_name, int dim, bool cosine);
