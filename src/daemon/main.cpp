// SPDX-License-Identifier: GPL-3.0-or-later
// `bluezscriptd`: loads the configuration, opens the private state, loads the
// actions directory, serves the GATT service over BLE (src/bluez) and the web UI,
// and runs the one event loop until SIGTERM/SIGINT. daemon/daemon.h has the pieces.
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <memory>

#include "daemon/daemon.h"
#include "loop/event_loop.h"
#include "util/log.h"

namespace {

int run(int argc, char** argv) {
    CLI::App app{"bluezscriptd: runs actions for paired phones over Bluetooth Low Energy"};
    bzs::daemon::Options options;
    app.add_option("-c,--config", options.config_flag,
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

    std::unique_ptr<bzs::daemon::Daemon> daemon;
    try {
        daemon = std::make_unique<bzs::daemon::Daemon>(options);
    } catch (const std::exception& e) {
        bzs::util::log_error(std::string("cannot start: ") + e.what());
        sd_notifyf(0, "STATUS=cannot start: %s", e.what());
        return 1;
    }
    return daemon->run();
}

}  // namespace

int main(int argc, char** argv) {
    // Whatever escapes the daemon is logged with its reason (under systemd a bare
    // abort would be a restart loop without a message).
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        bzs::util::log_error(std::string("stopped: ") + e.what());
        sd_notifyf(0, "STATUS=stopped: %s", e.what());
        return 1;
    } catch (...) {
        bzs::util::log_error("stopped: unexpected error");
        return 1;
    }
}
