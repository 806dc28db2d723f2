// engram.audit_erasure(embedding real[]): where a vector (a forgotten one,
// say) still occurs in what engram keeps: its shared memory (the directory,
// the ring, the arena with every graph) and each file under $PGDATA/engram.
// It looks for the components as given and, normalised to unit length, as a
// cosine space stores them, each in every storage encoding (f32, f16, sq8:
// the bytes a graph of that storage holds for the vector). An operator answering an erasure request runs
// it after the deletion's compaction to show that the vector is gone from
// engram; the rows themselves are PostgreSQL's (heap pages, WAL, backups:
// VACUUM).
//
// Superusers only: it reads every space's vectors, whoever owns them, and
// answers whether given bytes are among them.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/quantize.hpp"
#include "pg/graph_files.hpp"
#include "pg/shared.hpp"
#include "pg/vector_input.hpp"

#include "pg/postgres.hpp"

namespace {

constexpr std::size_t k_min_pattern = 8;
constexpr std::size_t k_file_chunk = std::size_t{1} << 20;

std::uint64_t
occurrences(const std::byte *data, std::size_t size, const std::byte *pattern, std::size_t length)
{
	std::uint64_t found = 0;
	const void *at = data;
	std::size_t left = size;
	while (const void *hit = memmem(at, left, pattern, length)) {
		found++;
		const auto *next = static_cast<const std::byte *>(hit) + 1;
		left -= static_cast<std::size_t>(next - static_cast<const std::byte *>(at));
		at = next;
	}
	return found;
}

// Reads the file in chunks that overlap by length - 1 bytes, so that a match
// across a chunk boundary is counted once. -1 if the file cannot be read.
std::int64_t
file_occurrences(const std::string &path, const std::byte *pattern, std::size_t length)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		return -1;
	std::vector<std::byte> buffer(k_file_chunk + length);
	std::size_t kept = 0;
	std::uint64_t found = 0;
	for (;;) {
		in.read(reinterpret_cast<char *>(buffer.data() + kept), static_cast<std::streamsize>(k_file_chunk));
		const auto got = static_cast<std::size_t>(in.gcount());
		if (got == 0)
			break;
		const std::size_t size = kept + got;
		found += occurrences(buffer.data(), size, pattern, length);
		kept = std::min(size, length - 1);
		std::memmove(buffer.data(), buffer.data() + size - kept, kept);
		// Matches wholly inside the kept tail were counted already; they
		// cannot be counted again, being shorter than the pattern.
	}
	return in.bad() ? -1 : static_cast<std::int64_t>(found);
}

struct FileCount {
	char name[64];
	std::int64_t occurrences; // -1: unreadable
};

// The files under the directory, at most `room` of them, with their counts.
// Pure C++ (no PostgreSQL call), so that its objects never meet an ereport.
std::size_t
count_in_files(const char *directory, const std::byte *pattern, std::size_t length, FileCount *out, std::size_t room)
{
	std::size_t n = 0;
	std::error_code error;
	for (const auto &entry : std::filesystem::directory_iterator(directory, error)) {
		if (n == room)
			break;
		if (!entry.is_regular_file(error))
			continue;
		FileCount &f = out[n++];
		strlcpy(f.name, entry.path().filename().c_str(), sizeof f.name);
		f.occurrences = file_occurrences(entry.path().string(), pattern, length);
	}
	return n;
}

std::size_t
count_files(const char *directory)
{
	std::size_t n = 0;
	std::error_code error;
	for (const auto &entry : std::filesystem::directory_iterator(directory, error))
		n += entry.is_regular_file(error) ? 1 : 0;
	return n;
}

} // namespace

ENGRAM_FUNCTION(engram_audit_erasure)
{
	const EngramShared *s = shared_require();
	if (!superuser())
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied to audit engram's memory"),
						errdetail("engram.audit_erasure() reads the vectors of every space."),
						errhint("Run it as a superuser.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("embedding must not be null")));
	ArrayType *array = PG_GETARG_ARRAYTYPE_P(0);
	const int dim = ARR_NDIM(array) == 1 ? ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array)) : 0;
	if (dim * sizeof(float) < k_min_pattern)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("embedding must have at least %zu components", k_min_pattern / sizeof(float)),
						errdetail("Shorter patterns occur by chance."),
						errhint("Pass the whole embedding of the forgotten observation.")));
	const float *values = check_vector(array, "embedding", "any", dim, false);
	const std::span<const float> vector(values, static_cast<std::size_t>(dim));
	// The vector as given and as a cosine space stores it (scaled as the graph
	// scales it), in each encoding; an encoding shorter than k_min_pattern
	// bytes (f16 of a 2-d vector, say) would occur by chance and is skipped.
	constexpr engram::core::Encoding encodings[] = {engram::core::Encoding::float32, engram::core::Encoding::float16,
													engram::core::Encoding::sq8};
	const float scales[] = {1.0f, engram::core::unit_scale(vector)};
	const std::size_t largest = engram::core::encoded_bytes(engram::core::Encoding::float32, dim);
	auto *patterns = static_cast<std::byte *>(palloc0(largest * 6));
	std::size_t lengths[6] = {};
	int count = 0;
	for (const engram::core::Encoding encoding : encodings)
		for (const float scale : scales) {
			const std::size_t length = engram::core::encoded_bytes(encoding, dim);
			std::byte *pattern = patterns + largest * count;
			engram::core::encode(encoding, vector, pattern, scale);
			bool seen = length < k_min_pattern;
			for (int j = 0; j < count && !seen; ++j)
				seen = lengths[j] == length && std::memcmp(patterns + largest * j, pattern, length) == 0;
			if (!seen)
				lengths[count++] = length;
		}
	// Everything engram placed in shared memory, from its header to the
	// arena's end (the directory, the ring, the spaces' backlog and the arena).
	const auto *base = reinterpret_cast<const std::byte *>(s);
	const std::size_t region = s->arena_offset + s->arena_bytes;
	std::uint64_t in_memory = 0;
	for (int i = 0; i < count; ++i)
		in_memory += occurrences(base, region, patterns + largest * i, lengths[i]);
	const char *directory = graph_file_directory();
	const std::size_t room = count_files(directory);
	auto *files = static_cast<FileCount *>(palloc0(sizeof(FileCount) * std::max<std::size_t>(room, 1)));
	auto *more = static_cast<FileCount *>(palloc0(sizeof(FileCount) * std::max<std::size_t>(room, 1)));
	const std::size_t file_count = count_in_files(directory, patterns, lengths[0], files, room);
	for (int i = 1; i < count; ++i) {
		const std::size_t again = count_in_files(directory, patterns + largest * i, lengths[i], more, room);
		for (std::size_t f = 0; f < std::min(file_count, again); ++f)
			if (strcmp(files[f].name, more[f].name) == 0 && files[f].occurrences >= 0)
				files[f].occurrences = more[f].occurrences < 0 ? -1 : files[f].occurrences + more[f].occurrences;
	}

	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	auto put = [&](const char *place, std::int64_t count) {
		Datum values[2] = {CStringGetTextDatum(place), Int64GetDatum(count)};
		bool nulls[2] = {false, count < 0};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	};
	put("shared memory", static_cast<std::int64_t>(in_memory));
	for (std::size_t i = 0; i < file_count; ++i)
		put(psprintf("engram/%s", files[i].name), files[i].occurrences);
	return static_cast<Datum>(0);
}
