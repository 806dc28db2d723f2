// Attribute tokens of metadata and of recall filters (see metadata_tokens.hpp).
#include "core/attribute_token.hpp"
#include "core/hnsw_graph.hpp"

#include "pg/metadata_tokens.hpp"

#include <algorithm>
#include <string_view>

extern "C" {
#include "utils/numeric.h"
}

namespace {

using engram::core::AttributeKind;

void
push(TokenBuffer *out, std::uint64_t token)
{
	if (out->count == out->capacity) {
		const std::size_t next = std::max<std::size_t>(out->capacity * 2, 16);
		out->tokens = out->tokens == nullptr
						  ? static_cast<std::uint64_t *>(palloc(next * sizeof(std::uint64_t)))
						  : static_cast<std::uint64_t *>(repalloc(out->tokens, next * sizeof(std::uint64_t)));
		out->capacity = next;
	}
	out->tokens[out->count++] = token;
}

std::string_view
key_of(const JsonbValue &key)
{
	return {key.val.string.val, static_cast<std::size_t>(key.val.string.len)};
}

// A scalar in the canonical text the tokens hash: a kind letter, then the
// value (numbers in numeric's normal form, so 1.0 and 1 agree).
const char *
scalar_text(const JsonbValue &v, std::size_t *length)
{
	switch (v.type) {
	case jbvString: {
		char *text = static_cast<char *>(palloc(static_cast<std::size_t>(v.val.string.len) + 1));
		text[0] = 's';
		memcpy(text + 1, v.val.string.val, static_cast<std::size_t>(v.val.string.len));
		*length = static_cast<std::size_t>(v.val.string.len) + 1;
		return text;
	}
	case jbvNumeric: {
		const char *normal = numeric_normalize(v.val.numeric);
		char *text = psprintf("n%s", normal);
		*length = strlen(text);
		return text;
	}
	case jbvBool:
		*length = 2;
		return v.val.boolean ? "bt" : "bf";
	case jbvNull:
		*length = 1;
		return "z";
	default:
		return nullptr;
	}
}

std::uint64_t
token(AttributeKind kind, std::string_view key, const JsonbValue *scalar)
{
	if (scalar == nullptr)
		return engram::core::attribute_token(key, kind, {});
	std::size_t length = 0;
	const char *text = scalar_text(*scalar, &length);
	return engram::core::attribute_token(key, kind, std::string_view(text, length));
}

bool
is_scalar(const JsonbValue &v)
{
	return v.type == jbvString || v.type == jbvNumeric || v.type == jbvBool || v.type == jbvNull;
}

// Walks the top level of an object: calls on_scalar(key, value) for a scalar
// value, on_array(key) and then on_element(key, value) for each element of
// an array value (value nullptr for a nested container), and on_other(key)
// for a nested object.
template <typename OnScalar, typename OnArray, typename OnElement, typename OnOther>
void
walk_object(Jsonb *object, OnScalar on_scalar, OnArray on_array, OnElement on_element, OnOther on_other)
{
	JsonbIterator *it = JsonbIteratorInit(&object->root);
	JsonbValue v;
	JsonbIteratorToken t = JsonbIteratorNext(&it, &v, false);
	Assert(t == WJB_BEGIN_OBJECT);
	JsonbValue key{};
	int depth = 1;
	while ((t = JsonbIteratorNext(&it, &v, false)) != WJB_DONE) {
		switch (t) {
		case WJB_KEY:
			if (depth == 1)
				key = v;
			break;
		case WJB_VALUE:
			if (depth == 1)
				on_scalar(key_of(key), v);
			break;
		case WJB_BEGIN_ARRAY:
			if (depth == 1 && !v.val.array.rawScalar)
				on_array(key_of(key));
			else if (depth == 2)
				on_element(key_of(key), nullptr);
			depth++;
			break;
		case WJB_BEGIN_OBJECT:
			if (depth == 1)
				on_other(key_of(key));
			else if (depth == 2)
				on_element(key_of(key), nullptr);
			depth++;
			break;
		case WJB_ELEM:
			if (depth == 2)
				on_element(key_of(key), &v);
			break;
		case WJB_END_ARRAY:
		case WJB_END_OBJECT:
			depth--;
			break;
		default:
			break;
		}
	}
}

} // namespace

std::uint32_t
metadata_tokens(Jsonb *metadata, TokenBuffer *out, std::int64_t observation_id)
{
	if (metadata == nullptr || !JB_ROOT_IS_OBJECT(metadata))
		return 0;
	const std::size_t first = out->count;
	push(out, token(AttributeKind::object, {}, nullptr));
	walk_object(
		metadata, [&](std::string_view key, const JsonbValue &v) { push(out, token(AttributeKind::scalar, key, &v)); },
		[&](std::string_view key) { push(out, token(AttributeKind::array, key, nullptr)); },
		[&](std::string_view key, const JsonbValue *v) {
			if (v != nullptr && is_scalar(*v))
				push(out, token(AttributeKind::element, key, v));
		},
		[](std::string_view) {});
	// The core sorts and removes duplicates; the limit counts them as given.
	const std::size_t n = out->count - first;
	if (n > engram::core::k_max_node_tokens)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("metadata of observation %lld has too many values to index",
							   static_cast<long long>(observation_id)),
						errdetail("Its top-level keys and the elements of their arrays make %zu values; an "
								  "observation may carry at most %u.",
								  n, engram::core::k_max_node_tokens),
						errhint("Keep long lists out of metadata, or nest them one level down (nested values are "
								"stored but cannot be filtered on).")));
	return static_cast<std::uint32_t>(n);
}

TokenBuffer
filter_tokens(Jsonb *filter)
{
	if (!JB_ROOT_IS_OBJECT(filter) || JB_ROOT_IS_SCALAR(filter))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("filter must be a JSON object"),
						errdetail("Recall keeps the observations whose metadata contains the filter (metadata @> "
								  "filter), for an object of top-level keys."),
						errhint("Pass for example '{\"user\": \"u42\"}' or '{\"tags\": [\"work\"]}'.")));
	TokenBuffer out;
	push(&out, token(AttributeKind::object, {}, nullptr));
	auto refuse = [](std::string_view key, const char *what) {
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter key \"%.*s\" holds %s", static_cast<int>(key.size()), key.data(), what),
				 errdetail("A filter's top-level values must be strings, numbers, booleans, null or arrays of them."),
				 errhint("Filter on top-level keys of the metadata; nested objects cannot be filtered on.")));
	};
	walk_object(
		filter, [&](std::string_view key, const JsonbValue &v) { push(&out, token(AttributeKind::scalar, key, &v)); },
		[&](std::string_view key) { push(&out, token(AttributeKind::array, key, nullptr)); },
		[&](std::string_view key, const JsonbValue *v) {
			if (v == nullptr || !is_scalar(*v))
				refuse(key, "an array with a nested object or array");
			push(&out, token(AttributeKind::element, key, v));
		},
		[&](std::string_view key) { refuse(key, "an object"); });
	std::sort(out.tokens, out.tokens + out.count);
	out.count = static_cast<std::size_t>(std::unique(out.tokens, out.tokens + out.count) - out.tokens);
	return out;
}
