// Slice-by-8 CRC-32C over the reflected polynomial 0x82F63B78; the tables
// are computed at compile time.
#include "core/crc32c.hpp"

#include <array>
#include <bit>
#include <cstring>

namespace engram::core {

namespace {

using CrcTables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr CrcTables
make_tables() noexcept
{
	CrcTables t{};
	for (std::uint32_t i = 0; i < 256; ++i) {
		std::uint32_t c = i;
		for (int bit = 0; bit < 8; ++bit)
			c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		t[0][i] = c;
	}
	for (std::size_t k = 1; k < 8; ++k)
		for (std::size_t i = 0; i < 256; ++i)
			t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
	return t;
}

constexpr CrcTables k_tables = make_tables();

static_assert(std::endian::native == std::endian::little, "the eight-byte step assumes little-endian loads");

} // namespace

std::uint32_t
crc32c_update(std::uint32_t crc, std::span<const std::byte> bytes) noexcept
{
	std::uint32_t c = ~crc;
	const std::byte *p = bytes.data();
	std::size_t n = bytes.size();
	while (n >= 8) {
		std::uint64_t word;
		std::memcpy(&word, p, 8);
		word ^= c; // little-endian: the first four bytes meet the running CRC
		c = k_tables[7][word & 0xFF] ^ k_tables[6][(word >> 8) & 0xFF] ^ k_tables[5][(word >> 16) & 0xFF] ^
			k_tables[4][(word >> 24) & 0xFF] ^ k_tables[3][(word >> 32) & 0xFF] ^ k_tables[2][(word >> 40) & 0xFF] ^
			k_tables[1][(word >> 48) & 0xFF] ^ k_tables[0][word >> 56];
		p += 8;
		n -= 8;
	}
	for (; n > 0; --n, ++p)
		c = (c >> 8) ^ k_tables[0][(c ^ static_cast<std::uint8_t>(*p)) & 0xFF];
	return ~c;
}

} // namespace engram::core
