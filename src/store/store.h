// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing store: one SQLite database (WAL, foreign keys, versioned schema)
// holding devices, their permissions and replay state, Pi-wide settings and
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

#include "core/auth/verifier.h"
#include "core/crypto/crypto.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"
#include "store/keyfile.h"

namespace bzs::store {

/// Any database failure. Messages name the operation, never secret values.
class StoreError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Where a device is in its life: created with a one-time pairing code
/// (pending), paired by the exchange (active), or revoked.
enum class DeviceState { Pending, Active, Revoked };
/// "pending", "active", "revoked".
const char* device_state_name(DeviceState s);

/// A device as listed to owners (no secret).
struct DeviceInfo {
    core::protocol::DeviceId id{};
    std::string id_hex;
    std::string name;
    std::int64_t created = 0;
    std::optional<std::int64_t> last_used;
    std::optional<std::int64_t> revoked_at;
    std::vector<std::string> actions;  ///< permitted, sorted
    /// The BLE address its last accepted command came from, if any (schema 5).
    std::optional<std::string> ble_address;
    /// When the daemon removed BlueZ's bond for that address after the revocation.
    std::optional<std::int64_t> ble_bond_removed_at;
    /// When the pairing exchange completed; nullopt while pending (schema 6).
    std::optional<std::int64_t> paired_at;
    /// Pending devices: when their current code stops working.
    std::optional<std::int64_t> code_expires;
    core::crypto::TotpParams totp;  ///< its TOTP parameters (alg, digits, period)
    [[nodiscard]] bool revoked() const { return revoked_at.has_value(); }
    [[nodiscard]] bool pending() const { return !revoked() && !paired_at.has_value(); }
    [[nodiscard]] DeviceState state() const {
        return revoked() ? DeviceState::Revoked
                         : (pending() ? DeviceState::Pending : DeviceState::Active);
    }
};

/// What `add_device` and `new_code` return: everything a pairing link needs.
struct NewPairing {
    DeviceInfo device;
    /// The one-time pairing code (core::protocol::kPairCodeLen bytes): shown once
    /// to the owner in the link, kept only Fernet-encrypted until used.
    core::crypto::SecretBytes code;
    std::int64_t code_expires = 0;
    core::crypto::TotpParams totp;
};

/// A pending device as the pairing exchange needs it (the code decrypted).
struct PendingRecord {
    core::protocol::DeviceId id{};
    std::string name;
    core::crypto::SecretBytes code;
    std::int64_t code_expires = 0;
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
    std::string request_id;  ///< hex, unique per attempt
    /// False while an accepted command's action is still running (see complete_audit).
    bool completed = true;
};

/// Selects audit rows, newest first. Bad values (unknown device or status name,
/// negative limit/offset) throw StoreError.
struct AuditFilter {
    std::optional<std::string> device;  ///< as find_device, or any full 32-char id hex
    std::optional<bool> accepted;       ///< true: only status "ok"; false: only refusals/failures
    std::optional<std::string> status;  ///< a protocol::status_name ("bad_mac")
    std::optional<std::int64_t> since;  ///< unix seconds, inclusive
    std::int64_t limit = 50;            ///< 0 = no limit
    std::int64_t offset = 0;
};

/// The result of authorising one request frame (command, catalogue or pair):
/// the verifier's decision plus what the caller needs to run the action and seal
/// the response.
struct Authorization {
    core::auth::Decision decision;
    std::int64_t audit_id = 0;
    std::string request_id;
    std::optional<DeviceInfo> device;  ///< when the frame named a known device
    /// The key that seals the answer (the device's response key, or the pairing
    /// code's for a pair request); empty when the answer must be a plain refusal
    /// because the sender did not authenticate.
    core::crypto::SecretBytes response_key;
};

/// A request to authorise: frame bytes plus the transport's context.
struct AuthorizeRequest {
    core::protocol::ByteView frame;
    std::int64_t now = 0;  ///< the verification clock V; also the audit rows' time
    /// The system clock: a pairing code's window is judged on it, as `pair add`
    /// measured it (V may run ahead of it on a Pi without time sync). 0: use `now`.
    std::int64_t system_now = 0;
    /// False when the Pi's clock is not synchronised (VerifyInput::clock_synchronized).
    bool clock_synchronized = true;
    std::optional<core::protocol::Nonce> expected_challenge;
    std::string transport = "ble";
    core::auth::ActionLookup actions;
    core::auth::Policy policy;
};

/// A signed-in web UI session. Only the SHA-256 (hex) of the cookie's token is stored.
struct WebSession {
    std::string token_hash;  ///< 64 hex digits
    std::string csrf;        ///< the session's CSRF token (sent in forms and X-CSRF-Token)
    std::int64_t created = 0;
    std::int64_t last_seen = 0;
    std::string client;  ///< the address it signed in from (shown to the owner)
};

/// One connection to the database; not thread-safe (use one Store per thread).
/// Methods throw StoreError (database) or KeyFileError (keys) with a message
/// that names what failed and never contains a secret.
class Store {
  public:
    /// Opens (creating 0600 if needed) the database, checks it is private to this
    /// user (require_private), and migrates it to the current schema. Loads the
    /// master keys with load_or_create_keyfile(keyfile_path); when a secret's key
    /// id is not loaded (the CLI rotated keys meanwhile), the key file is read again.
    Store(const std::filesystem::path& db_path, const std::filesystem::path& keyfile_path);
    /// Same, with a fixed key ring and no key file to reload (tests, tools).
    Store(const std::filesystem::path& db_path, KeyRing keys);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    static int schema_version_current();
    [[nodiscard]] int schema_version() const;

    // --- Pi identity ---
    /// The Pi's long-term id, created on first use.
    std::array<std::uint8_t, 16> pi_id();
    /// The Pi's static P-256 public key (65 bytes, 04||X||Y), the key pair created
    /// on first use; the private scalar is kept Fernet-encrypted in the settings
    /// table (re-encrypted by key rotation).
    core::protocol::PublicKey pi_public_key();
    /// The private scalar (32 bytes) of that key, for the pairing exchange.
    core::crypto::SecretBytes pi_private_key();

    // --- devices ---
    /// Creates a pending device with a fresh one-time pairing code that works
    /// until now + code_seconds. Names are unique among non-revoked devices
    /// (pending included; core::protocol::device_name_problem).
    NewPairing add_device(const std::string& name, const std::vector<std::string>& actions,
                          std::int64_t now, std::int64_t code_seconds,
                          const core::crypto::TotpParams& totp = {});
    /// A new code for a pending device (the old one stops working at once), valid
    /// until now + code_seconds. StoreError for an unknown, active or revoked device.
    NewPairing new_code(const core::protocol::DeviceId& id, std::int64_t now,
                        std::int64_t code_seconds);
    /// The pending device with this id and its decrypted code; nullopt when the
    /// device is unknown, active or revoked.
    std::optional<PendingRecord> load_pending(const core::protocol::DeviceId& id);
    /// Deletes pending devices whose code expired at least `grace_seconds` before
    /// `now` (one audit row each, "pairing code expired unused"); returns their
    /// names.
    std::vector<std::string> remove_expired_pending(std::int64_t now,
                                                    std::int64_t grace_seconds = 86'400);
    std::vector<DeviceInfo> list_devices(bool include_revoked = true);
    /// Finds by exact name (the active device first, else a single revoked one) or
    /// by id hex (full or a prefix of >= 6, case-insensitive). nullopt when nothing
    /// matches; StoreError when the name or prefix matches several devices.
    std::optional<DeviceInfo> find_device(const std::string& name_or_id);
    /// Renames, revokes, allows, denies: StoreError for an unknown device or a bad
    /// name/action. Revoking twice and allowing on a revoked device are errors;
    /// denying an action that is not allowed is not.
    void rename_device(const core::protocol::DeviceId& id, const std::string& new_name);
    void revoke_device(const core::protocol::DeviceId& id, std::int64_t now);
    void allow_actions(const core::protocol::DeviceId& id, const std::vector<std::string>& actions);
    void deny_actions(const core::protocol::DeviceId& id, const std::vector<std::string>& actions);
    /// Deletes a revoked device and (by foreign-key cascade) its permissions, so
    /// its encrypted secret is gone for good. Audit rows keep its id. StoreError
    /// if unknown or not revoked yet.
    void remove_device(const core::protocol::DeviceId& id);
    /// Remembers the BLE address ("AA:BB:CC:DD:EE:FF", any case; stored upper
    /// case) an accepted command of the device came from. StoreError for an unknown
    /// device or an address of another form.
    void set_device_address(const core::protocol::DeviceId& id, const std::string& address);
    /// Revoked devices whose BLE bond is still to be removed: address known,
    /// removal not recorded, and no device that is not revoked has the same address
    /// (the phone was paired again: the bond is that device's now). Oldest first.
    std::vector<DeviceInfo> bonds_to_remove();
    /// Records that the bond of every revoked device with this address (any case)
    /// is gone; returns how many rows changed.
    std::int64_t mark_bond_removed(const std::string& address, std::int64_t now);
    /// The decrypted record (for the verifier and tests); nullopt if unknown.
    /// A pending device's record has pending = true and no secret.
    std::optional<core::auth::DeviceRecord> load_device(const core::protocol::DeviceId& id);
    /// StoreError for an unknown device.
    core::auth::ReplayState replay_state(const core::protocol::DeviceId& id);
    /// True when `frame` is a command or catalogue request of an active device
    /// whose seal opens under its request key (core::auth::authenticates), or a
    /// pair request of a pending device whose seal opens under its code's key.
    /// Read-only: no write transaction, no audit row; false (never throws) on any
    /// database failure.
    bool authenticates(core::protocol::ByteView frame);

    // --- authorising requests ---
    /// In one IMMEDIATE transaction: loads what the request needs (an active
    /// device's record and replay state; for a pair request the pending device,
    /// its code and the Pi's key), runs core::auth::verify or verify_pair, writes
    /// the new state and an audit row, and commits. An accepted command or
    /// catalogue request, or a clock advance, also raises the persisted clock floor
    /// (clock_floor) to the V it used; a clock advance gets its own audit row,
    /// written before the request's. An accepted pair request stores the derived
    /// secret (Fernet), marks the device active and its code used, in the same
    /// transaction. If any write fails the transaction is rolled back and the
    /// decision becomes Status::Internal, so the caller never runs an action
    /// whose state was not saved.
    /// Never throws: any failure to read or save state (or to decrypt a secret)
    /// yields Status::Internal with detail "could not save state: ...", after
    /// which a best-effort audit row (its own transaction) records it.
    /// Accepted commands get an audit row with completed = false; catalogue
    /// requests are not audited unless refused. The response key is set exactly
    /// when the request's seal opened (Decision::sealed_reply).
    /// The device's record gets policy.totp_window as its TOTP window.
    Authorization authorize(const AuthorizeRequest& req);
    /// Completes the audit row of an accepted command once its action has ended
    /// (StoreError if the row does not exist or is already complete).
    void complete_audit(std::int64_t audit_id, core::protocol::Status status,
                        std::optional<int> exit_code, std::int64_t duration_ms, std::int64_t now);
    /// Marks rows of actions that never completed (the daemon stopped or crashed
    /// while they ran) as internal with a note. Called once at daemon start.
    /// Returns how many rows it closed.
    std::int64_t close_unfinished_audit();
    /// Writes a single audit row for something that did not come through authorize
    /// (an owner's local run, a pairing event). Returns its id.
    std::int64_t audit_event(const std::string& transport,
                             const std::optional<std::string>& device_hex,
                             const std::string& action, core::protocol::Status status,
                             const std::string& detail, std::int64_t now);
    std::vector<AuditEntry> audit(const AuditFilter& f);

    // --- the verification clock's floor (core/auth/verification_clock.h) ---
    /// The latest V of an accepted command or clock advance; 0 before any.
    std::int64_t clock_floor();

    // --- settings (small key/value table for Pi-wide state) ---
    std::optional<std::string> setting(const std::string& key);
    void set_setting(const std::string& key, const std::string& value);

    // --- web UI sessions and sign-in attempts (schema 3) ---
    /// StoreError if the hash is not 64 characters or already exists.
    void create_session(const WebSession& s);
    /// The session with this token hash if it has been used within `idle_seconds`
    /// and is younger than `absolute_seconds`; its last_seen becomes `now`. An
    /// expired session is deleted and nullopt returned.
    std::optional<WebSession> touch_session(const std::string& token_hash, std::int64_t now,
                                            std::int64_t idle_seconds,
                                            std::int64_t absolute_seconds);
    void delete_session(const std::string& token_hash);
    /// Signs everyone out (after a password change); returns how many sessions ended.
    std::int64_t delete_all_sessions();
    std::int64_t count_sessions();
    /// Failed sign-ins from `client` at or after `since`.
    std::int64_t signin_failures_since(const std::string& client, std::int64_t since);
    /// Records one failed sign-in (and forgets failures older than a day).
    void record_signin_failure(const std::string& client, std::int64_t now);
    void clear_signin_failures(const std::string& client);

    // --- master key rotation ---
    /// Re-encrypts every secret under `next.current()` in one transaction. The
    /// caller writes the key file with both keys before and only the new one after
    /// (rotate_keyfile). Afterwards this Store uses `next`.
    void reencrypt_all(const KeyRing& next);
    /// Replaces the in-memory key ring (after the key file changed).
    void set_keys(KeyRing keys);
    [[nodiscard]] const KeyRing& keys() const;

    [[nodiscard]] const std::filesystem::path& path() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bzs::store
