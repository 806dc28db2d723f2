// The one wall between C++ and PostgreSQL's error handling. PostgreSQL
// reports errors by longjmp, which skips C++ destructors; C++ reports them by
// exceptions, which PostgreSQL cannot catch. So every entry from PostgreSQL
// into engram's code (SQL-callable functions, the worker's main, callbacks)
// runs inside guarded(): a C++ exception escaping the body unwinds the C++
// frames normally (releasing pins and buffers), is caught here, and becomes an
// ereport raised only after the catch block has been left. The converse rule
// is the code's own: ereport is raised only where no C++ frame between it and
// the guard owns a resource.
//
// Core status values map to SQLSTATEs in one table (raise_status), so a given
// failure of the core reads the same whichever function met it.
//
// Included at the end of pg/postgres.hpp, so it sees PostgreSQL's types but
// must not include a core header (the core refuses postgres.h before it).
#pragma once

#include <cstdint>
#include <exception>

namespace engram::core {
enum class HnswStatus : std::uint8_t;
}

// What a caught C++ exception said, kept in plain data until it is raised.
struct CaughtException {
	enum class Kind { out_of_memory, system, other } kind = Kind::other;
	char what[256] = "";
};

// Describes the exception being handled; call only inside a catch block.
CaughtException describe_current_exception(void) noexcept;
[[noreturn]] void raise_caught(const CaughtException &caught);

// Raises the error for a core status other than ok; `context` says what was
// being done, e.g. "recall in space \"x\"".
[[noreturn]] void raise_status(engram::core::HnswStatus status, const char *context);

template <typename Body>
auto
guarded(Body &&body) -> decltype(body())
{
	CaughtException caught;
	try {
		return body();
	} catch (...) {
		caught = describe_current_exception();
	}
	raise_caught(caught);
}

// Every SQL-callable symbol: C linkage, exported (PG 16 hides by default), and
// its body run inside the guard.
#define ENGRAM_FUNCTION(name)                                                                                          \
	static Datum name##_body(PG_FUNCTION_ARGS);                                                                        \
	extern "C" {                                                                                                       \
	PGDLLEXPORT Datum name(PG_FUNCTION_ARGS);                                                                          \
	PG_FUNCTION_INFO_V1(name);                                                                                         \
	}                                                                                                                  \
	Datum name(PG_FUNCTION_ARGS)                                                                                       \
	{                                                                                                                  \
		return guarded([fcinfo] { return name##_body(fcinfo); });                                                      \
	}                                                                                                                  \
	static Datum name##_body(PG_FUNCTION_ARGS)
