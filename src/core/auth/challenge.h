// SPDX-License-Identifier: GPL-3.0-or-later
// Challenges handed out to connected devices: one live nonce per link, short-lived
// and single use. Pure bookkeeping with an injected clock; the transport owns the
// links and calls in.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/protocol/protocol.h"

namespace bzs::core::auth {

class ChallengeBook {
  public:
    /// `ttl_seconds`: how long an issued challenge stays valid.
    explicit ChallengeBook(std::int64_t ttl_seconds) : ttl_(ttl_seconds) {}

    /// Issues a fresh random nonce for `link` (e.g. a BlueZ device path), replacing
    /// any earlier one for that link.
    protocol::Nonce issue(const std::string& link, std::int64_t now);
    /// The live challenge of `link`, removed so it can be used only once; nullopt if
    /// none was issued or it expired.
    std::optional<protocol::Nonce> take(const std::string& link, std::int64_t now);
    /// Forgets a link (disconnect).
    void drop(const std::string& link);
    /// Forgets expired challenges.
    void expire(std::int64_t now);
    [[nodiscard]] std::size_t size() const { return live_.size(); }

  private:
    struct Entry {
        protocol::Nonce nonce{};
        std::int64_t expires = 0;
    };
    std::int64_t ttl_;
    std::map<std::string, Entry> live_;
};

}  // namespace bzs::core::auth
