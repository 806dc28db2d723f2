// The spaces' graph files on disk (see graph_files.hpp).
#include "pg/graph_files.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>

#include "pg/shared.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "access/xlog.h"
#include "common/file_perm.h"
#include "storage/fd.h"
}

namespace {

constexpr const char *k_prefix = "space_";
constexpr const char *k_suffix = ".graph";
constexpr const char *k_temporary_suffix = ".graph.tmp";

enum class FileKind { other, graph, temporary };

// Which of our files `name` is, and of which space.
FileKind
classify(const char *name, std::int32_t &space_id)
{
	const std::size_t prefix = std::strlen(k_prefix);
	if (std::strncmp(name, k_prefix, prefix) != 0)
		return FileKind::other;
	char *end = nullptr;
	errno = 0;
	const long id = std::strtol(name + prefix, &end, 10);
	if (errno != 0 || end == name + prefix || id <= 0 || id > INT32_MAX)
		return FileKind::other;
	space_id = static_cast<std::int32_t>(id);
	if (std::strcmp(end, k_suffix) == 0)
		return FileKind::graph;
	if (std::strcmp(end, k_temporary_suffix) == 0)
		return FileKind::temporary;
	return FileKind::other;
}

void
remove_path(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0 && errno == ENOENT)
		return;
	// Synced, so that a crash cannot bring back a file that was refused.
	(void) durable_unlink(path, WARNING);
}

bool
has_live_slot(std::int32_t space_id)
{
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	const SpaceSlot *slot = directory_find(space_id);
	LWLockRelease(shared_directory_lock());
	return slot != nullptr;
}

// Calls remove_path on each of our files in the directory for which
// `unwanted(kind, space_id)` says so.
template <typename Unwanted>
void
remove_files(Unwanted unwanted)
{
	const char *directory = graph_file_directory();
	DIR *dir = AllocateDir(directory);
	if (dir == nullptr && errno == ENOENT)
		return;
	struct dirent *entry;
	// A directory that cannot be read is logged, not raised: a worker or the
	// writer would otherwise restart over and over.
	while ((entry = ReadDirExtended(dir, directory, WARNING)) != nullptr) {
		std::int32_t space_id = 0;
		const FileKind kind = classify(entry->d_name, space_id);
		if (kind != FileKind::other && unwanted(kind, space_id))
			remove_path(psprintf("%s/%s", directory, entry->d_name));
	}
	FreeDir(dir);
}

} // namespace

const char *
graph_file_directory(void)
{
	return psprintf("%s/engram", DataDir);
}

bool
graph_file_directory_create(void)
{
	const char *directory = graph_file_directory();
	if (MakePGDirectory(directory) == 0 || errno == EEXIST)
		return true;
	ereport(WARNING, (errcode_for_file_access(), errmsg("could not create directory \"%s\": %m", directory),
					  errhint("engram writes no graph file until it can; the indexes in shared memory are "
							  "unaffected.")));
	return false;
}

const char *
graph_file_path(std::int32_t space_id)
{
	return psprintf("%s/%s%d%s", graph_file_directory(), k_prefix, space_id, k_suffix);
}

engram::core::GraphFileIdentity
graph_file_identity(std::int32_t space_id)
{
	engram::core::GraphFileIdentity identity;
	identity.system_identifier = GetSystemIdentifier();
	identity.installation = shared_state()->instance.load(std::memory_order_acquire);
	identity.space_id = space_id;
	return identity;
}

void
graph_file_remove(std::int32_t space_id)
{
	remove_path(graph_file_path(space_id));
}

void
graph_files_remove_all(void)
{
	remove_files([](FileKind, std::int32_t) { return true; });
}

void
graph_files_sweep(void)
{
	remove_files([](FileKind kind, std::int32_t space_id) {
		return kind == FileKind::temporary || !has_live_slot(space_id);
	});
}
