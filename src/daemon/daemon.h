// SPDX-License-Identifier: GPL-3.0-or-later
// bluezscriptd's pieces and their wiring: one object that owns the configuration,
// the store, the actions, the event loop and everything attached to it, built in
// dependency order and torn down in the reverse.
//
// Which thread owns what:
//  - The sd-event loop thread (the one that calls run()) owns everything here: the
//    store connection `store_`, the registry pointer `registry_`, the runner and the
//    command service, the owner service, the BLE peripheral and the signal sources.
//    Every callback of theirs (D-Bus, timers, child exits, signals) runs on it.
//  - The web server's worker threads (web::Server) never touch those. Each opens its
//    own store connection (ServerOptions::open_store), reads the registry and BLE
//    snapshots the loop publishes (Server::set_registry, set_ble; copied under the
//    server's mutex), and hands "run now" to the loop through loop::CrossThreadQueue
//    `to_loop_`, waiting on a future for the answer.
//  - Action processes run outside the daemon altogether: the runner forks them in
//    their own process groups and learns of their end through SIGCHLD on the loop.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "actions/registry.h"
#include "actions/runner.h"
#include "bluez/peripheral.h"
#include "config/config.h"
#include "loop/cross_thread_queue.h"
#include "loop/event_loop.h"
#include "service/command_service.h"
#include "service/owner.h"
#include "store/store.h"
#include "web/server.h"

namespace bzs::daemon {

/// What main() parsed from the command line.
struct Options {
    std::string config_flag;  ///< --config; empty = $BLUEZSCRIPT_CONFIG or the default
};

/// How often the daemon looks for revoked devices whose BLE bond is still there
/// (revocations from the CLI, a separate process, and removals that failed).
inline constexpr std::chrono::seconds kBondSweepInterval{30};

class Daemon {
  public:
    /// How often summaries of refused frames are written (their windows are 60 s).
    static constexpr std::chrono::seconds kFlushInterval{10};

    /// Loads the configuration, opens the private state, loads the actions and
    /// attaches the runner to a new event loop. Throws (with a message for the
    /// owner) when the daemon cannot start. The caller has set the umask and
    /// blocked SIGCHLD, SIGTERM, SIGINT and SIGHUP (loop::EventLoop::block_signals).
    explicit Daemon(const Options& options);
    /// Drops queued web tasks first, so no web worker waits on a loop that has gone.
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    /// Starts the web UI and BLE, tells systemd READY=1 and runs the loop until
    /// SIGTERM/SIGINT. Returns the process exit status.
    int run();

  private:
    void start_web();
    void watch_signals();
    /// Re-arms itself: writes the rate-limit summaries whose window ended.
    void schedule_flush();
    void flush_rate_summaries(bool all);
    /// Deletes pending devices whose code expired a day ago (Store::remove_expired_pending).
    void remove_expired_pending();
    void start_ble();
    void on_stop_signal(int signo);
    void reload_actions();
    void run_now(const std::string& name,
                 const std::shared_ptr<std::promise<web::RunNowResult>>& done);
    web::RunNowResult run_now_from_web(const std::string& name);
    bool pairing_window_open();
    void publish_ble(const web::BleSnapshot& snapshot);
    std::unique_ptr<bluez::Peripheral> make_peripheral();
    void exit_loop();
    /// Removes the BLE bonds of revoked devices that are still there (docs/ble.md):
    /// at start once BLE is up, every kBondSweepInterval, on SIGHUP, after a web
    /// revocation and when a bonded device connects. Never throws.
    void sweep_bonds(const std::string& why);
    void arm_bond_sweep();

    // Declared in construction order; destroyed in the reverse, so each piece goes
    // before what it calls into. The signal sources go first (their callbacks reach
    // every other member); then the peripheral (its hooks call the command service,
    // the store and the web server); then the web server (stopping it joins its
    // worker threads, which push to `to_loop_`); then the queue; then the services;
    // then the runner (killing actions still running without calling back into the
    // services); then the loop they are all attached to; last the data they use.
    config::Config cfg_;
    std::unique_ptr<store::Store> store_;  ///< the loop thread's connection
    std::string ready_line_;               ///< "ready; devices paired: ..." (read at construction)
    std::string key_line_;                 ///< the Pi key's fingerprint, logged with it
    std::shared_ptr<actions::Registry> registry_;
    loop::EventLoop loop_;
    actions::Runner runner_;
    service::CommandService commands_;
    service::Owner owner_;  ///< the web UI's run-now, on the loop
    loop::CrossThreadQueue to_loop_;
    std::unique_ptr<web::Server> web_;        ///< null when disabled or not started
    std::unique_ptr<bluez::Peripheral> ble_;  ///< null when BLE is disabled
    bool ble_registered_ = false;             ///< the last status said "registered"
    loop::Source bond_sweep_;                 ///< the periodic sweep_bonds timer
    loop::Source flush_timer_;
    loop::Source sigterm_;
    loop::Source sigint_;
    loop::Source sighup_;
    bool stopping_ = false;
    bool exiting_ = false;
};

}  // namespace bzs::daemon
