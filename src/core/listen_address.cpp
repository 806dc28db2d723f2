// Parsing "host:port" (see listen_address.hpp).
#include "core/listen_address.hpp"

#include <charconv>

namespace engram::core {

namespace {

std::optional<std::uint16_t>
parse_port(std::string_view digits)
{
	if (digits.empty() || digits.size() > 5)
		return std::nullopt;
	unsigned value = 0;
	const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
	if (error != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535)
		return std::nullopt;
	return static_cast<std::uint16_t>(value);
}

} // namespace

std::optional<ListenAddress>
parse_listen_address(std::string_view text)
{
	std::string_view host, port;
	if (text.starts_with('[')) {
		const std::size_t close = text.find(']');
		if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
			return std::nullopt;
		host = text.substr(1, close - 1);
		port = text.substr(close + 2);
	} else {
		const std::size_t colon = text.rfind(':');
		if (colon == std::string_view::npos)
			return std::nullopt;
		host = text.substr(0, colon);
		port = text.substr(colon + 1);
		// An IPv6 literal without brackets would be ambiguous.
		if (host.find(':') != std::string_view::npos)
			return std::nullopt;
	}
	if (host.empty() || host.find_first_of(" \t\r\n") != std::string_view::npos)
		return std::nullopt;
	const std::optional<std::uint16_t> number = parse_port(port);
	if (!number)
		return std::nullopt;
	return ListenAddress{std::string(host), *number};
}

} // namespace engram::core
