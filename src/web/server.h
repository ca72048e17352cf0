// SPDX-License-Identifier: GPL-3.0-or-later
// The owner's web UI and JSON API (docs/web.md), served by bluezscriptd with
// cpp-httplib: HTTPS for the LAN, plain HTTP on loopback only. The server's worker
// threads never touch the daemon's loop: each uses its own store::Store connection
// (a small pool), reads snapshots the daemon publishes (actions registry, BLE state)
// under a mutex, and hands "run now" to the loop through the run_action hook.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "actions/registry.h"
#include "config/config.h"
#include "service/settings.h"
#include "store/store.h"

namespace bzs::web {

class WebError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// What the dashboard shows of BLE; published by the daemon's loop.
struct BleSnapshot {
    bool enabled = false;
    std::string summary = "BLE status not known yet";
    std::string adapter;
    bool powered = false;
    bool advertising = false;
    std::vector<std::string> connected;  ///< device object paths
};

/// The outcome of an owner's "run now".
struct RunNowResult {
    bool started = false;
    std::string message;  ///< for the owner, e.g. "started" or why not
};

using util::LogLevel;

struct ServerOptions {
    config::Config cfg;
    /// Opens one store connection; called by worker threads as the pool grows.
    std::function<std::unique_ptr<store::Store>()> open_store;
    /// Unix seconds (injectable for tests).
    std::function<std::int64_t()> clock;
    /// Log sink; messages never contain secrets.
    util::LogFn log;
    /// Runs an action as the owner, from a worker thread (the daemon forwards it to
    /// its loop). Empty: "run now" answers 503.
    std::function<RunNowResult(const std::string& action)> run_action;
    /// Called from a worker thread after the owner revoked a device (the daemon then
    /// removes its BLE bond). Empty: nothing is called.
    std::function<void()> on_device_revoked;
    /// Override cfg.web ports (0 = an ephemeral port; tests).
    std::optional<int> http_port;
    std::optional<int> https_port;
};

/// Who may call a route.
enum class Access {
    Public,  ///< sign-in page, static assets
    Page,    ///< HTML; without a session: 303 to /login
    Api,     ///< JSON; without a session: 401
};

/// One entry of the route table (the single list the server registers and the
/// tests enumerate).
struct RouteInfo {
    std::string method;   ///< "GET" or "POST"
    std::string pattern;  ///< the regex httplib matches
    std::string example;  ///< a concrete path matching pattern
    Access access = Access::Page;
};

/// Creates the self-signed certificate and key (0600) if cfg uses them and they do
/// not exist yet; returns the certificate's SHA-256 fingerprint. With
/// web.cert_file set, only reads that file. Throws WebError naming the file.
std::string ensure_certificate(const config::Config& cfg, bool* created = nullptr);

class Server {
  public:
    explicit Server(ServerOptions options);
    /// Stops the listeners.
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Binds the configured listeners (HTTPS needs ensure_certificate first) and
    /// serves them on their own threads. Throws WebError when a listener cannot bind.
    void start();
    /// Stops accepting, finishes requests in progress and joins the threads. Idempotent.
    void stop();

    /// Bound ports (0 when that listener is off).
    [[nodiscard]] int http_port() const;
    [[nodiscard]] int https_port() const;

    /// Publishes the actions snapshot (at start and after SIGHUP). Thread-safe.
    void set_registry(std::shared_ptr<const actions::Registry> registry);
    /// Publishes the BLE state. Thread-safe.
    void set_ble(BleSnapshot snapshot);

    /// Every route the server registers.
    [[nodiscard]] static const std::vector<RouteInfo>& routes();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The settings key holding the admin password hash (core/crypto/password.h format);
/// service/settings.h reads and writes it.
inline constexpr const char* kAdminPasswordSetting = service::kAdminPasswordKey;

}  // namespace bzs::web
