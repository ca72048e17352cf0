// SPDX-License-Identifier: GPL-3.0-or-later
// The master key file: one Fernet key per line as "<id> <base64url key>", the
// highest id being the current one. Created 0600 on first start; refused when
// group or others can read it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "core/fernet.h"

namespace bzs::store {

/// Raised when a key or state file is missing, malformed or not private.
class KeyFileError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Master keys by id; encrypts with the current (highest) id.
class KeyRing {
public:
    KeyRing() = default;
    void add(std::uint32_t id, crypto::Fernet key);
    [[nodiscard]] bool empty() const { return keys_.empty(); }
    [[nodiscard]] std::uint32_t current_id() const;
    [[nodiscard]] const crypto::Fernet& current() const;
    /// nullptr when the id is unknown.
    [[nodiscard]] const crypto::Fernet* find(std::uint32_t id) const;
    [[nodiscard]] std::size_t size() const { return keys_.size(); }
    [[nodiscard]] const std::map<std::uint32_t, crypto::Fernet>& all() const { return keys_; }

private:
    std::map<std::uint32_t, crypto::Fernet> keys_;
};

/// Throws KeyFileError unless `path` is owned by the current user and has no
/// group/other permission bits (files: 0600 or stricter; folders: 0700 or stricter).
void require_private(const std::filesystem::path& path);

/// Loads the key file, creating it (0600, one fresh key with id 1) if absent.
/// Refuses files readable by group or others.
KeyRing load_or_create_keyfile(const std::filesystem::path& path);
/// Loads an existing key file (no creation).
KeyRing load_keyfile(const std::filesystem::path& path);
/// Rotation (`bluezscript keys rotate`): writes the file with a fresh key added,
/// calls `reencrypt(new_ring)`, then rewrites the file with only the new key.
/// Every write is atomic (temp file 0600, fsync, rename). Returns the new key id.
std::uint32_t rotate_keyfile(const std::filesystem::path& path,
                             const std::function<void(const KeyRing&)>& reencrypt);

}  // namespace bzs::store
