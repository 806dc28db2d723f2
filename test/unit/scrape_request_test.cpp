// What the metrics endpoint answers to each request it may receive.
#include "core/scrape_request.hpp"

#include <gtest/gtest.h>

#include <string>

namespace engram::core {
namespace {

TEST(ScrapeRequest, WaitsForTheEndOfTheHead)
{
	EXPECT_EQ(classify_scrape_request(""), ScrapeRequest::incomplete);
	EXPECT_EQ(classify_scrape_request("GET /metrics HTTP/1.1\r\nHost: x\r\n"), ScrapeRequest::incomplete);
	EXPECT_EQ(classify_scrape_request(std::string(k_max_request_head, 'a')), ScrapeRequest::bad_request);
}

TEST(ScrapeRequest, ServesGetAndHeadOfMetrics)
{
	EXPECT_EQ(classify_scrape_request("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
			  ScrapeRequest::metrics);
	EXPECT_EQ(classify_scrape_request("GET /metrics?name[]=x HTTP/1.0\n\n"), ScrapeRequest::metrics);
	EXPECT_EQ(classify_scrape_request("HEAD /metrics HTTP/1.1\r\n\r\n"), ScrapeRequest::metrics_head);
}

TEST(ScrapeRequest, RefusesOtherRequests)
{
	EXPECT_EQ(classify_scrape_request("GET / HTTP/1.1\r\n\r\n"), ScrapeRequest::not_found);
	EXPECT_EQ(classify_scrape_request("GET /metricsx HTTP/1.1\r\n\r\n"), ScrapeRequest::not_found);
	EXPECT_EQ(classify_scrape_request("POST /metrics HTTP/1.1\r\n\r\n"), ScrapeRequest::bad_method);
	EXPECT_EQ(classify_scrape_request("GET /metrics\r\n\r\n"), ScrapeRequest::bad_request);
	EXPECT_EQ(classify_scrape_request("GET /metrics SPDY/3\r\n\r\n"), ScrapeRequest::bad_request);
	EXPECT_EQ(classify_scrape_request("\r\n\r\n"), ScrapeRequest::bad_request);
}

TEST(ScrapeRequest, HeadsSayWhatFollows)
{
	const std::string ok = scrape_response_head(ScrapeRequest::metrics, 1234);
	EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\n"));
	EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
	EXPECT_NE(ok.find("Content-Length: 1234\r\n"), std::string::npos);
	EXPECT_TRUE(ok.ends_with("Connection: close\r\n\r\n"));
	const std::string missing = scrape_response_head(ScrapeRequest::not_found, 1234);
	EXPECT_TRUE(missing.starts_with("HTTP/1.1 404 "));
	EXPECT_NE(missing.find("Content-Length: " + std::to_string(scrape_error_body(ScrapeRequest::not_found).size())),
			  std::string::npos);
	const std::string method = scrape_response_head(ScrapeRequest::bad_method, 0);
	EXPECT_TRUE(method.starts_with("HTTP/1.1 405 "));
	EXPECT_NE(method.find("Allow: GET, HEAD\r\n"), std::string::npos);
	EXPECT_TRUE(scrape_response_head(ScrapeRequest::bad_request, 0).starts_with("HTTP/1.1 400 "));
	EXPECT_TRUE(scrape_response_head(ScrapeRequest::failed, 0).starts_with("HTTP/1.1 500 "));
	EXPECT_FALSE(scrape_error_body(ScrapeRequest::failed).empty());
	EXPECT_TRUE(scrape_error_body(ScrapeRequest::metrics).empty());
}

} // namespace
} // namespace engram::core
