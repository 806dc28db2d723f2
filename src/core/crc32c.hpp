// CRC-32C (Castagnoli), the checksum of graph files.
//
// Written here rather than taken from a library: the core has no dependency
// that offers it, and a table-driven CRC is a few lines. Slicing by eight
// (eight 256-entry tables, eight bytes per step) reads a graph file several
// times faster than one table would, so checking a large file costs little
// next to reading it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/no_postgres.hpp"

namespace engram::core {

// Continues a CRC-32C over more bytes: start with crc = 0 and feed the
// previous result back in; the result is the finished checksum of everything
// fed so far (crc32c_update(0, "123456789") == 0xE3069283).
std::uint32_t crc32c_update(std::uint32_t crc, std::span<const std::byte> bytes) noexcept;

} // namespace engram::core
