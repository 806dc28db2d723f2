// Graph files: a graph written and read into another arena is the same graph
// (every node's facts, lists and link state, and the same search results, up
// to 4,096-d vectors),
// linking it further gives what linking the original gives, and every damaged
// or unexpected file is refused with its own status and nothing allocated.
// Also the CRC-32C the files rely on.
#include "core/graph_file.hpp"

#include "core/crc32c.hpp"
#include "core/hnsw_context.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "heap_region.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;
using test_support::random_vectors;

constexpr std::size_t k_header_bytes = 152;     // sizeof(GraphFileHeader)
constexpr std::size_t k_body_crc_at = 136;      // GraphFileHeader::body_crc
constexpr std::size_t k_header_crc_at = 140;    // GraphFileHeader::header_crc
constexpr std::size_t k_node_record_bytes = 56; // sizeof(NodeRecord)

const GraphFileIdentity k_identity{0x1122334455667788ULL, 42, 7, 5000, 123456, 4100, 4250, 77};

// A fresh directory, removed with everything in it.
class TempDir {
public:
	TempDir()
	{
		std::string pattern = (std::filesystem::temp_directory_path() / "engram-graph-file-XXXXXX").string();
		const char *made = ::mkdtemp(pattern.data());
		EXPECT_NE(made, nullptr) << std::strerror(errno);
		path_ = pattern;
	}
	~TempDir()
	{
		std::error_code ignored;
		std::filesystem::remove_all(path_, ignored);
	}
	std::filesystem::path operator/(const char *name) const { return path_ / name; }
	const std::filesystem::path &path() const { return path_; }

private:
	std::filesystem::path path_;
};

std::vector<std::byte>
read_bytes(const std::filesystem::path &path)
{
	std::ifstream in(path, std::ios::binary);
	std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	std::vector<std::byte> bytes(chars.size());
	std::memcpy(bytes.data(), chars.data(), chars.size());
	return bytes;
}

void
write_bytes(const std::filesystem::path &path, std::span<const std::byte> bytes)
{
	std::ofstream out(path, std::ios::binary | std::ios::trunc);
	out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
T
load(const std::vector<std::byte> &bytes, std::size_t at)
{
	T value;
	std::memcpy(&value, bytes.data() + at, sizeof(T));
	return value;
}

template <typename T>
void
store(std::vector<std::byte> &bytes, std::size_t at, T value)
{
	std::memcpy(bytes.data() + at, &value, sizeof(T));
}

// Makes a hand-edited file pass its checksums again, so that only the
// reader's own checks can refuse it.
void
reseal(std::vector<std::byte> &bytes)
{
	const auto body = std::span<const std::byte>(bytes).subspan(k_header_bytes);
	store(bytes, k_body_crc_at, crc32c_update(0, body));
	store(bytes, k_header_crc_at, crc32c_update(0, std::span<const std::byte>(bytes).first(k_header_crc_at)));
}

HnswConfig
config_of(std::uint32_t dim, Metric metric, Encoding encoding)
{
	HnswConfig config;
	config.dim = dim;
	config.metric = metric;
	config.encoding = encoding;
	config.m = 8;
	config.ef_construction = 48;
	config.seed = 0xfeed;
	config.first_chunk_log2 = 6; // small chunks: the graph spans many
	return config;
}

// n stored nodes with their own labels, generations, confidences, times and
// attribute tokens (up to 40, with duplicates, so that runs cross the tokens
// array's chunk ends); the first `linked` of them linked by two threads,
// every 17th forgotten (some from their own generation, most later).
HnswGraph
build_graph(Region &region, const HnswConfig &config, std::uint32_t n, std::uint32_t linked, std::uint32_t seed)
{
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	const auto vectors = random_vectors(n, config.dim, seed);
	std::vector<NodeData> data(n);
	std::vector<std::vector<std::uint64_t>> tokens(n);
	for (std::uint32_t i = 0; i < n; ++i) {
		for (std::uint32_t t = 0; t < i % 41; ++t)
			tokens[i].push_back((std::uint64_t{i} * 2654435761u + t % 29) ^ 0xabcdef);
		data[i] = NodeData{1 + i / 10, 1000000 + 3 * std::int64_t{i}, 0.25f + static_cast<float>(i % 7) / 8,
						   -5000 + 7 * std::int64_t{i}, tokens[i]};
	}
	std::uint32_t first = 0;
	EXPECT_EQ(graph.append_batch(vectors, data, first), HnswStatus::ok);
	// Two plain threads (not oneTBB, whose synchronisation ThreadSanitizer cannot see).
	std::atomic<std::uint32_t> next{0};
	const auto linker = [&] {
		SearchContext context;
		for (std::uint32_t id; (id = next.fetch_add(1)) < linked;)
			EXPECT_TRUE(graph.link(id, context));
	};
	std::thread other(linker);
	linker();
	other.join();
	for (std::uint32_t i = 0; i < n; i += 17)
		EXPECT_EQ(graph.forget_node(i, i / 5), ForgetResult::forgotten);
	return graph;
}

void
expect_same_graph(const HnswGraph &a, const HnswGraph &b)
{
	ASSERT_EQ(a.size(), b.size());
	EXPECT_EQ(a.dim(), b.dim());
	EXPECT_EQ(a.metric(), b.metric());
	EXPECT_EQ(a.encoding(), b.encoding());
	EXPECT_EQ(a.m(), b.m());
	EXPECT_EQ(a.ef_construction(), b.ef_construction());
	EXPECT_EQ(a.linked_count(), b.linked_count());
	EXPECT_EQ(a.linked_prefix(), b.linked_prefix());
	EXPECT_EQ(a.max_generation(), b.max_generation());
	EXPECT_EQ(a.entry_point(), b.entry_point());
	EXPECT_EQ(a.max_level(), b.max_level());
	std::vector<float> va(a.dim()), vb(b.dim());
	std::vector<std::uint32_t> la(a.m0()), lb(b.m0());
	for (std::uint32_t id = 0; id < a.size(); ++id) {
		ASSERT_EQ(a.label(id), b.label(id)) << id;
		ASSERT_EQ(a.generation(id), b.generation(id)) << id;
		ASSERT_EQ(a.confidence(id), b.confidence(id)) << id;
		ASSERT_EQ(a.level(id), b.level(id)) << id;
		ASSERT_EQ(a.forgotten(id), b.forgotten(id)) << id;
		ASSERT_EQ(a.observed_at(id), b.observed_at(id)) << id;
		ASSERT_TRUE(std::ranges::equal(a.tokens(id), b.tokens(id))) << id;
		ASSERT_EQ(b.find_label(b.label(id)), a.find_label(a.label(id))) << id;
		ASSERT_EQ(a.is_linked(id), b.is_linked(id)) << id;
		a.stored_vector(id, va);
		b.stored_vector(id, vb);
		ASSERT_EQ(va, vb) << id;
		for (std::uint32_t level = 0; level <= a.level(id); ++level) {
			const std::uint32_t na = a.neighbors(id, level, la);
			const std::uint32_t nb = b.neighbors(id, level, lb);
			ASSERT_EQ(std::vector<std::uint32_t>(la.begin(), la.begin() + na),
					  std::vector<std::uint32_t>(lb.begin(), lb.begin() + nb))
				<< id << " level " << level;
		}
	}
}

void
expect_same_search(const HnswGraph &a, const HnswGraph &b, std::uint32_t queries, std::uint32_t seed)
{
	const auto q = random_vectors(queries, a.dim(), seed);
	SearchContext ca, cb;
	SearchParams params;
	params.k = 10;
	params.ef = 40;
	params.max_generation = a.max_generation() - 20;
	params.min_confidence = 0.3f;
	std::size_t found = 0;
	for (std::uint32_t i = 0; i < queries; ++i) {
		const auto query = std::span<const float>(q).subspan(std::size_t{i} * a.dim(), a.dim());
		const SearchResult ra = a.search(query, params, ca);
		const std::vector<Neighbor> want(ra.neighbors.begin(), ra.neighbors.end());
		const SearchResult rb = b.search(query, params, cb);
		ASSERT_EQ(want, std::vector<Neighbor>(rb.neighbors.begin(), rb.neighbors.end())) << "query " << i;
		found += want.size();
		const SearchResult sa = a.snapshot_search(query, params, ca);
		const std::vector<Neighbor> snapshot(sa.neighbors.begin(), sa.neighbors.end());
		const SearchResult sb = b.snapshot_search(query, params, cb);
		ASSERT_EQ(snapshot, std::vector<Neighbor>(sb.neighbors.begin(), sb.neighbors.end())) << "query " << i;
	}
	EXPECT_GT(found, 0u); // the comparison compared something
}

// A written graph of n nodes and the file's bytes.
struct WrittenGraph {
	explicit WrittenGraph(std::uint32_t n = 400)
		: region(16 << 20), graph(build_graph(region, config_of(12, Metric::l2, Encoding::float32), n, n, 5))
	{
		EXPECT_EQ(write_graph_file(graph, k_identity, dir / "graph"), GraphFileStatus::ok);
		bytes = read_bytes(dir / "graph");
	}

	Region region;
	HnswGraph graph;
	TempDir dir;
	std::vector<std::byte> bytes;
};

// Reads `bytes` (written to a file) into a fresh arena and expects `want`
// with nothing left allocated.
void
expect_refused(const TempDir &dir, std::span<const std::byte> bytes, GraphFileStatus want, const std::string &what)
{
	write_bytes(dir / "damaged", bytes);
	Region target(16 << 20);
	const std::size_t before = target.arena.used_bytes();
	std::uint64_t offset = 0;
	EXPECT_EQ(read_graph_file(target.arena, dir / "damaged", k_identity, offset), want) << what;
	EXPECT_EQ(target.arena.used_bytes(), before) << what;
}

TEST(Crc32c, MatchesKnownValuesAndContinues)
{
	const std::string digits = "123456789";
	const auto digit_bytes = std::as_bytes(std::span<const char>(digits.data(), digits.size()));
	EXPECT_EQ(crc32c_update(0, digit_bytes), 0xE3069283u);
	const std::vector<std::byte> zeros(32, std::byte{0});
	EXPECT_EQ(crc32c_update(0, zeros), 0x8A9136AAu);
	const std::vector<std::byte> ones(32, std::byte{0xFF});
	EXPECT_EQ(crc32c_update(0, ones), 0x62A8AB43u);
	EXPECT_EQ(crc32c_update(0, {}), 0u);
	// Fed in pieces of every split, the result is the same.
	const auto data = random_vectors(64, 1, 3);
	const auto all = std::as_bytes(std::span<const float>(data));
	const std::uint32_t whole = crc32c_update(0, all);
	for (std::size_t split = 0; split <= all.size(); split += 13)
		EXPECT_EQ(crc32c_update(crc32c_update(0, all.first(split)), all.subspan(split)), whole);
}

TEST(GraphFile, RoundTripGivesTheSameGraphAndSearchResults)
{
	// The widest spaces engram creates (4,096-d f16 and sq8) among them.
	struct Case {
		std::uint32_t dim;
		Metric metric;
		Encoding encoding;
		std::uint32_t n;
	};
	for (const Case c :
		 {Case{24, Metric::l2, Encoding::float32, 3000}, Case{24, Metric::cosine, Encoding::sq8, 1500},
		  Case{24, Metric::inner_product, Encoding::float16, 1000}, Case{4096, Metric::l2, Encoding::float16, 300},
		  Case{4096, Metric::cosine, Encoding::sq8, 300}}) {
		SCOPED_TRACE(static_cast<int>(c.encoding));
		SCOPED_TRACE(c.dim);
		Region source(64 << 20);
		const HnswGraph original = build_graph(source, config_of(c.dim, c.metric, c.encoding), c.n, c.n, 11);
		TempDir dir;
		std::atomic<std::uint64_t> nodes_written{UINT64_MAX};
		GraphFileWriteOptions options;
		options.nodes_written = &nodes_written;
		ASSERT_EQ(write_graph_file(original, k_identity, dir / "graph", nullptr, options), GraphFileStatus::ok);
		EXPECT_FALSE(std::filesystem::exists(dir / "graph.tmp"));
		EXPECT_EQ(nodes_written.load(), c.n) << "the progress reported ends at every node written";

		Region target(64 << 20);
		std::uint64_t offset = 0;
		GraphFileIdentity stored;
		ASSERT_EQ(read_graph_file(target.arena, dir / "graph", k_identity, offset, &stored), GraphFileStatus::ok);
		EXPECT_EQ(stored.max_generation, k_identity.max_generation);
		EXPECT_EQ(stored.max_label, k_identity.max_label);
		EXPECT_EQ(stored.snapshot_gap_from, k_identity.snapshot_gap_from);
		EXPECT_EQ(stored.snapshot_gap_to, k_identity.snapshot_gap_to);
		EXPECT_EQ(stored.revision, k_identity.revision);
		ASSERT_EQ(HnswGraph::check(target.arena, offset), HnswStatus::ok);
		const HnswGraph copy(target.arena, offset);
		expect_same_graph(original, copy);
		expect_same_search(original, copy, 100, 12);
		EXPECT_EQ(copy.used_bytes(), original.used_bytes());
	}
}

TEST(GraphFile, EmptyGraphRoundTrips)
{
	Region source(4 << 20);
	const HnswGraph original = build_graph(source, config_of(8, Metric::l2, Encoding::float32), 0, 0, 1);
	TempDir dir;
	ASSERT_EQ(write_graph_file(original, k_identity, dir / "graph"), GraphFileStatus::ok);
	Region target(4 << 20);
	std::uint64_t offset = 0;
	ASSERT_EQ(read_graph_file(target.arena, dir / "graph", k_identity, offset), GraphFileStatus::ok);
	const HnswGraph copy(target.arena, offset);
	EXPECT_EQ(copy.size(), 0u);
	EXPECT_EQ(copy.entry_point(), k_no_node);
}

// The link state round-trips: the same nodes are linked, the rest are handed
// out to link again, and linking them (in the same order, one thread) in the
// original and the copy gives the same graph, so the copy kept everything
// linking decides by (lists with their pruning marks, tree parents, counts).
TEST(GraphFile, PartiallyLinkedGraphKeepsItsLinkStateAndLinksOnIdentically)
{
	constexpr std::uint32_t n = 1200;
	Region source(32 << 20);
	HnswGraph original = build_graph(source, config_of(16, Metric::l2, Encoding::float32), n, 700, 21);
	SearchContext context;
	for (std::uint32_t id = 900; id < n; id += 9) // linked beyond the linked prefix
		ASSERT_TRUE(original.link(id, context));
	ASSERT_EQ(original.linked_prefix(), 700u);
	TempDir dir;
	ASSERT_EQ(write_graph_file(original, k_identity, dir / "graph"), GraphFileStatus::ok);

	Region target(32 << 20);
	std::uint64_t offset = 0;
	ASSERT_EQ(read_graph_file(target.arena, dir / "graph", k_identity, offset), GraphFileStatus::ok);
	HnswGraph copy(target.arena, offset);
	expect_same_graph(original, copy);
	expect_same_search(original, copy, 100, 22);
	EXPECT_TRUE(copy.has_unclaimed());

	for (HnswGraph *graph : {&original, &copy}) {
		SearchContext linker;
		std::uint32_t first = 0, linked = 0;
		while (const std::uint32_t got = graph->claim_unlinked(64, first))
			for (std::uint32_t id = first; id < first + got; ++id)
				linked += graph->link(id, linker) ? 1 : 0;
		EXPECT_EQ(linked, n - 700 - (n - 900 + 8) / 9);
		EXPECT_EQ(graph->linked_prefix(), n);
	}
	expect_same_graph(original, copy);
	expect_same_search(original, copy, 50, 23);
}

TEST(GraphFile, FlippedByteAnywhereIsCorrupt)
{
	const WrittenGraph written;
	const std::size_t size = written.bytes.size();
	std::vector<std::size_t> positions;
	for (std::size_t at = 0; at < k_header_bytes; ++at)
		positions.push_back(at); // every header byte
	for (std::size_t at = k_header_bytes; at < size; at += size / 97)
		positions.push_back(at);
	positions.push_back(size - 1);
	for (std::size_t at : positions) {
		std::vector<std::byte> damaged = written.bytes;
		damaged[at] ^= std::byte{0x20};
		expect_refused(written.dir, damaged, GraphFileStatus::corrupt, "byte " + std::to_string(at));
	}
	// A longer file is as damaged as a changed one.
	std::vector<std::byte> longer = written.bytes;
	longer.push_back(std::byte{0});
	expect_refused(written.dir, longer, GraphFileStatus::corrupt, "one byte more");
}

TEST(GraphFile, ShortFileIsTruncated)
{
	const WrittenGraph written;
	const std::size_t size = written.bytes.size();
	for (std::size_t length : {std::size_t{0}, std::size_t{5}, std::size_t{23}, std::size_t{24}, std::size_t{100},
							   k_header_bytes - 1, k_header_bytes, k_header_bytes + 1, size / 2, size - 1})
		expect_refused(written.dir, std::span<const std::byte>(written.bytes).first(length), GraphFileStatus::truncated,
					   "length " + std::to_string(length));
}

TEST(GraphFile, OtherOwnerIsForeignAndCoverageIsOnlyReported)
{
	const WrittenGraph written;
	Region target(16 << 20);
	const std::size_t before = target.arena.used_bytes();
	GraphFileIdentity other_system = k_identity, other_installation = k_identity, other_space = k_identity;
	other_system.system_identifier ^= 1;
	other_installation.installation += 1;
	other_space.space_id += 1;
	for (const GraphFileIdentity &expected : {other_system, other_installation, other_space}) {
		std::uint64_t offset = 0;
		GraphFileIdentity stored;
		EXPECT_EQ(read_graph_file(target.arena, written.dir / "graph", expected, offset, &stored),
				  GraphFileStatus::foreign);
		EXPECT_EQ(stored.system_identifier, k_identity.system_identifier);
		EXPECT_EQ(stored.installation, k_identity.installation);
		EXPECT_EQ(stored.space_id, k_identity.space_id);
		EXPECT_EQ(target.arena.used_bytes(), before);
	}
	GraphFileIdentity other_coverage = k_identity;
	other_coverage.max_generation = 1;
	other_coverage.max_label = -5;
	other_coverage.snapshot_gap_from = 0;
	other_coverage.snapshot_gap_to = 0;
	std::uint64_t offset = 0;
	EXPECT_EQ(read_graph_file(target.arena, written.dir / "graph", other_coverage, offset), GraphFileStatus::ok);
}

// Every field of the identity comes back as written, the coverage fields
// whatever their values.
TEST(GraphFile, IdentityRoundTripsWithItsSnapshotGap)
{
	Region source(4 << 20);
	const HnswGraph graph = build_graph(source, config_of(8, Metric::l2, Encoding::float32), 30, 30, 6);
	TempDir dir;
	constexpr std::uint64_t top = std::numeric_limits<std::uint64_t>::max();
	for (const auto &[from, to] : {std::pair<std::uint64_t, std::uint64_t>{0, 0},
								   {17, 18},
								   {1, top},
								   {top - 1, top},
								   {0x0102030405060708ULL, 0x1112131415161718ULL}}) {
		GraphFileIdentity written{0xfedcba9876543210ULL, 0x0123456789abcdefULL, -3, from + 5, -77, from, to};
		ASSERT_EQ(write_graph_file(graph, written, dir / "graph"), GraphFileStatus::ok);
		Region target(4 << 20);
		std::uint64_t offset = 0;
		GraphFileIdentity stored;
		ASSERT_EQ(read_graph_file(target.arena, dir / "graph", written, offset, &stored), GraphFileStatus::ok);
		EXPECT_EQ(stored.system_identifier, written.system_identifier);
		EXPECT_EQ(stored.installation, written.installation);
		EXPECT_EQ(stored.space_id, written.space_id);
		EXPECT_EQ(stored.max_generation, written.max_generation);
		EXPECT_EQ(stored.max_label, written.max_label);
		EXPECT_EQ(stored.snapshot_gap_from, from);
		EXPECT_EQ(stored.snapshot_gap_to, to);
	}
}

TEST(GraphFile, OtherFormatVersionIsAMismatch)
{
	const WrittenGraph written;
	for (std::uint32_t version : {k_graph_file_version + 1, k_graph_file_version - 1, 0xFFFFFFFFu}) {
		std::vector<std::byte> bytes = written.bytes;
		store(bytes, 8, version);
		store(bytes, 16, crc32c_update(0, std::span<const std::byte>(bytes).first(16))); // a well-formed prefix
		expect_refused(written.dir, bytes, GraphFileStatus::version_mismatch, "version " + std::to_string(version));
	}
}

TEST(GraphFile, MissingFileAndUnwritableDirectory)
{
	TempDir dir;
	Region target(4 << 20);
	std::uint64_t offset = 0;
	int error = 0;
	EXPECT_EQ(read_graph_file(target.arena, dir / "absent", k_identity, offset, nullptr, &error),
			  GraphFileStatus::missing);
	EXPECT_EQ(error, ENOENT);

	Region source(4 << 20);
	const HnswGraph graph = build_graph(source, config_of(8, Metric::l2, Encoding::float32), 50, 50, 2);
	error = 0;
	EXPECT_EQ(write_graph_file(graph, k_identity, dir.path() / "no-such-directory" / "graph", &error),
			  GraphFileStatus::io_error);
	EXPECT_EQ(error, ENOENT);
}

// The writer freezes the graph's links only while it reads the graph: they
// are thawed after a write, whether it succeeded or failed half-way, and a
// freeze the caller holds stays in force.
TEST(GraphFile, WritingLeavesTheLinksThawed)
{
	TempDir dir;
	Region source(4 << 20);
	HnswGraph graph = build_graph(source, config_of(8, Metric::l2, Encoding::float32), 50, 50, 2);
	ASSERT_EQ(write_graph_file(graph, k_identity, dir / "graph"), GraphFileStatus::ok);
	EXPECT_FALSE(graph.links_frozen());
	// The temporary file is a link to a device that refuses every write, so
	// the body fails while the links are frozen.
	ASSERT_TRUE(std::filesystem::exists("/dev/full"));
	std::filesystem::create_symlink("/dev/full", dir / "full.tmp");
	int error = 0;
	EXPECT_EQ(write_graph_file(graph, k_identity, dir / "full", &error), GraphFileStatus::io_error);
	EXPECT_EQ(error, ENOSPC);
	EXPECT_FALSE(graph.links_frozen());
	EXPECT_TRUE(graph.begin_link_turn());
	graph.end_link_turn();
	graph.freeze_links();
	ASSERT_EQ(write_graph_file(graph, k_identity, dir / "graph"), GraphFileStatus::ok);
	EXPECT_TRUE(graph.links_frozen());
	graph.thaw_links();
	EXPECT_FALSE(graph.links_frozen());
}

// What the caller learns while a file is written: the callback comes once,
// after the graph was read and before the file is in place, also when the
// write fails; the file gets the permission bits asked for.
struct ReadReport {
	std::filesystem::path path;
	int calls = 0;
	bool file_in_place = false;
	bool frozen = false;
	const HnswGraph *graph = nullptr;
};

TEST(GraphFile, CallerHearsWhenTheGraphIsReadAndChoosesTheMode)
{
	TempDir dir;
	Region source(4 << 20);
	HnswGraph graph = build_graph(source, config_of(8, Metric::l2, Encoding::float32), 50, 50, 2);
	ReadReport report{dir / "graph"};
	report.graph = &graph;
	GraphFileWriteOptions options;
	options.mode = 0640;
	options.context = &report;
	options.graph_read = [](void *context) noexcept {
		auto &r = *static_cast<ReadReport *>(context);
		r.calls++;
		r.file_in_place = std::filesystem::exists(r.path);
		r.frozen = r.graph->links_frozen();
	};
	const mode_t previous = ::umask(0);
	ASSERT_EQ(write_graph_file(graph, k_identity, report.path, nullptr, options), GraphFileStatus::ok);
	::umask(previous);
	EXPECT_EQ(report.calls, 1);
	EXPECT_FALSE(report.file_in_place);
	EXPECT_FALSE(report.frozen);
	struct stat st {};
	ASSERT_EQ(::stat(report.path.c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 0777, 0640u);

	std::filesystem::create_symlink("/dev/full", dir / "full.tmp");
	report = ReadReport{dir / "full"};
	report.graph = &graph;
	EXPECT_EQ(write_graph_file(graph, k_identity, report.path, nullptr, options), GraphFileStatus::io_error);
	EXPECT_EQ(report.calls, 1);
}

TEST(GraphFile, WritingReplacesTheOldFile)
{
	TempDir dir;
	Region small(8 << 20), large(8 << 20);
	const HnswGraph first = build_graph(small, config_of(8, Metric::l2, Encoding::float32), 100, 100, 3);
	const HnswGraph second = build_graph(large, config_of(8, Metric::l2, Encoding::float32), 300, 300, 4);
	ASSERT_EQ(write_graph_file(second, k_identity, dir / "graph"), GraphFileStatus::ok);
	ASSERT_EQ(write_graph_file(first, k_identity, dir / "graph"), GraphFileStatus::ok);
	EXPECT_FALSE(std::filesystem::exists(dir / "graph.tmp"));
	Region target(8 << 20);
	std::uint64_t offset = 0;
	ASSERT_EQ(read_graph_file(target.arena, dir / "graph", k_identity, offset), GraphFileStatus::ok);
	expect_same_graph(first, HnswGraph(target.arena, offset));
}

TEST(GraphFile, ArenaTooSmallIsOutOfMemoryAndLeavesItUnchanged)
{
	const WrittenGraph written(2000);
	const std::size_t needed = written.graph.memory_bytes();
	for (std::size_t bytes : {std::size_t{64} << 10, std::size_t{256} << 10, needed / 2, needed}) {
		Region target(bytes);
		const std::size_t before = target.arena.used_bytes();
		std::uint64_t offset = 0;
		EXPECT_EQ(read_graph_file(target.arena, written.dir / "graph", k_identity, offset),
				  GraphFileStatus::out_of_memory)
			<< bytes;
		EXPECT_EQ(target.arena.used_bytes(), before) << bytes;
	}
}

// Files whose checksums are right but whose values no writer stores: the
// reader's own checks refuse them, so a buggy writer cannot make a graph
// that searches outside itself.
TEST(GraphFile, ChecksummedNonsenseIsCorrupt)
{
	const WrittenGraph written;
	const std::size_t node_count = load<std::uint64_t>(written.bytes, 120);
	const std::size_t vector_bytes = load<std::uint32_t>(written.bytes, 104);
	const std::size_t first_list = k_header_bytes + k_node_record_bytes + vector_bytes; // node 0, level 0
	ASSERT_GT(load<std::uint32_t>(written.bytes, first_list), 1u);
	const auto edit = [&](auto change, const std::string &what) {
		std::vector<std::byte> bytes = written.bytes;
		change(bytes);
		reseal(bytes);
		expect_refused(written.dir, bytes, GraphFileStatus::corrupt, what);
	};
	edit([&](auto &b) { store(b, first_list + 4, static_cast<std::uint32_t>(node_count)); }, "neighbour past the end");
	edit([&](auto &b) { store(b, first_list + 8, load<std::uint32_t>(b, first_list + 4)); }, "neighbour twice");
	edit([&](auto &b) { store(b, first_list, std::uint32_t{17}); }, "list longer than 2m");
	edit([&](auto &b) { store(b, k_header_bytes + 24, std::uint8_t{9}); }, "level other than the seed's");
	edit([&](auto &b) { store(b, k_header_bytes + 25, std::uint8_t{0x80}); }, "unknown flag");
	edit([&](auto &b) { store(b, k_header_bytes + 26, std::uint8_t{200}); }, "more children than m");
	edit([&](auto &b) { store(b, k_header_bytes + 20, std::uint32_t(node_count + 3)); }, "parent past the end");
	edit([&](auto &b) { store(b, 128, std::uint64_t{node_count + 1}); }, "entry past the end");
	edit([&](auto &b) { store(b, 44, std::uint32_t{0}); }, "zero dimensions");
	edit([&](auto &b) { store(b, 120, std::uint64_t{node_count + 1}); }, "more nodes than the body holds");
	edit([&](auto &b) { store(b, 104, std::uint32_t(vector_bytes + 4)); }, "vector size other than the config's");
	edit([&](auto &b) { store(b, k_header_bytes + k_node_record_bytes, std::numeric_limits<float>::quiet_NaN()); },
		 "non-finite vector");
	edit([&](auto &b) { store(b, k_header_bytes + 52, std::uint32_t{1}); }, "second reserved word");
	edit([&](auto &b) { store(b, k_header_bytes + 48, k_max_node_tokens + 1); }, "too many tokens");
	// Node 0 has generation 1 (build_graph).
	edit([&](auto &b) { store(b, k_header_bytes + 32, std::uint64_t{0}); }, "forgotten before it was stored");
	// Node 2 carries two tokens: the first of them right after its vector.
	std::size_t at = k_header_bytes;
	for (int node = 0; node < 2; ++node) {
		const std::uint8_t level = load<std::uint8_t>(written.bytes, at + 24);
		at += k_node_record_bytes + vector_bytes + 8 * load<std::uint32_t>(written.bytes, at + 48);
		for (std::uint8_t l = 0; l <= level; ++l)
			at += 4 + 4 * std::size_t{load<std::uint32_t>(written.bytes, at)};
	}
	ASSERT_EQ(load<std::uint32_t>(written.bytes, at + 48), 2u);
	const std::size_t tokens = at + k_node_record_bytes + vector_bytes;
	edit([&](auto &b) { store(b, tokens + 8, load<std::uint64_t>(b, tokens)); }, "a token twice");
	edit(
		[&](auto &b) {
			const auto first = load<std::uint64_t>(b, tokens);
			store(b, tokens, load<std::uint64_t>(b, tokens + 8));
			store(b, tokens + 8, first);
		},
		"tokens out of order");
}

} // namespace
} // namespace engram::core
