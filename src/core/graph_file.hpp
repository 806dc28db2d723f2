// Graph files: one space's HNSW graph written to disk and built again from
// it, so that a restart does not have to relink every stored vector.
//
// The file holds the graph's logical content, not its arena blocks: per node
// in id order its encoded vector, level, neighbour lists, label, generation,
// confidence, forgotten generation, observed_at, attribute tokens, link state
// and spanning-tree facts, plus the
// graph's configuration, entry point and root. Arena blocks would be faster
// to write, but they carry offsets, chunk sizes, the arena's free list and
// the layout version of every in-memory structure; the logical form can be
// read into any arena at any offset, by any later layout that keeps the same
// meaning, and every value in it can be checked before it is used.
// Reading builds the graph through HnswGraph's own append of stored nodes
// (so upper blocks, tokens, the label table and counters are laid out as a
// fresh graph's would be), with each node's level and encoded vector bytes as
// the file holds them (a compacted graph's renumbered nodes keep the levels
// they had), then restores the lists, flags and entry on top.
//
// Link state. Every stored node goes to the file, with its lists as they are
// and the "linked" mark only if its link had finished. A node that was not
// linked is read back as stored but unlinked: unclaimed, so the linkers link
// it again after the load; any lists and tree parent it already had are kept,
// exactly as after a link that failed and gave its node back (hnsw_insert.cpp),
// whose retry merges into them. Leaving such nodes out would lose their
// vectors and labels and punch holes in the ids other nodes point at.
// Consistency. The writer freezes the graph's links (the link gate,
// hnsw_graph.hpp) while it reads the graph, so no list, tree edge or link
// mark changes under it, and thaws them before the fsync and rename; callers
// pause nothing. Appends go on: the file holds the nodes stored when the
// writer read the node count, and list entries of later nodes are left out.
// Forgets go on too: a node's forgotten generation is in the file or not. Linkers
// must take link turns for this to hold (LinkPool does); a graph linked
// outside turns while it is written gives a file that reads back into a
// valid graph or is refused as corrupt (a tree edge half made), never an
// invalid graph. The freeze waits for the linkers' turns in flight, so the
// caller must not hold a turn of the same graph.
//
// Format (native byte order: PGDATA never moves between architectures):
//   prefix   magic "ENGRAMGF", format version u32, header bytes u32,
//            CRC-32C of those 16 bytes (so a damaged version field reads as
//            corrupt, and a well-formed file of another version as version
//            mismatch whatever its header looks like)
//   header   GraphFileHeader below, ending in the CRC-32C of everything before it
//   body     per node: NodeRecord, vector bytes, its attribute tokens (u64,
//            sorted and unique), then for levels 0..level a u32 count and
//            count u32 ids (ids keep their pruning mark)
// Version 2 added the forgotten generation, observed_at and the tokens;
// version 1 files are refused as version_mismatch (the glue relinks). The
// label table is not written: reading appends every node, which rebuilds it.
// The header holds the body's length and CRC-32C, so a short file is found
// truncated before anything is allocated, and any changed byte is found.
//
// Errors are values; nothing throws. The writer replaces the file atomically
// (write a .tmp, fsync, rename, fsync the directory), so a crash leaves the
// old file or the new one.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>

#include "core/arena.hpp"
#include "core/hnsw_graph.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::uint32_t k_graph_file_version = 2;

// Whose graph a file holds; the glue fills it. A file is only read back into
// the same cluster (system identifier), the same installation of the
// extension and the same space. max_generation and max_label describe how far
// the file covers the space's observations, and the snapshot gap the range of
// generations (from, to) whose snapshots the graph cannot answer exactly,
// because some rows were given new generations when they were loaded (both 0
// when there is none; the glue defines the bounds). These are stored and
// returned, not compared.
struct GraphFileIdentity {
	std::uint64_t system_identifier = 0;
	std::uint64_t installation = 0;
	std::int32_t space_id = 0;
	std::uint64_t max_generation = 0;
	std::int64_t max_label = 0;
	std::uint64_t snapshot_gap_from = 0;
	std::uint64_t snapshot_gap_to = 0;
	// The newest revision of the space's rows (deletes, updates) the file
	// holds; the caller's to define (engram: pg/revisions.hpp).
	std::int64_t revision = 0;
};

enum class GraphFileStatus : std::uint8_t {
	ok = 0,
	missing,          // no file at the path
	truncated,        // shorter than its header says
	corrupt,          // a checksum or a value that no written graph can hold
	foreign,          // another cluster, installation or space
	version_mismatch, // written by another format version
	out_of_memory,    // the arena cannot hold the graph
	io_error,         // the operating system refused (os_error says why)
};

const char *to_string(GraphFileStatus status) noexcept;

// Writes the graph to path (replacing any file there). On io_error, *os_error
// (if given) receives the errno of the call that failed.
// How a file is written: its permission bits, and whom to tell once the graph
// has been read. From that call on the writer touches only the file (sync,
// rename, directory sync), so the caller may let the graph go, e.g. drop the
// pin that kept it alive, while the slow part goes on. The call must not
// throw.
struct GraphFileWriteOptions {
	unsigned mode = 0600;
	void (*graph_read)(void *context) noexcept = nullptr;
	void *context = nullptr;
	// Nodes written so far, stored (relaxed) every few thousand nodes and
	// once all are written, for a progress report; may be null.
	std::atomic<std::uint64_t> *nodes_written = nullptr;
};

GraphFileStatus write_graph_file(const HnswGraph &graph, const GraphFileIdentity &identity,
								 const std::filesystem::path &path, int *os_error = nullptr,
								 const GraphFileWriteOptions &options = {}) noexcept;

// Builds the file's graph in the arena; header_offset receives its offset.
// On any status but ok nothing is left allocated in the arena. stored (if
// given) receives the file's identity once the header has been read.
GraphFileStatus read_graph_file(Arena arena, const std::filesystem::path &path, const GraphFileIdentity &expected,
								std::uint64_t &header_offset, GraphFileIdentity *stored = nullptr,
								int *os_error = nullptr) noexcept;

} // namespace engram::core
