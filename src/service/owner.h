// SPDX-License-Identifier: GPL-3.0-or-later
// The owner's operations, written once for every front end: `bluezscript` (cli/),
// the web UI (web/) and the daemon's run-now path all call these, so a pairing
// opens the same window, a revocation writes the same audit row and a refusal
// carries the same message whoever asked. Finding the device an owner means is
// left to the front end (a name or id prefix on the command line, an exact id in a
// URL); everything after that happens here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "actions/registry.h"
#include "actions/runner.h"
#include "config/config.h"
#include "store/store.h"
#include "util/log.h"

namespace bzs::service {

/// Who asked: the audit row's transport and the words its detail uses.
enum class Origin {
    Cli,  ///< `bluezscript`, on the Pi
    Web,  ///< the web UI or its JSON API
};

/// "cli" or "web" (the audit transport and the log prefix).
std::string_view origin_name(Origin o);
/// "command line" or "web UI" (the audit detail).
std::string_view origin_label(Origin o);

/// Why an owner's request was refused. The front end picks its exit code or HTTP
/// status from this; the message is shown as it is.
enum class Refusal {
    EmptyName,       ///< a device name is required
    UnknownAction,   ///< no action of that name in the actions folder
    BadArguments,    ///< the action does not take these arguments
    AlreadyRevoked,  ///< the device is revoked already
    AlreadyPaired,   ///< a new code for a device whose phone has paired
    StoreRefused,    ///< the store refused the change (name taken, name too long, ...)
    NotStarted,      ///< the runner refused to start the action (busy, exec failed)
};

/// A refusal and the sentence for the owner (never contains a secret).
struct Refused {
    Refusal kind = Refusal::StoreRefused;
    std::string message;
};

/// A value, or why not. Expected refusals come back this way; only failures the
/// owner cannot fix by asking differently (database, key file) are thrown.
template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Refused r) : refused_(std::move(r)) {}  // NOLINT: implicit by design
    [[nodiscard]] explicit operator bool() const { return value_.has_value(); }
    [[nodiscard]] T& operator*() { return *value_; }
    [[nodiscard]] const T& operator*() const { return *value_; }
    [[nodiscard]] T* operator->() { return &*value_; }
    [[nodiscard]] const T* operator->() const { return &*value_; }
    /// Valid only when !*this.
    [[nodiscard]] const Refused& refused() const { return refused_; }

  private:
    std::optional<T> value_;
    Refused refused_;
};

/// What pair() and new_code() give the owner: the pending device and its links,
/// which carry the one-time code (shown once, never stored in clear).
struct Paired {
    store::DeviceInfo device;
    std::string uri;                ///< the canonical bluezscript://pair?v=2&... link
    std::string app_uri;            ///< the app link (service/app_link.h); "" when no app is served
    std::int64_t code_expires = 0;  ///< unix seconds: the code works until then, once
    std::int64_t window_seconds = 0;  ///< how long the BLE bonding window stays open
    /// What a QR code should carry: the app link when there is one, else the uri.
    [[nodiscard]] const std::string& qr_link() const { return app_uri.empty() ? uri : app_uri; }
};

/// Clock and log for an Owner. Without a clock, util::wall_clock_now(); without a log,
/// nothing is logged (the CLI tells the owner itself).
struct OwnerOptions {
    std::function<std::int64_t()> clock;
    util::LogFn log;
    /// Called after a device was revoked (the daemon then removes its BLE bond at
    /// once); the CLI, a separate process, leaves it empty: the daemon's sweep finds
    /// its revocations (docs/ble.md).
    std::function<void()> on_revoked;
};

/// A BLE bond to remove: BlueZ's bond with `address`, which revoked devices used.
struct BondRemoval {
    std::string address;                     ///< "AA:BB:CC:DD:EE:FF"
    std::vector<store::DeviceInfo> devices;  ///< the revoked devices it served, oldest first
};

/// The owner's operations on one store connection (not thread-safe, like the store).
class Owner {
  public:
    Owner(store::Store& store, const config::Config& cfg, OwnerOptions options = {});

    /// Creates a pending device with the given actions (each must be in `registry`)
    /// and a one-time code valid pairing.window_seconds, opens the BLE bonding
    /// window for as long and forgets the passkey of any earlier bonding.
    /// `https_host`: the Host header of the owner's HTTPS request, for the app
    /// link (service/app_link.h).
    Result<Paired> pair(Origin who, const actions::Registry& registry, const std::string& name,
                        const std::vector<std::string>& actions, std::string_view https_host = {});
    /// A new code for a pending device (its old code stops working), with the
    /// same window as pair(). Refused for a paired (AlreadyPaired) or revoked
    /// (AlreadyRevoked) device.
    Result<Paired> new_code(Origin who, const store::DeviceInfo& device,
                            std::string_view https_host = {});
    /// Revokes and audits it (status revoked, "revoked by the owner (<label>)").
    /// Returns the device as it is now.
    Result<store::DeviceInfo> revoke(Origin who, const store::DeviceInfo& device);
    Result<store::DeviceInfo> rename(Origin who, const store::DeviceInfo& device,
                                     const std::string& new_name);
    /// Makes `wanted` the device's permitted actions. Actions it gains must be in
    /// `registry`; ones it keeps or loses need not be.
    Result<store::DeviceInfo> set_permissions(Origin who, const actions::Registry& registry,
                                              const store::DeviceInfo& device,
                                              const std::vector<std::string>& wanted);
    /// set_permissions with the device's actions plus `actions`.
    Result<store::DeviceInfo> allow(Origin who, const actions::Registry& registry,
                                    const store::DeviceInfo& device,
                                    const std::vector<std::string>& actions);
    /// set_permissions with the device's actions minus `actions`.
    Result<store::DeviceInfo> deny(Origin who, const actions::Registry& registry,
                                   const store::DeviceInfo& device,
                                   const std::vector<std::string>& actions);

    /// The bonds of revoked devices still to remove (store::Store::bonds_to_remove),
    /// one entry per address.
    std::vector<BondRemoval> bonds_to_remove();
    /// Records that the bond is gone: for each device, its removal time and an audit
    /// row ("BLE bond of NAME (ADDRESS) removed"); and a log line.
    void bond_removed(const BondRemoval& removal);

    /// The action a run-now names, if it exists and takes `args`.
    static Result<const actions::Action*> check_run(const actions::Registry& registry,
                                                    const std::string& name,
                                                    const std::vector<std::string>& args);
    /// Runs the action here to its end (the CLI's `actions run`) and audits it.
    Result<actions::RunResult> run_blocking(Origin who, const actions::Registry& registry,
                                            const std::string& name,
                                            const std::vector<std::string>& args,
                                            actions::RunnerOptions options);
    /// Starts the action on `runner` (the daemon's run-now, on its loop); the audit
    /// row is written when it ends, through this Owner's store, which must outlive
    /// the run (or the runner). Returns the run id.
    Result<std::uint64_t> start_run(Origin who, actions::Runner& runner,
                                    const actions::Registry& registry, const std::string& name,
                                    const std::vector<std::string>& args);

  private:
    /// Links and bonding window for a code the store just made.
    Paired links_for(store::NewPairing np, std::int64_t now, std::string_view https_host);
    void note(Origin who, const std::string& what) const;
    std::optional<Refused> check_actions(const actions::Registry& registry,
                                         const std::vector<std::string>& names) const;
    Result<store::DeviceInfo> current(const store::DeviceInfo& device);

    store::Store& store_;
    const config::Config& cfg_;
    OwnerOptions o_;
};

}  // namespace bzs::service
