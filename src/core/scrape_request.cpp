// Reading a scrape's request line and writing the answer's head (see
// scrape_request.hpp).
#include "core/scrape_request.hpp"

namespace engram::core {

namespace {

struct Status {
	int code;
	std::string_view reason;
	std::string_view body;
};

Status
status_of(ScrapeRequest request)
{
	switch (request) {
	case ScrapeRequest::metrics:
	case ScrapeRequest::metrics_head:
		return {200, "OK", ""};
	case ScrapeRequest::not_found:
		return {404, "Not Found", "engram serves its metrics at /metrics\n"};
	case ScrapeRequest::bad_method:
		return {405, "Method Not Allowed", "engram's metrics endpoint answers GET and HEAD only\n"};
	case ScrapeRequest::failed:
		return {500, "Internal Server Error", "engram could not write its metrics: the server log says why\n"};
	case ScrapeRequest::incomplete:
	case ScrapeRequest::bad_request:
		break;
	}
	return {400, "Bad Request", "not an HTTP/1.x request\n"};
}

} // namespace

ScrapeRequest
classify_scrape_request(std::string_view received)
{
	const std::size_t head_end = received.find("\r\n\r\n");
	if (head_end == std::string_view::npos) {
		// Some clients end lines with a bare LF.
		if (received.find("\n\n") == std::string_view::npos)
			return received.size() >= k_max_request_head ? ScrapeRequest::bad_request : ScrapeRequest::incomplete;
	}
	const std::size_t line_end = received.find_first_of("\r\n");
	const std::string_view line = received.substr(0, line_end);
	// METHOD SP TARGET SP HTTP/1.x
	const std::size_t first = line.find(' ');
	const std::size_t last = line.rfind(' ');
	if (first == std::string_view::npos || last == first)
		return ScrapeRequest::bad_request;
	const std::string_view method = line.substr(0, first);
	std::string_view target = line.substr(first + 1, last - first - 1);
	const std::string_view version = line.substr(last + 1);
	if (!version.starts_with("HTTP/1.") || target.empty() || target.find(' ') != std::string_view::npos)
		return ScrapeRequest::bad_request;
	if (method != "GET" && method != "HEAD")
		return ScrapeRequest::bad_method;
	target = target.substr(0, target.find('?'));
	if (target != "/metrics")
		return ScrapeRequest::not_found;
	return method == "GET" ? ScrapeRequest::metrics : ScrapeRequest::metrics_head;
}

std::string
scrape_response_head(ScrapeRequest request, std::size_t body_bytes)
{
	const Status status = status_of(request);
	const bool metrics = status.code == 200;
	std::string head = "HTTP/1.1 " + std::to_string(status.code) + " " + std::string(status.reason) + "\r\n";
	head += metrics ? "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
					: "Content-Type: text/plain; charset=utf-8\r\n";
	if (request == ScrapeRequest::bad_method)
		head += "Allow: GET, HEAD\r\n";
	head += "Content-Length: " + std::to_string(metrics ? body_bytes : status.body.size()) + "\r\n";
	head += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
	return head;
}

std::string_view
scrape_error_body(ScrapeRequest request)
{
	return status_of(request).body;
}

} // namespace engram::core
