// SPDX-License-Identifier: GPL-3.0-or-later
// The settings table: small key/value Pi-wide state (pi_id, master_key_id,
// clock_floor, ...).
#include <cstdint>
#include <exception>
#include <optional>
#include <string>

#include "store/store_impl.h"

namespace bzs::store {

std::optional<std::string> Store::Impl::get_setting(const std::string& key) {
    sql::Stmt st(db, "SELECT value FROM settings WHERE key = ?1");
    st.bind(1, key);
    if (!st.step()) {
        return std::nullopt;
    }
    return st.text(0);
}

void Store::Impl::put_setting(const std::string& key, const std::string& value) {
    sql::Stmt st(db,
                 "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    st.bind(1, key).bind(2, value).run();
}

namespace {
constexpr const char* kClockFloor = "clock_floor";
}  // namespace

std::int64_t Store::Impl::clock_floor() {
    const auto v = get_setting(kClockFloor);
    if (!v) {
        return 0;
    }
    try {
        std::size_t used = 0;
        const long long n = std::stoll(*v, &used);
        if (used == v->size()) {
            return n;
        }
    } catch (const std::exception&) {
    }
    throw StoreError("database " + path.string() + ": setting clock_floor is not an integer");
}

void Store::Impl::raise_clock_floor(std::int64_t v) {
    if (v > clock_floor()) {
        put_setting(kClockFloor, std::to_string(v));
    }
}

std::optional<std::string> Store::setting(const std::string& key) {
    return impl_->get_setting(key);
}

void Store::set_setting(const std::string& key, const std::string& value) {
    if (key.empty()) {
        throw StoreError("setting name must not be empty");
    }
    impl_->put_setting(key, value);
}

}  // namespace bzs::store
