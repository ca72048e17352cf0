// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/auth/challenge.h"

namespace bzs::core::auth {

protocol::Nonce ChallengeBook::issue(const std::string& link, std::int64_t now) {
    Entry e;
    crypto::random_bytes(e.nonce);
    e.expires = now + ttl_;
    live_[link] = e;
    return e.nonce;
}

std::optional<protocol::Nonce> ChallengeBook::take(const std::string& link, std::int64_t now) {
    auto it = live_.find(link);
    if (it == live_.end()) {
        return std::nullopt;
    }
    const Entry e = it->second;
    live_.erase(it);
    if (now >= e.expires) {
        return std::nullopt;
    }
    return e.nonce;
}

void ChallengeBook::drop(const std::string& link) {
    live_.erase(link);
}

void ChallengeBook::expire(std::int64_t now) {
    for (auto it = live_.begin(); it != live_.end();) {
        it = now >= it->second.expires ? live_.erase(it) : std::next(it);
    }
}

}  // namespace bzs::core::auth
