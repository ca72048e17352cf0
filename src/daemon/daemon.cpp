// SPDX-License-Identifier: GPL-3.0-or-later
#include "daemon/daemon.h"

#include <systemd/sd-daemon.h>

#include <chrono>
#include <cstdlib>

#include "core/auth/verification_clock.h"
#include "core/crypto/crypto.h"
#include "core/protocol/names.h"
#include "core/protocol/pair_exchange.h"
#include "service/settings.h"
#include "service/state.h"
#include "util/clock.h"
#include "util/log.h"

namespace bzs::daemon {

namespace {

using util::log_debug;
using util::log_error;
using util::log_info;
using util::log_warning;

constexpr const char* kBleDisabled = "BLE disabled by configuration (ble.enabled = false)";

void report_problems(const actions::Registry& reg) {
    for (const auto& p : reg.problems()) {
        log_warning("actions: " + std::string(actions::problem_kind_name(p.kind)) + ": " +
                    (p.file.empty() ? reg.dir().string() : p.file) + ": " + p.reason);
    }
}

config::Config load_logged_config(const Options& options) {
    const auto path =
        config::select_config_path(options.config_flag, std::getenv("BLUEZSCRIPT_CONFIG"));
    auto cfg = config::load_config(path);
    util::set_log_level(cfg.daemon.log_level);
    log_info("config: " + path.string());
    return cfg;
}

std::unique_ptr<store::Store> open_logged_state(const config::Config& cfg) {
    auto store = service::open_state(cfg);
    log_info("state: " + cfg.daemon.state_dir.string() + " (database " + cfg.db_path().string() +
             ", master key " + cfg.keyfile_path().string() + ")");
    return store;
}

// The command service's clock: the real one, or the test hook's
// (BLUEZSCRIPT_TEST_CLOCK, docs/testing.md), announced loudly.
struct CommandClock {
    service::CommandService::Clock now = util::wall_clock_now;
    service::CommandService::SyncProbe synchronized = util::wall_clock_synchronized;
};

CommandClock command_clock() {
    const auto hook = util::parse_clock_test_hook(std::getenv("BLUEZSCRIPT_TEST_CLOCK"));
    if (!hook) {
        return {};
    }
    log_warning("BLUEZSCRIPT_TEST_CLOCK is set (a test hook): commands see the clock as " +
                std::string(hook->synchronized ? "synchronised" : "unsynchronised") +
                ", shifted by " + std::to_string(hook->shift_seconds) + " s");
    CommandClock c;
    c.now = [shift = hook->shift_seconds] { return util::wall_clock_now() + shift; };
    c.synchronized = [synced = hook->synchronized] { return synced; };
    return c;
}

service::CommandService make_command_service(store::Store& store,
                                             std::shared_ptr<const actions::Registry> registry,
                                             actions::Runner& runner, const config::Config& cfg) {
    CommandClock c = command_clock();
    return {store,        std::move(registry), runner,
            cfg.policy(), std::move(c.now),    std::move(c.synchronized)};
}

actions::RunnerOptions runner_options(const config::Config& cfg) {
    actions::RunnerOptions o;
    o.kill_grace = std::chrono::seconds(cfg.actions.kill_grace_seconds);
    return o;
}

web::BleSnapshot ble_snapshot(const bluez::Status& st) {
    web::BleSnapshot b;
    b.enabled = !st.disabled;
    b.summary = st.summary();
    b.adapter = st.adapter;
    b.powered = st.powered;
    b.advertising = st.advertising;
    b.connected = st.connected_devices;
    return b;
}

// The status the CLI's `bluezscript status` reads (the daemon is the only writer).
void store_ble_status(store::Store& store, const web::BleSnapshot& b) {
    service::BleStatus s;
    s.enabled = b.enabled;
    s.summary = b.summary;
    s.adapter = b.adapter;
    s.powered = b.powered;
    s.advertising = b.advertising;
    s.connected = b.connected.size();
    s.time = util::wall_clock_now();
    try {
        service::write_ble_status(store, s);
    } catch (const std::exception& e) {
        log_warning(std::string("cannot store the BLE status: ") + e.what());
    }
}

}  // namespace

Daemon::Daemon(const Options& options)
    : cfg_(load_logged_config(options)),
      store_(open_logged_state(cfg_)),
      registry_(std::make_shared<actions::Registry>(
          actions::Registry::load(cfg_.daemon.actions_dir, cfg_.actions))),
      runner_(loop_, runner_options(cfg_)),
      commands_(make_command_service(*store_, registry_, runner_, cfg_)),
      owner_(*store_, cfg_, {util::wall_clock_now, &util::log, nullptr}),
      to_loop_(loop_) {
    if (const auto closed = store_->close_unfinished_audit(); closed > 0) {
        log_warning("audit: " + std::to_string(closed) +
                    " action(s) were still running when the daemon last stopped; marked internal");
    }
    // Under systemd with WatchdogSec=, sd-event sends WATCHDOG=1 from the loop
    // itself, so only a loop that still turns keeps the service alive.
    if (sd_event_set_watchdog(loop_.native(), 1) > 0) {
        log_info("systemd watchdog enabled");
    }
    {
        // Read here, so that a damaged database or Pi key stops the start with
        // "cannot start: ..." before anything is served.
        std::size_t paired = 0;
        std::size_t pending = 0;
        for (const auto& d : store_->list_devices(false)) {
            (d.pending() ? pending : paired) += 1;
        }
        ready_line_ = "ready; devices paired: " + std::to_string(paired) +
                      ", waiting for their phone: " + std::to_string(pending);
        // What a pairing link's pk must be: lets an owner check a link by eye.
        key_line_ =
            "protocol 2; Pi key fingerprint " +
            core::crypto::hex_encode(core::protocol::key_fingerprint(store_->pi_public_key()));
    }
    report_problems(*registry_);
    log_info("actions: " + std::to_string(registry_->list().size()) + " in " +
             cfg_.daemon.actions_dir.string());
    const auto clock = commands_.clock();
    if (!clock.synchronized) {
        log_warning(
            "the system clock is not synchronised: commands are checked against the "
            "verification clock, " +
            std::to_string(clock.offset) +
            " s ahead of it, which authenticated phones may move forward "
            "(docs/protocol.md, section 7.6)");
    }
}

Daemon::~Daemon() {
    to_loop_.close();
}

int Daemon::run() {
    start_web();
    watch_signals();
    schedule_flush();
    std::string ble_status;
    if (!cfg_.ble.enabled) {
        ble_status = kBleDisabled;
        log_info(ble_status);
    } else {
        start_ble();
        ble_status = ble_->status().summary();
    }
    log_info(ready_line_);
    log_info(key_line_);
    sd_notifyf(0, "READY=1\nSTATUS=%s", ble_status.c_str());
    int status = 1;
    try {
        status = loop_.run();
    } catch (const std::exception& e) {
        log_error(std::string("fatal: ") + e.what());
    }
    flush_rate_summaries(/*all=*/true);  // every refused frame ends up in the audit
    return status;
}

void Daemon::schedule_flush() {
    flush_timer_ = loop_.add_timer_relative(kFlushInterval, [this] {
        flush_rate_summaries(/*all=*/false);
        remove_expired_pending();
        schedule_flush();
    });
}

void Daemon::remove_expired_pending() {
    try {
        // Judged on the system clock, as `pair add` set the code's expiry.
        for (const auto& name : store_->remove_expired_pending(util::wall_clock_now())) {
            log_info("device " + core::protocol::quote_for_message(name) +
                     " removed: its pairing code expired a day ago unused");
        }
    } catch (const std::exception& e) {
        log_warning(std::string("expired pending devices not removed: ") + e.what());
    }
}

void Daemon::flush_rate_summaries(bool all) {
    for (const auto& f : commands_.flush(all)) {
        if (f.error) {
            log_warning("cannot write the audit row \"" + f.detail + "\": " + *f.error);
        } else {
            log_warning("rate limit: " + f.detail);
        }
    }
}

// --- web UI ---

void Daemon::start_web() {
    if (!cfg_.web.enabled) {
        return;
    }
    try {
        if (!cfg_.web.https_address.empty()) {
            bool created = false;
            const auto fp = web::ensure_certificate(cfg_, &created);
            log_info(std::string("web: ") + (created ? "created a self-signed" : "using the") +
                     " TLS certificate " + cfg_.web_cert_path().string() +
                     ", SHA-256 fingerprint " + fp);
        }
        web::ServerOptions wo;
        wo.cfg = cfg_;
        wo.open_store = [this] { return service::open_state(cfg_); };
        wo.clock = util::wall_clock_now;
        wo.log = &util::log;
        wo.run_action = [this](const std::string& name) { return run_now_from_web(name); };
        // On a web worker: the sweep itself runs on the loop.
        wo.on_device_revoked = [this] {
            to_loop_.push([this] { sweep_bonds("a device was revoked in the web UI"); });
        };
        web_ = std::make_unique<web::Server>(std::move(wo));
        web_->set_registry(registry_);
        if (!cfg_.ble.enabled) {
            web::BleSnapshot b;
            b.summary = kBleDisabled;
            web_->set_ble(b);
            store_ble_status(*store_, b);
        }
        web_->start();
    } catch (const std::exception& e) {
        log_error(std::string("web UI not started: ") + e.what());
        web_.reset();
    }
}

// On a web worker thread: hands the run to the loop and waits for its answer (never
// touching the runner, the registry or the loop's store itself).
web::RunNowResult Daemon::run_now_from_web(const std::string& name) {
    auto done = std::make_shared<std::promise<web::RunNowResult>>();
    auto result = done->get_future();
    const bool queued = to_loop_.push([this, name, done] { run_now(name, done); });
    if (!queued || result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        return web::RunNowResult{false, "the daemon is stopping"};
    }
    try {
        return result.get();
    } catch (const std::future_error&) {
        return web::RunNowResult{false, "the daemon is stopping"};
    }
}

// On the loop: the owner service starts the action and audits it when it ends.
void Daemon::run_now(const std::string& name,
                     const std::shared_ptr<std::promise<web::RunNowResult>>& done) {
    const auto started = owner_.start_run(service::Origin::Web, runner_, *registry_, name, {});
    if (!started) {
        done->set_value({false, started.refused().message});
        return;
    }
    done->set_value({true, "started"});
}

// --- signals ---

void Daemon::watch_signals() {
    sigterm_ = loop_.add_signal(SIGTERM, [this](const signalfd_siginfo& si) {
        on_stop_signal(static_cast<int>(si.ssi_signo));
    });
    sigint_ = loop_.add_signal(SIGINT, [this](const signalfd_siginfo& si) {
        on_stop_signal(static_cast<int>(si.ssi_signo));
    });
    // SIGHUP re-reads the actions directory (new scripts, changed metadata) and
    // removes the bonds of devices revoked from the command line meanwhile.
    sighup_ = loop_.add_signal(SIGHUP, [this](const signalfd_siginfo&) {
        reload_actions();
        sweep_bonds("SIGHUP");
    });
}

void Daemon::exit_loop() {
    if (!exiting_) {
        exiting_ = true;
        loop_.exit(0);
    }
}

void Daemon::on_stop_signal(int signo) {
    if (stopping_) {
        log_info("signal " + std::to_string(signo) + " again: exiting now");
        exit_loop();
        return;
    }
    stopping_ = true;
    log_info("signal " + std::to_string(signo) + ": stopping");
    sd_notify(0, "STOPPING=1");
    // Drop queued web tasks first: a worker waiting on one is released at once.
    to_loop_.close();
    if (web_) {
        web_->stop();
    }
    if (ble_) {
        // Unregister from BlueZ first (bounded wait), then leave the loop.
        ble_->stop([this] { exit_loop(); });
    } else {
        exit_loop();
    }
}

void Daemon::reload_actions() {
    try {
        registry_ = std::make_shared<actions::Registry>(
            actions::Registry::load(cfg_.daemon.actions_dir, cfg_.actions));
    } catch (const std::exception& e) {
        log_error(std::string("actions not reloaded, keeping the previous set: ") + e.what());
        return;
    }
    commands_.set_registry(registry_);
    if (web_) {
        web_->set_registry(registry_);
    }
    report_problems(*registry_);
    log_info("actions reloaded: " + std::to_string(registry_->list().size()));
}

// --- BLE ---

void Daemon::start_ble() {
    // Never fatal: without a bus, bluetoothd or an adapter the peripheral waits and
    // says so in its status.
    ble_ = make_peripheral();
    ble_->start();
    arm_bond_sweep();
}

void Daemon::arm_bond_sweep() {
    // Replacing the Source from its own callback is allowed (loop/event_loop.h).
    bond_sweep_ = loop_.add_timer_relative(kBondSweepInterval, [this] {
        sweep_bonds("periodic check");
        arm_bond_sweep();
    });
}

void Daemon::sweep_bonds(const std::string& why) {
    if (!ble_ || stopping_) {
        return;
    }
    try {
        const auto todo = owner_.bonds_to_remove();
        if (!todo.empty()) {
            log_debug("BLE bonds of revoked devices to remove (" + why +
                      "): " + std::to_string(todo.size()));
        }
        for (const auto& removal : todo) {
            std::string names;
            for (const auto& d : removal.devices) {
                names += (names.empty() ? "" : ", ") + core::protocol::quote_for_message(d.name);
            }
            const std::string what = "BLE bond of " + names + " (" + removal.address + ")";
            ble_->remove_bond(
                removal.address, [this, removal, what](const bluez::BondRemovalResult& r) {
                    using Kind = bluez::BondRemovalResult::Kind;
                    switch (r.kind) {
                        case Kind::Removed:
                            try {
                                owner_.bond_removed(removal);  // audits and logs it
                            } catch (const std::exception& e) {
                                log_warning(what + " removed, but not recorded: " + e.what());
                            }
                            break;
                        case Kind::NoBond:
                            log_debug(what + ": BlueZ has no bond with it now");
                            break;
                        case Kind::Unavailable:
                            log_debug(what + " not removed yet: " + r.detail);
                            break;
                        case Kind::Failed:
                            log_warning(what + " not removed: " + r.detail +
                                        "; trying again at the next check");
                            break;
                    }
                });
        }
    } catch (const std::exception& e) {
        log_warning("BLE bonds of revoked devices not checked (" + why + "): " + e.what());
    }
}

void Daemon::publish_ble(const web::BleSnapshot& snapshot) {
    store_ble_status(*store_, snapshot);
    if (web_) {
        web_->set_ble(snapshot);
    }
}

// The owner's pairing window (service/settings.h), opened by `pair add` in the CLI
// or the web UI. Unreadable or damaged: closed.
bool Daemon::pairing_window_open() {
    try {
        const auto w = service::decode_pairing_window(
            store_->setting(service::kPairingWindowKey).value_or(""));
        if (!w) {
            log_warning(
                "pairing window unknown (treated as closed): the stored value is not a "
                "number of seconds");
            return false;
        }
        return w->open(util::wall_clock_now());
    } catch (const std::exception& e) {
        log_warning(std::string("pairing window unknown (treated as closed): ") + e.what());
        return false;
    }
}

// Wires the BLE peripheral to the command service, the store and systemd.
std::unique_ptr<bluez::Peripheral> Daemon::make_peripheral() {
    bluez::PeripheralOptions o;
    o.adapter = cfg_.ble.adapter;
    o.local_name = cfg_.advertised_name();
    o.pi_name = cfg_.daemon.pi_name;
    o.pi_id_hex = core::crypto::hex_encode(store_->pi_id());
    o.pi_key_hex = core::crypto::hex_encode(store_->pi_public_key());
    o.require_bonding = cfg_.ble.require_bonding;
    o.challenge_ttl_seconds = cfg_.ble.challenge_ttl_seconds;

    bluez::PeripheralHooks h;
    h.log = &util::log;
    h.clock = util::wall_clock_now;
    h.info_clock = [this] {
        const service::ClockReading c = commands_.clock();
        return bluez::InfoClock{c.now, c.synchronized};
    };
    h.pairing_window_open = [this] { return pairing_window_open(); };
    h.on_command = [this](const bluez::CommandRequest& req, const bluez::CommandReply& reply) {
        service::CommandContext ctx;
        ctx.transport = "ble";
        ctx.challenge = req.challenge;
        ctx.link = req.device_path;
        ctx.address = req.address;
        const std::string why = req.incomplete.empty() ? "" : " (" + req.incomplete + ")";
        commands_.handle(req.frame, ctx,
                         [peer = req.peer, why, reply](const core::protocol::Bytes& response,
                                                       const service::CommandOutcome& out) {
                             if (out.clock_advanced_by) {
                                 log_warning("clock advanced by " +
                                             core::auth::describe_duration(*out.clock_advanced_by) +
                                             " from the timestamp of device '" + out.device_name +
                                             "' (not synchronised)");
                             }
                             // A flood is summarised (flush); each frame only at debug.
                             const char* what = out.kind == service::RequestKind::Pair
                                                    ? "BLE pair request from "
                                                    : (out.kind == service::RequestKind::Catalogue
                                                           ? "BLE catalogue request from "
                                                           : "BLE command from ");
                             (out.summarised ? log_debug : log_info)(
                                 what + peer + ": device '" +
                                 (out.device_name.empty() ? "(unknown)" : out.device_name) +
                                 "', action '" + (out.action.empty() ? "-" : out.action) + "': " +
                                 std::string(core::protocol::status_name(out.status)) + why);
                             reply(response);
                         });
    };
    // Writes refused before they formed a frame are attempts too: audited, and
    // counted against the link's limit so that a flood of them stays cheap.
    h.on_bad_write = [this](const std::string& device_path, const std::string& peer,
                            const std::string& detail) {
        using BadWrite = service::CommandService::BadWrite;
        switch (commands_.bad_write(device_path, peer, detail)) {
            case BadWrite::Audited:
                log_warning("BLE " + peer + ": " + detail);
                break;
            case BadWrite::Summarised:  // the flush's summary row says it
                log_debug("BLE " + peer + ": " + detail);
                break;
            case BadWrite::AuditFailed:
                log_warning("BLE " + peer + ": " + detail +
                            " (the audit row could not be written)");
                break;
        }
    };
    h.on_passkey = [this](const bluez::PasskeyNotice& n) {
        // Kept for the web UI, which shows the owner the passkey of the phone pairing now.
        try {
            service::write_pending_passkey(
                *store_, {n.device_path, n.peer, n.passkey, n.kind, util::wall_clock_now()});
            log_debug("pairing passkey stored for the web UI");
        } catch (const std::exception& e) {
            log_warning(std::string("cannot store the pairing passkey: ") + e.what());
        }
    };
    h.on_pairing_cancelled = [this] {
        try {
            service::clear_pending_passkey(*store_);
        } catch (const std::exception& e) {
            log_warning(std::string("cannot clear the pairing passkey: ") + e.what());
        }
    };
    h.on_bonded_connection = [this](const std::string&) {
        sweep_bonds("a bonded device connected");
    };
    h.on_status = [this](const bluez::Status& st) {
        publish_ble(ble_snapshot(st));
        // The start-up sweep waits for BlueZ: before, it could not tell bonds apart.
        if (st.registered && !ble_registered_) {
            sweep_bonds("BLE ready");
        }
        ble_registered_ = st.registered;
        const std::string line = st.summary();
        if (!st.disabled) {  // the peripheral logged that one itself, as an error
            log_info(line);
        }
        sd_notifyf(0, "STATUS=%s", line.c_str());
    };
    return std::make_unique<bluez::Peripheral>(loop_, std::move(o), std::move(h));
}

}  // namespace bzs::daemon
