#include "pg/vector_input.hpp"

#include <cmath>

namespace {

const char *
non_finite_name(float v)
{
	if (std::isnan(v))
		return "NaN";
	return v > 0 ? "Infinity" : "-Infinity";
}

} // namespace

const float *
check_vector(ArrayType *a, const char *what, const char *space_name, int dim, bool cosine)
{
	const int ndim = ARR_NDIM(a);
	if (ndim == 0)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("%s must not be empty", what),
						errdetail("Space \"%s\" holds %d-dimensional vectors.", space_name, dim)));
	if (ndim != 1)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("%s must be a one-dimensional array", what),
						errdetail("Got an array of %d dimensions.", ndim),
						errhint("Use engram.observe_batch() for several vectors at once.")));
	if (ARR_HASNULL(a))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not contain nulls", what)));
	const int n = ARR_DIMS(a)[0];
	if (n != dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("expected %d dimensions, not %d", dim, n),
						errdetail("Space \"%s\" holds %d-dimensional vectors.", space_name, dim)));
	const auto *values = reinterpret_cast<const float *>(ARR_DATA_PTR(a));
	bool all_zero = true;
	for (int i = 0; i < n; ++i) {
		if (!std::isfinite(values[i]))
			ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("%s must not contain NaN or infinity", what),
							errdetail("Component %d is %s.", i + 1, non_finite_name(values[i]))));
		all_zero = all_zero && values[i] == 0.0f;
	}
	if (cosine && all_zero)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("%s must not be the zero vector", what),
						errdetail("Space \"%s\" uses cosine distance, which has no direction to compare for a zero "
								  "vector.",
								  space_name)));
	return values;
}
