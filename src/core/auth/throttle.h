// SPDX-License-Identifier: GPL-3.0-or-later
// Limits on unauthenticated traffic, in memory: per BLE link and Pi-wide, in
// one-minute windows, with bounded memory. Only failures of frames that did not
// authenticate (status counts_against_limits) are counted, so a paired phone is
// never refused because of someone else. Pure: the caller passes the time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/auth/verifier.h"

namespace bzs::core::auth {

/// True for the refusals a frame earns without proving who sent it, plus
/// `replayed` (someone's old frame): malformed, unknown_version, unknown_device,
/// revoked, bad_mac, replayed, code_used, code_expired. Clock and action refusals
/// do not count.
bool counts_against_limits(protocol::Status s);

/// One summary of frames refused without being looked at individually.
struct RefusalSummary {
    std::string source;  ///< the link, or "Pi-wide"
    std::uint64_t refused = 0;
    std::uint64_t seconds = 0;  ///< length of the window the count covers
    /// "1234 frames refused in 60 s from /org/bluez/hci0/dev_..."
    [[nodiscard]] std::string detail() const;
};

class Throttle {
  public:
    /// The label of the Pi-wide summary and of links no longer tracked.
    static constexpr const char* kPiWide = "Pi-wide";
    static constexpr const char* kUntracked = "links no longer tracked";
    static constexpr std::int64_t kWindowSeconds = 60;

    /// `max_links`: at most this many links are tracked; the least recently
    /// seen one is forgotten first (its pending refusals go to kUntracked).
    explicit Throttle(RateLimitPolicy policy, std::size_t max_links = 256);

    void set_policy(const RateLimitPolicy& policy) { policy_ = policy; }

    /// True when `link` had more than link_max_failures_per_minute failures in its
    /// current window: refuse its frame without decoding it.
    [[nodiscard]] bool link_limited(const std::string& link, std::int64_t now) const;
    /// True while the Pi-wide limit is on: only frames that authenticate pass.
    [[nodiscard]] bool pi_wide_limited(std::int64_t now) const;

    /// Counts one unauthenticated failure of `link`, and Pi-wide.
    void record_failure(const std::string& link, std::int64_t now);
    /// Counts a frame refused because `link` is limited (for its summary).
    void record_link_refusal(const std::string& link, std::int64_t now);
    /// Counts a frame refused because of the Pi-wide limit (for its summary).
    void record_pi_wide_refusal(std::int64_t now);

    /// Summaries whose one-minute window has ended; also forgets idle links.
    /// `all`: every pending summary, ended or not (at shutdown).
    std::vector<RefusalSummary> take_summaries(std::int64_t now, bool all = false);

    [[nodiscard]] std::size_t tracked_links() const { return links_.size(); }

  private:
    struct Counter {
        std::int64_t window_start = 0;
        std::uint32_t failures = 0;
        std::int64_t refused_since = 0;
        std::uint64_t refused = 0;
        std::uint64_t last_seen = 0;  ///< sequence number, for eviction
    };
    Counter& touch(const std::string& link, std::int64_t now);
    static void count_failure(Counter& c, std::int64_t now);
    static void count_refusal(Counter& c, std::int64_t now);

    RateLimitPolicy policy_;
    std::size_t max_links_;
    std::uint64_t seq_ = 0;
    std::map<std::string, Counter> links_;
    Counter global_;
    Counter untracked_;
    std::int64_t lockout_until_ = 0;
    bool locked_ = false;
};

/// Whole seconds from `from` to `to`, or nullopt when `to` is before `from`;
/// never overflows whatever the values.
std::optional<std::uint64_t> seconds_between(std::int64_t from, std::int64_t to);

}  // namespace bzs::core::auth
