// SPDX-License-Identifier: GPL-3.0-or-later
// Shared helpers for the store tests: a key ring, raw access to the database
// file (a second SQLite connection, as another process would have), challenges
// and requests for authorize. The phone that builds frames is tests/support/phone.h.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/auth/verifier.h"
#include "core/crypto/crypto.h"
#include "core/crypto/fernet.h"
#include "core/protocol/protocol.h"
#include "store/keyfile.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "test_support.h"

namespace bzs::store::testing {

inline constexpr std::int64_t kNow = 1'700'000'000;  // a fixed "now", mid TOTP step

/// Expects `fn` to throw an `E` (`name` in the failure) whose message contains `needle`.
template <typename E, typename Fn>
void expect_error(Fn&& fn, const char* name, const std::string& needle) {
    try {
        fn();
        ADD_FAILURE() << "no " << name << "; expected one containing: " << needle;
    } catch (const E& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
            << "message: " << e.what() << "\nexpected to contain: " << needle;
    }
}

inline KeyRing ring_with(std::uint32_t id, const std::string& key_b64) {
    KeyRing r;
    auto f = core::crypto::Fernet::from_base64(key_b64);
    if (!f) {
        throw std::runtime_error("bad test key");
    }
    r.add(id, std::move(*f));
    return r;
}

inline KeyRing fresh_ring(std::uint32_t id = 1) {
    return ring_with(id, core::crypto::Fernet::generate_key_base64());
}

/// A second connection to the same file, as another process would open it.
class RawDb {
  public:
    explicit RawDb(const std::filesystem::path& p) : db_(p) {
        sqlite3_busy_timeout(db_.get(), 5000);
    }
    void exec(const char* sql) { db_.exec(sql, "test SQL"); }
    std::int64_t count(const char* sql) {
        sql::Stmt st(db_, sql);
        EXPECT_TRUE(st.step()) << sql;
        return st.int64(0);
    }
    std::int64_t count_for(const char* sql, const core::protocol::DeviceId& id) {
        sql::Stmt st(db_, sql);
        st.bind(1, id);
        EXPECT_TRUE(st.step()) << sql;
        return st.int64(0);
    }
    std::string text(const char* sql) {
        sql::Stmt st(db_, sql);
        EXPECT_TRUE(st.step()) << sql;
        return st.text(0);
    }
    sql::Db& db() { return db_; }

  private:
    sql::Db db_;
};

inline core::protocol::Nonce challenge_of(std::uint8_t fill) {
    core::protocol::Nonce n{};
    n.fill(fill);
    return n;
}

/// Actions the Pi knows in these tests: "open", "status", "reboot".
inline core::auth::ActionLookup known_actions() {
    return [](const std::string& name) -> std::optional<core::auth::ActionRules> {
        if (name == "open" || name == "status" || name == "reboot") {
            return core::auth::ActionRules{};
        }
        return std::nullopt;
    };
}

/// The request views `frame`: keep the frame alive until authorize returns.
inline AuthorizeRequest request_for(const core::protocol::Bytes& frame, std::int64_t now,
                                    const core::protocol::Nonce& challenge) {
    AuthorizeRequest req;
    req.frame = frame;
    req.now = now;
    req.expected_challenge = challenge;
    req.transport = "ble";
    req.actions = known_actions();
    return req;
}

inline std::vector<std::uint8_t> bytes_of(const core::crypto::SecretBytes& s) {
    return {s.view().begin(), s.view().end()};
}

}  // namespace bzs::store::testing
