// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/auth/throttle.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace bzs::core::auth {

namespace {

// A window has ended when a minute passed, or when the clock went back before
// its start (a stepped clock must not freeze a window forever).
bool window_ended(std::int64_t start, std::int64_t now) {
    const auto elapsed = seconds_between(start, now);
    return !elapsed || *elapsed >= static_cast<std::uint64_t>(Throttle::kWindowSeconds);
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b) {
        return std::numeric_limits<std::int64_t>::max();
    }
    if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b) {
        return std::numeric_limits<std::int64_t>::min();
    }
    return a + b;
}

}  // namespace

std::optional<std::uint64_t> seconds_between(std::int64_t from, std::int64_t to) {
    if (to < from) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(to) - static_cast<std::uint64_t>(from);
}

bool counts_against_limits(protocol::Status s) {
    using protocol::Status;
    switch (s) {
        case Status::Malformed:
        case Status::UnknownVersion:
        case Status::UnknownDevice:
        case Status::Revoked:
        case Status::BadMac:
        case Status::Replayed:
        case Status::CodeUsed:  // a pair request naming a paired device: no secret needed
        case Status::CodeExpired:
            return true;
        default:
            return false;
    }
}

std::string RefusalSummary::detail() const {
    const std::string frames = refused == 1 ? " frame" : " frames";
    const std::string where = source == Throttle::kPiWide
                                  ? " by the Pi-wide limit on unauthenticated frames"
                                  : " from " + source;
    return std::to_string(refused) + frames + " refused in " + std::to_string(seconds) + " s" +
           where;
}

Throttle::Throttle(RateLimitPolicy policy, std::size_t max_links)
    : policy_(policy), max_links_(std::max<std::size_t>(max_links, 1)) {}

bool Throttle::link_limited(const std::string& link, std::int64_t now) const {
    const auto it = links_.find(link);
    if (it == links_.end() || window_ended(it->second.window_start, now)) {
        return false;
    }
    return it->second.failures > policy_.link_max_failures_per_minute;
}

bool Throttle::pi_wide_limited(std::int64_t now) const {
    return locked_ && now < lockout_until_;
}

Throttle::Counter& Throttle::touch(const std::string& link, std::int64_t now) {
    auto it = links_.find(link);
    if (it == links_.end()) {
        if (links_.size() >= max_links_) {
            const auto oldest =
                std::min_element(links_.begin(), links_.end(), [](const auto& a, const auto& b) {
                    return a.second.last_seen < b.second.last_seen;
                });
            if (oldest->second.refused > 0) {
                if (untracked_.refused == 0) {
                    untracked_.refused_since = oldest->second.refused_since;
                }
                untracked_.refused += oldest->second.refused;
            }
            links_.erase(oldest);
        }
        Counter fresh;
        fresh.window_start = now;
        it = links_.emplace(link, fresh).first;
    }
    it->second.last_seen = ++seq_;
    return it->second;
}

void Throttle::count_failure(Counter& c, std::int64_t now) {
    if (window_ended(c.window_start, now)) {
        c.window_start = now;
        c.failures = 0;
    }
    if (c.failures < std::numeric_limits<std::uint32_t>::max()) {
        ++c.failures;
    }
}

void Throttle::count_refusal(Counter& c, std::int64_t now) {
    if (c.refused == 0) {
        c.refused_since = now;
    }
    if (c.refused < std::numeric_limits<std::uint64_t>::max()) {
        ++c.refused;
    }
}

void Throttle::record_failure(const std::string& link, std::int64_t now) {
    count_failure(touch(link, now), now);
    count_failure(global_, now);
    if (global_.failures > policy_.global_max_failures_per_minute) {
        // Each failure past the limit keeps the limit on for another period.
        locked_ = true;
        lockout_until_ = saturating_add(now, policy_.global_lockout_seconds);
    }
}

void Throttle::record_link_refusal(const std::string& link, std::int64_t now) {
    count_refusal(touch(link, now), now);
}

void Throttle::record_pi_wide_refusal(std::int64_t now) {
    count_refusal(global_, now);
}

std::vector<RefusalSummary> Throttle::take_summaries(std::int64_t now, bool all) {
    std::vector<RefusalSummary> out;
    auto take = [&](const std::string& source, Counter& c) {
        if (c.refused == 0 || (!all && !window_ended(c.refused_since, now))) {
            return;
        }
        RefusalSummary s;
        s.source = source;
        s.refused = c.refused;
        s.seconds = seconds_between(c.refused_since, now).value_or(0);
        out.push_back(std::move(s));
        c.refused = 0;
    };
    for (auto it = links_.begin(); it != links_.end();) {
        take(it->first, it->second);
        // A link with nothing pending and an ended window holds no state worth keeping.
        if (it->second.refused == 0 && window_ended(it->second.window_start, now)) {
            it = links_.erase(it);
        } else {
            ++it;
        }
    }
    take(kUntracked, untracked_);
    take(kPiWide, global_);
    if (locked_ && !pi_wide_limited(now)) {
        locked_ = false;
    }
    return out;
}

}  // namespace bzs::core::auth
