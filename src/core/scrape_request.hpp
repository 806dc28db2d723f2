// What engram's metrics endpoint answers to: the few HTTP/1.x requests a
// Prometheus scrape (or curl) sends. The endpoint reads a request's head, at
// most k_max_request_head bytes, and serves GET or HEAD of /metrics (a query
// string is ignored); everything else gets a short error status. Kept apart
// from the socket code so that the rules are unit tested.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace engram::core {

inline constexpr std::size_t k_max_request_head = 8192;

enum class ScrapeRequest {
	incomplete,   // the head has not ended yet: read more
	metrics,      // GET /metrics
	metrics_head, // HEAD /metrics: the same status and headers, no body
	not_found,    // another path
	bad_method,   // neither GET nor HEAD
	bad_request,  // not an HTTP/1.x request line, or a head too long
	failed,       // a request for the metrics that could not be written (the server log says why)
};

// What the bytes received so far ask for.
ScrapeRequest classify_scrape_request(std::string_view received);

// The status line and headers of the answer to `request` (not incomplete),
// whose body is `body_bytes` long; the connection is closed after it.
std::string scrape_response_head(ScrapeRequest request, std::size_t body_bytes);

// The body of an error answer (empty for metrics and metrics_head).
std::string_view scrape_error_body(ScrapeRequest request);

} // namespace engram::core
