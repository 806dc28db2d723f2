// The guard's two halves (see boundary.hpp): describing a caught exception
// without raising anything, and raising it once the catch block is left;
// plus the one table from core status values to SQLSTATEs.
#include "core/hnsw_graph.hpp"

#include <new>
#include <system_error>

#include "pg/postgres.hpp"

CaughtException
describe_current_exception(void) noexcept
{
	CaughtException caught;
	try {
		throw;
	} catch (const std::bad_alloc &) {
		caught.kind = CaughtException::Kind::out_of_memory;
	} catch (const std::system_error &e) {
		caught.kind = CaughtException::Kind::system;
		strlcpy(caught.what, e.what(), sizeof caught.what);
	} catch (const std::exception &e) {
		strlcpy(caught.what, e.what(), sizeof caught.what);
	} catch (...) {
		strlcpy(caught.what, "an exception of unknown type", sizeof caught.what);
	}
	return caught;
}

void
raise_caught(const CaughtException &caught)
{
	switch (caught.kind) {
	case CaughtException::Kind::out_of_memory:
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
						errdetail("engram could not allocate memory in its C++ code.")));
		break;
	case CaughtException::Kind::system:
		ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("engram met a system error: %s", caught.what)));
		break;
	case CaughtException::Kind::other:
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("engram met an internal error: %s", caught.what)));
		break;
	}
	pg_unreachable();
}

namespace {

struct StatusError {
	int sqlstate;
	const char *hint; // nullptr: none
};

StatusError
status_error(engram::core::HnswStatus status)
{
	using engram::core::HnswStatus;
	switch (status) {
	case HnswStatus::invalid_config:
		return {ERRCODE_INVALID_PARAMETER_VALUE, "Check the space's dim, m and ef_construction."};
	case HnswStatus::dimension_mismatch:
	case HnswStatus::invalid_vector:
		return {ERRCODE_DATA_EXCEPTION, nullptr};
	case HnswStatus::out_of_memory:
		return {ERRCODE_OUT_OF_MEMORY, "Raise engram.memory_limit, or drop spaces that are no longer needed."};
	case HnswStatus::interrupted: // the caller lets CHECK_FOR_INTERRUPTS() raise it
		return {ERRCODE_QUERY_CANCELED, nullptr};
	case HnswStatus::too_many_nodes:
		return {ERRCODE_PROGRAM_LIMIT_EXCEEDED, "Spread the observations over more spaces."};
	case HnswStatus::too_many_tokens:
		return {ERRCODE_PROGRAM_LIMIT_EXCEEDED,
				"Give the observation's metadata fewer top-level keys and array elements."};
	case HnswStatus::invalid_header:
		return {ERRCODE_DATA_CORRUPTED, "Rebuild the space's index with engram.rebuild()."};
	case HnswStatus::unknown_node:
	case HnswStatus::ok:
		break;
	}
	return {ERRCODE_INTERNAL_ERROR, nullptr};
}

} // namespace

void
raise_status(engram::core::HnswStatus status, const char *context)
{
	const StatusError e = status_error(status);
	ereport(ERROR, (errcode(e.sqlstate), errmsg("%s failed: %s", context, engram::core::to_string(status)),
					e.hint != nullptr ? errhint("%s", e.hint) : 0));
	pg_unreachable();
}
