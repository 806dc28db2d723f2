// Writing and reading graph files (format and reasons in graph_file.hpp).
//
// GraphFileAccess is HnswGraph's friend: it reads the private layout to write
// a file and restores lists, flags and entry into a graph built by append.
// Every value read from a file is checked before it touches the arena, so a
// file that passes its checksums but was written by a broken writer still
// cannot produce a graph whose searches read outside it.
#include "core/graph_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <new>
#include <span>
#include <type_traits>
#include <vector>

#include "core/crc32c.hpp"
#include "core/quantize.hpp"

namespace engram::core {

namespace {

constexpr std::array<char, 8> k_graph_file_magic = {'E', 'N', 'G', 'R', 'A', 'M', 'G', 'F'};
constexpr std::size_t k_io_buffer_bytes = std::size_t{1} << 20;
// How often a write reports the nodes it has written (nodes_written).
constexpr std::uint64_t k_progress_nodes = 4096;

struct FilePrefix {
	std::array<char, 8> magic;
	std::uint32_t version;
	std::uint32_t header_bytes;
	std::uint32_t prefix_crc; // over the 16 bytes above
	std::uint32_t reserved;
};

struct GraphFileHeader {
	FilePrefix prefix;
	std::uint64_t system_identifier;
	std::uint64_t installation;
	std::int32_t space_id;
	std::uint32_t dim;
	std::uint64_t max_generation;
	std::int64_t max_label;
	std::uint64_t snapshot_gap_from;
	std::uint64_t snapshot_gap_to;
	std::int64_t revision;
	std::uint8_t metric;
	std::uint8_t encoding;
	std::uint8_t m;
	std::uint8_t reserved;
	std::uint32_t ef_construction;
	std::uint32_t first_chunk_log2;
	std::uint32_t max_chunk_log2;
	std::uint32_t vector_bytes;
	std::uint32_t root;
	std::uint64_t seed;
	std::uint64_t node_count;
	std::uint64_t entry; // as HnswHeader::entry
	std::uint64_t body_bytes;
	std::uint32_t body_crc;
	std::uint32_t header_crc; // over every byte above
};
static_assert(std::is_trivially_copyable_v<GraphFileHeader>);
static_assert(sizeof(FilePrefix) == 24);
static_assert(sizeof(GraphFileHeader) == 152, "no implicit padding: every byte is checksummed");

struct NodeRecord {
	std::uint64_t generation;
	std::int64_t label;
	float confidence;
	std::uint32_t parent;
	std::uint8_t level;
	std::uint8_t flags; // k_node_linked
	std::uint8_t children;
	std::array<std::uint8_t, 5> reserved;
	std::uint64_t forgotten; // as NodeHead::forgotten
	std::int64_t observed_at;
	std::uint32_t token_count; // tokens after the vector, sorted and unique
	std::uint32_t reserved2;
};
static_assert(std::is_trivially_copyable_v<NodeRecord>);
static_assert(sizeof(NodeRecord) == 56, "no implicit padding: every byte is checksummed");

template <typename T>
std::span<const std::byte>
bytes_of(const T &value) noexcept
{
	return std::as_bytes(std::span<const T, 1>(&value, 1));
}

std::uint32_t
prefix_crc(const FilePrefix &prefix) noexcept
{
	return crc32c_update(0, bytes_of(prefix).first(16));
}

std::uint32_t
header_crc(const GraphFileHeader &header) noexcept
{
	return crc32c_update(0, bytes_of(header).first(sizeof(GraphFileHeader) - 4));
}

// One owned file descriptor.
class FileDescriptor {
public:
	explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
	FileDescriptor(const FileDescriptor &) = delete;
	FileDescriptor &operator=(const FileDescriptor &) = delete;
	~FileDescriptor()
	{
		if (fd_ >= 0)
			::close(fd_);
	}
	int get() const noexcept { return fd_; }
	bool valid() const noexcept { return fd_ >= 0; }
	// Closes now, so that a failing close (a deferred write error) is seen.
	bool close() noexcept
	{
		const int fd = fd_;
		fd_ = -1;
		return ::close(fd) == 0;
	}

private:
	int fd_;
};

// Writes whole buffers at increasing offsets; false (errno set) on failure.
bool
write_all(int fd, std::span<const std::byte> bytes, std::uint64_t offset) noexcept
{
	while (!bytes.empty()) {
		const ssize_t done = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0) {
			if (done == 0)
				errno = EIO;
			return false;
		}
		bytes = bytes.subspan(static_cast<std::size_t>(done));
		offset += static_cast<std::uint64_t>(done);
	}
	return true;
}

enum class ReadResult : std::uint8_t { ok, truncated, overrun };

// Reads exactly out.size() bytes at offset.
ReadResult
read_exact(int fd, std::span<std::byte> out, std::uint64_t offset) noexcept
{
	while (!out.empty()) {
		const ssize_t got = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return ReadResult::truncated;
		out = out.subspan(static_cast<std::size_t>(got));
		offset += static_cast<std::uint64_t>(got);
	}
	return ReadResult::ok;
}

// The body as it is written: buffered, checksummed and counted.
class BodyWriter {
public:
	BodyWriter(int fd, std::uint64_t offset) : fd_(fd), offset_(offset) { buffer_.reserve(k_io_buffer_bytes); }

	bool put(std::span<const std::byte> bytes) noexcept
	{
		crc_ = crc32c_update(crc_, bytes);
		written_ += bytes.size();
		while (!bytes.empty()) {
			const std::size_t n = std::min(bytes.size(), k_io_buffer_bytes - buffer_.size());
			buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
			bytes = bytes.subspan(n);
			if (buffer_.size() == k_io_buffer_bytes && !flush())
				return false;
		}
		return true;
	}
	template <typename T>
	bool put_value(const T &value) noexcept
	{
		return put(bytes_of(value));
	}
	bool flush() noexcept
	{
		if (!write_all(fd_, buffer_, offset_))
			return false;
		offset_ += buffer_.size();
		buffer_.clear();
		return true;
	}
	std::uint32_t crc() const noexcept { return crc_; }
	std::uint64_t written() const noexcept { return written_; }

private:
	int fd_;
	std::uint64_t offset_;
	std::vector<std::byte> buffer_;
	std::uint32_t crc_ = 0;
	std::uint64_t written_ = 0;
};

// The body as it is read: buffered, checksummed and bounded by its stated length.
class BodyReader {
public:
	BodyReader(int fd, std::uint64_t offset, std::uint64_t length)
		: fd_(fd), offset_(offset), remaining_(length), buffer_(k_io_buffer_bytes)
	{
	}

	ReadResult get(std::span<std::byte> out) noexcept
	{
		if (out.size() > remaining_)
			return ReadResult::overrun;
		while (!out.empty()) {
			if (position_ == filled_) {
				const ReadResult r = refill();
				if (r != ReadResult::ok)
					return r;
			}
			const std::size_t n = std::min(out.size(), filled_ - position_);
			std::memcpy(out.data(), buffer_.data() + position_, n);
			crc_ = crc32c_update(crc_, std::span<const std::byte>(buffer_.data() + position_, n));
			position_ += n;
			remaining_ -= n;
			out = out.subspan(n);
		}
		return ReadResult::ok;
	}
	template <typename T>
	ReadResult get_value(T &value) noexcept
	{
		return get(std::as_writable_bytes(std::span<T, 1>(&value, 1)));
	}
	std::uint64_t remaining() const noexcept { return remaining_; }
	std::uint32_t crc() const noexcept { return crc_; }

private:
	ReadResult refill() noexcept
	{
		for (;;) {
			const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), remaining_));
			const ssize_t got = ::pread(fd_, buffer_.data(), want, static_cast<off_t>(offset_));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return ReadResult::truncated; // the file shrank under us (or could not be read)
			offset_ += static_cast<std::uint64_t>(got);
			position_ = 0;
			filled_ = static_cast<std::size_t>(got);
			return ReadResult::ok;
		}
	}

	int fd_;
	std::uint64_t offset_;
	std::uint64_t remaining_;
	std::vector<std::byte> buffer_;
	std::size_t position_ = 0;
	std::size_t filled_ = 0;
	std::uint32_t crc_ = 0;
};

GraphFileStatus
from_read(ReadResult r) noexcept
{
	return r == ReadResult::truncated ? GraphFileStatus::truncated : GraphFileStatus::corrupt;
}

// What max_chunk_log2 must be in an HnswConfig to give an array this chunk cap.
std::uint32_t
configured_chunk_cap(const SegmentedArrayHeader &array) noexcept
{
	const auto automatic =
		std::max<std::uint32_t>(array.first_chunk_log2,
								static_cast<std::uint32_t>(std::bit_width(k_max_chunk_bytes / array.stride) - 1));
	return array.max_chunk_log2 == automatic ? 0 : array.max_chunk_log2;
}

// Destroys a graph under construction unless it is released.
class GraphUnderConstruction {
public:
	GraphUnderConstruction(Arena arena, std::uint64_t offset) noexcept : graph_(arena, offset) {}
	GraphUnderConstruction(const GraphUnderConstruction &) = delete;
	GraphUnderConstruction &operator=(const GraphUnderConstruction &) = delete;
	~GraphUnderConstruction()
	{
		if (!released_)
			graph_.destroy();
	}
	HnswGraph &graph() noexcept { return graph_; }
	void release() noexcept { released_ = true; }

private:
	HnswGraph graph_;
	bool released_ = false;
};

GraphFileStatus
from_hnsw(HnswStatus s) noexcept
{
	switch (s) {
	case HnswStatus::ok:
		return GraphFileStatus::ok;
	case HnswStatus::out_of_memory:
		return GraphFileStatus::out_of_memory;
	default:
		return GraphFileStatus::corrupt; // only values no writer could have stored get here
	}
}

} // namespace

class GraphFileAccess {
public:
	// Both may throw std::bad_alloc.
	static GraphFileStatus write_body(const HnswGraph &graph, std::uint64_t count, BodyWriter &out,
									  std::atomic<std::uint64_t> *nodes_written);
	static GraphFileStatus read_body(HnswGraph &graph, const GraphFileHeader &header, BodyReader &in);
	static void fill_header(const HnswGraph &graph, GraphFileHeader &header) noexcept;

private:
	static bool valid_list(std::uint64_t count, std::span<const std::uint32_t> ids, std::vector<std::uint32_t> &sorted);
	static bool valid_levels(const HnswGraph &graph, const GraphFileHeader &header);
	static bool valid_tree(const HnswGraph &graph, const GraphFileHeader &header);
};

void
GraphFileAccess::fill_header(const HnswGraph &graph, GraphFileHeader &header) noexcept
{
	const HnswHeader &h = *graph.header_;
	header.dim = h.dim;
	header.metric = static_cast<std::uint8_t>(h.metric);
	header.encoding = static_cast<std::uint8_t>(h.encoding);
	header.m = h.m;
	header.ef_construction = h.ef_construction;
	header.first_chunk_log2 = h.nodes.first_chunk_log2;
	header.max_chunk_log2 = configured_chunk_cap(h.nodes);
	header.vector_bytes = h.vector_bytes;
	// The entry first: the root is set before the entry is released, and the
	// node count read after both covers the entry.
	header.entry = h.entry.load(std::memory_order_acquire);
	header.root = h.root;
	header.seed = h.seed;
}

GraphFileStatus
GraphFileAccess::write_body(const HnswGraph &graph, std::uint64_t count, BodyWriter &out,
							std::atomic<std::uint64_t> *nodes_written)
{
	const HnswHeader &h = *graph.header_;
	std::vector<std::uint32_t> ids(h.m0);
	for (std::uint64_t i = 0; i < count; ++i) {
		if (nodes_written != nullptr && i % k_progress_nodes == 0)
			nodes_written->store(i, std::memory_order_relaxed);
		const auto id = static_cast<std::uint32_t>(i);
		const NodeHead &node = graph.head(id);
		NodeRecord record{};
		record.generation = node.generation;
		record.label = node.label;
		record.confidence = node.confidence;
		record.parent = node.parent.load(std::memory_order_acquire);
		if (record.parent != k_no_node && record.parent >= count)
			record.parent = k_no_node;
		record.level = node.level;
		record.flags = node.flags.load(std::memory_order_acquire) & k_node_linked;
		record.children = node.children.load(std::memory_order_acquire);
		record.forgotten = node.forgotten.load(std::memory_order_acquire);
		record.observed_at = node.observed_at;
		const std::span<const std::uint64_t> tokens = graph.tokens(id);
		record.token_count = static_cast<std::uint32_t>(tokens.size());
		if (!out.put_value(record) || !out.put(std::span<const std::byte>(graph.vector_bytes(id), h.vector_bytes)) ||
			!out.put(std::as_bytes(tokens)))
			return GraphFileStatus::io_error;
		for (std::uint32_t level = 0; level <= node.level; ++level) {
			std::uint32_t n = list_count(read_list(graph.list(id, level), ids.data(), true));
			// Nodes appended after `count` was read are not in the file.
			n = static_cast<std::uint32_t>(std::remove_if(ids.data(), ids.data() + n,
														  [count](std::uint32_t x) {
															  return (x & ~k_list_checked) >= count;
														  }) -
										   ids.data());
			if (!out.put_value(n) || !out.put(std::as_bytes(std::span<const std::uint32_t>(ids.data(), n))))
				return GraphFileStatus::io_error;
		}
	}
	if (nodes_written != nullptr)
		nodes_written->store(count, std::memory_order_relaxed);
	return GraphFileStatus::ok;
}

// Checks a list read from a file: ids of stored nodes, each once (pruning
// pins tree edges and assumes each appears once). That a list on level l
// names only nodes with a list on level l (searches read it) is checked once
// every node is read (valid_levels): lists name later nodes too, and a
// node's level is its own (a compacted graph's nodes keep theirs), not the
// hash of its id.
bool
GraphFileAccess::valid_list(std::uint64_t count, std::span<const std::uint32_t> ids, std::vector<std::uint32_t> &sorted)
{
	sorted.clear();
	for (std::uint32_t raw : ids) {
		const std::uint32_t id = raw & ~k_list_checked;
		if (id >= count)
			return false;
		sorted.push_back(id);
	}
	std::sort(sorted.begin(), sorted.end());
	return std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
}

// Every upper-level list names only nodes of at least its level, and the
// entry point has the level the entry word says.
bool
GraphFileAccess::valid_levels(const HnswGraph &graph, const GraphFileHeader &header)
{
	if (header.entry != k_no_entry && graph.level(entry_id(header.entry)) != entry_level(header.entry))
		return false;
	std::vector<std::uint32_t> ids(graph.m());
	for (std::uint64_t i = 0; i < header.node_count; ++i) {
		const auto id = static_cast<std::uint32_t>(i);
		for (std::uint32_t level = 1; level <= graph.level(id); ++level) {
			const std::uint32_t n = list_count(read_list(graph.list(id, level), ids.data()));
			if (std::any_of(ids.begin(), ids.begin() + n, [&](std::uint32_t x) { return graph.level(x) < level; }))
				return false;
		}
	}
	return true;
}

// The level-0 spanning tree (hnsw_insert.cpp) as linking relies on it: the
// root is its own parent once there is an entry, no other node is, and no
// node has more children than it counted (at most m, checked per record).
// Parent cycles away from the root are harmless: the walk from the root
// never reaches them.
bool
GraphFileAccess::valid_tree(const HnswGraph &graph, const GraphFileHeader &header)
{
	const std::uint64_t count = header.node_count;
	const bool rooted = header.entry != k_no_entry;
	std::vector<std::uint32_t> children(count, 0);
	for (std::uint64_t i = 0; i < count; ++i) {
		const std::uint32_t parent = graph.head(static_cast<std::uint32_t>(i)).parent.load(std::memory_order_relaxed);
		if (parent == i) {
			if (!rooted || i != header.root)
				return false;
		} else if (parent != k_no_node) {
			++children[parent];
		}
	}
	if (rooted && graph.head(header.root).parent.load(std::memory_order_relaxed) != header.root)
		return false;
	for (std::uint64_t i = 0; i < count; ++i)
		if (children[i] > graph.head(static_cast<std::uint32_t>(i)).children.load(std::memory_order_relaxed))
			return false;
	return true;
}

// May throw std::bad_alloc (the caller's guard then destroys the graph).
GraphFileStatus
GraphFileAccess::read_body(HnswGraph &graph, const GraphFileHeader &header, BodyReader &in)
{
	HnswHeader &h = *graph.header_;
	const std::uint64_t count = header.node_count;
	if (header.entry == k_no_entry ? header.root != 0 : entry_id(header.entry) >= count || header.root >= count)
		return GraphFileStatus::corrupt;
	std::vector<std::byte> encoded(h.vector_bytes);
	std::vector<float> decoded(h.dim);
	std::vector<std::uint32_t> ids(h.m0);
	std::vector<std::uint32_t> sorted;
	sorted.reserve(h.m0);
	std::vector<std::uint64_t> tokens(k_max_node_tokens);
	std::uint64_t linked = 0;
	std::uint64_t linked_prefix = count;
	for (std::uint64_t i = 0; i < count; ++i) {
		NodeRecord record;
		ReadResult r = in.get_value(record);
		if (r == ReadResult::ok)
			r = in.get(encoded);
		if (r != ReadResult::ok)
			return from_read(r);
		const bool reserved_clear =
			std::all_of(record.reserved.begin(), record.reserved.end(), [](std::uint8_t b) { return b == 0; }) &&
			record.reserved2 == 0;
		if (!reserved_clear || record.level > k_max_level || (record.flags & ~k_node_linked) != 0 ||
			record.children > h.m || (record.parent != k_no_node && record.parent >= count) ||
			std::isnan(record.confidence) || record.forgotten < record.generation ||
			record.token_count > k_max_node_tokens)
			return GraphFileStatus::corrupt;
		const std::span<std::uint64_t> node_tokens(tokens.data(), record.token_count);
		r = in.get(std::as_writable_bytes(node_tokens));
		if (r != ReadResult::ok)
			return from_read(r);
		if (std::adjacent_find(node_tokens.begin(), node_tokens.end(), std::greater_equal<>()) != node_tokens.end())
			return GraphFileStatus::corrupt; // written sorted and unique
		// The vector is checked decoded, as an append checks it, and stored
		// as the exact encoded bytes: decoding and encoding again need not
		// give the same bytes for a quantized encoding.
		decode(h.encoding, encoded.data(), decoded);
		if (graph.validate(decoded) != HnswStatus::ok)
			return GraphFileStatus::corrupt;
		std::uint32_t id;
		const HnswStatus appended = graph.append_stored(
			encoded, NodeData{record.generation, record.label, record.confidence, record.observed_at, node_tokens},
			record.level, id);
		if (appended != HnswStatus::ok)
			return from_hnsw(appended);
		if (id != i)
			return GraphFileStatus::corrupt;
		for (std::uint32_t level = 0; level <= record.level; ++level) {
			std::uint32_t n;
			r = in.get_value(n);
			if (r != ReadResult::ok)
				return from_read(r);
			if (n > (level == 0 ? h.m0 : h.m))
				return GraphFileStatus::corrupt;
			const std::span<std::uint32_t> list_ids(ids.data(), n);
			r = in.get(std::as_writable_bytes(list_ids));
			if (r != ReadResult::ok)
				return from_read(r);
			if (!valid_list(count, list_ids, sorted))
				return GraphFileStatus::corrupt;
			const ListRef list = graph.list(id, level);
			for (std::uint32_t k = 0; k < n; ++k)
				list.ids[k].store(ids[k], std::memory_order_relaxed);
			list.word->store(n, std::memory_order_release);
		}
		NodeHead &node = graph.head(id);
		node.parent.store(record.parent, std::memory_order_relaxed);
		node.children.store(record.children, std::memory_order_relaxed);
		if ((record.flags & k_node_linked) != 0) {
			// Linked nodes stay claimed; the others are handed out to link again.
			node.flags.fetch_or(k_node_linked | k_node_claimed, std::memory_order_release);
			++linked;
		} else {
			linked_prefix = std::min(linked_prefix, i);
		}
		if (record.forgotten != k_never_forgotten)
			graph.hide(id, record.forgotten);
	}
	if (in.remaining() != 0 || in.crc() != header.body_crc)
		return GraphFileStatus::corrupt;
	if ((header.entry == k_no_entry && linked != 0) || !valid_levels(graph, header) || !valid_tree(graph, header))
		return GraphFileStatus::corrupt;
	h.root = header.root;
	h.linked.store(linked, std::memory_order_release);
	h.linked_prefix.store(linked_prefix, std::memory_order_release);
	h.link_cursor.store(linked_prefix, std::memory_order_release);
	h.entry.store(header.entry, std::memory_order_release);
	return GraphFileStatus::ok;
}

const char *
to_string(GraphFileStatus status) noexcept
{
	switch (status) {
	case GraphFileStatus::ok:
		return "ok";
	case GraphFileStatus::missing:
		return "graph file does not exist";
	case GraphFileStatus::truncated:
		return "graph file is truncated";
	case GraphFileStatus::corrupt:
		return "graph file is corrupt";
	case GraphFileStatus::foreign:
		return "graph file belongs to another cluster, installation or space";
	case GraphFileStatus::version_mismatch:
		return "graph file has another format version";
	case GraphFileStatus::out_of_memory:
		return "graph memory exhausted while reading a graph file";
	case GraphFileStatus::io_error:
		return "graph file could not be read or written";
	}
	return "unknown status";
}

GraphFileStatus
write_graph_file(const HnswGraph &graph, const GraphFileIdentity &identity, const std::filesystem::path &path,
				 int *os_error, const GraphFileWriteOptions &options) noexcept
{
	bool read_reported = false;
	const auto report_read = [&]() noexcept {
		const int saved = errno; // of a failed write, for os_error
		if (!read_reported && options.graph_read != nullptr)
			options.graph_read(options.context);
		read_reported = true;
		errno = saved;
	};
	std::filesystem::path temporary;
	const auto fail = [&](GraphFileStatus status) noexcept {
		const int saved = errno;
		report_read();
		if (!temporary.empty())
			::unlink(temporary.c_str());
		if (os_error != nullptr)
			*os_error = saved;
		return status;
	};
	try {
		temporary = path;
		temporary += ".tmp";
		FileDescriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
								 static_cast<mode_t>(options.mode)));
		if (!fd.valid()) {
			temporary.clear(); // nothing of ours to remove
			return fail(GraphFileStatus::io_error);
		}
		GraphFileHeader header{};
		BodyWriter body(fd.get(), sizeof(GraphFileHeader));
		bool body_written = false;
		{
			// No link changes the graph while it is read; appends go on
			// (past the count read here) and forgets only write one word.
			const LinkFreeze freeze(graph);
			GraphFileAccess::fill_header(graph, header); // reads the entry before the count: the entry is below it
			header.node_count = graph.size();
			body_written = GraphFileAccess::write_body(graph, header.node_count, body, options.nodes_written) ==
							   GraphFileStatus::ok &&
						   body.flush();
		}
		// Thawed: nothing below touches the graph, so the caller may let it go.
		report_read();
		if (!body_written)
			return fail(GraphFileStatus::io_error);
		header.prefix.magic = k_graph_file_magic;
		header.prefix.version = k_graph_file_version;
		header.prefix.header_bytes = sizeof(GraphFileHeader);
		header.prefix.prefix_crc = prefix_crc(header.prefix);
		header.system_identifier = identity.system_identifier;
		header.installation = identity.installation;
		header.space_id = identity.space_id;
		header.max_generation = identity.max_generation;
		header.max_label = identity.max_label;
		header.snapshot_gap_from = identity.snapshot_gap_from;
		header.snapshot_gap_to = identity.snapshot_gap_to;
		header.revision = identity.revision;
		header.body_bytes = body.written();
		header.body_crc = body.crc();
		header.header_crc = header_crc(header);
		if (!write_all(fd.get(), bytes_of(header), 0) || ::fsync(fd.get()) != 0 || !fd.close())
			return fail(GraphFileStatus::io_error);
		if (::rename(temporary.c_str(), path.c_str()) != 0)
			return fail(GraphFileStatus::io_error);
		temporary.clear(); // renamed: the new file is in place
		// The rename is durable only once the directory is synced.
		std::filesystem::path directory = path.parent_path();
		if (directory.empty())
			directory = ".";
		FileDescriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		if (!dir.valid() || ::fsync(dir.get()) != 0)
			return fail(GraphFileStatus::io_error);
		return GraphFileStatus::ok;
	} catch (const std::bad_alloc &) {
		errno = ENOMEM;
		return fail(GraphFileStatus::io_error);
	}
}

namespace {

// The header, checked in the order that names the right failure: a short or
// damaged prefix, another format version, a damaged header, another owner, a
// body of the wrong length.
GraphFileStatus
read_header(int fd, std::uint64_t size, const GraphFileIdentity &expected, GraphFileHeader &header,
			GraphFileIdentity *stored) noexcept
{
	if (size < sizeof(FilePrefix))
		return GraphFileStatus::truncated;
	const std::span<std::byte> all = std::as_writable_bytes(std::span<GraphFileHeader, 1>(&header, 1));
	ReadResult r = read_exact(fd, all.first(sizeof(FilePrefix)), 0);
	if (r != ReadResult::ok)
		return from_read(r);
	if (header.prefix.magic != k_graph_file_magic || header.prefix.prefix_crc != prefix_crc(header.prefix))
		return GraphFileStatus::corrupt;
	if (header.prefix.version != k_graph_file_version)
		return GraphFileStatus::version_mismatch;
	if (header.prefix.header_bytes != sizeof(GraphFileHeader))
		return GraphFileStatus::corrupt;
	if (size < sizeof(GraphFileHeader))
		return GraphFileStatus::truncated;
	r = read_exact(fd, all.subspan(sizeof(FilePrefix)), sizeof(FilePrefix));
	if (r != ReadResult::ok)
		return from_read(r);
	if (header.header_crc != header_crc(header))
		return GraphFileStatus::corrupt;
	if (stored != nullptr)
		*stored = GraphFileIdentity{header.system_identifier, header.installation, header.space_id,
									header.max_generation,    header.max_label,    header.snapshot_gap_from,
									header.snapshot_gap_to,   header.revision};
	if (header.system_identifier != expected.system_identifier || header.installation != expected.installation ||
		header.space_id != expected.space_id)
		return GraphFileStatus::foreign;
	if (size - sizeof(GraphFileHeader) < header.body_bytes)
		return GraphFileStatus::truncated;
	if (size - sizeof(GraphFileHeader) > header.body_bytes || header.node_count > k_max_nodes || header.reserved != 0 ||
		header.prefix.reserved != 0)
		return GraphFileStatus::corrupt;
	return GraphFileStatus::ok;
}

} // namespace

GraphFileStatus
read_graph_file(Arena arena, const std::filesystem::path &path, const GraphFileIdentity &expected,
				std::uint64_t &header_offset, GraphFileIdentity *stored, int *os_error) noexcept
{
	FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	struct stat st;
	if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
		const int saved = errno;
		if (os_error != nullptr)
			*os_error = saved;
		return saved == ENOENT ? GraphFileStatus::missing : GraphFileStatus::io_error;
	}
	GraphFileHeader header{};
	const GraphFileStatus checked =
		read_header(fd.get(), static_cast<std::uint64_t>(st.st_size), expected, header, stored);
	if (checked != GraphFileStatus::ok)
		return checked;

	HnswConfig config;
	config.dim = header.dim;
	config.metric = static_cast<Metric>(header.metric);
	config.encoding = static_cast<Encoding>(header.encoding);
	config.m = header.m;
	config.ef_construction = header.ef_construction;
	config.seed = header.seed;
	config.first_chunk_log2 = header.first_chunk_log2;
	config.max_chunk_log2 = header.max_chunk_log2;
	std::uint64_t offset = 0;
	const HnswStatus created = HnswGraph::create(arena, config, offset);
	if (created != HnswStatus::ok)
		return from_hnsw(created);
	try {
		GraphUnderConstruction building(arena, offset);
		HnswGraph &graph = building.graph();
		if (encoded_bytes(config.encoding, config.dim) != header.vector_bytes)
			return GraphFileStatus::corrupt;
		const HnswStatus reserved = graph.reserve(header.node_count);
		if (reserved != HnswStatus::ok)
			return from_hnsw(reserved);
		BodyReader body(fd.get(), sizeof(GraphFileHeader), header.body_bytes);
		const GraphFileStatus status = GraphFileAccess::read_body(graph, header, body);
		if (status != GraphFileStatus::ok)
			return status;
		building.release();
	} catch (const std::bad_alloc &) {
		return GraphFileStatus::out_of_memory;
	}
	header_offset = offset;
	return GraphFileStatus::ok;
}

} // namespace engram::core
