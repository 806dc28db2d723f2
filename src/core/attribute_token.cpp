// The token hash (why it is hand-written: attribute_token.hpp). The key's
// length goes in before the key, so ("ab", "c") and ("a", "bc") differ.
#include "core/attribute_token.hpp"

namespace engram::core {

namespace {

constexpr std::uint64_t k_fnv_offset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t k_fnv_prime = 0x100000001b3ULL;

std::uint64_t
fnv1a(std::uint64_t hash, unsigned char byte) noexcept
{
	return (hash ^ byte) * k_fnv_prime;
}

std::uint64_t
fnv1a(std::uint64_t hash, std::string_view bytes) noexcept
{
	for (const char c : bytes)
		hash = fnv1a(hash, static_cast<unsigned char>(c));
	return hash;
}

// FNV-1a leaves its last bytes poorly mixed into the high bits; this
// finaliser (the one of MurmurHash3's 64-bit variant) spreads every bit.
std::uint64_t
finalise(std::uint64_t x) noexcept
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

} // namespace

std::uint64_t
attribute_token(std::string_view key, AttributeKind kind, std::string_view value) noexcept
{
	std::uint64_t hash = fnv1a(k_fnv_offset, static_cast<unsigned char>(kind));
	const auto length = static_cast<std::uint64_t>(key.size());
	for (int shift = 0; shift < 64; shift += 8)
		hash = fnv1a(hash, static_cast<unsigned char>(length >> shift));
	hash = fnv1a(fnv1a(hash, key), value);
	return finalise(hash);
}

} // namespace engram::core
