// attribute_token: one 64-bit token per fact of an observation's metadata,
// so that a graph can test "metadata @> filter" on numbers alone.
//
// The glue turns a row's JSON metadata into tokens when it stores the row
// and a recall's filter into tokens when it searches; a row matches when it
// holds every token of the filter (HnswGraph keeps each node's tokens sorted
// and unique). The kinds mirror what @> can ask of top-level keys:
//   object   the metadata is a JSON object (key and value empty): what the
//            filter {} asks
//   scalar   key's value is this scalar ({"user": "u42"})
//   element  key's value is an array that holds this scalar ({"tags": ["a"]}
//            asks for element ("tags", "a"))
//   array    key's value is an array (value empty): what {"tags": []} asks
// Scalars are compared as text, so the glue canonicalises them first (one
// spelling per JSON value, with its type).
//
// The hash is written here (FNV-1a over the kind, the key's length, the key
// and the value, then a 64-bit finaliser) rather than taken from a library,
// so that a token is the same in every process, build and release: tokens
// are stored in graph files and compared with tokens computed later.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/no_postgres.hpp"

namespace engram::core {

enum class AttributeKind : std::uint8_t { object, scalar, element, array };

std::uint64_t attribute_token(std::string_view key, AttributeKind kind, std::string_view value) noexcept;

} // namespace engram::core
