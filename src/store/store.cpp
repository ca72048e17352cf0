// SPDX-License-Identifier: GPL-3.0-or-later
// Opening the store (a private file, WAL, foreign keys, migrations), its key
// ring, the Pi's id, and the small helpers the other store files share.
#include "store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "store/store_impl.h"

namespace bzs::store {

namespace {

/// Creates the database file 0600 (independent of umask) so SQLite, which copies
/// the database's mode to its -wal and -shm files, never creates a readable one.
void create_private_file(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return;
        }
        const int err = errno;
        throw StoreError("cannot create database " + path.string() + ": " + std::strerror(err));
    }
    const int rc = ::fchmod(fd, 0600);
    const int err = errno;
    ::close(fd);
    if (rc != 0) {
        throw StoreError("cannot set the mode of database " + path.string() + ": " +
                         std::strerror(err));
    }
}

}  // namespace

bool is_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

std::string to_lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s;
}

std::string new_request_id() {
    return core::crypto::hex_encode(core::crypto::random_bytes(16));
}

void Store::Impl::configure() {
    sqlite3_busy_timeout(db.get(), 5000);
    {
        sql::Stmt st(db, "PRAGMA journal_mode = WAL");
        if (!st.step() || to_lower(st.text(0)) != "wal") {
            throw StoreError("database " + path.string() + ": cannot switch to WAL journal mode");
        }
    }
    db.exec("PRAGMA foreign_keys = ON", "cannot enable foreign keys");
    // FULL: a committed replay state must survive power loss, or a captured frame
    // could be accepted again after a reboot.
    db.exec("PRAGMA synchronous = FULL", "cannot set synchronous mode");
    // Old Fernet tokens (e.g. under a retired master key) are overwritten, not
    // left in free pages.
    db.exec("PRAGMA secure_delete = ON", "cannot enable secure_delete");
    db.exec("PRAGMA trusted_schema = OFF", "cannot disable trusted_schema");
    sql::Stmt fk(db, "PRAGMA foreign_keys");
    if (!fk.step() || fk.int64(0) != 1) {
        throw StoreError("database " + path.string() + ": foreign keys could not be enabled");
    }
}

void Store::Impl::reload_keys() {
    if (keyfile) {
        keys = load_keyfile(*keyfile);
    }
}

namespace {

// How many secrets the database at `db_path` holds under some master key: its
// devices (each has a secret or a pairing code) and the Pi's private key. 0 for
// a database that does not exist yet or has no such tables.
std::int64_t encrypted_secrets(const std::filesystem::path& db_path) {
    std::error_code ec;
    if (!std::filesystem::exists(db_path, ec) || std::filesystem::file_size(db_path, ec) == 0) {
        return 0;
    }
    sql::Db db(db_path);
    sqlite3_busy_timeout(db.get(), 5000);
    auto has_table = [&db](const char* name) {
        sql::Stmt st(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1");
        st.bind(1, std::string(name));
        return st.step() && st.int64(0) > 0;
    };
    std::int64_t n = 0;
    if (has_table("devices")) {
        sql::Stmt st(db, "SELECT count(*) FROM devices");
        n += st.step() ? st.int64(0) : 0;
    }
    if (has_table("settings")) {
        sql::Stmt st(db, "SELECT count(*) FROM settings WHERE key = 'pi_key_private'");
        n += st.step() ? st.int64(0) : 0;
    }
    return n;
}

// The key ring of `keyfile_path`, created only while nothing is encrypted yet: a
// new key beside encrypted secrets would make every one of them unreadable.
KeyRing keys_for(const std::filesystem::path& db_path, const std::filesystem::path& keyfile_path) {
    std::error_code ec;
    if (!std::filesystem::exists(keyfile_path, ec) && !ec) {
        const std::int64_t n = encrypted_secrets(db_path);
        if (n > 0) {
            throw KeyFileError(
                "master key file " + keyfile_path.string() + " is missing, but the database " +
                db_path.string() + " holds " + std::to_string(n) +
                " secret(s) encrypted with it (device secrets, pairing codes, the Pi's key). "
                "Restore master.key from your backup (mode 0600, owned by this user). To start "
                "over instead, move the database away: every phone must then pair again");
        }
    }
    return load_or_create_keyfile(keyfile_path);
}

}  // namespace

Store::Store(const std::filesystem::path& db_path, const std::filesystem::path& keyfile_path)
    : Store(db_path, keys_for(db_path, keyfile_path)) {
    impl_->keyfile = keyfile_path;
}

Store::Store(const std::filesystem::path& db_path, KeyRing keys) {
    if (keys.empty()) {
        throw KeyFileError("no master key is loaded");
    }
    create_private_file(db_path);
    require_private(db_path, "database");
    impl_ = std::make_unique<Impl>(db_path, std::nullopt, std::move(keys));
    impl_->configure();
    impl_->migrate();
}

Store::~Store() = default;

const std::filesystem::path& Store::path() const {
    return impl_->path;
}

const KeyRing& Store::keys() const {
    return impl_->keys;
}

void Store::set_keys(KeyRing keys) {
    if (keys.empty()) {
        throw KeyFileError("no master key is loaded");
    }
    impl_->keys = std::move(keys);
}

std::array<std::uint8_t, 16> Store::pi_id() {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    // INSERT OR IGNORE keeps whichever process created it first.
    sql::Stmt ins(I.db, "INSERT OR IGNORE INTO settings (key, value) VALUES ('pi_id', ?1)");
    ins.bind(1, core::crypto::hex_encode(core::crypto::random_bytes(16))).run();
    const auto v = I.get_setting("pi_id");
    txn.commit();
    const auto bytes = v ? core::crypto::hex_decode(*v) : std::nullopt;
    if (!bytes || bytes->size() != 16) {
        throw StoreError("setting pi_id is not 32 hex digits");
    }
    std::array<std::uint8_t, 16> out{};
    std::copy(bytes->begin(), bytes->end(), out.begin());
    return out;
}

core::protocol::PublicKey Store::pi_public_key() {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    const auto key = I.pi_key();
    txn.commit();
    return key.second;
}

core::crypto::SecretBytes Store::pi_private_key() {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    auto key = I.pi_key();
    txn.commit();
    return std::move(key.first);
}

}  // namespace bzs::store
