// SPDX-License-Identifier: GPL-3.0-or-later
// The client's pairings: one JSON file per (Pi, device) pairing made by the
// pairing exchange (`client pair LINK`), in $XDG_CONFIG_HOME/bluezscript/pairings/
// (default ~/.config/bluezscript/pairings/). Format version 2; a file of version 1
// (protocol 1, never released) is listed as unusable: pair again. Each file holds
// the device secret in clear, so,
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

#include "client/exchange.h"

namespace bzs::client {

/// A mistake the user can fix (unknown or ambiguous name, duplicate pairing, unsafe
/// file mode, damaged file). The message says what to do; it never holds a secret.
class PairingStoreError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// One pairing as stored on the client.
struct ClientPairing {
    std::string name;            ///< local, unique name of the pairing (default: the Pi's name)
    Credential credential;       ///< Pi id, name and key, device id and label, secret, TOTP
    std::uint64_t counter = 0;   ///< the last counter reserved (0: none sent yet)
    std::int64_t paired = 0;     ///< unix seconds
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
    std::int64_t paired = 0;
    std::filesystem::path file;
    /// Set when the file cannot be used (unsafe mode, damaged, protocol 1): the reason.
    std::string problem;
};

class PairingStore {
  public:
    /// `root` is the client's folder (…/bluezscript); nothing is created until a write.
    explicit PairingStore(std::filesystem::path root);

    /// $XDG_CONFIG_HOME/bluezscript, else $HOME/.config/bluezscript. Throws
    /// PairingStoreError when neither variable is set.
    static std::filesystem::path default_root();

    [[nodiscard]] const std::filesystem::path& root() const { return root_; }
    [[nodiscard]] std::filesystem::path pairings_dir() const { return root_ / "pairings"; }

    /// Checks, before the pairing exchange uses the code, that a pairing of Pi `pi`
    /// and device `device` could be added under `name` (empty: a name is chosen
    /// then): a valid, free name, and no pairing of the same Pi and device yet.
    /// Throws PairingStoreError naming the problem.
    void check_new(const core::protocol::PiId& pi, const core::protocol::DeviceId& device,
                   const std::string& name) const;

    /// Stores a pairing the exchange confirmed, with `counter` as its last used
    /// counter. `name` empty means the Pi's name (with "-2", "-3"... appended when
    /// another pairing already has it). Refuses what check_new refuses. Throws
    /// PairingStoreError, std::system_error.
    ClientPairing add(const Credential& c, const std::string& name, std::uint64_t counter);

    /// All pairings, sorted by name. Unusable files are listed with `problem` set.
    [[nodiscard]] std::vector<ClientPairingSummary> list() const;

    /// The pairing `selector` names: a pairing name, else a Pi name, else a prefix
    /// (at least 4 hex digits) of a Pi id; an empty selector picks the only pairing.
    /// Refuses files readable by group or others. Throws PairingStoreError.
    [[nodiscard]] ClientPairing find(std::string_view selector) const;

    /// Deletes the pairing `selector` names (see find; the file mode is not checked,
    /// so an unsafe file, or one of protocol 1, can still be removed). Returns what
    /// was removed.
    ClientPairingSummary remove(std::string_view selector);

    /// Increments the pairing's counter and stores it before returning it, under an
    /// exclusive lock: a counter is handed out once even if the caller then crashes.
    std::uint64_t reserve_counter(const ClientPairing& p);

  private:
    std::filesystem::path root_;
};

/// Checks a pairing or --name value: 1..64 bytes, no control characters, no '/'.
/// Returns an error sentence, or an empty string when it is fine.
std::string check_pairing_name(std::string_view name);

}  // namespace bzs::client
