// The one reader of engram.space_catalog: every lookup of a space by name or
// id, the workers' reads of every definition, and the row lock that
// serializes changes to one space go through here, so the catalog's columns
// and the error for an unknown space are spelled in one place. Writes stay
// with the functions that own a space's life (fn_spaces.cpp).
//
// The SQL runs under the caller's search_path, so every name and operator
// in it is qualified. The catalog is readable by PUBLIC, so lookups run as
// the caller.
#pragma once

#include <cstdint>
#include <optional>

#include "core/distance.hpp"

inline constexpr int k_space_name_bytes = 65; // names have at most 64 characters

// A row of engram.space_catalog: what the directory installs a space from,
// and who owns it.
struct SpaceDefinition {
	std::int32_t space_id;
	char name[k_space_name_bytes];
	std::uint32_t dim;
	engram::core::Metric metric;
	std::uint32_t m;
	std::uint32_t ef_construction;
	engram::core::Encoding encoding; // column storage: how the graph stores vectors
	std::uint32_t owner;             // Oid of the owning role
};

// The metric a catalog row names; none for a name engram does not know.
std::optional<engram::core::Metric> metric_named(const char *name);

// The encoding a storage name ("f32", "f16", "sq8") stands for, and back.
std::optional<engram::core::Encoding> encoding_named(const char *name);
const char *encoding_name(engram::core::Encoding encoding);

// The row in `tuple`, read by column name with each column's type checked,
// from an SPI result or from a trigger on engram.space_catalog.
SpaceDefinition space_definition(struct HeapTupleData *tuple, struct TupleDescData *desc);

// Which rows a lookup sees. A function called from SQL reads its statement's
// snapshot; a worker, whose transaction may span many records, must also see
// spaces whose creation committed since that transaction began.
enum class CatalogSnapshot { statement, latest };

// The space of that name, with the error every function gives for an
// unknown one (42704).
SpaceDefinition space_named(const char *name);
[[noreturn]] void report_unknown_space(const char *name);
// The space of that id; false if there is none. Both lookups are planned
// once per backend.
bool space_by_id(std::int32_t space_id, SpaceDefinition *out, CatalogSnapshot snapshot = CatalogSnapshot::statement);

// The space by id, remembered by the backend (ids are never reused within an
// installation, and a space's definition never changes); raises 42704 if
// there is no such space. For the checks run on every row observed.
const SpaceDefinition *remembered_space(std::int32_t space_id);

// Every space, in id order, allocated in the caller's memory context
// (at least one element, so the caller may always pfree it).
SpaceDefinition *all_spaces(std::uint64_t *count);

// Locks the space's row until the transaction ends, so that drops and owner
// changes of one space serialize, and refreshes `space.owner` from it; false
// if the row is gone. Runs inside SPI.
bool lock_space_row(SpaceDefinition &space);
