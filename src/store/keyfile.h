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
#include <string_view>

#include "core/crypto/fernet.h"

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
    /// Adds a key; ids are >= 1 and unique (throws KeyFileError otherwise).
    void add(std::uint32_t id, core::crypto::Fernet key);
    [[nodiscard]] bool empty() const { return keys_.empty(); }
    /// Throws KeyFileError when the ring is empty.
    [[nodiscard]] std::uint32_t current_id() const;
    [[nodiscard]] const core::crypto::Fernet& current() const;
    /// nullptr when the id is unknown.
    [[nodiscard]] const core::crypto::Fernet* find(std::uint32_t id) const;
    [[nodiscard]] std::size_t size() const { return keys_.size(); }
    [[nodiscard]] const std::map<std::uint32_t, core::crypto::Fernet>& all() const { return keys_; }

  private:
    std::map<std::uint32_t, core::crypto::Fernet> keys_;
};

/// Throws KeyFileError unless `path` is owned by the current user and has no
/// group/other permission bits (files: 0600 or stricter; folders: 0700 or stricter).
/// `what` names the path in the message ("master key file", "database"); by
/// default "file" or "folder". Example message:
///   "master key file /x/master.key is readable by group/others (mode 0644);
///    run chmod 600 /x/master.key"
void require_private(const std::filesystem::path& path, std::string_view what = {});

/// Loads the key file, creating it (0600, one fresh key with id 1) if absent.
/// Creation is atomic and never replaces a file another process created first
/// (temp file 0600 + fsync + link). The folder must exist. Refuses files that
/// group or others can access, or that another user owns.
KeyRing load_or_create_keyfile(const std::filesystem::path& path);
/// Loads an existing key file (no creation). Blank lines and lines starting with
/// '#' are ignored; any other malformed line is an error naming the line.
KeyRing load_keyfile(const std::filesystem::path& path);
/// Rotation (`bluezscript keys rotate`): writes the file with a fresh key added
/// (id = highest + 1), calls `reencrypt(new_ring)` where new_ring holds the old
/// keys and the new, current one, then rewrites the file with only the new key.
/// Every write is atomic (temp file 0600, fsync, rename). If `reencrypt` throws,
/// the file keeps old and new keys (both still decrypt) and the error propagates.
/// Concurrent rotations are serialised with flock on "<path>.lock" (left in
/// place). Returns the new key id.
std::uint32_t rotate_keyfile(const std::filesystem::path& path,
                             const std::function<void(const KeyRing&)>& reencrypt);

}  // namespace bzs::store
