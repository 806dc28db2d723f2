// Metadata as the index sees it: the attribute tokens of an observation's
// `metadata` jsonb, and those a recall filter requires.
//
// A filter is a JSON object whose top-level values are scalars or arrays of
// scalars, and a row matches it when `metadata @> filter`. For such filters
// containment decomposes into facts about single top-level keys, so each row
// carries one token per fact it makes true and a filter requires one token
// per fact it asks for (core/attribute_token.hpp hashes them):
//   object              the metadata is an object (every filter asks this,
//                       so `{}` matches any object and no NULL or array)
//   scalar  (key, v)    the key's value is the scalar v
//   array   (key)       the key's value is an array
//   element (key, v)    the key's value is an array holding the scalar v
// Scalars are compared as jsonb compares them: strings by their bytes,
// numbers by value (1.0 and 1 are one number: they are hashed in numeric's
// normal form), booleans and null by kind. Nested objects and nested arrays
// in a row carry no tokens of their own; a filter cannot ask about them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pg/postgres.hpp"

extern "C" {
#include "utils/jsonb.h"
}

struct TokenBuffer {
	std::uint64_t *tokens = nullptr; // palloc'd in the context current at the first append
	std::size_t count = 0;
	std::size_t capacity = 0;
};

// Appends the tokens of one row's metadata (NULL: none) to `out`; returns how
// many. Raises 54000 when they exceed what one node may carry.
std::uint32_t metadata_tokens(Jsonb *metadata, TokenBuffer *out, std::int64_t observation_id);

// The sorted, unique tokens a filter requires; raises 22023 for a filter that
// is not an object of scalars and arrays of scalars.
TokenBuffer filter_tokens(Jsonb *filter);
