// engram.metrics_address is read by parse_listen_address: which spellings it
// takes and which it refuses.
#include "core/listen_address.hpp"

#include <gtest/gtest.h>

namespace engram::core {
namespace {

TEST(ListenAddress, TakesHostAndPort)
{
	const auto address = parse_listen_address("127.0.0.1:9188");
	ASSERT_TRUE(address);
	EXPECT_EQ(address->host, "127.0.0.1");
	EXPECT_EQ(address->port, 9188);
	const auto named = parse_listen_address("localhost:65535");
	ASSERT_TRUE(named);
	EXPECT_EQ(named->host, "localhost");
	EXPECT_EQ(named->port, 65535);
}

TEST(ListenAddress, TakesBracketedIpv6)
{
	const auto address = parse_listen_address("[::1]:1");
	ASSERT_TRUE(address);
	EXPECT_EQ(address->host, "::1");
	EXPECT_EQ(address->port, 1);
}

TEST(ListenAddress, RefusesWhatIsNotHostColonPort)
{
	for (const char *text :
		 {"", "9188", ":9188", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999999",
		  "127.0.0.1:91a8", "127.0.0.1:+918", "::1:9188", "[::1]9188", "[::1]:", "[::1", "[]:9188", "local host:9188"})
		EXPECT_FALSE(parse_listen_address(text)) << text;
}

} // namespace
} // namespace engram::core
