// SPDX-License-Identifier: GPL-3.0-or-later
#include "util/clock.h"

#include <sys/timex.h>

#include <charconv>
#include <chrono>
#include <stdexcept>
#include <string_view>

namespace bzs::util {

std::int64_t wall_clock_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool wall_clock_synchronized() {
    timex tx{};  // modes = 0: read only
    const int state = ::adjtimex(&tx);
    if (state == -1) {
        return false;  // cannot tell: assume the worst, which only relaxes the clock rule
    }
    return state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
}

std::optional<ClockTestHook> parse_clock_test_hook(const char* value) {
    if (value == nullptr) {
        return std::nullopt;
    }
    const std::string_view v(value);
    constexpr std::string_view kWord = "unsynchronized";
    const auto bad = [&] {
        return std::invalid_argument(
            "BLUEZSCRIPT_TEST_CLOCK: expected \"unsynchronized\" or \"unsynchronized:<seconds>\", "
            "got \"" +
            std::string(v.substr(0, 64)) + "\"");
    };
    if (v.substr(0, kWord.size()) != kWord) {
        throw bad();
    }
    ClockTestHook hook;
    std::string_view rest = v.substr(kWord.size());
    if (rest.empty()) {
        return hook;
    }
    if (rest.front() != ':') {
        throw bad();
    }
    rest.remove_prefix(1);
    const auto [end, ec] =
        std::from_chars(rest.data(), rest.data() + rest.size(), hook.shift_seconds);
    // Within ±100 years: a shift, not an overflow.
    constexpr std::int64_t kLimit = 100LL * 366 * 86400;
    if (ec != std::errc() || end != rest.data() + rest.size() || rest.empty() ||
        hook.shift_seconds > kLimit || hook.shift_seconds < -kLimit) {
        throw bad();
    }
    return hook;
}

}  // namespace bzs::util
