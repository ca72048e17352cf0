// SPDX-License-Identifier: GPL-3.0-or-later
// A thin RAII layer over the SQLite C API: one connection, prepared statements
// with bound parameters, and a transaction guard that rolls back unless
// committed. Internal to bzs_store (and its tests); nothing else includes it.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace bzs::store::sql {

/// One open connection. Not thread-safe: use one per thread.
class Db {
  public:
    /// Opens (creating if needed) the file; throws StoreError naming the path.
    explicit Db(const std::filesystem::path& path);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    [[nodiscard]] sqlite3* get() const { return db_; }
    /// Runs SQL text without parameters (DDL, PRAGMA, BEGIN/COMMIT). Never pass
    /// values in `sql`: use Stmt and bind them.
    void exec(const char* sql, std::string_view what);
    [[nodiscard]] std::int64_t last_insert_rowid() const;
    [[nodiscard]] int changes() const;
    [[nodiscard]] std::string errmsg() const;
    /// The message for a failed call that returned `rc`: SQLite's, and for a
    /// damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) the file and what to do.
    [[nodiscard]] std::string failure(int rc, std::string msg) const;

  private:
    sqlite3* db_ = nullptr;
    std::filesystem::path path_;
};

/// A prepared statement; parameters are 1-based as in SQLite.
class Stmt {
  public:
    Stmt(Db& db, const char* sql);
    ~Stmt();
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, std::int64_t v);
    Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt& bind(int i, std::uint32_t v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt& bind(int i, std::string_view v);
    Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
    Stmt& bind(int i, std::span<const std::uint8_t> blob);
    Stmt& bind_null(int i);
    template <typename T>
    Stmt& bind(int i, const std::optional<T>& v) {
        return v ? bind(i, *v) : bind_null(i);
    }

    /// Steps once: true when a row is available, false when done. Throws
    /// StoreError on any error (constraint, I/O, busy).
    bool step();
    /// Steps to completion of a statement that returns no rows.
    void run();
    void reset();

    [[nodiscard]] bool is_null(int col) const;
    [[nodiscard]] std::int64_t int64(int col) const;
    [[nodiscard]] std::string text(int col) const;
    [[nodiscard]] std::vector<std::uint8_t> blob(int col) const;
    [[nodiscard]] std::optional<std::int64_t> opt_int64(int col) const;
    [[nodiscard]] std::optional<std::string> opt_text(int col) const;

  private:
    void check_bind(int rc, int i);
    Db& db_;
    sqlite3_stmt* stmt_ = nullptr;
};

/// BEGIN (IMMEDIATE by default, so a writer takes the lock before reading
/// state it will update) ... COMMIT; rolls back if destroyed uncommitted.
class Transaction {
  public:
    explicit Transaction(Db& db, bool immediate = true);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();
    /// Rolls back now (idempotent).
    void rollback() noexcept;

  private:
    Db& db_;
    bool open_ = false;
};

}  // namespace bzs::store::sql
