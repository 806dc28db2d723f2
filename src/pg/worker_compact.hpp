// Erasing forgotten observations: each space whose index holds forgotten
// nodes is compacted (core/hnsw_compact.hpp) within engram.erase_within of
// the first forget, so their vectors leave shared memory, their memory is
// reused and their space's graph file is rewritten without them. Main thread
// of a worker holding the consumer token.
#pragma once

// Compacts every space that is due.
void compact_spaces(void);
