// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing store: one SQLite database (WAL, foreign keys, versioned schema)
// holding devices, their permissions and replay/rate state, Pi-wide settings and
// the audit log. Device secrets are stored only as Fernet tokens under a master key
// kept in a separate 0600 key file (keyfile.h). This folder is the only place
// SQLite appears.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/crypto.h"
#include "core/protocol.h"
#include "core/verifier.h"
#include "store/keyfile.h"

namespace bzs::store {

/// Any database failure. Messages name the operation, never secret values.
class StoreError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A device as listed to owners (no secret).
struct DeviceInfo {
    protocol::DeviceId id{};
    std::string id_hex;
    std::string name;
    std::int64_t created = 0;
    std::optional<std::int64_t> last_used;
    std::optional<std::int64_t> revoked_at;
    std::vector<std::string> actions;  ///< permitted, sorted
    std::uint32_t consecutive_failures = 0;
    std::int64_t locked_until = 0;
    [[nodiscard]] bool revoked() const { return revoked_at.has_value(); }
};

/// What `add_device` returns: everything a pairing URI needs.
struct NewPairing {
    DeviceInfo device;
    crypto::SecretBytes secret;  ///< shown once to the owner, then only kept encrypted
    crypto::TotpParams totp;
};

/// One audit row. `status` is a protocol::Status name ("ok", "bad_mac", ...).
struct AuditEntry {
    std::int64_t id = 0;
    std::int64_t time = 0;
    std::optional<std::string> device_id_hex;  ///< as claimed by the frame, if parseable
    std::optional<std::string> device_name;    ///< when the id is a known device
    std::string action;                        ///< as requested (may be empty)
    std::string transport;                     ///< "ble", "cli", "web", ...
    std::string status;
    std::string detail;
    std::optional<int> exit_code;
    std::optional<std::int64_t> duration_ms;
    std::string request_id;                    ///< hex, unique per attempt
};

struct AuditFilter {
    std::optional<std::string> device;   ///< id hex or name
    std::optional<bool> accepted;        ///< true: only status "ok"; false: only refusals/failures
    std::optional<std::string> status;
    std::optional<std::int64_t> since;
    std::int64_t limit = 50;
    std::int64_t offset = 0;
};

/// The result of authorising one frame: the verifier's decision plus what the
/// caller needs to run the action and MAC the response.
struct Authorization {
    auth::Decision decision;
    std::int64_t audit_id = 0;
    std::string request_id;
    std::optional<DeviceInfo> device;  ///< when the frame named a known device
    crypto::SecretBytes response_key;  ///< empty when the device is unknown
};

/// A request to authorise: frame bytes plus the transport's context.
struct AuthorizeRequest {
    protocol::ByteView frame;
    std::int64_t now = 0;
    std::optional<protocol::Nonce> expected_challenge;
    std::string transport = "ble";
    auth::ActionLookup actions;
    auth::Policy policy;
};

class Store {
public:
    /// Opens (creating if needed) the database and migrates it to the current
    /// schema. `keys` decrypts and encrypts device secrets.
    Store(const std::filesystem::path& db_path, KeyRing keys);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    static int schema_version_current();
    [[nodiscard]] int schema_version() const;

    // --- Pi identity ---
    /// The Pi's long-term id, created on first use.
    std::array<std::uint8_t, 16> pi_id();

    // --- devices ---
    /// Creates a device with a fresh random 32-byte secret. Names are unique among
    /// non-revoked devices (1..64 printable characters).
    NewPairing add_device(const std::string& name, const std::vector<std::string>& actions,
                          std::int64_t now, const crypto::TotpParams& totp = {});
    std::vector<DeviceInfo> list_devices(bool include_revoked = true);
    /// Finds by exact name (non-revoked first) or by id hex (full or a unique prefix of >= 6).
    std::optional<DeviceInfo> find_device(const std::string& name_or_id);
    void rename_device(const protocol::DeviceId& id, const std::string& new_name);
    void revoke_device(const protocol::DeviceId& id, std::int64_t now);
    void allow_actions(const protocol::DeviceId& id, const std::vector<std::string>& actions);
    void deny_actions(const protocol::DeviceId& id, const std::vector<std::string>& actions);
    /// The decrypted record (for the verifier and tests); nullopt if unknown.
    std::optional<auth::DeviceRecord> load_device(const protocol::DeviceId& id);
    auth::ReplayState replay_state(const protocol::DeviceId& id);

    // --- authorising commands ---
    /// In one IMMEDIATE transaction: loads the device, replay and rate state, runs
    /// auth::verify, writes the new state and an audit row, and commits. If any
    /// write fails the transaction is rolled back and the decision becomes
    /// Status::Internal, so the caller never runs an action whose state was not saved.
    Authorization authorize(const AuthorizeRequest& req);
    /// Completes the audit row of an accepted command once its action has ended.
    void complete_audit(std::int64_t audit_id, protocol::Status status, std::optional<int> exit_code,
                        std::int64_t duration_ms, std::int64_t now);
    /// Writes a single audit row for something that did not come through authorize
    /// (an owner's local run, a pairing event). Returns its id.
    std::int64_t audit_event(const std::string& transport, const std::optional<std::string>& device_hex,
                             const std::string& action, protocol::Status status,
                             const std::string& detail, std::int64_t now);
    std::vector<AuditEntry> audit(const AuditFilter& f);

    // --- settings (small key/value table for Pi-wide state) ---
    std::optional<std::string> setting(const std::string& key);
    void set_setting(const std::string& key, const std::string& value);

    // --- master key rotation ---
    /// Re-encrypts every secret under `next.current()` in one transaction. The
    /// caller writes the key file with both keys before and only the new one after.
    void reencrypt_all(const KeyRing& next);
    /// Replaces the in-memory key ring (after the key file changed).
    void set_keys(KeyRing keys);

    [[nodiscard]] const std::filesystem::path& path() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bzs::store
