// SPDX-License-Identifier: GPL-3.0-or-later
// Web UI sessions (only token hashes are stored) and the failed sign-ins that
// throttle password guessing (schema 3).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "store/store_impl.h"

namespace bzs::store {

void Store::create_session(const WebSession& s) {
    if (s.token_hash.size() != 64) {
        throw StoreError("session: the token hash must be 64 hex digits");
    }
    sql::Stmt st(impl_->db,
                 "INSERT INTO sessions (token_hash, csrf, created, last_seen, client) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)");
    st.bind(1, s.token_hash)
        .bind(2, s.csrf)
        .bind(3, s.created)
        .bind(4, s.last_seen)
        .bind(5, s.client);
    st.run();
}

std::optional<WebSession> Store::touch_session(const std::string& token_hash, std::int64_t now,
                                               std::int64_t idle_seconds,
                                               std::int64_t absolute_seconds) {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    sql::Stmt st(I.db,
                 "SELECT token_hash, csrf, created, last_seen, client FROM sessions "
                 "WHERE token_hash = ?1");
    st.bind(1, token_hash);
    if (!st.step()) {
        return std::nullopt;
    }
    WebSession s{st.text(0), st.text(1), st.int64(2), st.int64(3), st.text(4)};
    if (now - s.last_seen > idle_seconds || now - s.created > absolute_seconds) {
        sql::Stmt del(I.db, "DELETE FROM sessions WHERE token_hash = ?1");
        del.bind(1, token_hash).run();
        txn.commit();
        return std::nullopt;
    }
    s.last_seen = std::max(s.last_seen, now);
    sql::Stmt up(I.db, "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1");
    up.bind(1, token_hash).bind(2, s.last_seen).run();
    txn.commit();
    return s;
}

void Store::delete_session(const std::string& token_hash) {
    sql::Stmt st(impl_->db, "DELETE FROM sessions WHERE token_hash = ?1");
    st.bind(1, token_hash).run();
}

std::int64_t Store::delete_all_sessions() {
    sql::Stmt st(impl_->db, "DELETE FROM sessions");
    st.run();
    return impl_->db.changes();
}

std::int64_t Store::count_sessions() {
    sql::Stmt st(impl_->db, "SELECT count(*) FROM sessions");
    st.step();
    return st.int64(0);
}

std::int64_t Store::signin_failures_since(const std::string& client, std::int64_t since) {
    sql::Stmt st(impl_->db,
                 "SELECT count(*) FROM signin_attempts WHERE client = ?1 AND time >= ?2");
    st.bind(1, client).bind(2, since);
    st.step();
    return st.int64(0);
}

void Store::record_signin_failure(const std::string& client, std::int64_t now) {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    // Rows older than a day no longer count towards any limit.
    sql::Stmt old(I.db, "DELETE FROM signin_attempts WHERE time < ?1");
    old.bind(1, now - 86400).run();
    sql::Stmt st(I.db, "INSERT INTO signin_attempts (client, time) VALUES (?1, ?2)");
    st.bind(1, client).bind(2, now).run();
    txn.commit();
}

void Store::clear_signin_failures(const std::string& client) {
    sql::Stmt st(impl_->db, "DELETE FROM signin_attempts WHERE client = ?1");
    st.bind(1, client).run();
}

}  // namespace bzs::store
