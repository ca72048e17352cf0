// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/owner.h"

#include <algorithm>

#include "core/crypto/crypto.h"
#include "core/protocol/link.h"
#include "core/protocol/names.h"
#include "core/protocol/pair_exchange.h"
#include "service/app_link.h"
#include "service/settings.h"
#include "service/state.h"
#include "util/clock.h"

namespace bzs::service {

namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

Refused unknown_action(const std::string& name) {
    // The name may be anything the owner typed: quoted with control bytes escaped.
    return {Refusal::UnknownAction,
            "There is no action named " + core::protocol::quote_for_message(name) + "."};
}

actions::RunContext owner_context(Origin who) {
    actions::RunContext ctx;
    ctx.device_name = "owner (" + std::string(origin_name(who)) + ")";
    ctx.transport = std::string(origin_name(who));
    ctx.request_id = core::crypto::hex_encode(core::crypto::random_bytes(16));
    return ctx;
}

/// The audit row of an owner's run, the same whoever asked.
void audit_run(store::Store& st, std::int64_t now, Origin who, const std::string& name,
               const actions::RunResult& r) {
    st.audit_event(std::string(origin_name(who)), std::nullopt, name,
                   actions::to_protocol_status(r.status),
                   "run by the owner from the " + std::string(origin_label(who)) + ": " +
                       std::string(actions::run_status_name(r.status)) + ", exit " +
                       std::to_string(r.exit_code),
                   now);
}

}  // namespace

std::string_view origin_name(Origin o) {
    return o == Origin::Web ? "web" : "cli";
}

std::string_view origin_label(Origin o) {
    return o == Origin::Web ? "web UI" : "command line";
}

Owner::Owner(store::Store& store, const config::Config& cfg, OwnerOptions options)
    : store_(store), cfg_(cfg), o_(std::move(options)) {
    if (!o_.clock) {
        o_.clock = util::wall_clock_now;
    }
}

void Owner::note(Origin who, const std::string& what) const {
    if (o_.log) {
        o_.log(util::LogLevel::Info, std::string(origin_name(who)) + ": " + what);
    }
}

std::optional<Refused> Owner::check_actions(const actions::Registry& registry,
                                            const std::vector<std::string>& names) const {
    for (const auto& n : names) {
        if (registry.find(n) == nullptr) {
            return unknown_action(n);
        }
    }
    return std::nullopt;
}

Result<store::DeviceInfo> Owner::current(const store::DeviceInfo& device) {
    auto d = store_.find_device(device.id_hex);
    if (!d) {
        return Refused{Refusal::StoreRefused, "The device " + device.id_hex + " is gone."};
    }
    return *d;
}

Result<Paired> Owner::pair(Origin who, const actions::Registry& registry, const std::string& name,
                           const std::vector<std::string>& wanted, std::string_view https_host) {
    if (name.empty()) {
        return Refused{Refusal::EmptyName, "Choose a name for the device."};
    }
    if (auto r = check_actions(registry, wanted)) {
        return *r;
    }
    const std::int64_t now = o_.clock();
    store::NewPairing np;
    try {
        np = store_.add_device(name, wanted, now, cfg_.pairing.window_seconds, cfg_.totp());
    } catch (const store::StoreError& e) {
        return Refused{Refusal::StoreRefused, e.what()};
    }
    Paired out = links_for(std::move(np), now, https_host);
    note(who, "device " + out.device.id_hex +
                  " created by the owner, pending until its phone pairs; code and BLE pairing "
                  "window open for " +
                  std::to_string(out.window_seconds) + " s");
    return out;
}

Result<Paired> Owner::new_code(Origin who, const store::DeviceInfo& device,
                               std::string_view https_host) {
    const std::string named = "device " + core::protocol::quote_for_message(device.name);
    if (device.revoked()) {
        return Refused{Refusal::AlreadyRevoked,
                       named + " is revoked; add it again to pair a phone"};
    }
    if (!device.pending()) {
        return Refused{
            Refusal::AlreadyPaired,
            named + " is already paired; revoke it and add it again to pair another phone"};
    }
    const std::int64_t now = o_.clock();
    store::NewPairing np;
    try {
        np = store_.new_code(device.id, now, cfg_.pairing.window_seconds);
    } catch (const store::StoreError& e) {
        return Refused{Refusal::StoreRefused, e.what()};
    }
    Paired out = links_for(std::move(np), now, https_host);
    note(who, "new pairing code for device " + out.device.id_hex + "; valid for " +
                  std::to_string(out.window_seconds) + " s");
    return out;
}

Paired Owner::links_for(store::NewPairing np, std::int64_t now, std::string_view https_host) {
    // Opens the BLE bonding window (docs/security.md) as long as the code works; a
    // passkey shown for an earlier bonding must not be offered for this one.
    write_pairing_window(store_, PairingWindow{np.code_expires});
    clear_pending_passkey(store_);

    core::protocol::PairingLink link;
    link.pi_id = store_.pi_id();
    link.pi_key = core::protocol::key_fingerprint(store_.pi_public_key());
    link.pi_name = cfg_.daemon.pi_name;
    link.device_id = np.device.id;
    link.code = std::move(np.code);
    link.totp = np.totp;
    link.label = np.device.name;
    Paired out;
    out.uri = core::protocol::link_to_uri(link);
    out.app_uri = app_pairing_link(link, cfg_, https_host);
    out.code_expires = np.code_expires;
    out.window_seconds = np.code_expires - now;
    out.device = std::move(np.device);
    return out;
}

Result<store::DeviceInfo> Owner::revoke(Origin who, const store::DeviceInfo& device) {
    if (device.revoked()) {
        return Refused{Refusal::AlreadyRevoked, "This device is already revoked."};
    }
    const std::int64_t now = o_.clock();
    try {
        store_.revoke_device(device.id, now);
    } catch (const store::StoreError& e) {
        return Refused{Refusal::StoreRefused, e.what()};
    }
    store_.audit_event(std::string(origin_name(who)), device.id_hex, "",
                       core::protocol::Status::Revoked,
                       "revoked by the owner (" + std::string(origin_label(who)) + ")", now);
    note(who, "device " + device.id_hex + " revoked by the owner");
    if (o_.on_revoked) {
        o_.on_revoked();
    }
    return current(device);
}

std::vector<BondRemoval> Owner::bonds_to_remove() {
    std::vector<BondRemoval> out;
    for (auto& d : store_.bonds_to_remove()) {
        const std::string address = d.ble_address.value_or("");
        auto it = std::find_if(out.begin(), out.end(),
                               [&address](const BondRemoval& b) { return b.address == address; });
        if (it == out.end()) {
            out.push_back(BondRemoval{address, {}});
            it = out.end() - 1;
        }
        it->devices.push_back(std::move(d));
    }
    return out;
}

void Owner::bond_removed(const BondRemoval& removal) {
    const std::int64_t now = o_.clock();
    store_.mark_bond_removed(removal.address, now);
    for (const auto& d : removal.devices) {
        // The name is the owner's text: quoted with control bytes escaped.
        const std::string what = "BLE bond of " + core::protocol::quote_for_message(d.name) + " (" +
                                 removal.address + ") removed";
        store_.audit_event("ble", d.id_hex, "", core::protocol::Status::Revoked, what, now);
        if (o_.log) {
            o_.log(util::LogLevel::Info, what);
        }
    }
}

Result<store::DeviceInfo> Owner::rename(Origin who, const store::DeviceInfo& device,
                                        const std::string& new_name) {
    if (new_name.empty()) {
        return Refused{Refusal::EmptyName, "The new name must not be empty."};
    }
    try {
        store_.rename_device(device.id, new_name);
    } catch (const store::StoreError& e) {
        return Refused{Refusal::StoreRefused, e.what()};
    }
    note(who, "device " + device.id_hex + " renamed by the owner");
    return current(device);
}

Result<store::DeviceInfo> Owner::set_permissions(Origin who, const actions::Registry& registry,
                                                 const store::DeviceInfo& device,
                                                 const std::vector<std::string>& wanted) {
    std::vector<std::string> gain;
    std::vector<std::string> lose;
    for (const auto& a : wanted) {
        if (!contains(device.actions, a) && !contains(gain, a)) {
            gain.push_back(a);
        }
    }
    if (auto r = check_actions(registry, gain)) {
        return *r;
    }
    for (const auto& a : device.actions) {
        if (!contains(wanted, a)) {
            lose.push_back(a);
        }
    }
    try {
        if (!gain.empty()) {
            store_.allow_actions(device.id, gain);
        }
        if (!lose.empty()) {
            store_.deny_actions(device.id, lose);
        }
    } catch (const store::StoreError& e) {
        return Refused{Refusal::StoreRefused, e.what()};
    }
    note(who, "permissions of device " + device.id_hex + " changed by the owner");
    return current(device);
}

Result<store::DeviceInfo> Owner::allow(Origin who, const actions::Registry& registry,
                                       const store::DeviceInfo& device,
                                       const std::vector<std::string>& actions) {
    auto wanted = device.actions;
    for (const auto& a : actions) {
        if (!contains(wanted, a)) {
            wanted.push_back(a);
        }
    }
    return set_permissions(who, registry, device, wanted);
}

Result<store::DeviceInfo> Owner::deny(Origin who, const actions::Registry& registry,
                                      const store::DeviceInfo& device,
                                      const std::vector<std::string>& actions) {
    std::vector<std::string> wanted;
    for (const auto& a : device.actions) {
        if (!contains(actions, a)) {
            wanted.push_back(a);
        }
    }
    return set_permissions(who, registry, device, wanted);
}

Result<const actions::Action*> Owner::check_run(const actions::Registry& registry,
                                                const std::string& name,
                                                const std::vector<std::string>& args) {
    const auto* action = registry.find(name);
    if (action == nullptr) {
        return unknown_action(name);
    }
    if (auto why = actions::check_arguments(*action, args)) {
        return Refused{Refusal::BadArguments, "arguments refused: " + *why};
    }
    return action;
}

Result<actions::RunResult> Owner::run_blocking(Origin who, const actions::Registry& registry,
                                               const std::string& name,
                                               const std::vector<std::string>& args,
                                               actions::RunnerOptions options) {
    const auto action = check_run(registry, name, args);
    if (!action) {
        return action.refused();
    }
    auto result = actions::run_blocking(**action, args, owner_context(who), options);
    audit_run(store_, o_.clock(), who, name, result);
    return result;
}

Result<std::uint64_t> Owner::start_run(Origin who, actions::Runner& runner,
                                       const actions::Registry& registry, const std::string& name,
                                       const std::vector<std::string>& args) {
    const auto action = check_run(registry, name, args);
    if (!action) {
        return action.refused();
    }
    // The callback outlives this call: it holds the store, clock and log, not `this`.
    const auto started = runner.start(
        **action, args, owner_context(who),
        [&st = store_, clock = o_.clock, log = o_.log, who, name](const actions::RunResult& r) {
            try {
                audit_run(st, clock(), who, name, r);
            } catch (const std::exception& e) {
                if (log) {
                    log(util::LogLevel::Warning,
                        std::string("cannot write the audit row: ") + e.what());
                }
            }
        });
    if (!started) {
        return Refused{Refusal::NotStarted, started.refusal.error};
    }
    return started.run_id;
}

}  // namespace bzs::service
