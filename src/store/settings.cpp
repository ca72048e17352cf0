// SPDX-License-Identifier: GPL-3.0-or-later
// The settings table: small key/value Pi-wide state (pi_id, master_key_id, ...).
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
