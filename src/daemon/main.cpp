// SPDX-License-Identifier: GPL-3.0-or-later
// `bluezscriptd`: loads the configuration, opens the private state, loads the
// actions directory, serves the GATT service over BLE (src/bluez) and runs the one
// event loop until SIGTERM/SIGINT.
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>

#include "actions/registry.h"
#include "actions/runner.h"
#include "bluez/peripheral.h"
#include "config/config.h"
#include "core/crypto/crypto.h"
#include "util/log.h"
#include "loop/cross_thread_queue.h"
#include "loop/event_loop.h"
#include "service/command_service.h"
#include "service/state.h"
#include "web/server.h"

namespace {

using bzs::util::log_debug;
using bzs::util::log_error;
using bzs::util::log_info;
using bzs::util::log_warning;

void report_problems(const bzs::actions::Registry& reg) {
    for (const auto& p : reg.problems()) {
        log_warning("actions: " + std::string(bzs::actions::problem_kind_name(p.kind)) + ": " +
                    (p.file.empty() ? reg.dir().string() : p.file) + ": " + p.reason);
    }
}

// The owner's pairing window: open while now < setting "pairing_window_until"
// (unix seconds, written by `bluezscript pair add`).
bool pairing_window_open(bzs::store::Store& store) {
    try {
        const auto until = store.setting("pairing_window_until");
        if (!until || until->empty()) {
            return false;
        }
        return bzs::service::wall_clock_now() < std::stoll(*until);
    } catch (const std::exception& e) {
        log_warning(std::string("pairing window unknown (treated as closed): ") + e.what());
        return false;
    }
}

// Wires the BLE peripheral to the command service, the store and systemd.
std::unique_ptr<bzs::bluez::Peripheral> make_peripheral(bzs::loop::EventLoop& loop,
                                                        const bzs::config::Config& cfg,
                                                        bzs::store::Store& store,
                                                        bzs::service::CommandService& commands,
                                                        std::function<void(const bzs::bluez::Status&)> publish) {
    bzs::bluez::PeripheralOptions o;
    o.adapter = cfg.ble.adapter;
    o.local_name = cfg.advertised_name();
    o.pi_name = cfg.daemon.pi_name;
    o.pi_id_hex = bzs::core::crypto::hex_encode(store.pi_id());
    o.require_bonding = cfg.ble.require_bonding;
    o.challenge_ttl_seconds = cfg.ble.challenge_ttl_seconds;

    bzs::bluez::PeripheralHooks h;
    h.log = &bzs::util::log;
    h.clock = bzs::service::wall_clock_now;
    h.pairing_window_open = [&store] { return pairing_window_open(store); };
    h.on_command = [&commands](const bzs::bluez::CommandRequest& req,
                               bzs::bluez::CommandReply reply) {
        bzs::service::CommandContext ctx;
        ctx.transport = "ble";
        ctx.challenge = req.challenge;
        commands.handle(req.frame, ctx,
                        [peer = req.peer, reply](const bzs::core::protocol::Bytes& response,
                                                 const bzs::service::CommandOutcome& out) {
                            // One line per command; never frame bytes or secrets.
                            log_info("BLE command from " + peer + ": device '" +
                                     (out.device_name.empty() ? "(unknown)" : out.device_name) +
                                     "', action '" + (out.action.empty() ? "-" : out.action) +
                                     "': " + std::string(bzs::core::protocol::status_name(out.status)));
                            reply(response);
                        });
    };
    // Writes refused before they formed a frame are attempts too: audit them.
    h.on_bad_write = [&store](const std::string& peer, const std::string& detail) {
        log_warning("BLE " + peer + ": " + detail);
        try {
            store.audit_event("ble", std::nullopt, "", bzs::core::protocol::Status::Malformed,
                              detail + " (from " + peer + ")", bzs::service::wall_clock_now());
        } catch (const std::exception& e) {
            log_warning(std::string("cannot write the audit row: ") + e.what());
        }
    };
    h.on_passkey = [&store](const bzs::bluez::PasskeyNotice& n) {
        // Kept for the web UI, which shows the owner the passkey of the phone pairing now.
        const nlohmann::json j = {{"device", n.device_path},
                                  {"peer", n.peer},
                                  {"passkey", n.passkey},
                                  {"kind", n.kind},
                                  {"time", bzs::service::wall_clock_now()}};
        try {
            store.set_setting("pairing_passkey", j.dump());
            log_debug("pairing passkey stored for the web UI");
        } catch (const std::exception& e) {
            log_warning(std::string("cannot store the pairing passkey: ") + e.what());
        }
    };
    h.on_pairing_cancelled = [&store] {
        try {
            store.set_setting("pairing_passkey", "");
        } catch (const std::exception& e) {
            log_warning(std::string("cannot clear the pairing passkey: ") + e.what());
        }
    };
    h.on_status = [publish = std::move(publish)](const bzs::bluez::Status& st) {
        publish(st);
        const std::string line = st.summary();
        if (!st.disabled) {  // the peripheral logged that one itself, as an error
            log_info(line);
        }
        sd_notifyf(0, "STATUS=%s", line.c_str());
    };
    return std::make_unique<bzs::bluez::Peripheral>(loop, std::move(o), std::move(h));
}

bzs::web::BleSnapshot ble_snapshot(const bzs::bluez::Status& st) {
    bzs::web::BleSnapshot b;
    b.enabled = !st.disabled;
    b.summary = st.summary();
    b.adapter = st.adapter;
    b.powered = st.powered;
    b.advertising = st.advertising;
    b.connected = st.connected_devices;
    return b;
}

// The status the CLI's `bluezscript status` reads (the daemon is the only writer).
void store_ble_status(bzs::store::Store& store, const bzs::web::BleSnapshot& b) {
    const nlohmann::json j = {{"enabled", b.enabled},       {"summary", b.summary},
                              {"adapter", b.adapter},       {"powered", b.powered},
                              {"advertising", b.advertising}, {"connected", b.connected.size()},
                              {"time", bzs::service::wall_clock_now()}};
    try {
        store.set_setting("ble_status", j.dump());
    } catch (const std::exception& e) {
        log_warning(std::string("cannot store the BLE status: ") + e.what());
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bluezscriptd: runs actions for paired phones over Bluetooth Low Energy"};
    std::string config_flag;
    app.add_option("-c,--config", config_flag,
                   "configuration file (default: $BLUEZSCRIPT_CONFIG, else "
                   "/etc/bluezscript/bluezscript.toml)");
    app.set_version_flag("--version", "bluezscriptd 0.1.0");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    // Files we create (database, key, WAL) are private whatever the caller's umask.
    ::umask(0077);
    // Signals become events of the loop; block them before anything else starts.
    bzs::loop::EventLoop::block_signals({SIGCHLD, SIGTERM, SIGINT, SIGHUP});

    bzs::config::Config cfg;
    std::unique_ptr<bzs::store::Store> store;
    std::shared_ptr<bzs::actions::Registry> registry;
    try {
        const auto path =
            bzs::config::select_config_path(config_flag, std::getenv("BLUEZSCRIPT_CONFIG"));
        cfg = bzs::config::load_config(path);
        bzs::util::set_log_level(cfg.daemon.log_level);
        log_info("config: " + path.string());
        store = bzs::service::open_state(cfg);
        log_info("state: " + cfg.daemon.state_dir.string() + " (database " +
                 cfg.db_path().string() + ", master key " + cfg.keyfile_path().string() + ")");
        registry = std::make_shared<bzs::actions::Registry>(
            bzs::actions::Registry::load(cfg.daemon.actions_dir, cfg.actions));
        if (const auto closed = store->close_unfinished_audit(); closed > 0) {
            log_warning("audit: " + std::to_string(closed) +
                        " action(s) were still running when the daemon last stopped; marked internal");
        }
    } catch (const std::exception& e) {
        log_error(std::string("cannot start: ") + e.what());
        sd_notifyf(0, "STATUS=cannot start: %s", e.what());
        return 1;
    }

    bzs::loop::EventLoop loop;
    // Under systemd with WatchdogSec=, sd-event sends WATCHDOG=1 from the loop
    // itself, so only a loop that still turns keeps the service alive.
    if (sd_event_set_watchdog(loop.native(), 1) > 0) {
        log_info("systemd watchdog enabled");
    }
    report_problems(*registry);
    log_info("actions: " + std::to_string(registry->list().size()) + " in " +
             cfg.daemon.actions_dir.string());

    bzs::actions::RunnerOptions runner_options;
    runner_options.kill_grace = std::chrono::seconds(cfg.actions.kill_grace_seconds);
    bzs::actions::Runner runner(loop, runner_options);
    bzs::service::CommandService commands(*store, registry, runner, cfg.policy(),
                                          bzs::service::wall_clock_now);

    // Web worker threads hand "run now" to this loop through the queue (never
    // touching the runner, the registry or the loop's store themselves).
    bzs::loop::CrossThreadQueue to_loop(loop);
    std::unique_ptr<bzs::web::Server> web;
    if (cfg.web.enabled) {
        try {
            if (!cfg.web.https_address.empty()) {
                bool created = false;
                const auto fp = bzs::web::ensure_certificate(cfg, &created);
                log_info(std::string("web: ") + (created ? "created a self-signed" : "using the") +
                         " TLS certificate " + cfg.web_cert_path().string() +
                         ", SHA-256 fingerprint " + fp);
            }
            bzs::web::ServerOptions wo;
            wo.cfg = cfg;
            wo.open_store = [&cfg] { return bzs::service::open_state(cfg); };
            wo.clock = bzs::service::wall_clock_now;
            wo.log = &bzs::util::log;
            wo.run_action = [&](const std::string& name) {
                auto done = std::make_shared<std::promise<bzs::web::RunNowResult>>();
                auto result = done->get_future();
                const bool queued = to_loop.push([&, name, done] {
                    const auto* action = registry->find(name);
                    if (action == nullptr) {
                        done->set_value({false, "no such action"});
                        return;
                    }
                    bzs::actions::RunContext ctx;
                    ctx.device_name = "owner (web)";
                    ctx.transport = "web";
                    auto& st = *store;
                    const auto started = runner.start(
                        *action, {}, ctx, [&st, name](const bzs::actions::RunResult& r) {
                            try {
                                st.audit_event("web", std::nullopt, name,
                                               bzs::actions::to_protocol_status(r.status),
                                               "run by the owner from the web UI: " +
                                                   std::string(bzs::actions::run_status_name(r.status)) +
                                                   ", exit " + std::to_string(r.exit_code),
                                               bzs::service::wall_clock_now());
                            } catch (const std::exception& e) {
                                log_warning(std::string("cannot write the audit row: ") + e.what());
                            }
                        });
                    if (!started) {
                        done->set_value({false, started.refusal.error});
                        return;
                    }
                    done->set_value({true, "started"});
                });
                if (!queued || result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
                    return bzs::web::RunNowResult{false, "the daemon is stopping"};
                }
                try {
                    return result.get();
                } catch (const std::future_error&) {
                    return bzs::web::RunNowResult{false, "the daemon is stopping"};
                }
            };
            web = std::make_unique<bzs::web::Server>(std::move(wo));
            web->set_registry(registry);
            if (!cfg.ble.enabled) {
                bzs::web::BleSnapshot b;
                b.summary = "BLE disabled by configuration (ble.enabled = false)";
                web->set_ble(b);
                store_ble_status(*store, b);
            }
            web->start();
        } catch (const std::exception& e) {
            log_error(std::string("web UI not started: ") + e.what());
            web.reset();
        }
    }

    // Declared after everything it calls into, so it is destroyed first.
    std::unique_ptr<bzs::bluez::Peripheral> ble;

    bool stopping = false;
    bool exiting = false;
    auto exit_loop = [&] {
        if (!exiting) {
            exiting = true;
            loop.exit(0);
        }
    };
    auto stop = [&](const signalfd_siginfo& si) {
        if (stopping) {
            log_info("signal " + std::to_string(si.ssi_signo) + " again: exiting now");
            exit_loop();
            return;
        }
        stopping = true;
        log_info("signal " + std::to_string(si.ssi_signo) + ": stopping");
        sd_notify(0, "STOPPING=1");
        // Drop queued web tasks first: a worker waiting on one is released at once.
        to_loop.close();
        if (web) {
            web->stop();
        }
        if (ble) {
            // Unregister from BlueZ first (bounded wait), then leave the loop.
            ble->stop(exit_loop);
        } else {
            exit_loop();
        }
    };
    auto s_term = loop.add_signal(SIGTERM, stop);
    auto s_int = loop.add_signal(SIGINT, stop);
    // SIGHUP re-reads the actions directory (new scripts, changed metadata).
    auto s_hup = loop.add_signal(SIGHUP, [&](const signalfd_siginfo&) {
        try {
            registry = std::make_shared<bzs::actions::Registry>(
                bzs::actions::Registry::load(cfg.daemon.actions_dir, cfg.actions));
        } catch (const std::exception& e) {
            log_error(std::string("actions not reloaded, keeping the previous set: ") + e.what());
            return;
        }
        commands.set_registry(registry);
        if (web) {
            web->set_registry(registry);
        }
        report_problems(*registry);
        log_info("actions reloaded: " + std::to_string(registry->list().size()));
    });

    std::string ble_status;
    if (!cfg.ble.enabled) {
        ble_status = "BLE disabled by configuration (ble.enabled = false)";
        log_info(ble_status);
    } else {
        // Never fatal: without a bus, bluetoothd or an adapter the peripheral waits
        // and says so in its status.
        ble = make_peripheral(loop, cfg, *store, commands, [&](const bzs::bluez::Status& st) {
            const auto snap = ble_snapshot(st);
            store_ble_status(*store, snap);
            if (web) {
                web->set_ble(snap);
            }
        });
        ble->start();
        ble_status = ble->status().summary();
    }
    log_info("ready; devices paired: " + std::to_string(store->list_devices(false).size()));
    sd_notifyf(0, "READY=1\nSTATUS=%s", ble_status.c_str());

    try {
        return loop.run();
    } catch (const std::exception& e) {
        log_error(std::string("fatal: ") + e.what());
        return 1;
    }
}
