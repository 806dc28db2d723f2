// The address a server socket of engram listens on, written "host:port" in a
// setting (engram.metrics_address). Parsed here, without PostgreSQL, so that
// the setting's check and the endpoint that binds it read it the same way
// and the rules are unit tested: an IPv6 host goes in brackets ("[::1]:9188"),
// the port is decimal 1..65535, and the host is left to the resolver.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace engram::core {

struct ListenAddress {
	std::string host;
	std::uint16_t port = 0;
};

// The address `text` names, or nothing if it is not "host:port".
std::optional<ListenAddress> parse_listen_address(std::string_view text);

} // namespace engram::core
