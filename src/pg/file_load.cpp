// Loading a space from its graph file (see file_load.hpp).
//
// The check against the table is exact, not a bound: the file's observation
// ids, sorted, are merged with the space's ids in engram.observations as the
// load's snapshot sees them (an index-only walk of observations_space). An id
// only the file holds means the file is newer than the table, and the file is
// refused; an id only the table holds is a row committed after the file was
// written, which the caller loads from the table. Observations are never
// updated or deleted (only drop_space removes them, with the space), so a
// row the file holds is the row the table holds.
#include "pg/file_load.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "pg/graph_files.hpp"
#include "pg/observation_rows.hpp"
#include "pg/revisions.hpp"

namespace {

constexpr int k_id_batch = 10000;

// Why a file was not used, for the LOG line.
const char *
reason_of(engram::core::GraphFileStatus status, int os_error)
{
	switch (status) {
	case engram::core::GraphFileStatus::truncated:
		return "it is truncated";
	case engram::core::GraphFileStatus::corrupt:
		return "it is corrupt (a checksum or a value does not match)";
	case engram::core::GraphFileStatus::foreign:
		return "it was written by another cluster or installation, or for another space";
	case engram::core::GraphFileStatus::version_mismatch:
		return "it was written in another format version";
	case engram::core::GraphFileStatus::out_of_memory:
		return "engram.memory_limit has no room for it";
	case engram::core::GraphFileStatus::io_error:
		return psprintf("it could not be read: %s", strerror(os_error));
	case engram::core::GraphFileStatus::ok:
	case engram::core::GraphFileStatus::missing:
		break;
	}
	return "it could not be read";
}

// Not used: the space is loaded from the table. A file that is wrong, not
// just unreadable now (no memory, an I/O error), is removed, so that it
// cannot be taken later, when new rows might happen to match it.
void
discard(const SpaceSlot *slot, const char *reason, bool remove = true)
{
	ereport(LOG, (errmsg("engram discarded the graph file of space \"%s\": %s", slot->name, reason),
				  errdetail("The space is loaded from engram.observations instead, and its rows are linked "
							"again%s.",
							remove ? "; the file was removed" : ""),
				  errhint("The writer writes a new file once the space is loaded.")));
	if (remove)
		graph_file_remove(slot->space_id);
}

// The file's graph was installed as the space's graph: free it.
void
discard_graph(SpaceSlot *slot, const char *reason)
{
	engram::core::IndexSlot &index = directory_index(slot);
	directory_destroy_graph(index, index.current.load(std::memory_order_acquire));
	discard(slot, reason);
}

// The observation ids of the graph's live nodes (not forgotten), ascending,
// and how many; false if one repeats.
bool
sorted_labels(const engram::core::HnswGraph &graph, std::int64_t *labels, std::uint64_t &count)
{
	const std::uint64_t n = graph.size();
	count = 0;
	for (std::uint64_t id = 0; id < n; ++id)
		if (graph.forgotten(static_cast<std::uint32_t>(id)) == engram::core::k_never_forgotten)
			labels[count++] = graph.label(static_cast<std::uint32_t>(id));
	std::sort(labels, labels + count);
	return std::adjacent_find(labels, labels + count) == labels + count;
}

struct Comparison {
	const std::int64_t *labels;
	std::uint64_t count;
	std::uint64_t only_in_file = 0;
	std::int64_t *missing = nullptr;
	std::uint64_t missing_count = 0, missing_capacity = 0;
};

void
note_missing(Comparison &c, std::int64_t id)
{
	if (c.missing_count == c.missing_capacity) {
		c.missing_capacity = std::max<std::uint64_t>(1024, c.missing_capacity * 2);
		const Size bytes = sizeof(std::int64_t) * c.missing_capacity;
		c.missing = static_cast<std::int64_t *>(c.missing == nullptr
													? MemoryContextAllocHuge(CurrentMemoryContext, bytes)
													: repalloc_huge(c.missing, bytes));
	}
	c.missing[c.missing_count++] = id;
}

// Merges the space's ids in the table (ascending) with the file's.
void
compare_with_table(std::int32_t space_id, Comparison &c)
{
	Oid argtype = INT4OID;
	SPIPlanPtr plan =
		SPI_prepare("SELECT id FROM engram.observations WHERE space_id OPERATOR(pg_catalog.=) $1 ORDER BY id", 1,
					&argtype);
	Datum arg = Int32GetDatum(space_id);
	Portal portal = SPI_cursor_open(nullptr, plan, &arg, nullptr, true);
	std::uint64_t next = 0; // the first file id not matched yet
	for (;;) {
		SPI_cursor_fetch(portal, true, k_id_batch);
		const std::uint64_t n = SPI_processed;
		if (n == 0)
			break;
		for (std::uint64_t i = 0; i < n; ++i) {
			bool isnull = false;
			const std::int64_t id =
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			while (next < c.count && c.labels[next] < id) {
				c.only_in_file++;
				next++;
			}
			if (next < c.count && c.labels[next] == id)
				next++;
			else
				note_missing(c, id);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	c.only_in_file += c.count - next;
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
}

bool
same_shape(const SpaceSlot *slot, const engram::core::HnswGraph &graph)
{
	return graph.dim() == slot->dim && static_cast<std::uint32_t>(graph.metric()) == slot->metric &&
		   graph.m() == slot->m && graph.ef_construction() == slot->ef_construction &&
		   static_cast<std::uint32_t>(graph.encoding()) == slot->encoding;
}

} // namespace

FileLoad
load_graph_file(SpaceSlot *slot, std::uint64_t load_generation)
{
	FileLoad result;
	const char *path = graph_file_path(slot->space_id);
	const engram::core::GraphFileIdentity expected = graph_file_identity(slot->space_id);
	std::uint64_t offset = 0;
	int os_error = 0;
	const engram::core::GraphFileStatus status =
		engram::core::read_graph_file(shared_arena(), path, expected, offset, &result.stored, &os_error);
	if (status == engram::core::GraphFileStatus::missing)
		return result;
	if (status != engram::core::GraphFileStatus::ok) {
		discard(slot, reason_of(status, os_error),
				status != engram::core::GraphFileStatus::out_of_memory &&
					status != engram::core::GraphFileStatus::io_error);
		return result;
	}
	// Installed at once, so that an error from here on (a cancel) leaves the
	// graph where the next load, a quarantine or a drop frees it. Nothing
	// answers from it before the load is done.
	engram::core::IndexSlot &index = directory_index(slot);
	engram::core::install(index, index.current.load(std::memory_order_acquire), offset);
	directory_owe(slot, DUTY_LINK); // its file may end in an unlinked tail
	const engram::core::HnswGraph graph(shared_arena(), offset);
	if (!same_shape(slot, graph)) {
		discard_graph(slot, "it holds an index of another dimension, metric, storage or build parameters");
		return result;
	}
	if (graph.max_generation() >= load_generation) {
		discard_graph(slot, "its generations are newer than this cluster's write-ahead log");
		return result;
	}
	bool revised = false;
	char revision_error[k_cause_text_bytes];
	auto check_revisions = [&] { revised = space_revised_after(slot->space_id, result.stored.revision); };
	if (!run_in_subtransaction(check_revisions, revision_error, sizeof revision_error)) {
		discard_graph(slot, psprintf("engram.revisions could not be read: %s", revision_error));
		return result;
	}
	if (revised) {
		discard_graph(slot, "rows of the space were deleted or updated after it was written");
		return result;
	}
	Comparison comparison;
	comparison.count = graph.size();
	auto *labels = static_cast<std::int64_t *>(MemoryContextAllocHuge(
		CurrentMemoryContext, sizeof(std::int64_t) * std::max<std::uint64_t>(comparison.count, 1)));
	if (!sorted_labels(graph, labels, comparison.count)) {
		pfree(labels);
		discard_graph(slot, "it is corrupt (an observation id repeats)");
		return result;
	}
	comparison.labels = labels;
	char error[k_cause_text_bytes];
	auto compare = [&] { compare_with_table(slot->space_id, comparison); };
	if (!run_in_subtransaction(compare, error, sizeof error)) {
		pfree(labels);
		discard_graph(slot, psprintf("engram.observations could not be read: %s", error));
		return result;
	}
	pfree(labels);
	if (comparison.only_in_file > 0) {
		discard_graph(slot, psprintf("it holds %llu observations that engram.observations does not hold (a file "
									 "newer than the table, as after restoring an older backup)",
									 static_cast<unsigned long long>(comparison.only_in_file)));
		return result;
	}
	result.loaded = true;
	result.missing = comparison.missing;
	result.missing_count = comparison.missing_count;

	struct stat st;
	SpaceFileState &file = slot->file;
	file.graph.store(offset, std::memory_order_relaxed);
	file.observations.store(graph.size(), std::memory_order_relaxed);
	file.forgotten.store(graph.forgotten_count(), std::memory_order_relaxed);
	file.linked.store(graph.linked_count(), std::memory_order_relaxed);
	file.generation.store(result.stored.max_generation, std::memory_order_relaxed);
	if (stat(path, &st) == 0) {
		file.bytes.store(static_cast<std::uint64_t>(st.st_size), std::memory_order_relaxed);
		file.written_at.store(time_t_to_timestamptz(st.st_mtime), std::memory_order_relaxed);
	}
	file.attempted_at.store(GetCurrentTimestamp(), std::memory_order_relaxed);
	// Nodes forgotten before the file was written are still to be erased:
	// their clock runs from the file's write at the latest.
	if (graph.forgotten_count() > 0) {
		const TimestampTz written = file.written_at.load(std::memory_order_relaxed);
		slot->forgotten_since.store(written != 0 ? written : GetCurrentTimestamp(), std::memory_order_release);
		directory_owe(slot, DUTY_COMPACT);
	}
	return result;
}
