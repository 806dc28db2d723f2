// Which sanitizer this test binary runs under, so tests can size their work
// and skip what a sanitizer cannot check.
#pragma once

#include <gtest/gtest.h>

namespace engram::core::test_support {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool k_thread_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool k_thread_sanitizer = true;
#else
inline constexpr bool k_thread_sanitizer = false;
#endif
#else
inline constexpr bool k_thread_sanitizer = false;
#endif

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool k_sanitized = true;
#else
inline constexpr bool k_sanitized = k_thread_sanitizer;
#endif
#else
inline constexpr bool k_sanitized = k_thread_sanitizer;
#endif

} // namespace engram::core::test_support

// The system oneTBB is not built with ThreadSanitizer, so TSan cannot see
// the synchronisation inside its scheduler and reports its task bookkeeping
// as races. Tests that go through oneTBB therefore run in the normal and
// AddressSanitizer builds only; the concurrent calls they make into engram's
// own structures are covered by std::thread tests that TSan does check.
#define SKIP_UNDER_TSAN_WITH_TBB()                                                                                     \
	do {                                                                                                               \
		if (::engram::core::test_support::k_thread_sanitizer)                                                          \
			GTEST_SKIP() << "uninstrumented libtbb: TSan cannot see its synchronisation";                              \
	} while (false)
