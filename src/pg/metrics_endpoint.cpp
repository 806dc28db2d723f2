// engram's metrics endpoint: an optional background worker that serves the
// Prometheus exposition (metrics_exposition.cpp) at http://ADDRESS/metrics,
// so that a Prometheus server scrapes engram directly. It needs no exporter
// process, no database role or password, no connection slot and no
// transaction, and it answers while the workers load or the database is
// busy. Off unless engram.metrics_address is set (read at a server start).
// Why this path and not postgres_exporter: docs/operations.md, "Metrics".
//
// One process serves one connection at a time: an answer is written from
// shared memory in well under a millisecond per thousand spaces, and
// Prometheus scrapes a target every few seconds. A client has
// k_request_timeout_ms to send its request (Prometheus sends it at once)
// and k_answer_timeout_ms to take the answer; one that stalls is dropped,
// so it holds the endpoint for a second at most. If the address cannot be
// bound (the port is taken), the worker says so once and tries again every
// k_rebind_ms instead of exiting into a restart loop; if a connection
// cannot be accepted (no file descriptors left), it waits k_accept_retry_ms
// rather than spinning on the listening socket.
//
// Errors: building the exposition may raise one (out of memory); it is
// caught around that call alone (no C++ frame owning a resource lies in
// between), logged, and answered with a 500, and the worker goes on.
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "core/listen_address.hpp"
#include "core/scrape_request.hpp"

#include "pg/guc.hpp"
#include "pg/metrics_endpoint.hpp"
#include "pg/metrics_exposition.hpp"
#include "pg/postgres.hpp"

extern "C" PGDLLEXPORT void engram_metrics_endpoint_main(Datum arg);

namespace {

using engram::core::ScrapeRequest;

constexpr int k_request_timeout_ms = 1000;
constexpr int k_answer_timeout_ms = 5000;
constexpr int k_accept_retry_ms = 100;
constexpr int k_rebind_ms = 10000;
// Connections taken per wake-up before the latch is looked at again.
constexpr int k_accepts_per_wake = 16;

MemoryContext answer_context = nullptr;

void
handle_latch_and_interrupts(void)
{
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending) {
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

// Waits until `socket` is ready for `event` (WL_SOCKET_READABLE or
// WL_SOCKET_WRITEABLE); false when `deadline` passed first.
bool
wait_for_socket(int socket, int event, TimestampTz deadline)
{
	for (;;) {
		const long left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left_ms <= 0)
			return false;
		const int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | event, socket,
										 left_ms, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			handle_latch_and_interrupts();
		if (rc & event)
			return true;
	}
}

// Reads the request's head; what it asks for, or incomplete if the client
// closed, failed or stalled first.
ScrapeRequest
read_request(int client, TimestampTz deadline)
{
	char received[engram::core::k_max_request_head];
	std::size_t length = 0;
	for (;;) {
		const ssize_t n = recv(client, received + length, sizeof received - length, 0);
		if (n > 0) {
			length += static_cast<std::size_t>(n);
			const ScrapeRequest request = engram::core::classify_scrape_request(std::string_view(received, length));
			if (request != ScrapeRequest::incomplete)
				return request;
		} else if (n == 0) {
			return ScrapeRequest::incomplete;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (!wait_for_socket(client, WL_SOCKET_READABLE, deadline))
				return ScrapeRequest::incomplete;
		} else if (errno != EINTR) {
			return ScrapeRequest::incomplete;
		}
	}
}

// Sends all of `bytes`; false if the client went away or stalled.
bool
send_all(int client, const char *bytes, std::size_t length, TimestampTz deadline)
{
	while (length > 0) {
		const ssize_t n = send(client, bytes, length, MSG_NOSIGNAL);
		if (n > 0) {
			bytes += n;
			length -= static_cast<std::size_t>(n);
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_for_socket(client, WL_SOCKET_WRITEABLE, deadline))
				return false;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			return false;
		}
	}
	return true;
}

// The exposition into `body` (in answer_context); false, with the error
// logged, if it could not be written.
bool
write_exposition(StringInfo body)
{
	volatile bool written = true;
	PG_TRY();
	{
		initStringInfo(body);
		metrics_write_exposition(body);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(answer_context);
		EmitErrorReport();
		FlushErrorState();
		LWLockReleaseAll();
		written = false;
	}
	PG_END_TRY();
	return written;
}

void
answer(int client)
{
	ScrapeRequest request =
		read_request(client, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), k_request_timeout_ms));
	if (request == ScrapeRequest::incomplete)
		return;
	StringInfoData body;
	body.len = 0;
	const bool wants_metrics = request == ScrapeRequest::metrics || request == ScrapeRequest::metrics_head;
	if (wants_metrics && !write_exposition(&body))
		request = ScrapeRequest::failed;
	const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), k_answer_timeout_ms);
	const std::string head = engram::core::scrape_response_head(request, static_cast<std::size_t>(body.len));
	if (!send_all(client, head.data(), head.size(), deadline))
		return;
	if (request == ScrapeRequest::metrics)
		(void) send_all(client, body.data, static_cast<std::size_t>(body.len), deadline);
	else if (request != ScrapeRequest::metrics_head) {
		const std::string_view error = engram::core::scrape_error_body(request);
		(void) send_all(client, error.data(), error.size(), deadline);
	}
}

// A non-blocking socket listening on `address`, or -1 with *failure set.
int
listen_on(const engram::core::ListenAddress &address, std::string *failure)
{
	addrinfo hints;
	std::memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	addrinfo *found = nullptr;
	const std::string port = std::to_string(address.port);
	if (const int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
		*failure = gai_strerror(rc);
		return -1;
	}
	int listener = -1;
	for (const addrinfo *a = found; a != nullptr && listener < 0; a = a->ai_next) {
		listener = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		if (listener < 0) {
			*failure = strerror(errno);
			continue;
		}
		const int on = 1;
		if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
			bind(listener, a->ai_addr, a->ai_addrlen) != 0 || listen(listener, 16) != 0) {
			*failure = strerror(errno);
			close(listener);
			listener = -1;
		}
	}
	freeaddrinfo(found);
	return listener;
}

void
serve_forever(const engram::core::ListenAddress &address)
{
	int listener = -1;
	bool complained = false;
	for (;;) {
		if (listener < 0) {
			std::string failure;
			listener = listen_on(address, &failure);
			if (listener < 0) {
				if (!complained)
					ereport(LOG, (errmsg("engram metrics endpoint cannot listen on \"%s\": %s", engram_metrics_address,
										 failure.c_str()),
								  errhint("It tries again every %d seconds; set engram.metrics_address to a free "
										  "port and restart the server to move it.",
										  k_rebind_ms / 1000)));
				complained = true;
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, k_rebind_ms,
								 PG_WAIT_EXTENSION);
				handle_latch_and_interrupts();
				continue;
			}
			ereport(LOG, (errmsg("engram metrics endpoint listening on http://%s/metrics", engram_metrics_address)));
		}
		const int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH, listener, -1,
										 PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			handle_latch_and_interrupts();
		if (!(rc & WL_SOCKET_READABLE))
			continue;
		for (int taken = 0; taken < k_accepts_per_wake; ++taken) {
			const int client = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (client < 0) {
				// EAGAIN: none left. Out of descriptors or memory: the
				// connection stays queued, so wait before the next try.
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
					(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, k_accept_retry_ms,
									 PG_WAIT_EXTENSION);
					handle_latch_and_interrupts();
				}
				break;
			}
			MemoryContext caller = MemoryContextSwitchTo(answer_context);
			answer(client);
			MemoryContextSwitchTo(caller);
			close(client);
			MemoryContextReset(answer_context);
		}
	}
}

void
endpoint_main(void)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	const std::optional<engram::core::ListenAddress> address =
		engram::core::parse_listen_address(engram_metrics_address);
	if (!address)
		return; // the setting's check refused it at start; nothing to serve
	answer_context = AllocSetContextCreate(TopMemoryContext, "engram metrics endpoint", ALLOCSET_DEFAULT_SIZES);
	serve_forever(*address);
}

} // namespace

void
engram_metrics_endpoint_main(Datum)
{
	guarded(endpoint_main);
}

void
metrics_endpoint_register(void)
{
	if (engram_metrics_address == nullptr || engram_metrics_address[0] == '\0')
		return;
	BackgroundWorker worker;
	std::memset(&worker, 0, sizeof worker);
	// Shared memory only: no database, so no connection slot and no catalog.
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "engram");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "engram_metrics_endpoint_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "engram metrics endpoint");
	snprintf(worker.bgw_type, BGW_MAXLEN, "engram metrics endpoint");
	RegisterBackgroundWorker(&worker);
}

bool
metrics_address_check(char **value, void **, GucSource)
{
	if (*value == nullptr || (*value)[0] == '\0' || engram::core::parse_listen_address(*value))
		return true;
	GUC_check_errdetail("engram.metrics_address must be empty (no endpoint) or \"host:port\", with an IPv6 "
						"host in brackets, such as \"127.0.0.1:9188\" or \"[::1]:9188\".");
	return false;
}
