// SPDX-License-Identifier: GPL-3.0-or-later
// `bluezscriptd`: loads the configuration, opens the private state, loads the
// actions directory and runs the one event loop until SIGTERM/SIGINT.
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "actions/registry.h"
#include "actions/runner.h"
#include "config/config.h"
#include "daemon/log.h"
#include "loop/event_loop.h"
#include "service/command_service.h"
#include "service/state.h"

namespace {

using bzs::daemon::log_error;
using bzs::daemon::log_info;
using bzs::daemon::log_warning;

void report_problems(const bzs::actions::Registry& reg) {
    for (const auto& p : reg.problems()) {
        log_warning("actions: " + std::string(bzs::actions::problem_kind_name(p.kind)) + ": " +
                    (p.file.empty() ? reg.dir().string() : p.file) + ": " + p.reason);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bluezscriptd: runs actions for paired phones over Bluetooth Low Energy"};
    std::string config_flag;
    app.add_option("-c,--config", config_flag,
                   "configuration file (default: $BLUEZSCRIPT_CONFIG, else /etc/bluezscript/bluezscript.toml)");
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
    try {
        const auto path = bzs::config::select_config_path(config_flag, std::getenv("BLUEZSCRIPT_CONFIG"));
        cfg = bzs::config::load_config(path);
        bzs::daemon::set_log_level(cfg.daemon.log_level);
        log_info("config: " + path.string());
        store = bzs::service::open_state(cfg);
        log_info("state: " + cfg.daemon.state_dir.string() + " (database " + cfg.db_path().string() +
                 ", master key " + cfg.keyfile_path().string() + ")");
    } catch (const std::exception& e) {
        log_error(std::string("cannot start: ") + e.what());
        sd_notifyf(0, "STATUS=cannot start: %s", e.what());
        return 1;
    }

    bzs::loop::EventLoop loop;
    auto registry = std::make_shared<bzs::actions::Registry>(
        bzs::actions::Registry::load(cfg.daemon.actions_dir, cfg.actions));
    report_problems(*registry);
    log_info("actions: " + std::to_string(registry->list().size()) + " in " + cfg.daemon.actions_dir.string());

    bzs::actions::RunnerOptions runner_options;
    runner_options.kill_grace = std::chrono::seconds(cfg.actions.kill_grace_seconds);
    bzs::actions::Runner runner(loop, runner_options);
    bzs::service::CommandService commands(*store, registry, runner, cfg.policy(),
                                          bzs::service::wall_clock_now);

    auto stop = [&](const signalfd_siginfo& si) {
        log_info("signal " + std::to_string(si.ssi_signo) + ": stopping");
        sd_notify(0, "STOPPING=1");
        loop.exit(0);
    };
    auto s_term = loop.add_signal(SIGTERM, stop);
    auto s_int = loop.add_signal(SIGINT, stop);
    // SIGHUP re-reads the actions directory (new scripts, changed metadata).
    auto s_hup = loop.add_signal(SIGHUP, [&](const signalfd_siginfo&) {
        registry = std::make_shared<bzs::actions::Registry>(
            bzs::actions::Registry::load(cfg.daemon.actions_dir, cfg.actions));
        commands.set_registry(registry);
        report_problems(*registry);
        log_info("actions reloaded: " + std::to_string(registry->list().size()));
    });

    const std::string ble_status =
        "BLE: not available in this build (the BLE transport is not implemented yet); "
        "phones cannot reach this Pi over the air. Pairing, actions and the audit log work.";
    log_warning(ble_status);
    log_info("ready; devices paired: " + std::to_string(store->list_devices(false).size()));
    sd_notify(0, "READY=1\nSTATUS=running without BLE (not implemented yet)");

    try {
        return loop.run();
    } catch (const std::exception& e) {
        log_error(std::string("fatal: ") + e.what());
        return 1;
    }
}
