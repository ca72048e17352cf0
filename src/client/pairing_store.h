// SPDX-License-Identifier: GPL-3.0-or-later
// The client's pairings: one JSON file per (Pi, device) pairing imported from a
// pairing URI, in $XDG_CONFIG_HOME/bluezscript/pairings/ (default
// ~/.config/bluezscript/pairings/). Each file holds the device secret in clear, so,
// like an SSH private key, the file's permissions are its only protection: files are
// created 0600 in 0700 folders and a file readable by anyone else is refused.
//
// Every write is atomic (temporary file, fsync, rename, fsync of the folder) and
// counter reservations hold an exclusive lock on the folder, so two concurrent
// `bluezscript trigger` runs never send the same counter.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol/pairing_uri.h"

namespace bzs::client {

/// A mistake the user can fix (unknown or ambiguous name, duplicate import, unsafe
/// file mode, damaged file). The message says what to do; it never holds a secret.
class PairingStoreError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// One pairing as stored on the client.
struct ClientPairing {
    std::string name;  ///< local, unique name of the pairing (default: the Pi's name)
    core::protocol::Pairing pairing;  ///< Pi id and name, device id, secret, TOTP parameters, label
    std::uint64_t counter = 0;        ///< the last counter reserved (0: none sent yet)
    /// TOTP step of the last command the Pi accepted: the Pi takes one per period.
    std::optional<std::int64_t> last_accepted_step;
    std::int64_t imported = 0;   ///< unix seconds
    std::filesystem::path file;  ///< where it is stored
};

/// What `client list` shows: everything but the secret.
struct ClientPairingSummary {
    std::string name;
    std::string pi_name;
    std::string pi_id_hex;
    std::string device_id_hex;
    std::string device_label;
    std::uint64_t counter = 0;
    std::int64_t imported = 0;
    std::filesystem::path file;
    /// Set when the file cannot be used (unsafe mode, damaged): the reason.
    std::string problem;
};

class PairingStore {
  public:
    /// `root` is the client's folder (…/bluezscript); nothing is created until a write.
    explicit PairingStore(std::filesystem::path root);

    /// $XDG_CONFIG_HOME/bluezscript, else $HOME/.config/bluezscript. Throws
    /// ClientStoreError when neither variable is set.
    static std::filesystem::path default_root();

    [[nodiscard]] const std::filesystem::path& root() const { return root_; }
    [[nodiscard]] std::filesystem::path pairings_dir() const { return root_ / "pairings"; }

    struct Imported {
        ClientPairing pairing;
        bool replaced = false;  ///< an earlier import of the same Pi and device was replaced
    };
    /// Stores `p`. `name` empty means the Pi's name (with "-2", "-3"... appended when
    /// another pairing already has it). A pairing of the same Pi and device already
    /// present is refused unless `force`; a forced import keeps the higher counter
    /// and the earlier name (unless `name` is given), so the Pi never sees a counter
    /// go backwards. Throws ClientStoreError, std::system_error.
    Imported import(const core::protocol::Pairing& p, const std::string& name, bool force);

    /// All pairings, sorted by name. Unusable files are listed with `problem` set.
    [[nodiscard]] std::vector<ClientPairingSummary> list() const;

    /// The pairing `selector` names: a pairing name, else a Pi name, else a prefix
    /// (at least 4 hex digits) of a Pi id; an empty selector picks the only pairing.
    /// Refuses files readable by group or others. Throws ClientStoreError.
    [[nodiscard]] ClientPairing find(std::string_view selector) const;

    /// Deletes the pairing `selector` names (see find; the file mode is not checked,
    /// so an unsafe file can still be removed). Returns what was removed.
    ClientPairingSummary remove(std::string_view selector);

    /// Increments the pairing's counter and stores it before returning it, under an
    /// exclusive lock: a counter is handed out once even if the caller then crashes.
    std::uint64_t reserve_counter(const ClientPairing& p);

    /// Records the TOTP step of a command the Pi accepted (kept if larger).
    void record_accepted_step(const ClientPairing& p, std::int64_t step);

  private:
    std::filesystem::path root_;
};

/// Checks a pairing or --name value: 1..64 bytes, no control characters, no '/'.
/// Returns an error sentence, or an empty string when it is fine.
std::string check_pairing_name(std::string_view name);

}  // namespace bzs::client
