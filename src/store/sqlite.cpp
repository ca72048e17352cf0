// SPDX-License-Identifier: GPL-3.0-or-later
#include "store/sqlite.h"

#include <limits>

namespace bzs::store::sql {

Db::Db(const std::filesystem::path& path) : path_(path) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw StoreError("cannot open database " + path.string() + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
}

Db::~Db() {
    // Statements are owned by RAII objects that never outlive the connection.
    sqlite3_close(db_);
}

void Db::exec(const char* sql, std::string_view what) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        throw StoreError(std::string(what) + ": " + failure(rc, msg));
    }
}

std::string Db::failure(int rc, std::string msg) const {
    const int primary = rc & 0xff;
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
        // Said in full: under systemd this is the only line an owner sees.
        msg = "the database " + path_.string() + " is damaged (" + msg +
              "); check it with: sqlite3 " + path_.string() +
              " 'PRAGMA integrity_check', and restore it from a backup";
    }
    return msg;
}

std::int64_t Db::last_insert_rowid() const {
    return sqlite3_last_insert_rowid(db_);
}

int Db::changes() const {
    return sqlite3_changes(db_);
}

std::string Db::errmsg() const {
    return sqlite3_errmsg(db_);
}

Stmt::Stmt(Db& db, const char* sql) : db_(db) {
    const int rc = sqlite3_prepare_v2(db.get(), sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) {
        // Statements are fixed text in this module, so a failure here is a bug
        // or a schema mismatch; the SQLite message says which.
        throw StoreError("cannot prepare statement: " + db.errmsg());
    }
}

Stmt::~Stmt() {
    sqlite3_finalize(stmt_);
}

void Stmt::check_bind(int rc, int i) {
    if (rc != SQLITE_OK) {
        throw StoreError("cannot bind parameter " + std::to_string(i) + ": " + db_.errmsg());
    }
}

Stmt& Stmt::bind(int i, std::int64_t v) {
    check_bind(sqlite3_bind_int64(stmt_, i, v), i);
    return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
    if (v.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw StoreError("text parameter " + std::to_string(i) + " is too long");
    }
    // SQLITE_TRANSIENT: SQLite copies, so temporaries are safe to bind.
    check_bind(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT),
               i);
    return *this;
}

Stmt& Stmt::bind(int i, std::span<const std::uint8_t> blob) {
    if (blob.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw StoreError("blob parameter " + std::to_string(i) + " is too long");
    }
    check_bind(
        sqlite3_bind_blob(stmt_, i, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT),
        i);
    return *this;
}

Stmt& Stmt::bind_null(int i) {
    check_bind(sqlite3_bind_null(stmt_, i), i);
    return *this;
}

bool Stmt::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
        return true;
    }
    if (rc == SQLITE_DONE) {
        return false;
    }
    throw StoreError(db_.failure(rc, db_.errmsg()));
}

void Stmt::run() {
    while (step()) {
    }
}

void Stmt::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

bool Stmt::is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

std::int64_t Stmt::int64(int col) const {
    return sqlite3_column_int64(stmt_, col);
}

std::string Stmt::text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    if (p == nullptr) {
        return {};
    }
    return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
}

std::vector<std::uint8_t> Stmt::blob(int col) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    const int n = sqlite3_column_bytes(stmt_, col);
    if (p == nullptr) {
        return {};
    }
    return {p, p + n};
}

std::optional<std::int64_t> Stmt::opt_int64(int col) const {
    if (is_null(col)) {
        return std::nullopt;
    }
    return int64(col);
}

std::optional<std::string> Stmt::opt_text(int col) const {
    if (is_null(col)) {
        return std::nullopt;
    }
    return text(col);
}

Transaction::Transaction(Db& db, bool immediate) : db_(db) {
    db_.exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN", "cannot begin a transaction");
    open_ = true;
}

Transaction::~Transaction() {
    rollback();
}

void Transaction::commit() {
    db_.exec("COMMIT", "cannot commit");
    open_ = false;
}

void Transaction::rollback() noexcept {
    if (open_) {
        open_ = false;
        // A failed COMMIT may already have ended the transaction; only roll back
        // when one is still open.
        if (sqlite3_get_autocommit(db_.get()) == 0) {
            sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }
}

}  // namespace bzs::store::sql
